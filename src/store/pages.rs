//! Reading a log by position, for the snapshot route and `push`'s look-ups: a window from a
//! position, or the recent lines a hub window starts from (the last positions: `tail.rs`).

use bson::oid::ObjectId;
use bson::{doc, Document};
use mongodb::error::Result;
use mongodb::Collection;

use super::{LineCursor, Page, Store, Stored, BATCH_SIZE};
use crate::log::{LogKey, LogLine};

impl Store {
    /// Up to `limit` positions of the log after `from`, stopping at `[DONE]`.
    pub async fn page(&self, key: &LogKey, from: u64, limit: u64) -> Result<Page> {
        let filter = key.filter();
        let find = |logs: Collection<Document>| async move {
            logs.find(filter)
                .sort(doc! { "_id": 1 })
                .skip(from)
                .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                .projection(super::line_fields())
                .batch_size(BATCH_SIZE)
                .await
        };
        let mut cursor = self.cursor(self.query(find).await?);
        let mut page = Page::starting(from);
        while let Some(stored) = cursor.next().await? {
            if page.take(stored) {
                return Ok(page);
            }
        }
        if page.lines.is_empty() && from > 0 {
            // An empty window past the end: the client already has everything if the log ended.
            if matches!(self.done_position(key).await?, Some(done) if done <= from) {
                page.done = true;
                page.ending = self.ending(key).await?.unwrap_or_default();
            }
        }
        Ok(page)
    }

    /// The log's newest `k` lines up to `upto` (its last line, as [`Store::last`] found it),
    /// oldest first: what a window of recent lines starts from.
    pub async fn recent(&self, key: &LogKey, upto: ObjectId, k: u64) -> Result<Vec<LogLine>> {
        self.recent_since(key, None, upto, k).await
    }

    /// The newest `k` lines from `since` (when given) up to `upto`, oldest first. One query per
    /// stored form of the id (never an `$in` next to an `_id` range); a lower bound keeps the
    /// read to that range on a server that does not walk an index backwards (the test server).
    pub(super) async fn recent_since(
        &self,
        key: &LogKey,
        since: Option<ObjectId>,
        upto: ObjectId,
        k: u64,
    ) -> Result<Vec<LogLine>> {
        let mut range = doc! { "$lte": upto };
        if let Some(since) = since {
            range.insert("$gte", since);
        }
        self.newest_in(key, range, k).await
    }

    /// The newest `k` lines before `before`, oldest first: what a window reaching back reads.
    pub async fn older(&self, key: &LogKey, before: ObjectId, k: u64) -> Result<Vec<LogLine>> {
        self.newest_in(key, doc! { "$lt": before }, k).await
    }

    /// The newest `k` lines in an `_id` range, oldest first; one query per form of the id.
    async fn newest_in(&self, key: &LogKey, range: Document, k: u64) -> Result<Vec<LogLine>> {
        let mut found: Vec<LogLine> = Vec::new();
        for mut filter in key.exact_filters() {
            filter.insert("_id", range.clone());
            let mut cursor = self.newest(filter, k).await?;
            // An unreadable document has no ObjectId: it ends the window's reach backwards.
            while let Some(Stored::Line(line)) = cursor.next().await? {
                found.push(line);
            }
        }
        found.sort_by_key(|line| line.oid);
        let skip = found.len().saturating_sub(usize::try_from(k).unwrap_or(usize::MAX));
        found.drain(..skip);
        Ok(found)
    }

    /// The newest `k` documents matching `filter`, newest first.
    pub(super) async fn newest(&self, filter: Document, k: u64) -> Result<LineCursor> {
        let find = |logs: Collection<Document>| async move {
            logs.find(filter)
                .sort(doc! { "_id": -1 })
                .limit(i64::try_from(k).unwrap_or(i64::MAX))
                .projection(super::line_fields())
                .batch_size(BATCH_SIZE)
                .await
        };
        Ok(self.cursor(self.query(find).await?))
    }
}
