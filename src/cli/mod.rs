//! The command line: `serve` (the default), `migrate`, and for producers and terminals `push`,
//! `run` and `tail`.

mod client;
mod push;
mod run;
mod tail;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::log::{Ending, LogKey, Outcome};
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
    /// Append standard input to a log, one line per line, ending it with [DONE] at EOF.
    Push {
        #[command(flatten)]
        to: PushArgs,
        /// Leave the log open at EOF (no [DONE]).
        #[arg(long, conflicts_with_all = ["outcome", "exit_code"])]
        no_done: bool,
        /// How the work ended, said by the [DONE]: succeeded, failed or cancelled.
        #[arg(long, value_parser = parse_outcome)]
        outcome: Option<Outcome>,
        /// The work's exit code, said by the [DONE].
        #[arg(long, allow_negative_numbers = true)]
        exit_code: Option<i64>,
    },
    /// Run a command, appending its output (stdout and stderr, merged) to a log while echoing
    /// it, and end the log with how the command ended; exits with the command's status.
    Run {
        #[command(flatten)]
        to: PushArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Print the API description (OpenAPI 3.1), as served at /api/v1/openapi.json.
    Openapi,
    /// Delete whole logs whose last line is older than an age (what retention.days does).
    Prune {
        /// The age: a number and d, h, m or s (e.g. 30d).
        #[arg(long, value_parser = parse_age)]
        older_than: std::time::Duration,
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a signed token (HS256, with auth.secret) for auth.mode = "token".
    Token {
        /// A log the holder may read: `type:id`, `type:*` or `*` (repeatable).
        #[arg(long = "logs", value_name = "SCOPE")]
        logs: Vec<String>,
        /// A log the holder may append to (repeatable).
        #[arg(long = "write", value_name = "SCOPE")]
        write: Vec<String>,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Print a log and follow it until [DONE], resuming after disconnects.
    Tail {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// Start after this many lines.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Start at the last K lines, as `tail -n K` does.
        #[arg(short = 'n', long = "tail", value_name = "K", conflicts_with = "from")]
        tail: Option<u64>,
        /// Print what exists now and exit.
        #[arg(long)]
        no_follow: bool,
        /// Start each line with its time (RFC 3339, UTC), as `kubectl logs --timestamps`.
        #[arg(long)]
        timestamps: bool,
    },
}

/// Where `push` and `run` write, and what they mask.
#[derive(Debug, clap::Args)]
struct PushArgs {
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    server: ServerArgs,
    /// Write straight into MongoDB at this URI instead of through the service.
    #[arg(long, env = "SSE_LOGS_MONGODB_URI")]
    mongodb_uri: Option<String>,
    /// A value to replace by *** wherever it appears (repeatable). A `::add-mask::VALUE`
    /// line in the input adds one too, and is not sent.
    #[arg(long = "mask", value_name = "VALUE")]
    masks: Vec<String>,
}

impl PushArgs {
    async fn sink(self) -> Result<(push::Sink, LogKey, Vec<String>), String> {
        let sink = match self.mongodb_uri {
            Some(uri) => push::Sink::Direct(direct_store(uri).await?),
            None => push::Sink::Service(client::ApiClient::new(&self.server.server, self.server.token)),
        };
        Ok((sink, LogKey::new(self.log.log_type, self.log.id), self.masks))
    }
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    Outcome::parse(text).ok_or_else(|| format!("{text:?} is not succeeded, failed or cancelled"))
}

#[derive(Debug, clap::Args)]
struct LogArgs {
    /// The log's type, e.g. deploy.
    #[arg(long = "type", value_name = "TYPE")]
    log_type: String,
    /// The log's id, e.g. 42.
    #[arg(long)]
    id: String,
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The sse-logs service.
    #[arg(long, env = "SSE_LOGS_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A token sent as `Authorization: Bearer`.
    #[arg(long, env = "SSE_LOGS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs the command line; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Openapi) {
        let document = crate::routes::openapi::document();
        println!("{}", serde_json::to_string_pretty(&document).expect("JSON values serialise"));
        return ExitCode::SUCCESS;
    }
    if let Command::Run { to, command } = command {
        return run::main(to, command);
    }
    if matches!(command, Command::Push { .. } | Command::Tail { .. }) {
        return run_client(command);
    }
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
        match command {
            Command::Migrate => migrate(settings).await,
            Command::Token { logs, write, ttl } => token(&settings, logs, write, ttl),
            Command::Prune { older_than, dry_run } => prune(settings, older_than, dry_run).await,
            _ => serve(settings).await,
        }
    });
    // Shutdown has ended the streams and closed the MongoDB clients. Tasks that still run (the
    // driver's own, killing cursors) are left to the process's exit: shutting the runtime down
    // would cancel them mid-way, and the driver panics on a cancelled task of its own.
    std::mem::forget(runtime);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sse-logs: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `push` and `tail` need no server settings: they talk to a service (or MongoDB) by URL.
