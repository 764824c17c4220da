//! sse-logs: stream log lines stored in MongoDB to browsers over Server-Sent Events.
//!
//! A request reads the log's backlog with one cursor, then follows the process's single change
//! stream until the log's `[DONE]` line. The modules, from the outside in:

/// Command line: `serve`, `migrate`.
pub mod cli;
/// Typed settings loaded in layers.
pub mod config;
/// The API's error type and its mapping to HTTP.
pub mod error;
/// The shared change stream and its in-memory fan-out.
pub mod hub;
/// Which documents form a log, and how a request's `id` matches them.
pub mod key;
/// Process counters for `/metrics`.
pub mod metrics;
/// Database migrations from `migrations/`.
pub mod migrations;
/// The HTTP routes.
pub mod routes;
/// One client's stream: backlog, hand-off, live.
pub mod session;
/// The shutdown signal every long-lived task honours.
pub mod shutdown;
/// Server-Sent Events framing.
pub mod sse;
/// Building and running the service.
pub mod startup;
/// State shared by the routes.
pub mod state;
/// MongoDB access.
pub mod store;
/// Logging setup.
pub mod telemetry;

pub use config::Settings;
pub use shutdown::Shutdown;
pub use startup::Application;
