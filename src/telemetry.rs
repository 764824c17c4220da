//! Process logging with `tracing`: human-readable by default, JSON lines for collectors.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls (tests) are ignored. `RUST_LOG` filters.
pub fn init(format: LogFormat) {
    // warp reports every client that hangs up mid-stream (a closed browser tab) as a connection
    // "error"; for a streaming service that is normal traffic, so it is off unless asked for.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,warp::server::run=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
