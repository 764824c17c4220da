//! The embedding API: live log streaming over a MongoDB collection, as a warp filter.
//!
//! The `sse-logs serve` binary is built on exactly this (see `startup.rs`); an app with its own
//! routes, auth and MongoDB client mounts the same routes under any prefix.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bson::Document;
use mongodb::Collection;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::access::{AccessCheck, AllowAll};
use crate::config::{
    IndexSettings, Limits, MongoSettings, NotifySettings, SettingsError, SseSettings, WindowSettings,
};
use crate::hub::Hub;
use crate::index::{self, Index};
use crate::metrics::Metrics;
use crate::notify::{Notifier, NotifyConfig, Rules};
use crate::redact::Redactor;
use crate::routes::{AppState, SharedState};
use crate::service::Service;
use crate::shutdown::Shutdown;
use crate::store::{Store, DEFAULT_POOL_SIZE};

/// Live log streaming for one collection: the routes, and the one change stream behind them.
///
/// Cheap to clone; every clone and every filter made from it share the same hub, so mounting
/// the routes twice still opens one change stream.
#[derive(Clone, Debug)]
pub struct LogStreams {
    state: SharedState,
}

/// Configures a [`LogStreams`]; made by [`LogStreams::builder`] or [`LogStreams::connect`].
pub struct LogStreamsBuilder {
    source: Source,
    pool_size: u32,
    sse: SseSettings,
    limits: Limits,
    stall_after: Duration,
    index: IndexSettings,
    window: WindowSettings,
    access: Box<dyn AccessCheck>,
    allowed_origins: Vec<String>,
    redact: Redactor,
    shutdown: Shutdown,
    drain: Duration,
    metrics: Arc<Metrics>,
    notify: Option<NotifyConfig>,
}

/// Where the builder's store comes from.
enum Source {
    /// The host's collection, on the host's client and pool.
    Collection(Collection<Document>),
    /// A store that opened its own clients.
    Store(Store),
}

impl std::fmt::Debug for LogStreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStreamsBuilder").field("sse", &self.sse).field("limits", &self.limits).finish()
    }
}

impl LogStreams {
    /// Starts configuring streaming over `collection` (documents `{type, id, log}`), using the
    /// client and connection pool the collection came from (the change stream shares that pool;
    /// say its size with [`LogStreamsBuilder::max_pool_size`] when it is not the driver's
    /// default). The deployment must be a replica set or sharded cluster: change streams need one.
    pub fn builder(collection: Collection<Document>) -> LogStreamsBuilder {
        Self::new_builder(Source::Collection(collection), Arc::new(Metrics::new()))
    }

