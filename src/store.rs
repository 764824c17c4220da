//! MongoDB access: every query the service makes lives here, so its cost is easy to review.
//!
//! Backlogs are read with one batched cursor sorted by `_id` (served by the
//! `{type, id, _id}` index of migration 0001), never one query per line.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::event::cmap::CmapEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Cursor, Database};
use tokio::sync::Semaphore;

use crate::config::MongoSettings;
use crate::key::LogKey;
use crate::metrics::Metrics;
use crate::sse::DONE;

/// Documents fetched per round trip while replaying a backlog.
const BATCH_SIZE: u32 = 1000;
/// The driver's connection pool size when the URI does not set `maxPoolSize`.
const DEFAULT_POOL_SIZE: u32 = 10;

/// One stored line: its `_id` (for de-duplication and catch-up) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub oid: ObjectId,
    pub text: String,
    /// When MongoDB committed it, for lines that came from the change stream.
    pub inserted_at: Option<SystemTime>,
}

impl LogLine {
    pub fn is_done(&self) -> bool {
        self.text == DONE
    }

    /// Reads a stored document; `None` for one without an ObjectId `_id`, which cannot be
    /// ordered or de-duplicated and so is not served (logged once here).
    pub fn from_document(document: &Document) -> Option<Self> {
        let Ok(oid) = document.get_object_id("_id") else {
            tracing::warn!(id = ?document.get("_id"), "skipping a log document whose _id is not an ObjectId");
            return None;
        };
        let text = match document.get("log") {
            Some(Bson::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        Some(Self { oid, text, inserted_at: None })
    }
}

/// A page of a log, as the snapshot route answers it.
#[derive(Debug)]
pub struct Page {
    pub lines: Vec<String>,
    pub next: u64,
    pub done: bool,
}

/// Handle on the log collection; cheap to clone (the driver pools connections inside).
#[derive(Clone, Debug)]
pub struct Store {
    database: Database,
    collection: Collection<Document>,
    /// Limits the queries in flight to fewer than the pool's connections, so that thousands of
    /// streams opening at once never starve the change stream of a connection.
    gate: Arc<Semaphore>,
}

impl Store {
    /// Builds a client without contacting the server, so the service starts while MongoDB is
    /// down. Fails only for a URI that cannot be parsed.
    pub async fn connect(settings: &MongoSettings, metrics: Arc<Metrics>) -> mongodb::error::Result<Self> {
        let mut options = ClientOptions::parse(&settings.uri).await?;
        options.app_name.get_or_insert_with(|| "sse-logs".to_owned());
        metrics.mongodb_pool_size.set(options.max_pool_size.unwrap_or(DEFAULT_POOL_SIZE).into());
        // Counted from the driver's own events: the proof that viewers do not cost connections.
        options.cmap_event_handler = Some(EventHandler::callback(move |event| match event {
            CmapEvent::ConnectionCreated(_) => {
                metrics.mongodb_connections.inc();
            }
            CmapEvent::ConnectionClosed(_) => {
                metrics.mongodb_connections.dec();
            }
            _ => {}
        }));
        // A request should fail fast with 503 rather than hang for the driver's default 30 s.
        options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
        let pool = options.max_pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        let client = Client::with_options(options)?;
        let collection = client.database(&settings.database).collection(&settings.collection);
        Ok(Self::with_pool(collection, pool))
    }

    /// Uses a collection the caller already has (an embedding app's own client and pool, assumed
    /// to have the driver's default size).
    pub fn from_collection(collection: Collection<Document>) -> Self {
        Self::with_pool(collection, DEFAULT_POOL_SIZE)
    }

    fn with_pool(collection: Collection<Document>, pool: u32) -> Self {
        let database = collection.client().database(&collection.namespace().db);
        let queries = usize::try_from(pool.saturating_sub(2).max(1)).unwrap_or(1);
        Self { database, collection, gate: Arc::new(Semaphore::new(queries)) }
    }

    /// Runs one driver call once a query slot is free.
    async fn gated<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let _slot = self.gate.acquire().await.expect("the gate is never closed");
        call.await
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    /// Lines of the log from position `skip + 1` on, in `_id` order.
    pub async fn lines_from(&self, key: &LogKey, skip: u64) -> mongodb::error::Result<Cursor<Document>> {
        let find = self
            .collection
            .find(key.filter())
            .sort(doc! { "_id": 1 })
            .skip(skip)
            .projection(doc! { "_id": 1, "log": 1 })
            .batch_size(BATCH_SIZE);
        self.gated(find.into_future()).await
    }

    /// Lines of the log whose `_id` is greater than `after`: how a subscriber catches up.
    pub async fn lines_after(
        &self,
        key: &LogKey,
        after: ObjectId,
    ) -> mongodb::error::Result<Cursor<Document>> {
        self.lines_by_id(key, doc! { "$gt": after }).await
    }

    /// Lines of the log made at or after `since` (by ObjectId time), and how many come before.
    pub async fn lines_since(
        &self,
        key: &LogKey,
        since: SystemTime,
    ) -> mongodb::error::Result<(u64, Cursor<Document>)> {
        let bound = oid_at(since);
        let mut before = key.filter();
        before.insert("_id", doc! { "$lt": bound });
        let count = self.gated(self.collection.count_documents(before).into_future()).await?;
        Ok((count, self.lines_by_id(key, doc! { "$gte": bound }).await?))
    }

    async fn lines_by_id(
        &self,
        key: &LogKey,
        condition: Document,
    ) -> mongodb::error::Result<Cursor<Document>> {
        let mut filter = key.filter();
        filter.insert("_id", condition);
        let find = self
            .collection
            .find(filter)
            .sort(doc! { "_id": 1 })
            .projection(doc! { "_id": 1, "log": 1 })
            .batch_size(BATCH_SIZE);
        self.gated(find.into_future()).await
    }

    /// The line number of the `[DONE]` document, if the log has ended. A log has ended when its
    /// last document is `[DONE]`; this costs one index lookup and one index count.
    pub async fn done_position(&self, key: &LogKey) -> mongodb::error::Result<Option<u64>> {
        let last = self
            .collection
            .find_one(key.filter())
            .sort(doc! { "_id": -1 })
            .projection(doc! { "_id": 1, "log": 1 });
        let last = self.gated(last.into_future()).await?;
        match last.as_ref().and_then(LogLine::from_document) {
            Some(line) if line.is_done() => Ok(Some(self.count(key).await?)),
            _ => Ok(None),
        }
    }

    /// How many documents (line positions) the log has.
    pub async fn count(&self, key: &LogKey) -> mongodb::error::Result<u64> {
        self.gated(self.collection.count_documents(key.filter()).into_future()).await
    }

    /// Up to `limit` positions of the log after `from`, stopping at `[DONE]`.
    pub async fn page(&self, key: &LogKey, from: u64, limit: u64) -> mongodb::error::Result<Page> {
        let find = self
            .collection
            .find(key.filter())
            .sort(doc! { "_id": 1 })
            .skip(from)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! { "_id": 1, "log": 1 })
            .batch_size(BATCH_SIZE);
        let mut cursor = self.gated(find.into_future()).await?;
        let mut page = Page { lines: Vec::new(), next: from, done: false };
        while let Some(document) = self.gated(cursor.try_next()).await? {
            page.next += 1;
            let Some(line) = LogLine::from_document(&document) else {
                continue;
            };
            if line.is_done() {
                page.done = true;
                return Ok(page);
            }
            page.lines.push(line.text);
        }
        if page.lines.is_empty() && from > 0 {
            // An empty window past the end: the client already has everything if the log ended.
            page.done = matches!(self.done_position(key).await?, Some(done) if done <= from);
        }
        Ok(page)
    }

    /// Appends lines (and `[DONE]` when `done`) with one ordered `insert_many`; returns the number
    /// of positions the log now has.
    pub async fn append(&self, key: &LogKey, lines: &[String], done: bool) -> mongodb::error::Result<u64> {
        let stored_id = key.stored_id();
        let texts = lines.iter().map(String::as_str).chain(done.then_some(DONE));
        let documents: Vec<Document> = texts
            .map(|text| {
                doc! {
                    "_id": ObjectId::new(),
                    "type": key.log_type.clone(),
                    "id": stored_id.clone(),
                    "log": text,
                }
            })
            .collect();
        if !documents.is_empty() {
            self.gated(self.collection.insert_many(documents).ordered(true).into_future()).await?;
        }
        self.count(key).await
    }

    /// The next document of a backlog cursor: `None` at the end, `Some(None)` for a document
    /// that is not a readable line (it still takes a position).
    pub async fn next_line(
        &self,
        cursor: &mut Cursor<Document>,
    ) -> mongodb::error::Result<Option<Option<LogLine>>> {
        Ok(self.gated(cursor.try_next()).await?.map(|d| LogLine::from_document(&d)))
    }
}

/// The smallest ObjectId made at `at`.
fn oid_at(at: SystemTime) -> ObjectId {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut bytes = [0_u8; 12];
    bytes[..4].copy_from_slice(&u32::try_from(secs).unwrap_or(u32::MAX).to_be_bytes());
    ObjectId::from_bytes(bytes)
}
