//! What retention needs from MongoDB: old logs found page by page, never by a collection scan.
//!
//! Candidates come from the oldest documents (the `_id` index, a bounded page at a time), so a
//! pass over a 10-million-line collection costs one page per 10,000 old lines; each candidate's
//! last line is one index lookup on `{type, id, _id}`.

use std::future::IntoFuture;
use std::time::SystemTime;

use bson::oid::ObjectId;
use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::error::Result;

use super::{oid_at, Store};

/// One page of old documents: the logs they belong to, and where the next page starts.
#[derive(Debug)]
pub(crate) struct OldLogs {
    /// `{type, id}` as stored (so the delete matches exactly what was found).
    pub logs: Vec<Document>,
    /// The last `_id` this page looked at; `None` when there was nothing left.
    pub next: Option<ObjectId>,
}

impl Store {
    /// The logs having a line made before `cutoff`, among the oldest `page` documents after `after`.
    pub async fn logs_with_lines_before(
        &self,
        cutoff: SystemTime,
        after: Option<ObjectId>,
        page: i64,
    ) -> Result<OldLogs> {
        let mut range = doc! { "$lt": oid_at(cutoff) };
        if let Some(after) = after {
            range.insert("$gt", after);
        }
        let pipeline = [
            doc! { "$match": { "_id": range } },
            doc! { "$sort": { "_id": 1 } },
            doc! { "$limit": page },
            doc! { "$group": { "_id": { "type": "$type", "id": "$id" }, "last": { "$max": "$_id" } } },
        ];
        let cursor = self.gated(self.collection.aggregate(pipeline).into_future()).await?;
        let groups: Vec<Document> = self.gated(cursor.try_collect()).await?;
        let next = groups.iter().filter_map(|g| g.get_object_id("last").ok()).max();
        let logs = groups.into_iter().filter_map(|g| g.get_document("_id").ok().cloned()).collect();
        Ok(OldLogs { logs, next })
    }

    /// The last `_id` of the documents matching `log` (a stored `{type, id}`).
    pub async fn last_id_of(&self, log: &Document) -> Result<Option<ObjectId>> {
        let last =
            self.collection.find_one(exactly(log)).sort(doc! { "_id": -1 }).projection(doc! { "_id": 1 });
        Ok(self.gated(last.into_future()).await?.and_then(|d| d.get_object_id("_id").ok()))
    }

    /// How many documents of `log` there are up to `upto`.
    pub async fn count_upto(&self, log: &Document, upto: ObjectId) -> Result<u64> {
        let mut filter = exactly(log);
        filter.insert("_id", doc! { "$lte": upto });
        self.gated(self.collection.count_documents(filter).into_future()).await
    }

    /// Deletes the documents of `log` up to `upto`: a line appended meanwhile survives.
    pub async fn delete_upto(&self, log: &Document, upto: ObjectId) -> Result<u64> {
        let mut filter = exactly(log);
        filter.insert("_id", doc! { "$lte": upto });
        Ok(self.gated(self.collection.delete_many(filter).into_future()).await?.deleted_count)
    }
}

/// A filter for the documents of `log` (a stored `{type, id}`) and no others: an equality on a
/// field also matches an array holding the value, and a document whose `type` or `id` is an
/// array belongs to no log (`LogKey::of_document`), so it must never be counted or deleted.
fn exactly(log: &Document) -> Document {
    let mut filter = log.clone();
    filter.insert("$nor", vec![doc! { "type": { "$type": "array" } }, doc! { "id": { "$type": "array" } }]);
    filter
}