    /// Starts configuring streaming over a collection it connects to itself, from `settings`
    /// (`maxPoolSize` in the URI sizes the pool for backlog reads; the change stream gets a
    /// connection of its own, so live lines never wait behind them). Contacts no server yet,
    /// so it succeeds while MongoDB is down; fails only for a URI that cannot be parsed.
    pub async fn connect(settings: &MongoSettings) -> mongodb::error::Result<LogStreamsBuilder> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::connect(settings, metrics.clone()).await?;
        Ok(Self::new_builder(Source::Store(store), metrics))
    }

    fn new_builder(source: Source, metrics: Arc<Metrics>) -> LogStreamsBuilder {
        LogStreamsBuilder {
            source,
            pool_size: DEFAULT_POOL_SIZE,
            sse: SseSettings::default(),
            limits: Limits::default(),
            stall_after: Duration::from_secs(MongoSettings::DEFAULT_STALL_SECS),
            index: IndexSettings::default(),
            window: WindowSettings::default(),
            access: Box::new(AllowAll),
            allowed_origins: Vec::new(),
            redact: Redactor::default(),
            shutdown: Shutdown::new(),
            drain: Duration::from_secs(crate::config::ShutdownSettings::DEFAULT_DRAIN_SECS),
            metrics,
            notify: None,
        }
    }

    /// The log routes, to mount under any prefix with `warp::path("logs").and(...)` and `.or()`:
    ///
    /// - `GET  api/v1/sse/logs/?type=T&id=I&num=N` (the seed-compatible stream)
    /// - `GET  api/v1/logs/{type}/{id}/stream?from=N[&format=json]`
    /// - `GET  api/v1/logs/{type}/{id}?from=N&limit=M` (JSON snapshot)
    /// - `POST api/v1/logs/{type}/{id}` (append)
    /// - `GET  logs/{type}/{id}` (the HTML viewer)
    /// - `GET  api/v1/logs?type=T&state=live|ended|all&q=TEXT&limit=N&before=CURSOR` (the index)
    /// - `GET  api/v1/logs/events?type=T` (the index as an SSE stream)
    /// - `GET  ` (the index page, at the prefix itself)
    ///
    /// Requests for other paths are rejected as not found, so the host's routes still match;
    /// errors of these routes are answered here as the JSON errors of the contract.
    pub fn filter(&self) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
        crate::routes::log_routes(self.state.clone())
    }

    /// True while the change stream runs and answers (MongoDB reachable, not stalled for longer
    /// than [`LogStreamsBuilder::stall_after`]): what `/readyz` reports.
    pub fn is_live(&self) -> bool {
        self.state.service.not_ready().is_none()
    }

    /// Waits until the change stream is running (`true`) or has stopped (`false`).
    pub async fn wait_live(&self, live: bool) {
        let mut watch = self.state.service.hub.watch_live();
        // The hub outlives every `LogStreams`, so the channel cannot close under us.
        let _ = watch.wait_for(|now| *now == live).await;
    }

    /// The figures of `/metrics`, in the Prometheus text format, to serve from the host's own
    /// metrics route.
    pub fn metrics(&self) -> String {
        self.state.service.metrics_text()
    }

    /// Applies the pending database migrations (the `{type, id, _id}` index); returns their names.
    pub async fn migrate(&self) -> mongodb::error::Result<Vec<&'static str>> {
        crate::migrations::apply(&self.state.service.store).await
    }

    /// Ends every open stream cleanly and stops the change stream.
    pub fn shutdown(&self) {
        self.state.service.shutdown.trigger();
    }

    pub(crate) fn state(&self) -> &SharedState {
        &self.state
    }
}

