//! The sse-logs benchmark suite: latency, fan-out, replay, idle cost, memory (HTTP/1.1 and
//! HTTP/2), append throughput and growth, live delivery during a burst of opens and the cost of
//! redaction, of the release binary, against the seed's polling design and Nchan on the same
//! machine and the same MongoDB. Full runs repeat each measurement (medians with min–max) and
//! end with the targets checked on this run's figures. `scripts/bench.sh [--quick]` builds and installs what is needed
//! and runs this; run by hand:
//!
//! ```text
//! cargo run --release -p sse-logs-bench -- --mongodb-uri URI --sse-logs-bin target/release/sse-logs \
//!     [--quick] [--mongodb-pid PID] [--seed-python PY --seed-script bench/peers/seed_sanic.py] \
//!     [--nginx /usr/sbin/nginx --nchan-conf bench/peers/nchan.conf --nchan-module SO] \
//!     [--seed-unavailable WHY] [--nchan-unavailable WHY] [--work-dir DIR] [--out FILE] \
//!     [--only many,h2mem,fanout,burst,replay,redact,idle,push,growth,index,storm,storm100,idle100k] \
//!     [--fanout-viewers 1,100] [--connect-concurrency N] [--storm-viewers 2000,10000] [--idle-streams 100000]
//! ```
//!
//! The MongoDB server should be one started for the run: the suite writes into database
//! `popop`, collection `sse_logs` (the seed's hard-coded names), and counts every command the
//! server runs.

mod client;
mod h2c;
mod procs;
mod report;
mod scale;
mod scenarios;
mod sections;
mod startup;
mod storm;
mod systems;

use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use report::{Report, Row};
use scenarios::Ctx;
use sections::Launch;
use systems::{Nchan, Seed, SseLogs};

const DATABASE: &str = "popop";

/// Usually run by scripts/bench.sh. Give it a MongoDB server of its own: it writes into database
/// `popop` and counts every command the server runs.
#[derive(Debug, clap::Parser)]
#[command(name = "bench")]
struct Args {
    /// MongoDB server the suite writes into (database `popop`) and whose commands it counts.
    #[arg(long, value_name = "URI")]
    mongodb_uri: String,
    /// The sse-logs release binary to start.
    #[arg(long = "sse-logs-bin", value_name = "PATH")]
    bin: PathBuf,
    /// The short run (fewer viewers, lines and shorter windows).
    #[arg(long)]
    quick: bool,
    /// Which MongoDB server that is (name, version, cache size), for the report.
    #[arg(long, value_name = "TEXT")]
    mongodb_about: Option<String>,
    /// MongoDB's process, to add its CPU time to the figures.
    #[arg(long, value_name = "PID")]
    mongodb_pid: Option<u32>,
    /// Python with sanic and motor, to run the seed's view as a peer.
    #[arg(long, value_name = "PY")]
    seed_python: Option<PathBuf>,
    /// The seed's Sanic view.
    #[arg(long, value_name = "PATH", default_value = "bench/peers/seed_sanic.py")]
    seed_script: PathBuf,
    /// Why the seed peer cannot run (reported in the notes instead of running it).
    #[arg(long, value_name = "WHY")]
    seed_unavailable: Option<String>,
    /// nginx binary, to run Nchan as a peer.
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,
    /// nginx configuration template for Nchan.
    #[arg(long, value_name = "PATH", default_value = "bench/peers/nchan.conf")]
    nchan_conf: PathBuf,
    /// The Nchan nginx module.
    #[arg(long, value_name = "SO", default_value = "/usr/lib/nginx/modules/ngx_nchan_module.so")]
    nchan_module: PathBuf,
    /// Why the Nchan peer cannot run (reported in the notes instead of running it).
    #[arg(long, value_name = "WHY")]
    nchan_unavailable: Option<String>,
    /// Directory for the processes' logs and configuration.
    #[arg(long = "work-dir", value_name = "DIR", default_value_os_t = default_work_dir())]
    work: PathBuf,
    /// Also write the result table to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Scenario groups to run (all when not given), comma-separated.
    #[arg(
        long,
        value_name = "GROUPS",
        value_delimiter = ',',
        value_parser = [
            "many", "h2mem", "fanout", "burst", "replay", "redact", "idle", "push", "growth", "index", "storm",
            "storm100", "idle100k"
        ]
    )]
    only: Vec<String>,
    /// Fan-out sizes to run (all of the plan's when not given), comma-separated: `1` measures
    /// the 1-viewer latency without loading a shared machine with 10,000 viewers.
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    fanout_viewers: Vec<usize>,
    /// How many viewers connect at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    connect_concurrency: usize,
    /// Viewer counts of the reconnect storm (`--only storm`), instead of the plan's.
    #[arg(long, value_name = "N,..", value_delimiter = ',')]
    storm_viewers: Vec<usize>,
    /// Streams of `--only idle100k`, instead of 100,000 (a smaller run checks the setup).
    #[arg(long, value_name = "N")]
    idle_streams: Option<usize>,
}

