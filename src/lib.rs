//! # sse-logs
//!
//! Stream log lines stored in MongoDB to browsers over Server-Sent Events.
//!
//! Build processes write one document `{type, id, log}` per line into a collection and end
//! with a `[DONE]` line. A viewer's request reads the log's backlog with one cursor, then
//! follows the process's single change stream (shared by every viewer) until `[DONE]`, with a
//! gapless, duplicate-free hand-off between the two.
//!
//! The `sse-logs` binary serves this over HTTP. An app that already has a warp server, its own
//! auth and a MongoDB client mounts the same routes with [`LogStreams`]:
//!
//! ```no_run
//! use sse_logs::access::{Access, AccessRequest};
//! use sse_logs::LogStreams;
//! use warp::Filter;
//!
//! # async fn run() -> mongodb::error::Result<()> {
//! let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:27017/?replicaSet=rs0").await?;
//! let streams = LogStreams::builder(client.database("popop").collection("sse_logs"))
//!     .access(|request: &AccessRequest<'_>| match request.headers.get("cookie") {
//!         Some(_) => Access::Allow,
//!         None => Access::Unauthorized("log in first".into()),
//!     })
//!     .shutdown_on(async { let _ = tokio::signal::ctrl_c().await; })
//!     .build();
//! let routes = warp::path!("hello").map(|| "hi").or(warp::path("logs").and(streams.filter()));
//! warp::serve(routes).run(([127, 0, 0, 1], 3030)).await;
//! # Ok(())
//! # }
//! ```
//!
//! Mounted under `/logs`, the stream of log `deploy/42` is then at
//! `/logs/api/v1/logs/deploy/42/stream`. See `examples/embed_in_warp.rs` for a complete app.

// The modules, in the order a line travels; each imports only from those above it. Settings,
// what a log is, and small shared tools (`emit`: how every stream is made); MongoDB (every
// query, the change stream, migrations); webhooks told of ends, idle logs and matches
// (`notify`); the list of logs; what a stream carries (`event`), the hub that fans the change
// stream out as events (and hands each insert to the index and to `notify`), and retention; the
// service's shared parts (with `flights`: reads of ended logs that requests arriving together share); one viewer's session and several merged, both yielding events; then
// the edge: the SSE grammar, the encoders that turn events into bytes, and the one streaming
// body that writes them; the API error and who may do what; the HTTP routes; the embedding API
// built from them; the `serve` binary's server and wiring; the command line.
//
// So a line goes: MongoDB -> `store` -> `hub` -> `session` (events) -> `encode` -> `body`.
mod log;

pub mod redact;

pub mod config;

mod backoff;
mod emit;
mod metrics;
pub mod shutdown;

mod migrations;
mod store;

mod notify;

mod index;

mod event;
mod hub;
mod retention;

mod flights;
mod service;

mod session;

mod combine;

mod sse;

mod encode;

mod body;

mod error;

pub mod access;
mod origin;

mod routes;

mod embed;

mod server;

pub mod startup;
#[cfg(feature = "cli")]
mod telemetry;

// Public only so that the binary (`main.rs`) can call it; behind the default `cli` feature, so
// an embedding app (`default-features = false`) compiles neither it nor clap.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

pub use config::Settings;
pub use embed::{LogStreams, LogStreamsBuilder};
pub use log::LogKey;
pub use shutdown::Shutdown;
pub use startup::Application;
