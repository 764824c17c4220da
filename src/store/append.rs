//! Appending lines: one ordered `insert_many` per batch, with `_id`s after the log's last one.
//!
//! A log's lines are numbered in `_id` order, so an appended line must sort after every line
//! already stored, and its `_id` must be one no other process is about to make. A driver's
//! ObjectIds count up by one from its process's own random bytes, so "the last `_id` + 1" is
//! very often another writer's next line; an appended `_id` is instead made of this process's
//! random bytes and counter, with the timestamp moved forward (to the last line's second, or
//! one after) only when a fresh one would not sort after the last line.
//!
//! Each appended document also stores its position `n`, unique within its log (migration 0002;
//! not in a log another process writes too, whose positions are counted: see `last.rs`),
//! so the next append (and the "has it ended?" check) need not count the whole log, and two
//! replicas appending to one log at the same instant cannot both store line `n`. An insert that
//! meets a duplicate key (another replica took the position, or, however unlikely, the `_id`)
//! keeps what it stored and tries the rest again after the log's new last line. Within a
//! process appends to one log take turns, so retries only happen between processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::oid::ObjectId;
use bson::{doc, Document};
use mongodb::error::{Error, ErrorKind, Result};
use mongodb::Collection;

use super::last::Last;
use super::Store;
use crate::log::{Ending, LogKey, DONE};

/// How many inserts one append may make when other writers keep taking its positions; each
/// lost race means another writer's batch went in, so this bounds a request, not progress.
const MAX_ATTEMPTS: u32 = 16;
/// The most a later retry waits (at random, so writers that collided do not collide again).
const MAX_RETRY_WAIT: Duration = Duration::from_millis(20);
/// MongoDB's duplicate key error.
const DUPLICATE_KEY: i32 = 11000;

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Stored; the log now has this many positions.
    Next(u64),
    /// Nothing (more) stored: the log had already ended with `[DONE]`.
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
        // Waiting for the turn is abandoned with the request; once it is ours the append runs
        // to its end in a task of its own, so the next append to this log sees what it stored.
        let turn = lock.lock_owned().await;
        let texts: Vec<String> = lines
            .iter()
            .map(|line| self.redact.apply(line).into_owned())
            .chain(done.then(|| DONE.to_owned()))
            .collect();
        let (store, key) = (self.clone(), key.clone());
        super::run_detached(async move {
            let appended = store.append_in_turn(&key, &texts, end).await;
            drop(turn);
            appended
        })
        .await
    }

    async fn append_in_turn(&self, key: &LogKey, texts: &[String], end: Option<Ending>) -> Result<Appended> {
        // One time for the batch: its lines arrived together.
        let now = bson::DateTime::now();
        let mut rest = texts;
        let mut attempt = 1;
        loop {
            let last = self.last(key).await?;
            if last.is_some_and(|last| last.done) {
                return Ok(Appended::Finished);
            }
            let documents = documents(key, rest, last, now, end);
            let Some(newest) = documents.last().map(|(_, last)| *last) else {
                return Ok(Appended::Next(last.map_or(0, |last| last.position)));
            };
            let documents: Vec<Document> = documents.into_iter().map(|(document, _)| document).collect();
            let insert = |logs: Collection<Document>| async move {
                logs.insert_many(documents).ordered(true).await.map(drop)
            };
            let Err(err) = self.query(insert).await else {
                self.last_lines.remember_appended(key, last, newest);
                return Ok(Appended::Next(newest.position));
            };
            // Some of the batch may be stored: the next look-up finds it (and the other
            // writer's lines) after the remembered line, which stays trusted while the lines
            // found after it carry positions, so the retry costs one query, like the winner's.
            match stored_before_duplicate(&err) {
                Some(stored) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(log_type = %key.log_type, id = %key.id, stored, attempt, "another writer took a key of this append; trying the rest again");
                    rest = &rest[stored..];
                    attempt += 1;
                    // The first retry goes at once: the winner's next append is still on its
                    // way, and a loser that always waits would keep losing to a steady writer.
                    // Later ones wait at random, for three or more writers that keep colliding.
                    if attempt > 2 {
                        tokio::time::sleep(crate::backoff::jitter(MAX_RETRY_WAIT)).await;
                    }
                }
                _ => return Err(err),
            }
        }
    }
}