impl LogStreamsBuilder {
    /// How often an idle stream gets a `: keep-alive` comment (default 15 s).
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.sse.keep_alive_secs = every.as_secs().max(1);
        self
    }

    /// The reconnection delay sent to EventSource as `retry:` (default 2 s).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.sse.retry_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Most streams open at once; more get 503 (default 10,000).
    pub fn max_streams(mut self, max: usize) -> Self {
        self.limits.max_streams = max.max(1);
        self
    }

    /// Largest append body in bytes; larger ones get 413 (default 1 MiB).
    pub fn max_body_bytes(mut self, max: u64) -> Self {
        self.limits.max_body_bytes = max.max(1);
        self
    }

    /// The size of the pool of the collection given to [`LogStreams::builder`] (default 10, the
    /// driver's): backlog reads use at most two fewer connections, so the change stream always
    /// finds one. Ignored after [`LogStreams::connect`], which reads `maxPoolSize` itself.
    pub fn max_pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// How long the change stream may stay silent (not even an empty batch) before the streams
    /// report it stalled: [`LogStreams::is_live`] turns false and `/readyz` 503 (default 30 s).
    pub fn stall_after(mut self, silence: Duration) -> Self {
        self.stall_after = silence;
        self
    }

    /// How the list of logs is built at start and how many it keeps (default: the last 7 days,
    /// at most 100,000 logs).
    pub fn index(mut self, settings: IndexSettings) -> Self {
        self.index = IndexSettings { max_logs: settings.max_logs.max(1), ..settings };
        self
    }

    /// How many bytes of each followed log's recent lines are kept in memory, and of all logs
    /// together (default 1 MiB and 64 MiB): viewers that come back resume from there.
    pub fn window(mut self, settings: WindowSettings) -> Self {
        self.window = WindowSettings { bytes: settings.bytes.max(settings.bytes_per_log), ..settings };
        self
    }

    /// Secrets that never leave the service: matches become `***` in every line served (every
    /// route and format, lines written straight into MongoDB included) and in every line appended
    /// through it, before it is stored. Default: none.
    pub fn redact(mut self, redactor: Redactor) -> Self {
        self.redact = redactor;
        self
    }

    /// Who may read and append; checked before any MongoDB work. Default: everyone.
    pub fn access(mut self, check: impl AccessCheck) -> Self {
        self.access = Box::new(check);
        self
    }

    /// Other origins (exact, e.g. `https://ci.example.com`) whose pages may append from a browser.
    /// Without, a state-changing request that a browser marks as coming from another origin
    /// (`Origin`, `Sec-Fetch-Site`) is refused with 403 `cross_origin` (default: none).
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> Self {
        self.allowed_origins = origins.into_iter().collect();
        self
    }

    /// At shutdown, each stream ends at a random moment within `spread` (default 2 s), so that
    /// its viewers reconnect to the other replicas as a ramp, not all in the same instant.
    pub fn drain_spread(mut self, spread: Duration) -> Self {
        self.drain = spread;
        self
    }

    /// Webhooks told when a log ends, turns idle or matches (`settings` as `notify.*` of the
    /// contract), linking to the viewer under `public_url` (`http.public_url`; `None`: no link).
    /// Deliveries are claimed in the collection `sse_logs_notifications` of the log collection's
    /// database, which `sse-logs migrate` (or [`LogStreams::migrate`]) prepares: nothing is
    /// claimed before. Default: no webhooks. A bad rule fails naming its key.
    pub fn notify(
        mut self,
        settings: NotifySettings,
        public_url: Option<String>,
    ) -> Result<Self, SettingsError> {
        if let Err((key, message)) = Rules::new(&settings) {
            return Err(SettingsError::Invalid { key, message });
        }
        self.notify = Some(NotifyConfig { settings, public_url });
        Ok(self)
    }

    /// Ends every stream and the change stream when `signal` completes (the host's shutdown).
    pub fn shutdown_on(self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            shutdown.trigger();
        });
        self
    }

    /// Starts the change stream hub (on the current tokio runtime) and returns the streams.
    pub fn build(self) -> LogStreams {
        let redactor = self.redact.clone();
        let store = match self.source {
            Source::Store(store) => store.with_redactor(self.redact),
            Source::Collection(collection) => {
                Store::from_collection(collection, self.pool_size, &self.metrics).with_redactor(self.redact)
            }
        };
        self.metrics.max_streams.set(i64::try_from(self.limits.max_streams).unwrap_or(i64::MAX));
        // The rules were checked by `notify()`, so this cannot fail.
        let (notifier, notify_tasks) = Notifier::new(self.notify, self.metrics.clone()).unwrap_or_default();
        let index = Index::with_notifier(self.index, notifier.clone());
        let bounds = crate::hub::Bounds { per_log: self.window.bytes_per_log, total: self.window.bytes };
        let hub = Hub::new(self.metrics.clone(), index.clone(), notifier, bounds);
        if let Some(tasks) = notify_tasks {
            tasks.spawn(store.clone(), hub.watch_live(), redactor, self.shutdown.clone());
        }
        tokio::spawn(hub.clone().run(store.clone(), self.shutdown.clone()));
        tokio::spawn(index::run(index.clone(), store.clone(), self.shutdown.clone()));
        tokio::spawn(index::count_lengths(
            index.clone(),
            store.clone(),
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        let service = Service {
            hub,
            store,
            metrics: self.metrics,
            shutdown: self.shutdown,
            sse: self.sse,
            drain: self.drain,
            stall_after: self.stall_after,
            index,
            shared_reads: crate::service::SharedReads::default(),
        };
        LogStreams { state: AppState::new(service, self.access, self.allowed_origins, self.limits) }
    }
}
