//! MongoDB access: every call the service makes lives here, so its cost is easy to review.
//!
//! Backlogs are read with one batched cursor sorted by `_id` (served by the `{type, id, _id}`
//! index of migration 0001), never one query per line. The change stream runs on a client of
//! its own when the store opens the connection itself, so live delivery never queues behind
//! backlog reads; queries pass a gate no wider than their pool.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;
use bson::{doc, Document};
use futures_util::{FutureExt, TryStreamExt};
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::Result;
use mongodb::event::cmap::CmapEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Cursor, Database};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::MongoSettings;
use crate::log::{Ending, LogKey, LogLine, DONE};
use crate::metrics::Metrics;
use crate::redact::Redactor;

mod append;
mod last;
mod merged;
mod pages;
mod prune;
mod tail;
mod watch;

use append::AppendLocks;
pub(crate) use append::Appended;
use last::LastLines;
pub(crate) use watch::{Change, Inserts};
mod summary;

pub(crate) use summary::LogStats;
pub(crate) use tail::Known;

/// Documents fetched per round trip while replaying a backlog.
const BATCH_SIZE: u32 = 1000;
/// The driver's connection pool size when the URI does not set `maxPoolSize`.
pub(crate) const DEFAULT_POOL_SIZE: u32 = 10;
/// Where `migrate` records what it applied.
const MIGRATION_RECORDS: &str = "sse_logs_migrations";

/// A page of a log, as the snapshot route answers it.
#[derive(Debug)]
pub(crate) struct Page {
    pub lines: Vec<String>,
    /// Each line's time (ms since the epoch), parallel to `lines`.
    pub times: Vec<u64>,
    pub next: u64,
    pub done: bool,
    /// How the log ended, when `done`.
    pub ending: Ending,
}

impl Page {
    /// An empty page whose first document will be position `from + 1`.
    fn starting(from: u64) -> Self {
        Page { lines: Vec::new(), times: Vec::new(), next: from, done: false, ending: Ending::default() }
    }

    /// Takes the next document; true at `[DONE]`, after which the page is complete.
    fn take(&mut self, stored: Stored) -> bool {
        self.next += 1;
        match stored {
            Stored::Line(line) if line.is_done() => {
                self.done = true;
                self.ending = line.ending;
                true
            }
            Stored::Line(line) => {
                self.times.push(line.time_ms());
                self.lines.push(line.text);
                false
            }
            Stored::Unreadable => false,
        }
    }
}

/// What a line cursor yields: every document takes a line position, readable or not.
#[derive(Debug)]
pub(crate) enum Stored {
    Line(LogLine),
    /// A document without an ObjectId `_id`: it counts, but is not served.
    Unreadable,
}

/// A backlog read in `_id` order, one batch per round trip.
pub(crate) struct LineCursor {
    /// Lent to the task of each `getMore` (see [`Store::query`]); gone if one was abandoned.
    cursor: Option<Cursor<Document>>,
    gate: Arc<Semaphore>,
    redact: Arc<Redactor>,
    /// A log whose id is stored in two forms is read as two cursors: the other one, merged.
    merge: Option<Box<merged::Merge>>,
}

impl LineCursor {
    /// The next stored document, `None` at the end.
    /// Not to be called again after a call was abandoned (the cursor went with it).
    pub async fn next(&mut self) -> Result<Option<Stored>> {
        match self.merge.take() {
            None => self.next_here().await,
            Some(merge) => merged::next(self, merge).await,
        }
    }

    /// The next document of this cursor alone.
    async fn next_here(&mut self) -> Result<Option<Stored>> {
        // Acquired before anything is in flight, so giving up here abandons nothing.
        let slot = self.gate.clone().acquire_owned().await.expect("the gate is never closed");
        let mut cursor = self.cursor.take().expect("a line cursor is not used after an abandoned read");
        // The current batch answers without a round trip. Otherwise this poll started a
        // `getMore`, which the cursor keeps; it is finished in a task of its own (`Store::query`).
        let document = match cursor.try_next().now_or_never() {
            Some(document) => {
                self.cursor = Some(cursor);
                document?
            }
            None => {
                let (cursor, document) = run_to_end(slot, async move {
                    let document = cursor.try_next().await;
                    (cursor, document)
                })
                .await;
                self.cursor = Some(cursor);
                document?
            }
        };
        Ok(document.map(|d| match LogLine::from_document(&d) {
            Some(mut line) => {
                self.redact.apply_owned(&mut line.text);
                Stored::Line(line)
            }
            None => Stored::Unreadable,
        }))
    }
}

