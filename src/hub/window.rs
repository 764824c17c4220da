//! Each followed log's recent lines with their positions, kept by the hub: how a reconnect
//! storm costs MongoDB one read per log instead of one per viewer.
//!
//! A window starts from one read of the log's last lines (its positions counted back from the
//! last line's, which the store knows exactly) while the hub records what it hears meanwhile;
//! the heard lines that the read did not see follow in the order heard. From then on every
//! insert the hub dispatches is appended with the next position, under the same lock as the
//! dispatch, so a viewer that subscribes and takes the window's lines after its position in one
//! step gets every line once: what it took, then its queue. A line heard out of `_id` order
//! (another writer's clock) would make positions guesses, so it drops the window; so does a
//! resync. A window outlives its viewers (they come back in a storm after all leaving at once),
//! kept current by the change stream at no MongoDB cost, until the bound in bytes per log and
//! in all makes room for another: the windows of ended logs go first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bson::oid::ObjectId;
use tokio::sync::watch;

use crate::event::Live;
use crate::log::{LogKey, LogLine};

mod reach;
pub(crate) use reach::Reach;

/// What a line is taken to cost in memory, beyond its text.
const LINE_OVERHEAD: usize = 160;

/// The bounds of the windows (`window.bytes_per_log`, `window.bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub per_log: usize,
    pub total: usize,
}

#[derive(Debug)]
pub(super) struct Windows {
    logs: HashMap<LogKey, Slot>,
    bytes: usize,
    bounds: Bounds,
}

#[derive(Debug)]
enum Slot {
    /// A read of the log's last lines is under way; what the hub hears meanwhile waits here.
    Filling {
        heard: Vec<Arc<Live>>,
        bytes: usize,
        done: watch::Sender<bool>,
    },
    Ready(Window),
}

/// Positions `first..next` of one log, the newest last. Lines the read found may still be on
/// their way through the change stream: a viewer that joins drops its queue's lines up to the
/// window's newest (`Resume::upto`), so it never matters which.
#[derive(Debug)]
struct Window {
    lines: VecDeque<Arc<Live>>,
    first: u64,
    last_oid: ObjectId,
    bytes: usize,
    /// The position of its `[DONE]`, once heard or read.
    ended: Option<u64>,
    /// A read reaching it further back is under way (`reach.rs`); says `true` when done.
    reaching: Option<watch::Sender<bool>>,
}

impl Window {
    fn next(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    /// Appends the next line; returns the bytes it adds.
    fn push(&mut self, live: Arc<Live>) -> usize {
        let size = cost(&live);
        self.bytes += size;
        self.last_oid = live.oid;
        if live.is_done() {
            self.ended = Some(self.next());
        }
        self.lines.push_back(live);
        size
    }

    /// Drops the oldest lines down to `bound` bytes (the newest always stays); returns the bytes
    /// it freed.
    fn trim(&mut self, bound: usize) -> usize {
        let mut freed = 0;
        while self.bytes > bound && self.lines.len() > 1 {
            let Some(oldest) = self.lines.pop_front() else { break };
            let size = cost(&oldest);
            self.bytes -= size;
            freed += size;
            self.first += 1;
        }
        freed
    }
}

/// What a viewer at a position gets from a window.
#[derive(Debug)]
pub(crate) struct Resume {
    /// The lines after the position, each with its own.
    pub lines: Vec<(u64, Arc<Live>)>,
    /// The window's newest line: the viewer has every line up to it, so its queue may only
    /// bring it newer ones (an older one is the change stream still catching up: a line the
    /// window's read found before the stream brought it, or one written before the window).
    pub upto: ObjectId,
}

/// Where a caller stands with a log's window.
#[derive(Debug)]
pub(crate) enum Begin {
    /// There is one.
    Ready,
    /// The caller reads the log's last lines, then calls `finish` (or `fail`).
    Fill,
    /// Another caller is reading: wait until this says `true`.
    Wait(watch::Receiver<bool>),
}

fn cost(line: &LogLine) -> usize {
    line.text.len() + LINE_OVERHEAD
}

impl Windows {
    pub fn new(bounds: Bounds) -> Self {
        Self { logs: HashMap::new(), bytes: 0, bounds }
    }

    /// `None` when windows are off (`window.bytes_per_log = 0`).
    pub fn begin(&mut self, key: &LogKey) -> Option<Begin> {
        if self.bounds.per_log == 0 {
            return None;
        }
        Some(match self.logs.get(key) {
            Some(Slot::Ready(_)) => Begin::Ready,
            Some(Slot::Filling { done, .. }) => Begin::Wait(done.subscribe()),
            None => {
                let (done, _) = watch::channel(false);
                self.logs.insert(key.clone(), Slot::Filling { heard: Vec::new(), bytes: 0, done });
                Begin::Fill
            }
        })
    }

