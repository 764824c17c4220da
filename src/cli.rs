//! The command line: `serve` (the default) and `migrate`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::shutdown::{os_signal, Shutdown};
use crate::startup::Application;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "sse-logs",
    version,
    about = "Stream log lines stored in MongoDB to browsers over Server-Sent Events"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
}

/// Runs the command line; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(err) => {
            eprintln!("sse-logs: {err}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(settings.log.format);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
        }
    });
    // Do not wait for tasks still parked on MongoDB: shutdown has already ended the streams.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sse-logs: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let shutdown = Shutdown::new();
    let app = Application::build(settings, shutdown.clone()).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        os_signal().await;
        tracing::info!("shutdown requested");
        shutdown.trigger();
    });
    app.run_until_stopped().await;
    Ok(())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let store = Store::connect(&settings.mongodb, Default::default())
        .await
        .map_err(|e| format!("mongodb.uri: {e}"))?;
    let applied = crate::migrations::apply(&store).await.map_err(|e| format!("migration failed: {e}"))?;
    if applied.is_empty() {
        println!("migrations: nothing to apply");
    } else {
        for name in applied {
            println!("migrations: applied {name}");
        }
    }
    Ok(())
}
