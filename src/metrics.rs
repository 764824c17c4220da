//! Process metrics for `GET /metrics`, kept in a `prometheus` registry of the process's own.

use crate::log::Outcome;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The stream routes (`index` is the index stream; `streams` counts each log of a combined
/// stream), the label of the per-route metrics.
pub(crate) const ROUTES: [&str; 5] = ["seed", "stream", "streams", "raw", "index"];

/// Every metric the service exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    streams_open: IntGaugeVec,
    streams_opened: IntCounterVec,
    logs_ended: IntCounterVec,
    /// Log lines sent to clients.
    pub lines_sent: IntCounter,
    /// Log lines read from MongoDB by backlog and catch-up cursors.
    pub backlog_lines_read: IntCounter,
    /// Change stream (re)starts.
    pub change_stream_starts: IntCounter,
    /// Times every subscriber had to resync from MongoDB.
    pub resyncs: IntCounter,
    /// Subscribers dropped for a full queue, then caught up from MongoDB.
    pub slow_client_catch_ups: IntCounter,
    pub window_resumes: IntCounter,
    /// Lines the index had not heard of, found when an ended log was counted.
    pub index_lines_unheard: IntCounter,
    /// `?tail=` answers by how their position was found: `index` (no count) or `count`.
    pub tail_reads: IntCounterVec,
    /// Logs deleted by the retention task.
    pub retention_logs_deleted: IntCounter,
    /// Passes of the retention task.
    pub retention_passes: IntCounter,
    /// HTTP responses by status code.
    pub http_responses: IntCounterVec,
    /// Seconds from a line's insert (the change event's wall time) to its write to a client.
    pub insert_to_send: Histogram,
    /// Connections in the driver's pool.
    pub mongodb_connections: IntGauge,
    /// Most connections the driver's pool may hold.
    pub mongodb_pool_size: IntGauge,
    /// `limits.max_streams`, so alerts can compare open streams with it.
    pub max_streams: IntGauge,
    /// Queries the store lets run at once (the pool, less what the change stream needs).
    pub mongodb_query_slots: IntGauge,
    hub_subscribers: IntGauge,
    hub_logs: IntGauge,
    hub_live: IntGauge,
    change_stream_idle: prometheus::Gauge,
    change_stream_resumable: IntGauge,
    /// Logs in the in-memory index.
    pub index_logs: IntGauge,
    /// Webhook attempts by result: `delivered`, `retried` (a retry is due), `gave_up`.
    pub notify_attempts: IntCounterVec,
    /// Claims by result: `won` (this process delivers), `taken` (claimed before, by any process).
    pub notify_claims: IntCounterVec,
    /// Notifications waiting in this process: events to claim and claims to deliver.
    pub notify_queue: IntGauge,
    /// Age of the oldest pending delivery in MongoDB (any replica's), 0 when none.
    pub notify_oldest_pending: prometheus::Gauge,
    /// Events left to the catch-up read because the queue was full.
    pub notify_overflows: IntCounter,
    resident_memory: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let streams_open =
            IntGaugeVec::new(Opts::new("sse_logs_streams_open", "Streams open now."), &["route"])
                .expect("valid metric");
        let streams_opened = IntCounterVec::new(
            Opts::new("sse_logs_streams_opened_total", "Streams opened since start."),
            &["route"],
        )
        .expect("valid metric");
        let http_responses = IntCounterVec::new(
            Opts::new("sse_logs_http_responses_total", "HTTP responses by status."),
            &["status"],
        )
        .expect("valid metric");
        let logs_ended = IntCounterVec::new(
            Opts::new(
                "sse_logs_logs_ended_total",
                "Logs seen ending on the change stream, by outcome (unknown: a bare [DONE]). Every replica counts every log.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let notify_attempts = IntCounterVec::new(
            Opts::new(
                "sse_logs_notify_deliveries_total",
                "Webhook delivery attempts by result: delivered (2xx), retried (a retry is due), gave_up (notify.retry_secs ran out).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let notify_claims = IntCounterVec::new(
            Opts::new(
                "sse_logs_notify_claims_total",
                "Webhook deliveries claimed by result: won (this replica delivers) or taken (claimed already).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let tail_reads = IntCounterVec::new(
            Opts::new(
                "sse_logs_tail_reads_total",
                "Snapshot ?tail= answers by how the position was found: index (the index's length, no count) or count.",
            ),
            &["how"],
        )
        .expect("valid metric");
        let notify_oldest_pending = prometheus::Gauge::new(
            "sse_logs_notify_oldest_pending_seconds",
            "Age of the oldest webhook delivery still pending in MongoDB (0: none).",
        )
        .expect("valid metric");
        let buckets = vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let insert_to_send = Histogram::with_opts(
            HistogramOpts::new(
                "sse_logs_insert_to_send_seconds",
                "From a line's insert (change event wall time) to its write to a client.",
            )
            .buckets(buckets),
        )
        .expect("valid metric");
        for metric in [
            Box::new(streams_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(streams_opened.clone()),
            Box::new(http_responses.clone()),
            Box::new(logs_ended.clone()),
            Box::new(insert_to_send.clone()),
            Box::new(notify_attempts.clone()),
            Box::new(notify_claims.clone()),
            Box::new(notify_oldest_pending.clone()),
            Box::new(tail_reads.clone()),
        ] {
            registry.register(metric).expect("unique metric");
        }
        for outcome in Outcome::ALL.map(Outcome::as_str).into_iter().chain(["unknown"]) {
            logs_ended.with_label_values(&[outcome]);
        }
        for result in ["delivered", "retried", "gave_up"] {
            notify_attempts.with_label_values(&[result]);
        }
        for result in ["won", "taken"] {
            notify_claims.with_label_values(&[result]);
        }
        for how in ["index", "count"] {
            tail_reads.with_label_values(&[how]);
        }
        for route in ROUTES {
            streams_open.with_label_values(&[route]);
            streams_opened.with_label_values(&[route]);
        }
        Self {
            lines_sent: counter("sse_logs_lines_sent_total", "Log lines sent to clients."),
            backlog_lines_read: counter(
                "sse_logs_backlog_lines_read_total",
                "Log lines read by backlog cursors.",
            ),
            change_stream_starts: counter("sse_logs_change_stream_starts_total", "Change stream (re)starts."),
            resyncs: counter("sse_logs_resyncs_total", "Times every subscriber resynced from MongoDB."),
            slow_client_catch_ups: counter(
                "sse_logs_slow_client_catch_ups_total",
                "Subscribers dropped for a full queue, then caught up from MongoDB.",
            ),
            window_resumes: counter(
                "sse_logs_window_resumes_total",
                "Streams that resumed from a log's window of recent lines, without reading MongoDB.",
            ),
            index_lines_unheard: counter(
                "sse_logs_index_lines_unheard_total",
                "Lines the index had not heard of (the change stream missed them, or they predate the log's listing), found by counting logs as they end.",
            ),
            retention_logs_deleted: counter(
                "sse_logs_retention_logs_deleted_total",
                "Logs deleted by the retention task (retention.days).",
            ),
            retention_passes: counter("sse_logs_retention_passes_total", "Passes of the retention task."),
            mongodb_connections: gauge("sse_logs_mongodb_connections", "Connections in the driver's pool."),
            mongodb_pool_size: gauge(
                "sse_logs_mongodb_pool_size",
                "Most connections the driver's pool may hold.",
            ),
            max_streams: gauge("sse_logs_max_streams", "Most streams open at once (limits.max_streams)."),
            mongodb_query_slots: gauge(
                "sse_logs_mongodb_query_slots",
                "Queries allowed in flight at once (backlog reads, snapshots, appends).",
            ),
            hub_subscribers: gauge(
                "sse_logs_hub_subscribers",
                "Streams subscribed to the change stream hub.",
            ),
            hub_logs: gauge("sse_logs_hub_logs", "Logs with at least one subscriber."),
            hub_live: gauge("sse_logs_hub_live", "1 while the change stream is running."),
            change_stream_idle: {
                let g = prometheus::Gauge::new(
                    "sse_logs_change_stream_idle_seconds",
                    "Seconds since the change stream last answered (an event or an empty batch).",
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            change_stream_resumable: gauge(
                "sse_logs_change_stream_resumable",
                "1 while a resume token is held (a reopened stream resumes instead of resyncing).",
            ),
            index_logs: gauge("sse_logs_index_logs", "Logs in the in-memory index of logs."),
            notify_queue: gauge(
                "sse_logs_notify_queue",
                "Notifications waiting in this process (events to claim, claims to deliver).",
            ),
            notify_overflows: counter(
                "sse_logs_notify_overflows_total",
                "Notification events left to the catch-up read because the queue was full.",
            ),
            notify_attempts,
            notify_claims,
            tail_reads,
            notify_oldest_pending,
            resident_memory: gauge(
                "sse_logs_process_resident_memory_bytes",
                "Resident memory of the process.",
            ),
            streams_open,
            streams_opened,
            logs_ended,
            http_responses,
            insert_to_send,
            registry,
        }
    }

    /// A stream of `route` opened.
    pub fn stream_opened(&self, route: &str) {
        self.streams_opened.with_label_values(&[route]).inc();
        self.streams_open.with_label_values(&[route]).inc();
    }

    /// A log ended with `outcome` (`None`: unknown).
    pub fn log_ended(&self, outcome: Option<Outcome>) {
        self.logs_ended.with_label_values(&[outcome.map_or("unknown", Outcome::as_str)]).inc();
    }

    /// A stream of `route` ended.
    pub fn stream_closed(&self, route: &str) {
        self.streams_open.with_label_values(&[route]).dec();
    }

    /// The exposition text; hub figures are sampled at scrape time.
    pub fn render(&self, hub: HubFigures) -> String {
        self.hub_subscribers.set(i64::try_from(hub.subscribers).unwrap_or(i64::MAX));
        self.hub_logs.set(i64::try_from(hub.logs).unwrap_or(i64::MAX));
        self.hub_live.set(i64::from(hub.live));
        self.change_stream_idle.set(hub.idle_secs);
        self.change_stream_resumable.set(i64::from(hub.resumable));
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory.set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// What the hub reports at scrape time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubFigures {
    pub subscribers: usize,
    pub logs: usize,
    pub live: bool,
    pub idle_secs: f64,
    pub resumable: bool,
}

/// The process's resident set size, from `/proc` (Linux only).
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
