//! The index: which logs exist, live, kept in memory so that listing costs MongoDB nothing.
//!
//! Built at start from one aggregation over a recent window (`load.rs`), then kept current by
//! the hub, which hands every insert of its one change stream to [`Index::record`]. Changes are
//! broadcast to the open index streams: a log's first line and its `[DONE]` at once, growth at
//! most once per second per log. At most `index.max_logs` logs are kept; the least recently
//! updated are forgotten first, so memory stays bounded whatever the collection holds. A live log
//! with no line for `index.idle_after_secs` turns idle (`idle.rs`), announced then and when it
//! wakes up. A log's length is what the change stream told, so it is trusted for reads that
//! would count the log (`known`) only where MongoDB counted it: at the load, and once more when
//! the log ends (`lengths.rs`), since a stream can miss inserts without saying so.

mod cursor;
mod filter;
mod idle;
mod lengths;
mod load;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bson::oid::ObjectId;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

pub(crate) use cursor::{decode as decode_cursor, encode as encode_cursor, Position};
pub(crate) use filter::{Filter, StateFilter, Status};
pub(crate) use lengths::run as count_lengths;
pub(crate) use load::run;

use crate::config::IndexSettings;
use crate::log::{Ending, LogKey};
use crate::notify::Notifier;
use crate::store::{Known, LogStats};

/// A growing log is announced at most this often.
const GROWTH_EVERY: Duration = Duration::from_secs(1);
/// The longest a read waits for a count under way before counting by itself.
const COUNT_PATIENCE: Duration = Duration::from_secs(5);
/// Changes an index stream may fall behind by before it is sent the whole list again.
const CHANGES_CAPACITY: usize = 4096;
/// Inserts held while the start-up aggregation runs; beyond it the load starts over.
const LOAD_BUFFER: usize = 1_000_000;
/// Ended logs waiting to be counted; beyond it a log is not counted (its tail counts instead).
const COUNTS_WAITING: usize = 1024;

/// One insert, as the hub hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Insert {
    pub oid: ObjectId,
    pub done: bool,
    /// For `[DONE]`: how the log ended.
    pub ending: Ending,
    /// When MongoDB committed it (the change event's wall time, in milliseconds), if known.
    pub at: Option<SystemTime>,
}

/// One log as the list route and the index stream show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Summary {
    #[serde(rename = "type")]
    pub log_type: String,
    pub id: String,
    /// Line positions so far, `[DONE]` included.
    pub lines: u64,
    /// RFC 3339, UTC: the time of the first line's `_id`.
    pub started: String,
    /// RFC 3339, UTC: when the last line was inserted (to the millisecond when seen live,
    /// else its `_id`'s second).
    pub updated: String,
    pub done: bool,
    /// `outcome` and `exit_code` (`null` while live or unknown).
    #[serde(flatten)]
    pub ending: Ending,
    /// Live, but no line for `index.idle_after_secs`: idle since `updated`.
    pub idle: bool,
    /// Where the log sits in the list (what a cursor after it names).
    #[serde(skip)]
    pub position: Position,
}

/// What an index stream hears.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Log(Arc<Summary>),
    /// The list was rebuilt (the change stream had to start afresh): send it again.
    Reset,
}

#[derive(Debug, Clone)]
pub(crate) struct Index {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
    ready: watch::Sender<bool>,
    /// Bumped when the list must be rebuilt from MongoDB (a fresh change stream).
    generation: watch::Sender<u64>,
    settings: IndexSettings,
    /// Told of each log turning idle.
    notify: Notifier,
    /// Logs to count once ended (the `_id` of their last line), for `lengths.rs`.
    counts: mpsc::Sender<(LogKey, ObjectId)>,
    count_requests: Mutex<Option<mpsc::Receiver<(LogKey, ObjectId)>>>,
    /// Bumped when a count is in.
    counted: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    logs: HashMap<LogKey, Entry>,
    /// Every log by its last `_id`: the list's order, most recent last.
    order: BTreeSet<Position>,
    /// Inserts seen while a load runs, applied after it.
    loading: Option<Vec<(LogKey, Insert)>>,
    overflowed: bool,
    /// Logs that grew but were announced less than a second ago.
    pending: HashSet<LogKey>,
    /// The live logs not idle yet, by when they were last updated: the next to turn idle first.
    quiet: BTreeSet<(SystemTime, LogKey)>,
    /// Logs being counted now.
    counting: HashSet<LogKey>,
}

#[derive(Debug)]
struct Entry {
    first: ObjectId,
    last: ObjectId,
    lines: u64,
    done: bool,
    ending: Ending,
    updated: SystemTime,
    idle: bool,
    announced: Option<Instant>,
    /// The last `_id` when MongoDB counted `lines`: they are exact while it is still `last`.
    counted: Option<ObjectId>,
}

