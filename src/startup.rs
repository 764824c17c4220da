//! Wiring: builds the store, hub and routes from settings and serves them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::routes::routes;
use crate::shutdown::Shutdown;
use crate::state::SharedState;
use crate::store::Store;
use crate::streams::LogStreams;

/// How long shutdown may take before the remaining connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(4500);

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

/// A built service: listening, with its hub running, ready to be awaited.
pub struct Application {
    addr: SocketAddr,
    state: SharedState,
    listener: TcpListener,
    allowed_origins: Vec<String>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and starts the hub. MongoDB may be down:
    /// the service starts anyway and becomes ready when it can reach it.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        let store = Store::connect(&settings.mongodb, metrics.clone()).await.map_err(StartError::MongoUri)?;
        let addr = settings.bind_addr();
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        if settings.mongodb.migrate_on_start {
            tokio::spawn(migrate_when_reachable(store.clone(), shutdown.clone()));
        }
        let access = crate::auth::from_settings(&settings.auth).map_err(StartError::Settings)?;
        let streams = LogStreams::builder(store.collection().clone())
            .settings(settings.sse.clone(), settings.limits.clone())
            .access_boxed(access)
            .allowed_origins(settings.cors.allowed_origins.clone())
            .shared(shutdown, metrics)
            .build();
        Ok(Self {
            addr,
            state: streams.state().clone(),
            listener,
            allowed_origins: settings.cors.allowed_origins,
        })
    }

    /// Where it listens (the real port when `http.bind` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    #[doc(hidden)]
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Serves until shutdown, then ends every stream and returns within the grace period.
    pub async fn run_until_stopped(self) {
        let shutdown = self.state.shutdown.clone();
        let signal = {
            let shutdown = shutdown.clone();
            async move { shutdown.wait().await }
        };
        tracing::info!(addr = %self.addr, "listening");
        let server = warp::serve(routes(self.state.clone(), &self.allowed_origins))
            .incoming(self.listener)
            .graceful(signal)
            .run();
        let deadline = async {
            shutdown.wait().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            _ = server => tracing::info!("stopped"),
            _ = deadline => tracing::warn!("connections still open at the end of the grace period; closing them"),
        }
    }
}

async fn migrate_when_reachable(store: Store, shutdown: Shutdown) {
    let mut wait = Duration::from_millis(200);
    loop {
        match crate::migrations::apply(&store).await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?wait, "migrations not applied yet")
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}