/// The documents of `texts`, each with the line it will be once stored, after `last`; the
/// `[DONE]` document, last, says how the log ended (`end`).
fn documents(
    key: &LogKey,
    texts: &[String],
    last: Option<Last>,
    now: bson::DateTime,
    end: Option<Ending>,
) -> Vec<(Document, Last)> {
    let stored_id = key.stored_id();
    let shared = last.is_some_and(|last| last.shared);
    let mut previous = last.map(|last| last.oid);
    let mut position = last.map_or(0, |last| last.position);
    texts
        .iter()
        .map(|text| {
            let oid = next_oid(previous);
            previous = Some(oid);
            position += 1;
            let mut document = doc! {
                "_id": oid,
                "type": key.log_type.clone(),
                "id": stored_id.clone(),
                "log": text.as_str(),
                "ts": now,
            };
            if !shared {
                document.insert("n", i64::try_from(position).unwrap_or(i64::MAX));
            }
            if let Some(end) = end.filter(|_| text == DONE) {
                document.extend(end.to_fields());
            }
            (document, Last { oid, position, done: text == DONE, shared })
        })
        .collect()
}

/// How many documents of an ordered insert were stored before one met a duplicate key; `None`
/// when it failed otherwise (then what was stored is unknown to the caller).
fn stored_before_duplicate(err: &Error) -> Option<usize> {
    let ErrorKind::InsertMany(failure) = err.kind.as_ref() else { return None };
    if failure.write_concern_error.is_some() {
        return None;
    }
    let first = failure.write_errors.as_ref()?.iter().min_by_key(|e| e.index)?;
    (first.code == DUPLICATE_KEY).then_some(first.index)
}

/// A new ObjectId that sorts after `after`: this process's own random bytes and counter (so no
/// other process is about to make it), with the timestamp of `after`'s second, or the next
/// second, when the current one would not sort after it.
fn next_oid(after: Option<ObjectId>) -> ObjectId {
    let fresh = ObjectId::new();
    let Some(last) = after.filter(|last| fresh <= *last) else { return fresh };
    let last_second = u32::from_be_bytes(last.bytes()[..4].try_into().expect("4 bytes"));
    let mut bytes = fresh.bytes();
    for second in [Some(last_second), last_second.checked_add(1)] {
        let Some(second) = second else { break };
        bytes[..4].copy_from_slice(&second.to_be_bytes());
        let candidate = ObjectId::from_bytes(bytes);
        if candidate > last {
            return candidate;
        }
    }
    // The last line is stamped with the largest second ObjectIds hold: only its successor is left.
    successor(last)
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

    /// The random bytes and counter of this process's ObjectIds.
    fn own_bytes() -> [u8; 5] {
        ObjectId::new().bytes()[4..9].try_into().unwrap()
    }

    #[test]
    fn new_ids_sort_after_the_last_line_and_keep_this_processs_own_bytes() {
        let now = u32::from_be_bytes(ObjectId::new().bytes()[..4].try_into().unwrap());
        // Another process's line in this very second, with random bytes above any of ours.
        let mut theirs = [0xff_u8; 12];
        theirs[..4].copy_from_slice(&now.to_be_bytes());
        let theirs = ObjectId::from_bytes(theirs);
        let ours = next_oid(Some(theirs));
        assert!(ours > theirs);
        assert_eq!(ours.bytes()[4..9], own_bytes(), "never the other process's next id");
        assert_eq!(u32::from_be_bytes(ours.bytes()[..4].try_into().unwrap()), now + 1);
        // The batch's next line stays in that second.
        let next = next_oid(Some(ours));
        assert!(next > ours);
        assert_eq!(next.bytes()[..4], ours.bytes()[..4]);
    }

    #[test]
    fn a_last_line_from_the_future_or_the_past_is_still_followed() {
        let later = ObjectId::from_bytes([0xf0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 9, 9, 9]);
        let ours = next_oid(Some(later));
        assert!(ours > later);
        assert_eq!(ours.bytes()[..4], [0xf0, 0, 0, 1]);
        let past = ObjectId::from_bytes([0; 12]);
        assert!(next_oid(Some(past)) > past);
        assert!(next_oid(None) > past);
        let last_second =
            ObjectId::from_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 7]);
        assert_eq!(next_oid(Some(last_second)).bytes()[9..], [0, 0, 8]);
    }
}