/// Handle on the log collection; cheap to clone (the driver pools connections inside).
#[derive(Clone, Debug)]
pub(crate) struct Store {
    database: Database,
    collection: Collection<Document>,
    /// The same collection on the client that carries the change stream.
    watched: Collection<Document>,
    /// Limits the queries in flight to what their pool holds (fewer when the change stream
    /// shares that pool), so thousands of streams opening at once queue here, cancellably.
    gate: Arc<Semaphore>,
    /// Appends to one log wait for each other here, so each batch's `_id`s follow the last.
    appends: Arc<AppendLocks>,
    /// The last line of each log recently written or asked about.
    last_lines: Arc<LastLines>,
    /// Applied to every line read and appended (`redact.patterns`).
    redact: Arc<Redactor>,
    /// The clients were made here (not an embedding app's), so closing them is ours to do.
    owns_clients: bool,
}

impl Store {
    /// Builds the clients without contacting the server, so the service starts while MongoDB is
    /// down. Fails only for a URI that cannot be parsed.
    pub async fn connect(settings: &MongoSettings, metrics: Arc<Metrics>) -> Result<Self> {
        let mut options = ClientOptions::parse(&settings.uri).await?;
        options.app_name.get_or_insert_with(|| "sse-logs".to_owned());
        // A request should fail fast with 503 rather than hang for the driver's default 30 s.
        options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
        let pool = options.max_pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        // The change stream's getMore waits on the server for new lines; on a client of its own
        // it never waits for a connection behind backlog reads, whatever the pool size.
        let mut watch_options = options.clone();
        watch_options.max_pool_size = Some(1);
        watch_options.min_pool_size = None;
        metrics.mongodb_pool_size.set(pool.into());
        // Counted from the driver's own events: the proof that viewers do not cost connections.
        let counter = metrics.clone();
        options.cmap_event_handler = Some(EventHandler::callback(move |event| match event {
            CmapEvent::ConnectionCreated(_) => counter.mongodb_connections.inc(),
            CmapEvent::ConnectionClosed(_) => counter.mongodb_connections.dec(),
            _ => {}
        }));
        let collection =
            Client::with_options(options)?.database(&settings.database).collection(&settings.collection);
        let watched = Client::with_options(watch_options)?
            .database(&settings.database)
            .collection(&settings.collection);
        Ok(Self { owns_clients: true, ..Self::new(collection, watched, pool, &metrics) })
    }

    /// Closes the clients this store made (an embedding app's client is left alone), without
    /// waiting for cursors still held: it ends their connections. Called at the end of `serve`,
    /// while the runtime still runs: a runtime shut down under the driver's tasks makes it panic
    /// (`kill_cursor`, `JoinError::Cancelled`).
    pub async fn close(&self) {
        if self.owns_clients {
            self.collection.client().clone().shutdown().immediate(true).await;
            self.watched.client().clone().shutdown().immediate(true).await;
        }
    }

    /// Uses a collection the caller already has (an embedding app's own client, whose pool holds
    /// `pool` connections); the change stream shares that pool, so queries leave it two.
    pub fn from_collection(collection: Collection<Document>, pool: u32, metrics: &Metrics) -> Self {
        metrics.mongodb_pool_size.set(pool.into());
        Self::new(collection.clone(), collection, pool.saturating_sub(2), metrics)
    }

    fn new(
        collection: Collection<Document>,
        watched: Collection<Document>,
        slots: u32,
        metrics: &Metrics,
    ) -> Self {
        let slots = slots.max(1);
        metrics.mongodb_query_slots.set(slots.into());
        let database = collection.client().database(&collection.namespace().db);
        let slots = usize::try_from(slots).unwrap_or(1);
        Self {
            database,
            collection,
            watched,
            gate: Arc::new(Semaphore::new(slots)),
            appends: Arc::default(),
            last_lines: Arc::default(),
            redact: Arc::default(),
            owns_clients: false,
        }
    }