fn run_client(command: Command) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let outcome = runtime.block_on(async {
        match command {
            Command::Push { to, no_done, outcome, exit_code } => {
                let (sink, key, masks) = to.sink().await?;
                let end = (!no_done).then_some(Ending { outcome, exit_code });
                push::run(sink, key, end, masks).await
            }
            Command::Tail { log, server, from, tail, no_follow, timestamps } => {
                let client = client::ApiClient::new(&server.server, server.token);
                let start = tail.map_or(tail::Start::After(from), tail::Start::Last);
                let out = tail::Output::stdout(timestamps);
                tail::run(client, LogKey::new(log.log_type, log.id), start, !no_follow, out).await
            }
            Command::Serve
            | Command::Migrate
            | Command::Token { .. }
            | Command::Prune { .. }
            | Command::Run { .. }
            | Command::Openapi => {
                unreachable!("handled by main")
            }
        }
    });
    // As for `serve`: no runtime shutdown under the driver's tasks (`push --mongodb-uri`).
    std::mem::forget(runtime);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sse-logs: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The store `push --mongodb-uri` writes to: the URI, with database and collection settings.
async fn direct_store(uri: String) -> Result<Store, String> {
    let mut settings = Settings::load().map_err(|e| e.to_string())?;
    settings.mongodb.uri = uri;
    let redactor = settings.redact.redactor().map_err(|e| e.to_string())?;
    let store = Store::connect(&settings.mongodb, Default::default())
        .await
        .map_err(|e| format!("--mongodb-uri: {e}"))?;
    Ok(store.with_redactor(redactor))
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

fn token(settings: &Settings, logs: Vec<String>, write: Vec<String>, ttl: u64) -> Result<(), String> {
    let secret = settings.auth.secret.as_deref().ok_or("auth.secret is not set (SSE_LOGS__AUTH__SECRET)")?;
    if logs.is_empty() && write.is_empty() {
        return Err("name at least one --logs or --write scope".into());
    }
    println!("{}", crate::access::mint(secret, logs, write, ttl));
    Ok(())
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    crate::retention::parse_age(text)
        .ok_or_else(|| format!("{text:?} is not an age like 30d, 12h, 90m or 45s"))
}

async fn prune(settings: Settings, older_than: std::time::Duration, dry_run: bool) -> Result<(), String> {
    let store = Store::connect(&settings.mongodb, Default::default())
        .await
        .map_err(|e| format!("mongodb.uri: {e}"))?;
    let cutoff = std::time::SystemTime::now().checked_sub(older_than).unwrap_or(std::time::UNIX_EPOCH);
    let pruned = crate::retention::prune(&store, cutoff, dry_run, |_| false)
        .await
        .map_err(|e| format!("pruning failed: {e}"))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for log in &pruned {
        let at =
            bson::DateTime::from_system_time(log.last_line_at).try_to_rfc3339_string().unwrap_or_default();
        println!("{verb} {}/{}: {} lines, last line at {at}", log.log_type, log.id, log.lines);
    }
    println!("prune: {verb} {} logs whose last line is older than {}", pruned.len(), humanize(older_than));
    Ok(())
}

fn humanize(age: std::time::Duration) -> String {
    let secs = age.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
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
