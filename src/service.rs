//! The service's shared parts: what every route, session and stream works with.
//!
//! One `Service` per process (per mounted `LogStreams`): the store, the hub and the index it
//! keeps current, metrics, the shutdown signal and the stream settings. It also answers the
//! two questions about the whole: its metrics text and whether it is ready.

use std::sync::Arc;
use std::time::Duration;

use crate::config::SseSettings;
use crate::hub::Hub;
use crate::index::Index;
use crate::log::LogKey;
use crate::metrics::{HubFigures, Metrics};
use crate::shutdown::Shutdown;
use crate::store::{Page, Store};

/// The running service's parts that every request and stream uses: one per process, shared.
#[derive(Debug)]
pub(crate) struct Service {
    pub hub: Hub,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    pub sse: SseSettings,
    /// At shutdown, streams end at random moments over this long (`shutdown.drain_secs`).
    pub drain: Duration,
    /// A change stream silent for longer is reported stalled (not ready).
    pub stall_after: Duration,
    /// The list of logs, kept current by the hub.
    pub index: Index,
}

impl Service {
    /// The Prometheus text of `/metrics`; hub figures are sampled now.
    pub fn metrics_text(&self) -> String {
        self.metrics.index_logs.set(i64::try_from(self.index.len()).unwrap_or(i64::MAX));
        self.metrics.render(HubFigures {
            subscribers: self.hub.subscriber_count(),
            logs: self.hub.log_count(),
            live: self.hub.is_live(),
            idle_secs: self.hub.idle().as_secs_f64(),
            resumable: self.hub.is_resumable(),
        })
    }

    /// The last `k` positions of a log and the position before them: from the index's length
    /// when MongoDB counted it (no count now), else counted.
    pub async fn tail(&self, key: &LogKey, k: u64) -> mongodb::error::Result<(u64, Page)> {
        if let Some(known) = self.index.known(key).await {
            if let Some(tail) = self.store.tail_known(key, k, known).await? {
                self.metrics.tail_reads.with_label_values(&["index"]).inc();
                return Ok(tail);
            }
        }
        self.metrics.tail_reads.with_label_values(&["count"]).inc();
        self.store.tail(key, k).await
    }

    /// Why the service cannot serve live lines now, if it cannot.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.hub.is_live() {
            Some("the MongoDB change stream is not running")
        } else if self.hub.idle() > self.stall_after {
            Some(
                "the MongoDB change stream has not answered for longer than mongodb.change_stream_stall_secs",
            )
        } else {
            None
        }
    }
}
