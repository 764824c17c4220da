//! Reaching a window back: viewers that come back from before their log's window share one
//! read of the lines between their positions and the window, which then holds those lines too.
//!
//! A window starts with a log's last lines; a storm of viewers that were further behind (a slow
//! CI log watched from its start) would each read MongoDB. The first of them reads the lines
//! just before the window, at least `LEAST` of them (so that the next viewers are covered too)
//! and at most `MOST`, and the window takes them at its front while they fit its bound; viewers
//! arriving meanwhile wait for that read. Their positions follow from the window's first one:
//! the read is the `count` lines with the next smaller `_id`s. If the window changed during the
//! read (trimmed, rebuilt, dropped), the read is thrown away and the viewers read on their own.

use std::sync::Arc;

use bson::oid::ObjectId;
use tokio::sync::watch;

use super::{cost, Slot, Windows};
use crate::event::Live;
use crate::log::{LogKey, LogLine};

/// The furthest back (in lines before the window) a reach goes; a viewer further back reads alone.
const MOST: u64 = 10_000;
/// The fewest lines a reach reads.
const LEAST: u64 = 1_000;

/// What a viewer at a position before a window does.
#[derive(Debug)]
pub(crate) enum Reach {
    /// Nothing: the window covers the position, or cannot (none, full, too far back).
    Done,
    /// Read the `count` lines before `before` (the window's first line, at position `first`),
    /// then call [`Windows::reached`].
    Read { before: ObjectId, first: u64, count: u64 },
    /// Another viewer's read is under way: wait until this says `true`.
    Wait(watch::Receiver<bool>),
}

impl Windows {
    /// Whether `key`'s window can reach back to position `from`, and how.
    pub fn reach(&mut self, key: &LogKey, from: u64) -> Reach {
        let per_log = self.bounds.per_log;
        let Some(Slot::Ready(window)) = self.logs.get_mut(key) else { return Reach::Done };
        if from + 1 >= window.first {
            return Reach::Done;
        }
        if let Some(reading) = &window.reaching {
            return Reach::Wait(reading.subscribe());
        }
        let needed = window.first - 1 - from;
        let Some(oldest) = window.lines.front() else { return Reach::Done };
        if needed > MOST || window.bytes >= per_log {
            return Reach::Done;
        }
        let (reading, _) = watch::channel(false);
        window.reaching = Some(reading);
        let count = needed.max(LEAST).min(window.first - 1);
        Reach::Read { before: oldest.oid, first: window.first, count }
    }

    /// The read of a [`Reach::Read`] found `read` (oldest first; `None`: it failed).
    pub fn reached(
        &mut self,
        key: &LogKey,
        before: ObjectId,
        first: u64,
        count: u64,
        read: Option<Vec<LogLine>>,
    ) {
        let per_log = self.bounds.per_log;
        let Some(Slot::Ready(window)) = self.logs.get_mut(key) else { return };
        if let Some(reading) = window.reaching.take() {
            let _ = reading.send(true);
        }
        let Some(read) = read else { return };
        let unchanged = window.first == first && window.lines.front().map(|line| line.oid) == Some(before);
        let found = read.len() as u64;
        // A short read reached the log's start, so the window's first line must be just after.
        let fits = found == count || found == first - 1;
        if !unchanged || !fits || found > first - 1 {
            return;
        }
        let mut added = 0;
        for line in read.into_iter().rev() {
            let size = cost(&line);
            if window.bytes + size > per_log {
                break;
            }
            window.bytes += size;
            added += size;
            window.first -= 1;
            window.lines.push_front(Arc::new(Live::new(line)));
        }
        self.bytes += added;
        self.bound_total(key);
    }
}