impl Entry {
    fn new(first: ObjectId, last: ObjectId, lines: u64, end: Option<Ending>, at: Option<SystemTime>) -> Self {
        let updated = at.unwrap_or_else(|| last.timestamp().into());
        let (done, ending) = (end.is_some(), end.unwrap_or_default());
        Self { first, last, lines, done, ending, updated, idle: false, announced: None, counted: None }
    }

    fn status(&self) -> Status {
        Status { done: self.done, outcome: self.ending.outcome, idle: self.idle }
    }
}

impl Index {
    #[cfg(test)]
    pub fn new(settings: IndexSettings) -> Self {
        Self::with_notifier(settings, Notifier::default())
    }

    /// An empty index whose logs turning idle are told to `notify`.
    pub fn with_notifier(settings: IndexSettings, notify: Notifier) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let (ready, _) = watch::channel(false);
        let (generation, _) = watch::channel(0);
        let (counted, _) = watch::channel(0);
        let (counts, requests) = mpsc::channel(COUNTS_WAITING);
        let state = Mutex::new(State::default());
        let count_requests = Mutex::new(Some(requests));
        Self {
            shared: Arc::new(Shared {
                state,
                changes,
                ready,
                generation,
                settings,
                notify,
                counts,
                count_requests,
                counted,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An insert from the change stream.
    pub fn record(&self, key: &LogKey, insert: Insert) {
        let mut state = self.lock();
        if let Some(buffer) = state.loading.as_mut() {
            if buffer.len() < LOAD_BUFFER {
                buffer.push((key.clone(), insert));
            } else {
                buffer.clear();
                state.overflowed = true;
            }
            return;
        }
        self.apply(&mut state, key, insert, false);
    }

    /// Starts a rebuild: inserts are held from now on. The change stream must be running.
    pub fn begin_load(&self) {
        let mut state = self.lock();
        state.loading = Some(Vec::new());
        state.overflowed = false;
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Replaces the list with what MongoDB said, then applies the inserts held meanwhile.
    /// False when the load is stale (another began since) or must start over.
    fn finish_load(&self, generation: u64, stats: Vec<LogStats>) -> bool {
        let mut state = self.lock();
        if *self.shared.generation.borrow() != generation || state.overflowed {
            return false;
        }
        let held = state.loading.take().unwrap_or_default();
        state.logs.clear();
        state.order.clear();
        state.pending.clear();
        state.quiet.clear();
        let now = SystemTime::now();
        for stats in stats {
            state.order.insert((stats.last, stats.key.clone()));
            let end = stats.done.then_some(stats.ending);
            let mut entry = Entry::new(stats.first, stats.last, stats.lines, end, None);
            entry.counted = Some(stats.last);
            // Logs long silent are idle from the start, without an announcement each: the
            // streams are sent the whole list below.
            entry.idle = !entry.done && self.silent_long_enough(entry.updated, now);
            if !entry.done && !entry.idle {
                state.quiet.insert((entry.updated, stats.key.clone()));
            }
            state.logs.insert(stats.key, entry);
        }
        self.evict(&mut state);
        for (key, insert) in held {
            self.apply(&mut state, &key, insert, true);
        }
        drop(state);
        let _ = self.shared.changes.send(Change::Reset);
        self.shared.ready.send_replace(true);
        true
    }

    /// Counts one insert. While held inserts are replayed after a load, those the aggregation
    /// already counted (an `_id` not after the log's last) are skipped.
    fn apply(&self, state: &mut State, key: &LogKey, insert: Insert, replay: bool) {
        let Insert { oid, done, ending, at } = insert;
        let Some(entry) = state.logs.get_mut(key) else {
            let entry = Entry::new(oid, oid, 1, done.then_some(ending), at);
            if !done {
                state.quiet.insert((entry.updated, key.clone()));
            } else if self.shared.counts.try_send((key.clone(), oid)).is_ok() {
                // First heard at its end: its length is anybody's guess until counted.
                state.counting.insert(key.clone());
            }
            state.logs.insert(key.clone(), entry);
            state.order.insert((oid, key.clone()));
            self.evict(state);
            self.announce(state, key);
            return;
        };
        if replay && oid <= entry.last {
            return;
        }
        state.quiet.remove(&(entry.updated, key.clone()));
        let woke = std::mem::replace(&mut entry.idle, false);
        entry.lines += 1;
        entry.first = entry.first.min(oid);
        entry.updated = entry.updated.max(at.unwrap_or_else(|| oid.timestamp().into()));
        if !entry.done && !done {
            state.quiet.insert((entry.updated, key.clone()));
        }
        if oid > entry.last {
            let old = std::mem::replace(&mut entry.last, oid);
            state.order.remove(&(old, key.clone()));
            state.order.insert((oid, key.clone()));
        }
        let entry = state.logs.get_mut(key).expect("present above");
        let ended_now = done && !entry.done;
        if ended_now {
            entry.done = true;
            entry.ending = ending;
            let last = entry.last;
            if self.shared.counts.try_send((key.clone(), last)).is_ok() {
                state.counting.insert(key.clone());
            }
        }
        let recently = entry.announced.is_some_and(|at| at.elapsed() < GROWTH_EVERY);
        if ended_now || woke || !recently {
            self.announce(state, key);
        } else {
            state.pending.insert(key.clone());
        }
    }

    fn announce(&self, state: &mut State, key: &LogKey) {
        state.pending.remove(key);
        let Some(entry) = state.logs.get_mut(key) else { return };
        entry.announced = Some(Instant::now());
        let _ = self.shared.changes.send(Change::Log(Arc::new(summary(key, entry))));
    }

    /// Announces the growing logs whose second has passed, and the logs that turned idle.
    fn flush_pending(&self) {
        let mut state = self.lock();
        self.mark_idle(&mut state, SystemTime::now());
        let due: Vec<LogKey> = state
            .pending
            .iter()
            .filter(|key| {
                state.logs.get(*key).and_then(|e| e.announced).is_none_or(|at| at.elapsed() >= GROWTH_EVERY)
            })
            .cloned()
            .collect();
        for key in due {
            self.announce(&mut state, &key);
        }
    }

    fn evict(&self, state: &mut State) {
        while state.logs.len() > self.shared.settings.max_logs {
            let Some((_, key)) = state.order.pop_first() else { break };
            if let Some(entry) = state.logs.remove(&key) {
                state.quiet.remove(&(entry.updated, key.clone()));
            }
            state.pending.remove(&key);
        }
    }

    /// Up to `max` logs matching `filter`, most recently updated first, after `before`.
    pub fn page(&self, filter: &Filter, before: Option<&Position>, max: usize) -> Vec<Summary> {
        let state = self.lock();
        let range = match before {
            Some(before) => state.order.range(..before.clone()),
            None => state.order.range(..),
        };
        range
            .rev()
            .filter_map(|(_, key)| {
                let entry = state.logs.get(key)?;
                filter.matches(&key.log_type, &key.id, entry.status()).then(|| summary(key, entry))
            })
            .take(max)
            .collect()
    }

    /// An ended log's first and last `_id` and its length, when MongoDB counted it and nothing
    /// was heard since (`None` otherwise, or while the list is being rebuilt): for reads that
    /// would count the log. A count under way (the log just ended) is waited for. A live log is
    /// left out even when counted: a read from what the index has heard could miss a line just
    /// written, which a caller that wrote it expects to see.
    pub async fn known(&self, key: &LogKey) -> Option<Known> {
        let mut counted = self.shared.counted.subscribe();
        loop {
            {
                let state = self.lock();
                if state.loading.is_some() {
                    return None;
                }
                if !state.counting.contains(key) {
                    let entry = state
                        .logs
                        .get(key)
                        .filter(|entry| entry.done && entry.counted == Some(entry.last))?;
                    return Some(Known { first: entry.first, last: entry.last, lines: entry.lines });
                }
            }
            // Counts end (the task outlives the service's requests); the bound is for safety.
            match tokio::time::timeout(COUNT_PATIENCE, counted.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Whether the index has heard `key` end (its `[DONE]`): then what is stored up to it stays.
    pub fn has_ended(&self, key: &LogKey) -> bool {
        self.lock().logs.get(key).is_some_and(|entry| entry.done)
    }

    /// The changes from now on.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// True once the list has been built at start.
    pub fn watch_ready(&self) -> watch::Receiver<bool> {
        self.shared.ready.subscribe()
    }

    /// How many logs are listed.
    pub fn len(&self) -> usize {
        self.lock().logs.len()
    }
}

fn summary(key: &LogKey, entry: &Entry) -> Summary {
    Summary {
        log_type: key.log_type.clone(),
        id: key.id.clone(),
        lines: entry.lines,
        started: rfc3339(entry.first),
        updated: bson::DateTime::from_system_time(entry.updated).try_to_rfc3339_string().unwrap_or_default(),
        done: entry.done,
        ending: if entry.done { entry.ending } else { Ending::default() },
        idle: entry.idle,
        position: (entry.last, key.clone()),
    }
}

fn rfc3339(oid: ObjectId) -> String {
    oid.timestamp().try_to_rfc3339_string().unwrap_or_default()
}

#[cfg(test)]
mod tests;
