//! A log's last line, in constant time: what appends and the reconnect "has it ended?" check ask.
//!
//! Finding a log's last document (`sort _id: -1, limit 1`) is one index entry on MongoDB, but
//! the test server reads the whole log to answer it (370 ms at 100,000 lines), and a line without
//! a stored position must be counted. So the last line seen of each log is remembered here, and
//! the next question only asks MongoDB for documents from that `_id` on: a walk of at most a few
//! index entries on any server. Other writers are still seen (their lines sort after the one
//! remembered), and a log that was deleted meanwhile is noticed (the remembered line is gone).
//!
//! Another process writing the same log can also put a line *before* the last one: its driver's
//! ObjectIds count on from its own last line, so a line it writes in the same second as an
//! append sorts before the appended one. Then stored positions after it are one short. So a
//! stored position is trusted only when no line without one was stored in the second before
//! it; otherwise the log is "shared": its positions are counted, and appends to it store none
//! (a line without a position makes every later lookup count, in every process, after restarts).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use mongodb::error::Result;
use mongodb::Collection;

use super::Store;
use crate::log::{LogKey, DONE};

/// How many logs' last lines are remembered: the logs being written or watched right now.
const REMEMBERED: usize = 4096;

/// The last line of a log as far as this process knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Last {
    pub oid: ObjectId,
    /// Its position in the log (1 for the first line).
    pub position: u64,
    /// Whether it is `[DONE]`.
    pub done: bool,
    /// Another writer's lines are in the log: positions are counted, never stored or remembered.
    pub shared: bool,
}

#[derive(Debug, Default)]
pub(super) struct LastLines(Mutex<HashMap<LogKey, Last>>);

impl LastLines {
    fn get(&self, key: &LogKey) -> Option<Last> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
    }

    pub(super) fn remember(&self, key: &LogKey, last: Option<Last>) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(last) = last else {
            lines.remove(key);
            return;
        };
        if lines.len() >= REMEMBERED && !lines.contains_key(key) {
            // Any entry will do: forgetting one only costs its log one full lookup later.
            if let Some(evicted) = lines.keys().next().cloned() {
                lines.remove(&evicted);
            }
        }
        lines.insert(key.clone(), last);
    }
}

impl Store {
    /// The log's last line (`None` for an empty log): from what is remembered plus the lines
    /// stored after it, else by one lookup (and a count when that line has no stored position).
    pub(crate) async fn last(&self, key: &LogKey) -> Result<Option<Last>> {
        let known = self.last_lines.get(key).filter(|known| !known.shared);
        let mut newest: Option<Document> = None;
        for mut filter in key.exact_filters() {
            if let Some(known) = known {
                filter.insert("_id", doc! { "$gte": known.oid });
            }
            let find = |logs: Collection<Document>| async move {
                logs.find_one(filter)
                    .sort(doc! { "_id": -1 })
                    .projection(doc! { "_id": 1, "log": 1, "n": 1 })
                    .await
            };
            if let Some(found) = self.query(find).await? {
                if newest.as_ref().is_none_or(|newest| oid_of(&found) > oid_of(newest)) {
                    newest = Some(found);
                }
            }
        }
        let last = match (newest, known) {
            (Some(document), Some(known)) if oid_of(&document) == Some(known.oid) => Some(known),
            // The remembered line is gone (the log was deleted): ask again from scratch.
            (None, Some(_)) => {
                self.last_lines.remember(key, None);
                return Box::pin(self.last(key)).await;
            }
            (Some(document), _) => self.resolve(key, &document).await?,
            (None, None) => None,
        };
        let last = match last {
            Some(last) if !last.shared && self.written_before_by_another(key, last.oid).await? => {
                Some(Last { position: self.count(key).await?, shared: true, ..last })
            }
            last => last,
        };
        self.last_lines.remember(key, last);
        Ok(last)
    }

    /// Whether a line without a stored position sorts just before `oid` (within its second and
    /// the one before): another process wrote the log after the line at `oid` was stored.
    async fn written_before_by_another(&self, key: &LogKey, oid: ObjectId) -> Result<bool> {
        let made = SystemTime::from(oid.timestamp());
        let since = super::oid_at(made.checked_sub(Duration::from_secs(1)).unwrap_or(SystemTime::UNIX_EPOCH));
        for mut filter in key.exact_filters() {
            filter.insert("_id", doc! { "$gte": since, "$lt": oid });
            filter.insert("n", doc! { "$exists": false });
            let find = |logs: Collection<Document>| async move {
                logs.find_one(filter).projection(doc! { "_id": 1 }).await
            };
            if self.query(find).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The position of a log's newest document: the one an append stored with it, else a count.
    async fn resolve(&self, key: &LogKey, document: &Document) -> Result<Option<Last>> {
        let Ok(oid) = document.get_object_id("_id") else { return Ok(None) };
        let stored = match document.get("n") {
            Some(Bson::Int64(n)) => u64::try_from(*n).ok(),
            Some(Bson::Int32(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        let (position, shared) = match stored {
            Some(position) => (position, false),
            None => (self.count(key).await?, true),
        };
        let done = document.get_str("log").is_ok_and(|text| text == DONE);
        Ok(Some(Last { oid, position, done, shared }))
    }
}

fn oid_of(document: &Document) -> Option<ObjectId> {
    document.get_object_id("_id").ok()
}
