//! One shutdown signal for the whole process, passed to every long-lived task.
//!
//! Streams, the hub and the HTTP server all wait on the same token, so a SIGTERM ends every
//! response cleanly (EventSource then reconnects with `Last-Event-ID`, to another replica).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A cloneable shutdown signal: trigger it once, every clone sees it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    /// When it was triggered: each stream ends at its own delay after this moment.
    at: Arc<OnceLock<Instant>>,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; every waiter wakes.
    pub fn trigger(&self) {
        self.at.get_or_init(Instant::now);
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// [`Shutdown::wait`] as a future of its own, to keep across many `select!`s.
    pub fn wait_owned(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Resolves `delay` after shutdown started (measured from that moment, however often it
    /// is awaited): a stream's own moment to end, so that viewers dropped by one replica come
    /// back to the others as a ramp, not a wall (`shutdown.drain_secs`).
    pub(crate) async fn wait_then(&self, delay: Duration) {
        self.wait().await;
        if let Some(at) = self.at.get().filter(|_| !delay.is_zero()) {
            tokio::time::sleep_until(*at + delay).await;
        }
    }

    /// [`Shutdown::wait_then`] as a future of its own.
    pub(crate) fn wait_then_owned(
        &self,
        delay: Duration,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move { this.wait_then(delay).await }
    }
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C only, off Unix).
pub async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
