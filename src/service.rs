//! The service's shared parts: what every route, session and stream works with.
//!
//! One `Service` per process (per mounted `LogStreams`): the store, the hub and the index it
//! keeps current, metrics, the shutdown signal and the stream settings. It also answers the
//! two questions about the whole: its metrics text and whether it is ready.

use std::sync::Arc;
use std::time::Duration;

use crate::config::SseSettings;
use crate::flights::Flights;
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
    /// Tail and page reads of ended logs under way, shared by the requests that arrive meanwhile.
    pub shared_reads: SharedReads,
}

/// The last positions of a log: where they start, and the page of them.
pub(crate) type Tail = (u64, Arc<Page>);

/// Reads of ended logs that requests arriving together share (`flights.rs`).
#[derive(Debug, Default)]
pub(crate) struct SharedReads {
    /// `None`: the log is not as the index says (then each request counts).
    tails: Flights<(LogKey, u64), Option<Tail>>,
    pages: Flights<(LogKey, u64, u64), Arc<Page>>,
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
    /// Requests that arrive while the same tail of the same ended log is read share that read.
    pub async fn tail(&self, key: &LogKey, k: u64) -> mongodb::error::Result<Tail> {
        if let Some(known) = self.index.known(key).await {
            let (store, log) = (self.store.clone(), key.clone());
            let read = async move {
                Ok(store.tail_known(&log, k, known).await?.map(|(from, page)| (from, Arc::new(page))))
            };
            if let Some(tail) = self.shared_reads.tails.read((key.clone(), k), read).await? {
                self.metrics.tail_reads.with_label_values(&["index"]).inc();
                return Ok(tail);
            }
        }
        self.metrics.tail_reads.with_label_values(&["count"]).inc();
        let (from, page) = self.store.tail(key, k).await?;
        Ok((from, Arc::new(page)))
    }

    /// Up to `limit` positions of the log after `from`. Requests that arrive while the same page
    /// of the same ended log is read share that read.
    pub async fn page(&self, key: &LogKey, from: u64, limit: u64) -> mongodb::error::Result<Arc<Page>> {
        if !self.index.has_ended(key) {
            return Ok(Arc::new(self.store.page(key, from, limit).await?));
        }
        let (store, log) = (self.store.clone(), key.clone());
        let read = async move { Ok(Arc::new(store.page(&log, from, limit).await?)) };
        self.shared_reads.pages.read((key.clone(), from, limit), read).await
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