    /// The read of `key`'s last lines found `recent` (oldest first), the newest at position
    /// `last`: the window starts there, followed by what was heard since that the read missed.
    pub fn finish(&mut self, key: &LogKey, recent: Vec<LogLine>, last: u64) {
        let Some(Slot::Filling { heard, bytes, done }) = self.logs.remove(key) else { return };
        self.bytes -= bytes;
        let _ = done.send(true);
        let Some(newest) = recent.last().map(|line| line.oid) else { return };
        let read: HashSet<ObjectId> = recent.iter().map(|line| line.oid).collect();
        let first = last + 1 - recent.len() as u64;
        let mut window =
            Window { lines: VecDeque::new(), first, last_oid: newest, bytes: 0, ended: None, reaching: None };
        for line in recent {
            window.push(Arc::new(Live::new(line)));
        }
        for live in heard {
            if read.contains(&live.oid) {
                continue;
            }
            if live.oid < window.last_oid {
                return;
            }
            window.push(live);
        }
        window.trim(self.bounds.per_log);
        self.bytes += window.bytes;
        self.logs.insert(key.clone(), Slot::Ready(window));
        self.bound_total(key);
    }

    /// The read failed: waiters go to MongoDB on their own.
    pub fn fail(&mut self, key: &LogKey) {
        if let Some(Slot::Filling { bytes, done, .. }) = self.logs.remove(key) {
            self.bytes -= bytes;
            let _ = done.send(true);
        }
    }

    /// A line the hub dispatches now.
    pub fn heard(&mut self, key: &LogKey, live: &Arc<Live>) {
        let Some(slot) = self.logs.get_mut(key) else { return };
        match slot {
            Slot::Filling { heard, bytes, .. } => {
                let size = cost(live);
                if *bytes + size > self.bounds.per_log {
                    // Too much heard to join up: no window this time.
                    self.fail(key);
                    return;
                }
                *bytes += size;
                self.bytes += size;
                heard.push(live.clone());
            }
            Slot::Ready(window) => {
                if live.oid <= window.last_oid {
                    // The read found it before the change stream brought it, or it is out of
                    // `_id` order: then positions would be guesses from here on.
                    if !window.lines.iter().rev().any(|line| line.oid == live.oid) {
                        self.remove(key);
                    }
                    return;
                }
                if window.ended.is_some() {
                    self.remove(key);
                    return;
                }
                let added = window.push(live.clone());
                let freed = window.trim(self.bounds.per_log);
                self.bytes = self.bytes + added - freed;
                self.bound_total(key);
            }
        }
    }

    /// The lines after position `from`, if the window reaches back that far.
    pub fn after(&self, key: &LogKey, from: u64) -> Option<Resume> {
        let Some(Slot::Ready(window)) = self.logs.get(key) else { return None };
        if from + 1 < window.first || from >= window.next() {
            return None;
        }
        let skip = usize::try_from(from + 1 - window.first).ok()?;
        let lines = window.lines.iter().enumerate().skip(skip);
        let lines = lines.map(|(at, live)| (window.first + at as u64, live.clone())).collect();
        Some(Resume { lines, upto: window.last_oid })
    }

    /// `Some(end)` when the window knows whether the log has ended (`end`: its `[DONE]`'s position).
    pub fn end(&self, key: &LogKey) -> Option<Option<u64>> {
        match self.logs.get(key) {
            Some(Slot::Ready(window)) => Some(window.ended),
            _ => None,
        }
    }

    /// Drops `key`'s window, if it has one (a read under way finishes as it would).
    fn remove(&mut self, key: &LogKey) {
        if matches!(self.logs.get(key), Some(Slot::Ready(_))) {
            if let Some(Slot::Ready(window)) = self.logs.remove(key) {
                self.bytes -= window.bytes;
            }
        }
    }

    /// Every window goes (a resync: what the hub heard may have gaps); readers under way fail.
    pub fn clear(&mut self) {
        for (_, slot) in self.logs.drain() {
            if let Slot::Filling { done, .. } = slot {
                let _ = done.send(true);
            }
        }
        self.bytes = 0;
    }

    /// Keeps all windows within the total, dropping others': an ended log's first, else any
    /// (each costs one read to fill again).
    fn bound_total(&mut self, keep: &LogKey) {
        while self.bytes > self.bounds.total {
            let others = || self.logs.iter().filter(|(key, _)| *key != keep);
            let ended = others().find(|(_, slot)| matches!(slot, Slot::Ready(w) if w.ended.is_some()));
            let victim = ended.or_else(|| others().find(|(_, slot)| matches!(slot, Slot::Ready(_))));
            let Some(victim) = victim.map(|(key, _)| key.clone()) else { break };
            self.remove(&victim);
        }
    }
}
