//! What every route shares: settings, the access check, the MongoDB store, the hub, metrics
//! and shutdown.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::access::AccessCheck;
use crate::config::{Limits, SseSettings};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::Store;

#[derive(Debug)]
pub struct AppState {
    pub sse: SseSettings,
    pub limits: Limits,
    pub access: Box<dyn AccessCheck>,
    /// Other origins whose state-changing requests are allowed (`cors.allowed_origins`).
    pub allowed_origins: Vec<String>,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    /// One permit per open stream, so `limits.max_streams` is a hard cap.
    pub stream_slots: Arc<Semaphore>,
}

pub type SharedState = Arc<AppState>;

impl std::fmt::Debug for dyn AccessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessCheck")
    }
}
