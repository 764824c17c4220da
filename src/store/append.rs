//! Appending lines: one ordered `insert_many` per batch, with `_id`s after the log's last one.
//!
//! A log's lines are numbered in `_id` order, so an appended line must sort after every line
//! already stored. ObjectIds made by one process increase, but another process (the service
//! restarted within the same second, another replica) may make smaller ones; so each batch's
//! `_id`s are made greater than the log's last `_id`, and appends to one log take turns within
//! the process. Two replicas appending to one log in the same instant may pick the same `_id`:
//! the second insert then fails on the unique `_id` (nothing is stored twice) and is answered
//! 503, which `push` resolves by looking the batch up.
//!
//! Each appended document also stores its position `n`, so the next append (and the "has it
//! ended?" check) need not count the whole log, and the last line stored is remembered, so they
//! need not look for it either (see `last.rs`). A log whose last line came from another writer
//! (no `n`) is counted once, then carries positions again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bson::oid::ObjectId;
use bson::{doc, Document};
use mongodb::error::Result;
use mongodb::Collection;

use super::last::Last;
use super::Store;
use crate::log::{Ending, LogKey, DONE};

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Stored; the log now has this many positions.
    Next(u64),
    /// Nothing stored: the log had already ended with `[DONE]`.
    Finished,
}

/// One turn-taking lock per log being appended to; entries go away when nobody holds them.
#[derive(Debug, Default)]
pub(super) struct AppendLocks(Mutex<HashMap<LogKey, Arc<tokio::sync::Mutex<()>>>>);

impl AppendLocks {
    fn for_log(&self, key: &LogKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(key.clone()).or_default().clone()
    }
}

impl Store {
    /// Appends lines (and `[DONE]` saying how the log ended, when `end` is given) unless the
    /// log has ended.
    pub async fn append(&self, key: &LogKey, lines: &[String], end: Option<Ending>) -> Result<Appended> {
        let done = end.is_some();
        let lock = self.appends.for_log(key);
        let turn = lock.lock_owned().await;
        let last = self.last(key).await?;
        if last.is_some_and(|last| last.done) {
            return Ok(Appended::Finished);
        }
        let stored_id = key.stored_id();
        let mut previous = last.map(|last| last.oid);
        let mut position = last.map_or(0, |last| last.position);
        // One time for the batch: its lines arrived together.
        let now = bson::DateTime::now();
        let texts =
            lines.iter().map(|line| self.redact.apply(line)).chain(done.then_some(Cow::Borrowed(DONE)));
        let mut documents: Vec<Document> = texts
            .map(|text| {
                let oid = next_oid(previous);
                previous = Some(oid);
                position += 1;
                doc! {
                    "_id": oid,
                    "type": key.log_type.clone(),
                    "id": stored_id.clone(),
                    "log": text.as_ref(),
                    "ts": now,
                    "n": i64::try_from(position).unwrap_or(i64::MAX),
                }
            })
            .collect();
        // The `[DONE]` document, last, says how the log ended.
        if let (Some(end), Some(last)) = (end, documents.last_mut()) {
            last.extend(end.to_fields());
        }
        if let Some(oid) = previous.filter(|_| !documents.is_empty()) {
            // The next append to this log waits for this insert even if this request is abandoned.
            let insert = |logs: Collection<Document>| async move {
                let inserted = logs.insert_many(documents).ordered(true).await;
                drop(turn);
                inserted
            };
            let inserted = self.query(insert).await;
            if let Err(err) = inserted {
                // Some of the batch may be stored: look the log up again next time.
                self.last_lines.remember(key, None);
                return Err(err);
            }
            self.last_lines.remember(key, Some(Last { oid, position, done }));
        }
        Ok(Appended::Next(position))
    }
}

/// A fresh ObjectId, or the one right after `after` when a fresh one would not sort after it.
fn next_oid(after: Option<ObjectId>) -> ObjectId {
    let fresh = ObjectId::new();
    match after {
        Some(last) if fresh <= last => successor(last),
        _ => fresh,
    }
}

/// The ObjectId one greater than `oid`, as a 96-bit number.
fn successor(oid: ObjectId) -> ObjectId {
    let mut bytes = oid.bytes();
    for byte in bytes.iter_mut().rev() {
        *byte = byte.wrapping_add(1);
        if *byte != 0 {
            break;
        }
    }
    ObjectId::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_sort_after_a_last_id_from_the_future_or_from_another_process() {
        let later = ObjectId::from_bytes([0xff, 0xff, 0xff, 0xf0, 9, 9, 9, 9, 9, 0, 0, 0xff]);
        let first = next_oid(Some(later));
        assert_eq!(first.bytes(), [0xff, 0xff, 0xff, 0xf0, 9, 9, 9, 9, 9, 0, 1, 0]);
        assert!(next_oid(Some(first)) > first);
        let past = ObjectId::from_bytes([0; 12]);
        assert!(next_oid(Some(past)) > past);
        assert!(next_oid(None) > past);
    }
}