fn default_work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sse-logs-bench-{}", std::process::id()))
}

/// How much of each scenario a run does.
#[derive(Debug)]
struct Plan {
    /// Runs of each measurement (the figures are their medians), and of the seed's slow ones.
    runs: usize,
    seed_runs: usize,
    /// (viewers on one log, measured lines) for sse-logs and Nchan.
    fanout: Vec<(usize, usize)>,
    seed_fanout: Vec<(usize, usize)>,
    many_logs: usize,
    /// HTTP/2 connections the `many_logs` streams share.
    h2_connections: usize,
    replay_lines: usize,
    seed_replay_lines: usize,
    seed_replay_cap: Duration,
    idle_viewers: usize,
    idle_window: Duration,
    push_window: Duration,
    /// Append growth: 1,000-line requests, and the other lines its type holds.
    growth_requests: usize,
    growth_others: usize,
    /// Open burst: streams opening, lines of their log, the window before and during.
    burst_streams: usize,
    burst_long_lines: usize,
    burst_before: Duration,
    burst_window: Duration,
    /// Index at start: lines of each collection (in lines/100 logs) a fresh sse-logs starts on.
    index_lines: Vec<usize>,
    /// Reconnect storms (issue 26): viewers of one log of `storm_lines` lines; then 100 logs of
    /// `storm100_lines` lines with 100 viewers each; and idle streams on one process.
    storm_viewers: Vec<usize>,
    storm_lines: usize,
    storm100_lines: usize,
    idle_streams: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                runs: 1,
                seed_runs: 1,
                fanout: vec![(1, 200), (100, 100), (1000, 40)],
                seed_fanout: vec![(1, 25), (100, 25)],
                many_logs: 10_000,
                h2_connections: 100,
                replay_lines: 200_000,
                seed_replay_lines: 1_000,
                seed_replay_cap: Duration::from_secs(30),
                idle_viewers: 1000,
                idle_window: Duration::from_secs(5),
                push_window: Duration::from_secs(3),
                growth_requests: 30,
                growth_others: 100_000,
                burst_streams: 10_000,
                burst_long_lines: 20_000,
                burst_before: Duration::from_secs(1),
                burst_window: Duration::from_secs(5),
                index_lines: vec![50_000, 100_000],
                storm_viewers: vec![2000],
                storm_lines: 20_000,
                storm100_lines: 2000,
                idle_streams: 100_000,
            }
        } else {
            Self {
                runs: 3,
                seed_runs: 1,
                fanout: vec![(1, 1000), (100, 300), (1000, 200), (10_000, 60)],
                seed_fanout: vec![(1, 100), (100, 100), (1000, 30)],
                many_logs: 10_000,
                h2_connections: 100,
                replay_lines: 200_000,
                seed_replay_lines: 5_000,
                seed_replay_cap: Duration::from_secs(120),
                idle_viewers: 1000,
                idle_window: Duration::from_secs(10),
                push_window: Duration::from_secs(10),
                growth_requests: 100,
                growth_others: 100_000,
                burst_streams: 10_000,
                burst_long_lines: 20_000,
                burst_before: Duration::from_secs(2),
                burst_window: Duration::from_secs(10),
                index_lines: vec![100_000, 250_000, 500_000, 1_000_000],
                storm_viewers: vec![2000, 10_000],
                storm_lines: 20_000,
                storm100_lines: 2000,
                idle_streams: 100_000,
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // On SIGINT or SIGTERM the run is dropped, and with it every process it started.
    let stopped = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    let args = <Args as clap::Parser>::parse();
    let result = tokio::select! {
        result = run(args) => result,
        () = stopped => Err("interrupted".into()),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn say(text: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let at = START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64();
    eprintln!("[bench {at:6.1}s] {text}");
}

async fn run(args: Args) -> Result<(), String> {
    let begun = std::time::Instant::now();
    let load_before = procs::load_average();
    let mut plan = Plan::new(args.quick);
    if !args.fanout_viewers.is_empty() {
        plan.fanout.retain(|(viewers, _)| args.fanout_viewers.contains(viewers));
        plan.seed_fanout.retain(|(viewers, _)| args.fanout_viewers.contains(viewers));
    }
    if !args.storm_viewers.is_empty() {
        plan.storm_viewers.clone_from(&args.storm_viewers);
    }
    if let Some(n) = args.idle_streams {
        plan.idle_streams = n.max(1);
    }
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    let mut report = Report::default();
    let most = plan.many_logs.max(plan.burst_streams).max(plan.fanout.iter().map(|f| f.0).max().unwrap_or(0));
    if let Some(limit) = procs::open_files_limit() {
        if limit < most as u64 + 1000 {
            report.notes.push(format!(
                "open-files limit {limit} is below the {most} connections some scenarios open; raise `ulimit -n`"
            ));
        }
    }
    let mongo = mongodb::Client::with_uri_str(&args.mongodb_uri).await.map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let ctx = Ctx {
        coll: mongo.database(DATABASE).collection("sse_logs"),
        mongo,
        http,
        run: format!("{:x}", client::now_ns() % 0xff_ffff),
        mongod_pid: args.mongodb_pid,
        connect_concurrency: args.connect_concurrency.max(1),
        serial: AtomicUsize::new(0),
    };
    let wanted = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);
    let launch = Launch { bin: &args.bin, uri: &args.mongodb_uri, work: &args.work };

    // 5 and 2, then 5 over HTTP/2: each run in a fresh process of its own, before the others start.
    if wanted("many") {
        sections::many(&ctx, &plan, launch, false, &mut report).await;
    }
    if wanted("h2mem") {
        sections::many(&ctx, &plan, launch, true, &mut report).await;
    }
    // 7: the index of logs built at start, each size in a fresh process and database.
    if wanted("index") {
        startup::index(&ctx, &plan.index_lines, launch, &mut report).await;
    }
    // Issue 26's scale rows, each in a fresh process of its own.
    if wanted("storm") {
        scale::storm(&ctx, &plan, launch, &mut report).await;
    }
    if wanted("storm100") {
        scale::storm100(&ctx, &plan, launch, &mut report).await;
    }
    if wanted("idle100k") {
        scale::idle100k(&ctx, &plan, launch, &mut report).await;
    }
    let own_process = ["index", "storm", "storm100", "idle100k"];
    if args.only.iter().all(|g| own_process.contains(&g.as_str())) && !args.only.is_empty() {
        return finish(&args, &plan, begun, &load_before, &report);
    }

    say("starting sse-logs");
    let sse = SseLogs::start(
        &args.bin,
        &args.mongodb_uri,
        DATABASE,
        &args.work.join("sse-logs.log"),
        &ctx.http,
        &[],
    )
    .await?;
    let peers = wanted("fanout") || wanted("replay") || wanted("idle");
    let seed = match (&args.seed_unavailable, &args.seed_python) {
        (_, _) if !peers => Err("no group that uses it was asked for".into()),
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err("no --seed-python given".into()),
        (None, Some(python)) => {
            say("starting the seed's Sanic view");
            Seed::start(python, &args.seed_script, &args.mongodb_uri, &args.work.join("seed.log")).await
        }
    };
    let nchan = match (&args.nchan_unavailable, &args.nginx) {
        (_, _) if !wanted("fanout") => Err("no group that uses it was asked for".into()),
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err("no --nginx given".into()),
        (None, Some(nginx)) => {
            say("starting nginx with Nchan");
            Nchan::start(nginx, &args.nchan_conf, &args.nchan_module, &args.work.join("nginx")).await
        }
    };
    if let (Err(why), true) = (&seed, peers) {
        report.notes.push(format!("The seed peer did not run: {why}"));
    }
    if let (Err(why), true) = (&nchan, wanted("fanout")) {
        report.notes.push(format!("The Nchan peer did not run: {why}"));
    }

    // 1: fan-out latency.
    if wanted("fanout") {
        sections::fanout(&ctx, &plan, &sse, seed.as_ref().ok(), nchan.as_ref().ok(), &mut report).await;
    }

    // 3: replay, and issue 17's redaction cost on the same log.
    if wanted("replay") || wanted("redact") {
        match sections::big_log(&ctx, &plan, &mut report).await {
            Ok(big) => {
                if wanted("replay") {
                    sections::replay(&ctx, &plan, &sse, seed.as_ref().ok(), &big, &mut report).await;
                    settle(&ctx, &sse).await;
                }
                if wanted("redact") {
                    sections::redact(&ctx, &plan, launch, &big, &mut report).await;
                }
            }
            Err(e) => report.rows.push(Row {
                scenario: "3. replay".into(),
                sse: report::err_cell(&format!("writing the log: {e}")),
                ..Row::default()
            }),
        }
    }

    // 4: idle cost.
    if wanted("idle") {
        sections::idle(&ctx, &plan, &sse, seed.as_ref().ok(), &mut report).await;
        settle(&ctx, &sse).await;
    }

    // 6: append throughput, and how an append's cost grows with its log.
    if wanted("push") {
        sections::push(&ctx, &plan, &sse, &mut report).await;
    }
    if wanted("growth") {
        sections::growth(&ctx, &plan, &sse, &mut report).await;
    }

    // Issue 18: live delivery while many streams open (in processes of its own).
    if wanted("burst") {
        sections::burst(&ctx, &plan, launch, &mut report).await;
    }

    drop(sse);
    drop(seed);
    drop(nchan);
    finish(&args, &plan, begun, &load_before, &report)
}

/// Prints the table (and writes it to `--out`), with the machine, the load and the command.
fn finish(
    args: &Args,
    plan: &Plan,
    begun: std::time::Instant,
    load_before: &str,
    report: &Report,
) -> Result<(), String> {
    let mode = if args.quick { "quick" } else { "full" };
    // The index group starts once per size, and the scale rows run once, whatever the plan's repeats.
    let once = ["index", "storm", "storm100", "idle100k"];
    let index_only = !args.only.is_empty() && args.only.iter().all(|g| once.contains(&g.as_str()));
    let runs = if plan.runs == 1 || index_only {
        "One run per figure".to_owned()
    } else {
        format!(
            "Each figure is the median of {} runs, (min–max) over them; a cell with fewer runs says so (the \
             seed's fan-out, idle and {}-line replay: {})",
            plan.runs,
            report::thousands(plan.seed_replay_lines),
            if plan.seed_runs == 1 { "one run".to_owned() } else { format!("{} runs", plan.seed_runs) }
        )
    };
    let command: Vec<String> =
        std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let script = format!(
        "scripts/bench.sh{}{}",
        if args.quick { " --quick" } else { "" },
        if args.only.is_empty() { String::new() } else { format!(" --only {}", args.only.join(",")) }
    );
    let preamble = [
        format!("Machine: {}", procs::machine()),
        format!(
            "MongoDB: {}. Reproduce with `{script}` (this tool ran as `{}`).",
            args.mongodb_about.as_deref().unwrap_or("the server at --mongodb-uri"),
            command.join(" ")
        ),
        format!(
            "{runs}. Took {:.1} min; load average (1, 5, 15 min) {} at the start, {} at the end.",
            begun.elapsed().as_secs_f64() / 60.0,
            load_before,
            procs::load_average()
        ),
    ];
    let text = report::render(&format!("Results ({mode} run)"), &preamble, report);
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
        say(&format!("table written to {}", out.display()));
    }
    Ok(())
}

/// Waits (at most 15 s) until sse-logs has no stream open, so scenarios do not overlap.
async fn settle(ctx: &Ctx, sse: &SseLogs) {
    if let Err(e) =
        sse.wait_metric(&ctx.http, "sse_logs_streams_open", Duration::from_secs(15), |v| v == 0.0).await
    {
        say(&format!("streams still open between scenarios: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    const REQUIRED: [&str; 5] = ["bench", "--mongodb-uri", "mongodb://db", "--sse-logs-bin", "sse-logs"];

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(REQUIRED).unwrap();
        assert_eq!(args.mongodb_uri, "mongodb://db");
        assert_eq!(args.bin, PathBuf::from("sse-logs"));
        assert!(!args.quick);
        assert_eq!(args.mongodb_pid, None);
        assert_eq!(args.mongodb_about, None);
        assert_eq!(args.seed_script, PathBuf::from("bench/peers/seed_sanic.py"));
        assert_eq!(args.nchan_conf, PathBuf::from("bench/peers/nchan.conf"));
        assert_eq!(args.nchan_module, PathBuf::from("/usr/lib/nginx/modules/ngx_nchan_module.so"));
        assert_eq!(args.work, std::env::temp_dir().join(format!("sse-logs-bench-{}", std::process::id())));
        assert!(args.only.is_empty());
        assert!(args.fanout_viewers.is_empty());
        assert!(args.storm_viewers.is_empty());
        assert_eq!(args.idle_streams, None);
        assert_eq!(args.connect_concurrency, 256);
    }

    #[test]
    fn every_option() {
        let more = [
            "--quick",
            "--mongodb-pid",
            "42",
            "--mongodb-about",
            "SecantusDB, --cache-size 256M",
            "--seed-python",
            "py",
            "--seed-script",
            "seed.py",
            "--seed-unavailable",
            "no python",
            "--nginx",
            "nginx",
            "--nchan-conf",
            "n.conf",
            "--nchan-module",
            "n.so",
            "--nchan-unavailable",
            "no nginx",
            "--work-dir",
            "w",
            "--out",
            "o.md",
            "--only",
            "fanout,replay,growth,h2mem,burst,redact,index,storm,storm100,idle100k",
            "--connect-concurrency",
            "8",
            "--fanout-viewers",
            "1,100",
            "--storm-viewers",
            "2000,10000",
            "--idle-streams",
            "5000",
        ];
        let args = Args::try_parse_from(REQUIRED.into_iter().chain(more)).unwrap();
        assert!(args.quick);
        assert_eq!(args.mongodb_pid, Some(42));
        assert_eq!(args.mongodb_about.as_deref(), Some("SecantusDB, --cache-size 256M"));
        assert_eq!(args.seed_python, Some(PathBuf::from("py")));
        assert_eq!(args.seed_script, PathBuf::from("seed.py"));
        assert_eq!(args.seed_unavailable.as_deref(), Some("no python"));
        assert_eq!(args.nginx, Some(PathBuf::from("nginx")));
        assert_eq!(args.nchan_conf, PathBuf::from("n.conf"));
        assert_eq!(args.nchan_module, PathBuf::from("n.so"));
        assert_eq!(args.nchan_unavailable.as_deref(), Some("no nginx"));
        assert_eq!(args.work, PathBuf::from("w"));
        assert_eq!(args.out, Some(PathBuf::from("o.md")));
        assert_eq!(
            args.only,
            [
                "fanout", "replay", "growth", "h2mem", "burst", "redact", "index", "storm", "storm100",
                "idle100k"
            ]
        );
        assert_eq!(args.storm_viewers, [2000, 10_000]);
        assert_eq!(args.idle_streams, Some(5000));
        assert_eq!(args.connect_concurrency, 8);
        assert_eq!(args.fanout_viewers, [1, 100]);
    }

    #[test]
    fn refusals() {
        assert!(Args::try_parse_from(["bench", "--mongodb-uri", "mongodb://db"]).is_err());
        assert!(Args::try_parse_from(["bench", "--sse-logs-bin", "sse-logs"]).is_err());
        assert!(Args::try_parse_from(REQUIRED.into_iter().chain(["--only", "fanout,bogus"])).is_err());
        assert!(Args::try_parse_from(REQUIRED.into_iter().chain(["--mongodb-pid", "x"])).is_err());
        assert!(Args::try_parse_from(REQUIRED.into_iter().chain(["--connect-concurrency", "-1"])).is_err());
    }
}
