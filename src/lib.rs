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
//!
//! Modules, from the outside in: [`streams`] (the embedding API), [`access`] (the pluggable
//! access decision), [`config`] and [`startup`] (the binary's settings and wiring).

pub mod access;
pub mod auth;
pub mod config;
pub mod key;
pub mod shutdown;
pub mod startup;
pub mod streams;

// Internals: public only so that the binary and the integration tests can reach them.
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod hub;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod migrations;
#[doc(hidden)]
pub mod state;
#[doc(hidden)]
pub mod store;
#[doc(hidden)]
pub mod telemetry;

/// Refusal of cross-site state-changing requests (CSRF).
mod origin;
/// The HTTP routes.
mod routes;
/// One client's stream: backlog, hand-off, live.
mod session;
/// Server-Sent Events framing.
mod sse;

pub use config::Settings;
pub use shutdown::Shutdown;
pub use startup::Application;
pub use streams::{LogStreams, LogStreamsBuilder};
