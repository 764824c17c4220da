//! What every route shares: settings, the MongoDB store, the hub, metrics and shutdown.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::Store;

#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    /// One permit per open stream, so `limits.max_streams` is a hard cap.
    pub stream_slots: Arc<Semaphore>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(settings: Settings, store: Store, metrics: Arc<Metrics>, shutdown: Shutdown) -> SharedState {
        let stream_slots = Arc::new(Semaphore::new(settings.limits.max_streams));
        Arc::new(Self { hub: Hub::new(metrics.clone()), settings, store, metrics, shutdown, stream_slots })
    }
}
