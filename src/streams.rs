//! The embedding API: live log streaming over a MongoDB collection, as a warp filter.
//!
//! The `sse-logs serve` binary is built on exactly this; an app with its own routes, auth and
//! MongoDB client mounts the same routes under any prefix.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bson::Document;
use mongodb::Collection;
use tokio::sync::Semaphore;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::access::{AccessCheck, AllowAll};
use crate::config::{Limits, SseSettings};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::state::{AppState, SharedState};
use crate::store::Store;

/// Live log streaming for one collection: the routes, and the one change stream behind them.
///
/// Cheap to clone; every clone and every filter made from it share the same hub, so mounting
/// the routes twice still opens one change stream.
#[derive(Clone, Debug)]
pub struct LogStreams {
    state: SharedState,
}

/// Configures a [`LogStreams`]; made by [`LogStreams::builder`].
pub struct LogStreamsBuilder {
    store: Store,
    sse: SseSettings,
    limits: Limits,
    access: Box<dyn AccessCheck>,
    allowed_origins: Vec<String>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for LogStreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStreamsBuilder").field("sse", &self.sse).field("limits", &self.limits).finish()
    }
}

impl LogStreams {
    /// Starts configuring streaming over `collection` (documents `{type, id, log}`), using the
    /// client and connection pool the collection came from. The deployment must be a replica
    /// set or sharded cluster: change streams need one.
    pub fn builder(collection: Collection<Document>) -> LogStreamsBuilder {
        LogStreamsBuilder {
            store: Store::from_collection(collection),
            sse: SseSettings { keep_alive_secs: 15, retry_ms: 2000 },
            limits: Limits { max_streams: 10_000, max_body_bytes: 1_048_576 },
            access: Box::new(AllowAll),
            allowed_origins: Vec::new(),
            shutdown: Shutdown::new(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// The log routes, to mount under any prefix with `warp::path("logs").and(...)` and `.or()`:
    ///
    /// - `GET  api/v1/sse/logs/?type=T&id=I&num=N` (the seed-compatible stream)
    /// - `GET  api/v1/logs/{type}/{id}/stream?from=N[&format=json]`
    /// - `GET  api/v1/logs/{type}/{id}?from=N&limit=M` (JSON snapshot)
    /// - `POST api/v1/logs/{type}/{id}` (append)
    /// - `GET  logs/{type}/{id}` (the HTML viewer)
    ///
    /// Requests for other paths are rejected as not found, so the host's routes still match;
    /// errors of these routes are answered here as the JSON errors of the contract.
    pub fn filter(&self) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
        crate::routes::log_routes(self.state.clone())
    }

    /// True while the change stream runs (MongoDB reachable): what `/readyz` reports.
    pub fn is_live(&self) -> bool {
        self.state.hub.is_live()
    }

    /// Ends every open stream cleanly and stops the change stream.
    pub fn shutdown(&self) {
        self.state.shutdown.trigger();
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

    /// Ends every stream and the change stream when `signal` completes (the host's shutdown).
    pub fn shutdown_on(self, signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            signal.await;
            shutdown.trigger();
        });
        self
    }

    pub(crate) fn access_boxed(mut self, check: Box<dyn AccessCheck>) -> Self {
        self.access = check;
        self
    }

    pub(crate) fn settings(mut self, sse: SseSettings, limits: Limits) -> Self {
        (self.sse, self.limits) = (sse, limits);
        self
    }

    pub(crate) fn shared(mut self, shutdown: Shutdown, metrics: Arc<Metrics>) -> Self {
        (self.shutdown, self.metrics) = (shutdown, metrics);
        self
    }

    /// Starts the change stream hub (on the current tokio runtime) and returns the streams.
    pub fn build(self) -> LogStreams {
        let state = Arc::new(AppState {
            hub: Hub::new(self.metrics.clone()),
            stream_slots: Arc::new(Semaphore::new(self.limits.max_streams)),
            sse: self.sse,
            limits: self.limits,
            access: self.access,
            allowed_origins: self.allowed_origins,
            store: self.store.clone(),
            metrics: self.metrics,
            shutdown: self.shutdown.clone(),
        });
        tokio::spawn(state.hub.clone().run(self.store, self.shutdown));
        LogStreams { state }
    }
}
