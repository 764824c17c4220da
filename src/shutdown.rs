//! One shutdown signal for the whole process, passed to every long-lived task.
//!
//! Streams, the hub and the HTTP server all wait on the same token, so a SIGTERM ends every
//! response cleanly (EventSource then reconnects with `Last-Event-ID`, to another replica).

use tokio_util::sync::CancellationToken;

/// A cloneable shutdown signal: trigger it once, every clone sees it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; every waiter wakes.
    pub fn trigger(&self) {
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
