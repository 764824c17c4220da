//! A log's last positions (`?tail=K`, how the viewer opens a log at its end).
//!
//! The answer needs the position of the first line returned, and a position is a count: of a
//! 200,000-line log, a count over the whole log and a newest-first read (which the test server
//! answers by reading the whole log, 300 ms each). When the index holds a length MongoDB counted
//! (at its load, or as the log ended: `index/lengths.rs`) and nothing was heard since, the tail
//! is read from a recent `_id` range only, and its position is that length minus what was read:
//! no count. The read must end at the index's last line, or the log changed unheard (a delete):
//! then, and for every other log, the count.

use std::time::{Duration, SystemTime};

use bson::doc;
use bson::oid::ObjectId;
use mongodb::error::Result;

use super::{oid_at, Page, Store, Stored};
use crate::log::LogKey;

/// What the index knows of a log (see [`crate::index::Index::known`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// The `_id`s of its first and last documents as heard.
    pub first: ObjectId,
    pub last: ObjectId,
    /// Its documents (positions) from `first` to `last`.
    pub lines: u64,
}

/// How many times wider each further try of the range is.
const WIDEN: u64 = 2;

impl Store {
    /// The last `k` positions of the log and the position before the first of them. `from` counts
    /// the documents before the window's first `_id`, so it fits the window even while lines are
    /// appended (by the `_id` order invariant).
    pub async fn tail(&self, key: &LogKey, k: u64) -> Result<(u64, Page)> {
        let mut cursor = self.newest(key.filter(), k).await?;
        let mut window = Vec::new();
        while let Some(stored) = cursor.next().await? {
            window.push(stored);
        }
        window.reverse();
        let oldest = window.iter().find_map(|stored| match stored {
            Stored::Line(line) => Some(line.oid),
            Stored::Unreadable => None,
        });
        let mut from = 0;
        if let Some(oid) = oldest {
            for mut before in key.exact_filters() {
                before.insert("_id", doc! { "$lt": oid });
                from += self.count_matching(before).await?;
            }
        }
        Ok((from, page_of(from, window)))
    }

    /// The same as [`Store::tail`] from what the index knows, without counting: `None` when the
    /// log is not as the index says (then ask [`Store::tail`]). The newest `k` lines are read
    /// from a range of recent seconds, guessed from the log's pace and widened until it holds
    /// `k` lines or reaches the log's first line.
    pub async fn tail_known(&self, key: &LogKey, k: u64, known: Known) -> Result<Option<(u64, Page)>> {
        if k == 0 {
            return Ok(None);
        }
        let (first, last) = (seconds(known.first), seconds(known.last));
        let pace = known.lines.max(1) / (last.saturating_sub(first) + 1);
        // The seconds (the last one's included) that twice `k` lines took on average, so one
        // read is usually enough.
        let mut span = (2 * k).div_ceil(pace.max(1)).max(1);
        loop {
            let since = last.saturating_sub(span - 1);
            let since = (since > first).then(|| oid_at(SystemTime::UNIX_EPOCH + Duration::from_secs(since)));
            let lines = self.recent_since(key, since, known.last, k).await?;
            let read = u64::try_from(lines.len()).unwrap_or(u64::MAX);
            if read < k && since.is_some() {
                span = span.saturating_mul(WIDEN);
                continue;
            }
            // The index's last line must be the newest read, and a read that reached the log's
            // start with fewer than `k` lines must hold all of it: else the log changed in a way
            // the index did not hear (a delete).
            let Some(from) = known.lines.checked_sub(read) else { return Ok(None) };
            if lines.last().map(|line| line.oid) != Some(known.last) || (read < k && from != 0) {
                return Ok(None);
            }
            return Ok(Some((from, page_of(from, lines.into_iter().map(Stored::Line).collect()))));
        }
    }
}

fn seconds(oid: ObjectId) -> u64 {
    u64::from(u32::from_be_bytes(oid.bytes()[..4].try_into().expect("4 bytes")))
}

/// The page of `window` (oldest first) whose first document is position `from + 1`, ending at
/// `[DONE]` if it holds one.
fn page_of(from: u64, window: Vec<Stored>) -> Page {
    let mut page = Page::starting(from);
    for stored in window {
        if page.take(stored) {
            break;
        }
    }
    page
}