    /// The same store, masking `redactor`'s matches in every line read or appended.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redact = Arc::new(redactor);
        self
    }

    fn cursor(&self, cursor: Cursor<Document>) -> LineCursor {
        LineCursor { cursor: Some(cursor), gate: self.gate.clone(), redact: self.redact.clone(), merge: None }
    }

    /// Runs one driver call once a query slot is free.
    async fn gated<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let _slot = self.gate.acquire().await.expect("the gate is never closed");
        call.await
    }

    /// Runs a driver call on the log collection once a query slot is free, for a request whose
    /// client may leave. Waiting for the slot is abandoned with the caller; the call, once sent,
    /// runs to its end in a task of its own. The driver (mongodb 3.9) does not recover well from
    /// operations dropped mid-flight in numbers: 2,000 streams whose clients left during their
    /// backlog reads left 9 of 10 pooled connections unusable for minutes, and every query of
    /// the process waited (BENCHMARKS.md, hot spot E).
    async fn query<T, F>(&self, call: impl FnOnce(Collection<Document>) -> F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.gate.clone().acquire_owned().await.expect("the gate is never closed");
        run_to_end(slot, call(self.collection.clone())).await
    }

    /// Follows the collection's inserts from `token` (or from now).
    pub async fn watch_inserts(&self, token: Option<ResumeToken>) -> Result<Inserts> {
        let pipeline = [doc! { "$match": { "operationType": { "$in": ["insert", "invalidate"] } } }];
        let stream = self.watched.watch().pipeline(pipeline).resume_after(token).await?;
        Ok(Inserts::new(stream, self.redact.clone(), self.last_lines.clone()))
    }

    /// Lines of the log from position `skip + 1` on, in `_id` order.
    pub async fn lines_from(&self, key: &LogKey, skip: u64) -> Result<LineCursor> {
        self.lines(key.filter(), skip).await
    }

    /// Lines of the log whose `_id` is greater than `after`: how a subscriber catches up.
    pub async fn lines_after(&self, key: &LogKey, after: ObjectId) -> Result<LineCursor> {
        self.lines_in(key, doc! { "$gt": after }).await
    }

    /// Lines of the log made at or after `since` (by ObjectId time), and how many come before.
    pub async fn lines_since(&self, key: &LogKey, since: SystemTime) -> Result<(u64, LineCursor)> {
        let bound = oid_at(since);
        let mut count = 0;
        for mut before in key.exact_filters() {
            before.insert("_id", doc! { "$lt": bound });
            count += self.count_matching(before).await?;
        }
        Ok((count, self.lines_in(key, doc! { "$gte": bound }).await?))
    }

    /// Lines of the log in an `_id` range, in `_id` order: one cursor per stored form of the id,
    /// merged (an `$in` beside an `_id` range is not planned on the index by every server: the
    /// test server then reads every log of the type).
    async fn lines_in(&self, key: &LogKey, range: Document) -> Result<LineCursor> {
        let mut cursor: Option<LineCursor> = None;
        for mut filter in key.exact_filters() {
            filter.insert("_id", range.clone());
            let next = self.lines(filter, 0).await?;
            cursor = Some(match cursor {
                None => next,
                Some(first) => first.merged(next),
            });
        }
        Ok(cursor.expect("a log has at least one form of its id"))
    }

    async fn lines(&self, filter: Document, skip: u64) -> Result<LineCursor> {
        let find = |logs: Collection<Document>| async move {
            logs.find(filter)
                .sort(doc! { "_id": 1 })
                .skip(skip)
                .projection(line_fields())
                .batch_size(BATCH_SIZE)
                .await
        };
        Ok(self.cursor(self.query(find).await?))
    }

    /// The line number of the `[DONE]` document, if the log has ended: when its last document
    /// is `[DONE]` (see [`Store::last`] for what that costs).
    pub async fn done_position(&self, key: &LogKey) -> Result<Option<u64>> {
        Ok(self.last(key).await?.filter(|last| last.done).map(|last| last.position))
    }

    /// How the log ended, for a log that has (`None` for one that has not).
    pub async fn ending(&self, key: &LogKey) -> Result<Option<Ending>> {
        let Some(last) = self.last(key).await?.filter(|last| last.done) else { return Ok(None) };
        Ok(Some(self.endings(vec![last.oid]).await?.remove(&last.oid).unwrap_or_default()))
    }

    /// The endings of the `[DONE]` documents among `oids` (one query by `_id`).
    pub async fn endings(&self, oids: Vec<ObjectId>) -> Result<HashMap<ObjectId, Ending>> {
        let find = |logs: Collection<Document>| async move {
            let filter = doc! { "_id": { "$in": oids }, "log": DONE };
            let cursor =
                logs.find(filter).projection(doc! { "_id": 1, "outcome": 1, "exit_code": 1 }).await?;
            cursor.try_collect::<Vec<Document>>().await
        };
        let found = self.query(find).await?;
        Ok(found
            .iter()
            .filter_map(|d| Some((d.get_object_id("_id").ok()?, Ending::of_document(d))))
            .collect())
    }

    /// How many documents match `filter`.
    async fn count_matching(&self, filter: Document) -> Result<u64> {
        self.query(|logs| async move { logs.count_documents(filter).await }).await
    }

    /// Whether a document with this `_id` is stored.
    pub async fn contains(&self, oid: ObjectId) -> Result<bool> {
        let find = |logs: Collection<Document>| async move {
            logs.find_one(doc! { "_id": oid }).projection(doc! { "_id": 1 }).await
        };
        Ok(self.query(find).await?.is_some())
    }

    /// Whether the migration `name` is recorded as applied.
    pub async fn migration_applied(&self, name: &str) -> Result<bool> {
        let records = self.database.collection::<Document>(MIGRATION_RECORDS);
        Ok(self.gated(records.find_one(doc! { "_id": name }).into_future()).await?.is_some())
    }

    /// Runs a migration's command and records it as applied.
    pub async fn apply_migration(&self, name: &str, command: Document) -> Result<()> {
        self.gated(self.database.run_command(command).into_future()).await?;
        let records = self.database.collection::<Document>(MIGRATION_RECORDS);
        let record = records
            .update_one(
                doc! { "_id": name },
                doc! { "$setOnInsert": { "applied_at": bson::DateTime::now() } },
            )
            .upsert(true);
        self.gated(record.into_future()).await?;
        Ok(())
    }

    /// The name of the log collection (migrations address it).
    pub fn collection_name(&self) -> &str {
        self.collection.name()
    }

    /// The database of the log collection (notification claims live next to it).
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The position of the line `oid` in its log: the documents up to it, itself included (not
    /// the whole log's count, which also counts lines another writer adds meanwhile). One count
    /// per stored form of the id (never an `$in` next to an `_id` range).
    pub async fn position_of(&self, key: &LogKey, oid: ObjectId) -> Result<u64> {
        let mut total = 0;
        for mut filter in key.exact_filters() {
            filter.insert("_id", doc! { "$lte": oid });
            total += self.count_matching(filter).await?;
        }
        Ok(total)
    }

    /// How many documents (line positions) the log has.
    pub async fn count(&self, key: &LogKey) -> Result<u64> {
        self.count_matching(key.filter()).await
    }

    /// The documents matching `filter` in `_id` order, as stored (not redacted): for the
    /// notifier's catch-up read, a background task that reads them to the end.
    pub async fn find_documents(&self, filter: Document, projection: Document) -> Result<Cursor<Document>> {
        let find = |logs: Collection<Document>| async move {
            logs.find(filter).sort(doc! { "_id": 1 }).projection(projection).batch_size(BATCH_SIZE).await
        };
        self.query(find).await
    }
}

/// Runs `call` in a task of its own holding `slot`, so it ends even if the caller goes away.
async fn run_to_end<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    call: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    run_detached(async move {
        let value = call.await;
        drop(slot);
        value
    })
    .await
}

/// Runs `call` in a task of its own, so it ends even if the caller goes away.
async fn run_detached<T: Send + 'static>(call: impl std::future::Future<Output = T> + Send + 'static) -> T {
    match tokio::spawn(call).await {
        Ok(value) => value,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // Cancelled: only when the runtime shuts down, and then nobody waits for the answer.
        Err(_) => std::future::pending().await,
    }
}

/// The fields of a stored line any reader needs: a `[DONE]` document's ending included.
fn line_fields() -> Document {
    doc! { "_id": 1, "log": 1, "ts": 1, "outcome": 1, "exit_code": 1 }
}

/// The smallest ObjectId made at `at`.
pub(crate) fn oid_at(at: SystemTime) -> ObjectId {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut bytes = [0_u8; 12];
    bytes[..4].copy_from_slice(&u32::try_from(secs).unwrap_or(u32::MAX).to_be_bytes());
    ObjectId::from_bytes(bytes)
}
