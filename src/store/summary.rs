//! The queries that build the index of logs at start: which logs have lines in a recent window,
//! and, for those that began before it, what came earlier.
//!
//! The list itself is served from memory (`src/index/`); these run once per start (and again
//! only if the change stream is lost beyond resuming), never per request.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::SystemTime;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::error::Result;

use super::{oid_at, Store};
use crate::log::{Ending, LogKey, DONE};

/// Logs asked about per query of the second step, so the `$or` stays small.
const KEYS_PER_QUERY: usize = 200;

/// What MongoDB says about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogStats {
    pub key: LogKey,
    pub first: ObjectId,
    pub last: ObjectId,
    /// Documents (line positions), `[DONE]` included.
    pub lines: u64,
    pub done: bool,
    /// How it ended, when `done` (read after the aggregation, see `Store::endings`).
    pub ending: Ending,
}

impl LogStats {
    /// Folds in another group of the same log (an id stored both as `42` and `"42"`).
    fn merge(&mut self, other: &LogStats) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.lines += other.lines;
        self.done |= other.done;
    }
}

impl Store {
    /// Every log with a line made at or after `since`, the most recently updated `cap` of them,
    /// summarised over that window. One aggregation: an `_id` range (the `_id` index), grouped.
    pub async fn log_stats_since(&self, since: SystemTime, cap: usize) -> Result<Vec<LogStats>> {
        let pipeline = [
            doc! { "$match": { "_id": { "$gte": oid_at(since) } } },
            doc! { "$group": {
                "_id": { "type": "$type", "id": "$id" },
                "first": { "$min": "$_id" },
                "last": { "$max": "$_id" },
                "lines": { "$sum": 1 },
                "done": { "$max": { "$eq": ["$log", DONE] } },
            } },
            doc! { "$sort": { "last": -1 } },
            doc! { "$limit": i64::try_from(cap).unwrap_or(i64::MAX) },
        ];
        let groups = self.groups(pipeline.to_vec()).await?;
        let mut merged: HashMap<LogKey, LogStats> = HashMap::new();
        for group in groups {
            let Some(stats) = stats_of(&group) else { continue };
            match merged.get_mut(&stats.key) {
                Some(known) => known.merge(&stats),
                None => {
                    merged.insert(stats.key.clone(), stats);
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    /// For the given logs, their lines made before `before`: the first `_id` and how many. Served
    /// by the `{type, id, _id}` index, one range per log, `KEYS_PER_QUERY` logs a query.
    pub async fn log_stats_before(
        &self,
        before: SystemTime,
        keys: &[LogKey],
    ) -> Result<HashMap<LogKey, (ObjectId, u64)>> {
        let mut out: HashMap<LogKey, (ObjectId, u64)> = HashMap::new();
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let any: Vec<Bson> = chunk.iter().map(|key| Bson::Document(key.filter())).collect();
            let pipeline = vec![
                doc! { "$match": { "_id": { "$lt": oid_at(before) }, "$or": any } },
                doc! { "$group": {
                    "_id": { "type": "$type", "id": "$id" },
                    "first": { "$min": "$_id" },
                    "lines": { "$sum": 1 },
                } },
            ];
            for group in self.groups(pipeline).await? {
                let Some(key) = group.get_document("_id").ok().and_then(LogKey::of_document) else {
                    continue;
                };
                let (Ok(first), Some(lines)) = (group.get_object_id("first"), count_of(&group)) else {
                    continue;
                };
                let entry = out.entry(key).or_insert((first, 0));
                entry.0 = entry.0.min(first);
                entry.1 += lines;
            }
        }
        Ok(out)
    }

    async fn groups(&self, pipeline: Vec<Document>) -> Result<Vec<Document>> {
        let aggregate = self.collection.aggregate(pipeline).allow_disk_use(true);
        let cursor = self.gated(aggregate.into_future()).await?;
        let _slot = self.gate.acquire().await.expect("the gate is never closed");
        cursor.try_collect().await
    }
}

fn stats_of(group: &Document) -> Option<LogStats> {
    let key = LogKey::of_document(group.get_document("_id").ok()?)?;
    Some(LogStats {
        key,
        first: group.get_object_id("first").ok()?,
        last: group.get_object_id("last").ok()?,
        lines: count_of(group)?,
        done: group.get_bool("done").unwrap_or(false),
        ending: Ending::default(),
    })
}

fn count_of(group: &Document) -> Option<u64> {
    match group.get("lines")? {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(f) if *f >= 0.0 => Some(*f as u64),
        _ => None,
    }
}
