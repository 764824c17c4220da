//! The `serve` binary's wiring: one [`LogStreams`] built from settings, plus the routes only a
//! standalone service has (health, readiness, metrics, CORS), served until shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::embed::LogStreams;
use crate::routes::routes;
use crate::shutdown::Shutdown;

/// How long shutdown may take before the remaining connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(4500);
/// How long closing the MongoDB clients may take after that (the exit bound is 5 s in all).
const CLOSE_GRACE: Duration = Duration::from_millis(400);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The MongoDB URI is not usable.
    #[error("mongodb.uri: {0}")]
    MongoUri(#[source] mongodb::error::Error),
    /// A setting could be parsed but not used (e.g. an unreadable key file).
    #[error("{0}")]
    Settings(#[source] crate::config::SettingsError),
    /// The listen address could not be bound.
    #[error("http.bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A built service: listening, with its change stream starting, ready to be awaited.
pub struct Application {
    addr: SocketAddr,
    streams: LogStreams,
    shutdown: Shutdown,
    listener: TcpListener,
    allowed_origins: Vec<String>,
    header_read_timeout: Duration,
    max_header_bytes: usize,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and starts the hub. MongoDB may be down:
    /// the service starts anyway and becomes ready when it can reach it.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> Result<Self, StartError> {
        let access = crate::access::from_settings(&settings.auth).map_err(StartError::Settings)?;
        let redactor = settings.redact.redactor().map_err(StartError::Settings)?;
        let addr = settings.http.bind;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let signal = shutdown.clone();
        let streams = LogStreams::connect(&settings.mongodb)
            .await
            .map_err(StartError::MongoUri)?
            .keep_alive(settings.sse.keep_alive())
            .retry(Duration::from_millis(settings.sse.retry_ms))
            .max_streams(settings.limits.max_streams)
            .max_body_bytes(settings.limits.max_body_bytes)
            .stall_after(Duration::from_secs(settings.mongodb.change_stream_stall_secs))
            .index(settings.index.clone())
            .window(settings.window)
            .notify(settings.notify.clone(), settings.http.public_url.clone())
            .map_err(StartError::Settings)?
            .access(access)
            .allowed_origins(settings.cors.allowed_origins.clone())
            .redact(redactor)
            .drain_spread(Duration::from_secs(settings.shutdown.drain_secs))
            .shutdown_on(async move { signal.wait().await })
            .build();
        if settings.mongodb.migrate_on_start {
            tokio::spawn(migrate_when_reachable(streams.clone(), shutdown.clone()));
        }
        if let Some(days) = settings.retention.days {
            let service = &streams.state().service;
            tokio::spawn(crate::retention::run(
                service.store.clone(),
                service.hub.clone(),
                service.metrics.clone(),
                Duration::from_secs(days.saturating_mul(86_400)),
                Duration::from_secs(settings.retention.interval_secs),
                shutdown.clone(),
            ));
        }
        Ok(Self {
            addr,
            streams,
            shutdown,
            listener,
            allowed_origins: settings.cors.allowed_origins,
            header_read_timeout: Duration::from_secs(settings.http.header_read_timeout_secs),
            max_header_bytes: settings.limits.max_header_bytes,
        })
    }

    /// Where it listens (the real port when `http.bind` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The streaming machinery it serves: liveness, metrics, shutdown.
    pub fn streams(&self) -> &LogStreams {
        &self.streams
    }

    /// Serves until shutdown, then ends every stream and returns within the grace period.
    pub async fn run_until_stopped(self) {
        let shutdown = self.shutdown.clone();
        tracing::info!(addr = %self.addr, "listening");
        let routes = routes(self.streams.state().clone(), &self.allowed_origins);
        let limits = crate::server::Limits {
            header_read_timeout: self.header_read_timeout,
            max_header_bytes: self.max_header_bytes,
        };
        let server = crate::server::serve(self.listener, routes, limits, shutdown.clone());
        let deadline = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            _ = server => tracing::info!("stopped"),
            _ = deadline => tracing::warn!("connections still open at the end of the grace period; closing them"),
        }
        let store = &self.streams.state().service.store;
        if tokio::time::timeout(CLOSE_GRACE, store.close()).await.is_err() {
            tracing::warn!("the MongoDB clients did not close in time");
        }
    }
}

async fn migrate_when_reachable(streams: LogStreams, shutdown: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let wait = match streams.migrate().await {
            Ok(applied) => {
                tracing::info!(applied = applied.len(), "migrations up to date");
                return;
            }
            Err(err) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?wait, "migrations not applied yet");
                wait
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
