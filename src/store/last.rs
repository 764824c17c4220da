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
//!
//! Asking MongoDB that for every append would read every line of the last second (thousands
//! while a log is written fast). The change stream hears every insert, so a last line checked
//! once stays trusted for as long as the stream has run without a gap since the check, and
//! until it hears a line without a position in that log (which forgets the log here).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The last lines remembered, each with the hearing in which it was checked (0: not checked).
#[derive(Debug)]
pub(super) struct LastLines {
    lines: Mutex<HashMap<LogKey, (Last, u64)>>,
    /// The change stream's current hearing: a number that changes whenever it may have missed
    /// an insert (opened, failed, closed); 0 while none runs.
    hearing: AtomicU64,
    hearings: AtomicU64,
    /// Lines heard without a position, counted per bucket of logs: a check of a log that saw
    /// its bucket move may have missed one (a bucket shared with another log only costs a check).
    unpositioned: [AtomicU64; BUCKETS],
}

const BUCKETS: usize = 256;

/// What was heard when a check started.
#[derive(Debug, Clone, Copy)]
struct Heard {
    hearing: u64,
    unpositioned: u64,
}

fn bucket(key: &LogKey) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    usize::try_from(hash % BUCKETS as u64).unwrap_or(0)
}

impl LastLines {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LogKey, (Last, u64)>> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &LogKey) -> Option<(Last, u64)> {
        self.lock().get(key).copied()
    }

    fn heard(&self, key: &LogKey) -> Heard {
        Heard {
            hearing: self.hearing.load(Ordering::Acquire),
            unpositioned: self.unpositioned[bucket(key)].load(Ordering::Acquire),
        }
    }

    pub(super) fn remember(&self, key: &LogKey, last: Option<Last>) {
        let mut lines = self.lock();
        match last {
            Some(last) => insert(&mut lines, key, last, 0),
            None => {
                lines.remove(key);
            }
        }
    }

    /// Remembers `last`, checked for other writers' lines by a check that started at `since`:
    /// trusted later only if the stream heard every insert since, none of them unpositioned.
    fn remember_checked(&self, key: &LogKey, last: Option<Last>, since: Heard) {
        let mut lines = self.lock();
        let Some(last) = last else {
            lines.remove(key);
            return;
        };
        let now = self.heard(key);
        let checked = if now.hearing == since.hearing && now.unpositioned == since.unpositioned {
            since.hearing
        } else {
            0
        };
        insert(&mut lines, key, last, checked);
    }

    /// Remembers the last line an append stored after `before`: still checked if `before` was
    /// and is still remembered (hearing a line without a position forgets the log).
    pub(super) fn remember_appended(&self, key: &LogKey, before: Option<Last>, appended: Last) {
        let mut lines = self.lock();
        let checked = match (lines.get(key), before) {
            (Some((known, checked)), Some(before)) if known.oid == before.oid && self.trusted(*checked) => {
                *checked
            }
            _ => 0,
        };
        insert(&mut lines, key, appended, checked);
    }

    /// The change stream (re)opened: what it hears from now on is every insert.
    pub(super) fn hearing_started(&self) {
        let hearing = self.hearings.fetch_add(1, Ordering::AcqRel) + 1;
        self.hearing.store(hearing, Ordering::Release);
    }

    /// The change stream stopped or failed: inserts may go unheard until it runs again.
    pub(super) fn hearing_stopped(&self) {
        self.hearing.store(0, Ordering::Release);
    }

    /// The change stream heard a line stored without a position: another process writes this log.
    pub(super) fn heard_unpositioned(&self, key: &LogKey) {
        let mut lines = self.lock();
        self.unpositioned[bucket(key)].fetch_add(1, Ordering::AcqRel);
        lines.remove(key);
    }

    fn trusted(&self, checked: u64) -> bool {
        checked != 0 && checked == self.hearing.load(Ordering::Acquire)
    }
}

impl Default for LastLines {
    fn default() -> Self {
        Self {
            lines: Mutex::default(),
            hearing: AtomicU64::new(0),
            hearings: AtomicU64::new(0),
            unpositioned: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn insert(lines: &mut HashMap<LogKey, (Last, u64)>, key: &LogKey, last: Last, checked: u64) {
    if lines.len() >= REMEMBERED && !lines.contains_key(key) {
        // Any entry will do: forgetting one only costs its log one full lookup later.
        if let Some(evicted) = lines.keys().next().cloned() {
            lines.remove(&evicted);
        }
    }
    lines.insert(key.clone(), (last, checked));
}

impl Store {
    /// The log's last line (`None` for an empty log): from what is remembered plus the lines
    /// stored after it, else by one lookup (and a count when that line has no stored position).
    pub(crate) async fn last(&self, key: &LogKey) -> Result<Option<Last>> {
        // Taken before asking: an insert the stream misses after this is then not trusted away.
        let heard = self.last_lines.heard(key);
        let remembered = self.last_lines.get(key).filter(|(known, _)| !known.shared);
        let known = remembered.map(|(known, _)| known);
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
        // Lines found after a checked one that carry positions were appended by this service
        // (here or in another replica): had a line without one come in meanwhile, the stream
        // would have heard it and forgotten the log.
        let still_checked = remembered.is_some_and(|(_, checked)| self.last_lines.trusted(checked))
            && last.is_some_and(|last| !last.shared);
        let last = match last {
            Some(last) if still_checked => Some(last),
            Some(last) if !last.shared && self.written_before_by_another(key, last.oid).await? => {
                Some(Last { position: self.position_of(key, last.oid).await?, shared: true, ..last })
            }
            last => last,
        };
        self.last_lines.remember_checked(key, last, heard);
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
            None => (self.position_of(key, oid).await?, true),
        };
        let done = document.get_str("log").is_ok_and(|text| text == DONE);
        Ok(Some(Last { oid, position, done, shared }))
    }
}

fn oid_of(document: &Document) -> Option<ObjectId> {
    document.get_object_id("_id").ok()
}
