//! Process counters, rendered in the Prometheus text format for `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub streams_opened: AtomicU64,
    pub streams_open: AtomicU64,
    pub lines_sent: AtomicU64,
    pub backlog_lines_read: AtomicU64,
    pub change_stream_starts: AtomicU64,
    pub resyncs: AtomicU64,
    pub slow_client_catch_ups: AtomicU64,
    pub mongodb_connections: AtomicU64,
    pub mongodb_pool_size: AtomicU64,
}

impl Metrics {
    /// The exposition text; `subscribers` comes from the hub at scrape time.
    pub fn render(&self, subscribers: usize, hub_live: bool) -> String {
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        put(
            "sse_logs_streams_opened_total",
            "counter",
            "Streams opened since start.",
            get(&self.streams_opened),
        );
        put("sse_logs_streams_open", "gauge", "Streams open now.", get(&self.streams_open));
        put(
            "sse_logs_hub_subscribers",
            "gauge",
            "Streams subscribed to the change stream hub.",
            subscribers as u64,
        );
        put("sse_logs_hub_live", "gauge", "1 while the change stream is running.", u64::from(hub_live));
        put("sse_logs_lines_sent_total", "counter", "Log lines sent to clients.", get(&self.lines_sent));
        put(
            "sse_logs_backlog_lines_read_total",
            "counter",
            "Log lines read from MongoDB by backlog cursors.",
            get(&self.backlog_lines_read),
        );
        put(
            "sse_logs_change_stream_starts_total",
            "counter",
            "Change stream (re)starts.",
            get(&self.change_stream_starts),
        );
        put(
            "sse_logs_resyncs_total",
            "counter",
            "Times every subscriber had to resync from MongoDB.",
            get(&self.resyncs),
        );
        put(
            "sse_logs_slow_client_catch_ups_total",
            "counter",
            "Subscribers dropped for a full queue, then caught up from MongoDB.",
            get(&self.slow_client_catch_ups),
        );
        put(
            "sse_logs_mongodb_connections",
            "gauge",
            "Connections the MongoDB driver holds in its pool.",
            get(&self.mongodb_connections),
        );
        put(
            "sse_logs_mongodb_pool_size",
            "gauge",
            "Most connections the MongoDB driver pool may hold.",
            get(&self.mongodb_pool_size),
        );
        if let Some(rss) = resident_memory_bytes() {
            put("sse_logs_process_resident_memory_bytes", "gauge", "Resident memory of the process.", rss);
        }
        out
    }
}

/// The process's resident set size, from `/proc` (Linux only).
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
