//! The sse-logs benchmark suite: latency, fan-out, replay, idle cost, memory and append
//! throughput of the release binary, against the seed's polling design and Nchan on the same
//! machine and the same MongoDB. `scripts/bench.sh [--quick]` builds and installs what is needed
//! and runs this; run by hand:
//!
//! ```text
//! cargo run --release -p sse-logs-bench -- --mongodb-uri URI --sse-logs-bin target/release/sse-logs \
//!     [--quick] [--mongodb-pid PID] [--seed-python PY --seed-script bench/peers/seed_sanic.py] \
//!     [--nginx /usr/sbin/nginx --nchan-conf bench/peers/nchan.conf --nchan-module SO] \
//!     [--seed-unavailable WHY] [--nchan-unavailable WHY] [--work-dir DIR] [--out FILE] \
//!     [--only many,fanout,replay,idle,push] [--connect-concurrency N]
//! ```
//!
//! The MongoDB server should be one started for the run: the suite writes into database
//! `popop`, collection `sse_logs` (the seed's hard-coded names), and counts every command the
//! server runs.

mod client;
mod procs;
mod scenarios;
mod systems;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use scenarios::{Ctx, Dist, Fanout, Peer};
use systems::{figure, Nchan, Seed, SseLogs};

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
        value_parser = ["many", "fanout", "replay", "idle", "push"]
    )]
    only: Vec<String>,
    /// How many viewers connect at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    connect_concurrency: usize,
}

fn default_work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sse-logs-bench-{}", std::process::id()))
}

/// How much of each scenario a run does.
#[derive(Debug)]
struct Plan {
    /// (viewers on one log, measured lines) for sse-logs and Nchan.
    fanout: Vec<(usize, usize)>,
    seed_fanout: Vec<(usize, usize)>,
    many_logs: usize,
    replay_lines: usize,
    replay_runs: usize,
    seed_replay_lines: usize,
    seed_replay_cap: Duration,
    idle_viewers: usize,
    idle_window: Duration,
    push_window: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                fanout: vec![(1, 200), (100, 100), (1000, 40)],
                seed_fanout: vec![(1, 25), (100, 25)],
                many_logs: 10_000,
                replay_lines: 200_000,
                replay_runs: 1,
                seed_replay_lines: 1_000,
                seed_replay_cap: Duration::from_secs(30),
                idle_viewers: 1000,
                idle_window: Duration::from_secs(5),
                push_window: Duration::from_secs(3),
            }
        } else {
            Self {
                fanout: vec![(1, 1000), (100, 300), (1000, 200), (10_000, 60)],
                seed_fanout: vec![(1, 100), (100, 100), (1000, 30)],
                many_logs: 10_000,
                replay_lines: 200_000,
                replay_runs: 3,
                seed_replay_lines: 5_000,
                seed_replay_cap: Duration::from_secs(120),
                idle_viewers: 1000,
                idle_window: Duration::from_secs(30),
                push_window: Duration::from_secs(10),
            }
        }
    }
}

/// One line of the result table.
#[derive(Debug, Default, Clone)]
struct Row {
    scenario: String,
    measure: String,
    sse: String,
    seed: String,
    nchan: String,
    target: String,
    verdict: String,
}

const NOT_RUN: &str = "not run";
const NOT_MEASURED: &str = "—";

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
    let plan = Plan::new(args.quick);
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    let mut notes: Vec<String> = Vec::new();
    let most = plan.many_logs.max(plan.fanout.iter().map(|f| f.0).max().unwrap_or(0));
    if let Some(limit) = procs::open_files_limit() {
        if limit < most as u64 + 1000 {
            notes.push(format!("open-files limit {limit} is below the {most} connections some scenarios open; raise `ulimit -n`"));
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
        run: format!("{:x}", scenarios::now_ns() % 0xff_ffff),
        mongod_pid: args.mongodb_pid,
        connect_concurrency: args.connect_concurrency.max(1),
    };
    let wanted = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);

    say("starting sse-logs");
    let sse =
        SseLogs::start(&args.bin, &args.mongodb_uri, DATABASE, &args.work.join("sse-logs.log"), &ctx.http)
            .await?;
    let seed = match (&args.seed_unavailable, &args.seed_python) {
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err("no --seed-python given".into()),
        (None, Some(python)) => {
            say("starting the seed's Sanic view");
            Seed::start(python, &args.seed_script, &args.mongodb_uri, &args.work.join("seed.log")).await
        }
    };
    let nchan = match (&args.nchan_unavailable, &args.nginx) {
        (Some(why), _) => Err(why.clone()),
        (None, None) => Err("no --nginx given".into()),
        (None, Some(nginx)) => {
            say("starting nginx with Nchan");
            Nchan::start(nginx, &args.nchan_conf, &args.nchan_module, &args.work.join("nginx")).await
        }
    };
    if let Err(why) = &seed {
        notes.push(format!("The seed peer did not run: {why}"));
    }
    if let Err(why) = &nchan {
        notes.push(format!("The Nchan peer did not run: {why}"));
    }
    let mut rows = Vec::new();

    // 5 and 2: memory per idle stream in a fresh process, then one line to each of those logs.
    if wanted("many") {
        say(&format!("scenarios 5 and 2: {} streams on as many logs", plan.many_logs));
        let many = scenarios::many_logs(&ctx, &sse, plan.many_logs).await;
        settle(&ctx, &sse).await;
        rows.extend(many_rows(&many, &mut notes));
    }

    // 1: fan-out latency.
    let mut fan: BTreeMap<(&'static str, usize), Result<Fanout, String>> = BTreeMap::new();
    for &(viewers, lines) in plan.fanout.iter().filter(|_| wanted("fanout")) {
        say(&format!("scenario 1: sse-logs, {viewers} viewers, {lines} lines"));
        fan.insert(("sse", viewers), scenarios::fanout(&ctx, Peer::SseLogs(&sse), viewers, lines).await);
        settle(&ctx, &sse).await;
        if let Ok(nchan) = &nchan {
            say(&format!("scenario 1: Nchan, {viewers} viewers, {lines} lines"));
            fan.insert(("nchan", viewers), scenarios::fanout(&ctx, Peer::Nchan(nchan), viewers, lines).await);
        }
    }
    if let (Ok(seed), true) = (&seed, wanted("fanout")) {
        for &(viewers, lines) in &plan.seed_fanout {
            say(&format!("scenario 1: seed, {viewers} viewers, {lines} lines"));
            fan.insert(("seed", viewers), scenarios::fanout(&ctx, Peer::Seed(seed), viewers, lines).await);
        }
    }
    for ((system, viewers), result) in &fan {
        if let Ok(f) = result {
            if *viewers >= 1000 {
                notes.push(format!(
                    "Scenario 1 ({system}, {} viewers): connected and subscribed in {:.1} s.",
                    thousands(*viewers),
                    f.connect_secs
                ));
            }
        }
    }
    if wanted("fanout") {
        rows.extend(fanout_rows(&plan, &fan, seed.is_ok(), nchan.is_ok()));
    }

    // 3: replay.
    if wanted("replay") {
        rows.extend(replay_section(&ctx, &plan, &sse, seed.as_ref().ok(), &mut notes).await);
        settle(&ctx, &sse).await;
    }

    // 4: idle cost.
    if wanted("idle") {
        rows.extend(idle_section(&ctx, &plan, &sse, seed.as_ref().ok(), &mut notes).await);
        settle(&ctx, &sse).await;
    }

    // 6: append throughput.
    if wanted("push") {
        rows.extend(push_section(&ctx, &plan, &sse, &mut notes).await);
    }

    let report = render(&args, &rows, &notes);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
        say(&format!("table written to {}", out.display()));
    }
    drop(sse);
    drop(seed);
    drop(nchan);
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

fn ms_pair(d: &Dist) -> String {
    format!("{} / {}", figure(d.p50), figure(d.p99))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn err_cell(e: &str) -> String {
    format!("error: {}", e.replace('|', "/"))
}

fn many_rows(many: &Result<scenarios::ManyLogs, String>, notes: &mut Vec<String>) -> Vec<Row> {
    let (latency, memory, target_mem, verdict_mem) = match many {
        Ok(m) => {
            let per = (m.rss_after_kib as f64 - m.rss_before_kib as f64) / m.n as f64;
            notes.push(format!(
                "Scenario 2/5: {} streams connected in {:.1} s; sse-logs RSS {:.1} MiB before, {:.1} MiB \
                 with them open, {:.1} MiB after they closed; the {} one-line inserts (insert_many of 100) \
                 took MongoDB {:.2} s; all delivered {:.2} s after the first ({} lines/s; {} missing).",
                thousands(m.n),
                m.connect_secs,
                m.rss_before_kib as f64 / 1024.0,
                m.rss_after_kib as f64 / 1024.0,
                m.rss_closed_kib as f64 / 1024.0,
                thousands(m.n),
                m.insert_secs,
                m.all_secs,
                figure(m.n as f64 / m.all_secs),
                m.missing
            ));
            let verdict = if per <= 20.0 { "met" } else { "MISSED" };
            (
                format!("{} (all in {:.2} s)", ms_pair(&m.each), m.all_secs),
                format!("{per:.1} KiB"),
                "≤ 20 KiB",
                verdict.to_owned(),
            )
        }
        Err(e) => (err_cell(e), err_cell(e), "≤ 20 KiB", "not measured".into()),
    };
    let n = many.as_ref().map_or(0, |m| m.n);
    vec![
        Row {
            scenario: format!("2. {} viewers on {} logs, one line each", thousands(n), thousands(n)),
            measure: "insert→event p50 / p99 ms".into(),
            sse: latency,
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: "—".into(),
        },
        Row {
            scenario: format!("5. memory, {} idle streams ({} logs)", thousands(n), thousands(n)),
            measure: "VmRSS growth per stream".into(),
            sse: memory,
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: target_mem.into(),
            verdict: verdict_mem,
        },
    ]
}

fn fanout_rows(
    plan: &Plan,
    fan: &BTreeMap<(&'static str, usize), Result<Fanout, String>>,
    seed_ran: bool,
    nchan_ran: bool,
) -> Vec<Row> {
    let cell = |system: &'static str, viewers: usize, ran: bool| match fan.get(&(system, viewers)) {
        Some(Ok(f)) => {
            let mut text = ms_pair(&f.all);
            if f.missing > 0 {
                let _ = write!(text, " ({} missing)", f.missing);
            }
            text
        }
        Some(Err(e)) => err_cell(e),
        None if ran => NOT_MEASURED.into(),
        None => NOT_RUN.into(),
    };
    let get =
        |system: &'static str, viewers: usize| fan.get(&(system, viewers)).and_then(|r| r.as_ref().ok());
    let mut rows = Vec::new();
    for &(viewers, lines) in &plan.fanout {
        let sse = get("sse", viewers);
        let (target, verdict) = match viewers {
            1 => {
                let mut verdict = match sse {
                    Some(f) if f.all.p50 <= 2.0 => "met".to_owned(),
                    Some(f) => format!("MISSED (p50 {} ms)", figure(f.all.p50)),
                    None => "not measured".into(),
                };
                if let (Some(s), Some(p)) = (sse, get("seed", 1)) {
                    let _ = write!(verdict, "; {:.0}× below seed", p.all.p50 / s.all.p50);
                }
                ("p50 ≤ 2 ms; ≥ 10× below seed", verdict)
            }
            1000 => {
                let mut verdict = match sse {
                    Some(f) if f.all.p99 <= 50.0 && f.missing == 0 => "met".to_owned(),
                    Some(f) => format!("MISSED (p99 {} ms)", figure(f.all.p99)),
                    None => "not measured".into(),
                };
                if let (Some(s), Some(n)) = (sse, get("nchan", viewers)) {
                    let _ = write!(verdict, "; {:.2}× Nchan's p99", s.all.p99 / n.all.p99);
                }
                ("p99 ≤ 50 ms", verdict)
            }
            10_000 => {
                let verdict = match (sse, get("nchan", viewers)) {
                    (Some(s), Some(n)) => {
                        let ratio = s.all.p99 / n.all.p99;
                        let word = if ratio <= 1.5 { "met" } else { "MISSED" };
                        format!("{word} ({ratio:.2}× Nchan's p99, {:.2}× its p50)", s.all.p50 / n.all.p50)
                    }
                    _ => "not measured".into(),
                };
                ("p99 ≤ 1.5× Nchan", verdict)
            }
            _ => {
                let verdict = match (sse, get("seed", viewers)) {
                    (Some(s), Some(p)) => {
                        let ratio = p.all.p50 / s.all.p50;
                        let word = if ratio >= 10.0 { "met" } else { "MISSED" };
                        format!(
                            "{word} ({ratio:.0}× below seed at p50, {:.0}× at p99)",
                            p.all.p99 / s.all.p99
                        )
                    }
                    _ => "—".into(),
                };
                ("≥ 10× below seed", verdict)
            }
        };
        let name = if viewers == 1 {
            "1. insert→event, 1 viewer".to_owned()
        } else {
            format!("1. insert→all {} viewers, one log", thousands(viewers))
        };
        rows.push(Row {
            scenario: name,
            measure: format!("p50 / p99 ms ({lines} lines)"),
            sse: cell("sse", viewers, true),
            seed: if plan.seed_fanout.iter().any(|s| s.0 == viewers) {
                cell("seed", viewers, seed_ran)
            } else if seed_ran {
                NOT_MEASURED.into()
            } else {
                NOT_RUN.into()
            },
            nchan: cell("nchan", viewers, nchan_ran),
            target: target.into(),
            verdict,
        });
        if viewers >= 1000 {
            let each = |system: &'static str| match get(system, viewers) {
                Some(f) => ms_pair(&f.each),
                None => NOT_MEASURED.into(),
            };
            rows.push(Row {
                scenario: format!("1. same, each of the {} viewers", thousands(viewers)),
                measure: "insert→event p50 / p99 ms".into(),
                sse: each("sse"),
                seed: each("seed"),
                nchan: each("nchan"),
                target: "—".into(),
                verdict: "—".into(),
            });
        }
    }
    // The seed at viewer counts sse-logs did not run (full mode's 1,000).
    for &(viewers, lines) in &plan.seed_fanout {
        if !plan.fanout.iter().any(|f| f.0 == viewers) {
            rows.push(Row {
                scenario: format!("1. insert→all {} viewers, one log", thousands(viewers)),
                measure: format!("p50 / p99 ms ({lines} lines)"),
                sse: NOT_MEASURED.into(),
                seed: cell("seed", viewers, seed_ran),
                nchan: NOT_MEASURED.into(),
                target: "—".into(),
                verdict: "—".into(),
            });
        }
    }
    rows
}

async fn replay_section(
    ctx: &Ctx,
    plan: &Plan,
    sse: &SseLogs,
    seed: Option<&Seed>,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let big = format!("big-{}", ctx.run);
    say(&format!("scenario 3: writing a {}-line log", thousands(plan.replay_lines)));
    match scenarios::prepare_log(ctx, "replay", &big, plan.replay_lines).await {
        Ok(took) => notes.push(format!(
            "Scenario 3: MongoDB took {:.1} s to insert the {}-line log ({} docs/s, insert_many of 10,000).",
            took.as_secs_f64(),
            thousands(plan.replay_lines),
            figure(plan.replay_lines as f64 / took.as_secs_f64())
        )),
        Err(e) => {
            rows.push(Row { scenario: "3. replay".into(), sse: err_cell(&e), ..Row::default() });
            return rows;
        }
    }
    let mut runs = Vec::new();
    for i in 0..plan.replay_runs {
        say(&format!("scenario 3: sse-logs replay {}/{}", i + 1, plan.replay_runs));
        match scenarios::replay(
            ctx,
            Peer::SseLogs(sse),
            "replay",
            &big,
            plan.replay_lines,
            Duration::from_secs(120),
        )
        .await
        {
            Ok(r) => runs.push(r),
            Err(e) => notes.push(format!("Scenario 3: a replay failed: {e}")),
        }
        settle(ctx, sse).await;
    }
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let median = runs.get(runs.len() / 2).cloned();
    let (cell, first, verdict) = match &median {
        Some(r) => {
            let complete = if r.complete { "" } else { " INCOMPLETE" };
            let rate = r.rate();
            (
                format!(
                    "{} lines/s ({:.2} s; {} lines/s after the first line){complete}",
                    figure(rate),
                    r.secs,
                    figure(r.streaming_rate())
                ),
                format!("{} ms", figure(r.first_line_ms)),
                if rate >= 100_000.0 && r.complete { "met".to_owned() } else { "MISSED".to_owned() },
            )
        }
        None => ("failed".into(), "failed".into(), "not measured".into()),
    };
    if let Some(r) = &median {
        notes.push(format!(
            "Scenario 3: the {}-line replay (median of {} runs) cost MongoDB {} commands: {}.",
            thousands(plan.replay_lines),
            runs.len(),
            r.commands,
            r.breakdown
        ));
    }
    rows.push(Row {
        scenario: format!("3. replay a {}-line log to 1 client", thousands(plan.replay_lines)),
        measure: "lines/s (time)".into(),
        sse: cell,
        seed: if seed.is_some() { "see next rows".into() } else { NOT_RUN.into() },
        nchan: NOT_MEASURED.into(),
        target: "≥ 100,000 lines/s".into(),
        verdict,
    });
    rows.push(Row {
        scenario: format!("3. same, time to first line ({} lines)", thousands(plan.replay_lines)),
        measure: "ms".into(),
        sse: first,
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: "—".into(),
    });

    // The same smaller log for both, since the seed's skip(num) polling is quadratic.
    let small = format!("small-{}", ctx.run);
    let n = plan.seed_replay_lines;
    if let Err(e) = scenarios::prepare_log(ctx, "replay-small", &small, n).await {
        notes.push(format!("Scenario 3: could not write the {n}-line log: {e}"));
        return rows;
    }
    say(&format!("scenario 3: replay of {} lines, sse-logs and seed", thousands(n)));
    let ours =
        scenarios::replay(ctx, Peer::SseLogs(sse), "replay-small", &small, n, Duration::from_secs(60)).await;
    let theirs = match seed {
        Some(seed) => Some(
            scenarios::replay(ctx, Peer::Seed(seed), "replay-small", &small, n, plan.seed_replay_cap).await,
        ),
        None => None,
    };
    let describe = |r: &Result<scenarios::Replay, String>| match r {
        Ok(r) if r.complete => format!("{:.3} s ({} lines/s)", r.secs, figure(r.rate())),
        Ok(r) => format!("{} of {n} lines in {:.1} s cap ({} lines/s)", r.lines, r.secs, figure(r.rate())),
        Err(e) => err_cell(e),
    };
    let verdict = match (&ours, &theirs) {
        (Ok(o), Some(Ok(t))) => {
            // Time for the whole log; for a capped seed run, its rate understates the time.
            let theirs_secs = if t.complete { t.secs } else { n as f64 / t.rate() };
            let ratio = theirs_secs / o.secs;
            let word = if ratio >= 10.0 { "met" } else { "MISSED" };
            format!("{word} ({ratio:.0}× faster)")
        }
        _ => "not measured".into(),
    };
    rows.push(Row {
        scenario: format!("3. replay a {}-line log to 1 client", thousands(n)),
        measure: "time (lines/s)".into(),
        sse: describe(&ours),
        seed: theirs.as_ref().map_or(NOT_RUN.into(), describe),
        nchan: NOT_MEASURED.into(),
        target: "≥ 10× faster than seed".into(),
        verdict,
    });
    let commands = |r: &Result<scenarios::Replay, String>| match r {
        Ok(r) => format!("{} ({:.3}/line)", r.commands, r.commands as f64 / r.lines.max(1) as f64),
        Err(e) => err_cell(e),
    };
    let verdict = match (&ours, &theirs) {
        (Ok(o), Some(Ok(t))) => {
            let ratio =
                (t.commands as f64 / t.lines.max(1) as f64) / (o.commands as f64 / o.lines.max(1) as f64);
            let word = if ratio >= 10.0 { "met" } else { "MISSED" };
            format!("{word} ({ratio:.0}× fewer per line)")
        }
        _ => "not measured".into(),
    };
    rows.push(Row {
        scenario: format!("3. MongoDB commands for that {}-line replay", thousands(n)),
        measure: "commands (per line)".into(),
        sse: commands(&ours),
        seed: theirs.as_ref().map_or(NOT_RUN.into(), commands),
        nchan: NOT_MEASURED.into(),
        target: "≥ 10× fewer than seed".into(),
        verdict,
    });

    // A short log whose `type` the big log shares: what opening a stream costs in a collection
    // where one type holds many lines.
    let near = format!("near-{}", ctx.run);
    if let Err(e) = scenarios::prepare_log(ctx, "replay", &near, 10).await {
        notes.push(format!("Scenario 3: could not write the 10-line log: {e}"));
        return rows;
    }
    say("scenario 3: a 10-line log beside the big one");
    let ours = scenarios::replay(ctx, Peer::SseLogs(sse), "replay", &near, 10, Duration::from_secs(30)).await;
    let theirs = match seed {
        Some(seed) => {
            Some(scenarios::replay(ctx, Peer::Seed(seed), "replay", &near, 10, Duration::from_secs(30)).await)
        }
        None => None,
    };
    let first = |r: &Result<scenarios::Replay, String>| match r {
        Ok(r) => format!("{} ms (all 10 in {} ms)", figure(r.first_line_ms), figure(r.secs * 1000.0)),
        Err(e) => err_cell(e),
    };
    rows.push(Row {
        scenario: format!(
            "3. open a 10-line log whose type also holds the {}-line log",
            thousands(plan.replay_lines)
        ),
        measure: "time to first line".into(),
        sse: first(&ours),
        seed: theirs.as_ref().map_or(NOT_RUN.into(), first),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: "see analysis".into(),
    });
    rows
}

async fn idle_section(
    ctx: &Ctx,
    plan: &Plan,
    sse: &SseLogs,
    seed: Option<&Seed>,
    notes: &mut Vec<String>,
) -> Vec<Row> {
    let window = plan.idle_window;
    let n = plan.idle_viewers;
    say(&format!("scenario 4: idle cost, 0 and {n} viewers, {window:?} windows"));
    let none = scenarios::idle(ctx, Peer::SseLogs(sse), 0, window).await;
    settle(ctx, sse).await;
    let ours = scenarios::idle(ctx, Peer::SseLogs(sse), n, window).await;
    settle(ctx, sse).await;
    let theirs = match seed {
        Some(seed) => {
            say(&format!("scenario 4: seed, {n} idle viewers"));
            Some(scenarios::idle(ctx, Peer::Seed(seed), n, window).await)
        }
        None => None,
    };
    for (who, r) in [("sse-logs", Some(&none)), ("sse-logs", Some(&ours)), ("seed", theirs.as_ref())] {
        if let Some(Ok(r)) = r {
            notes.push(format!(
                "Scenario 4 ({who}, {} viewers): commands/s by name: {}.",
                r.viewers, r.breakdown
            ));
        }
    }
    let rate = |r: &Result<scenarios::Idle, String>| match r {
        Ok(r) => {
            format!("{} ({} without heartbeats)", figure(r.commands_per_sec), figure(r.data_per_sec))
        }
        Err(e) => err_cell(e),
    };
    let cpu = |r: &Result<scenarios::Idle, String>| match r {
        Ok(r) => format!("{:.1} %", r.cpu_percent),
        Err(e) => err_cell(e),
    };
    let mongod = |r: &Result<scenarios::Idle, String>| match r {
        Ok(r) => r.mongod_cpu_percent.map_or("unknown pid".into(), |p| format!("{p:.1} %")),
        Err(e) => err_cell(e),
    };
    let independent = match (&none, &ours) {
        (Ok(a), Ok(b)) => {
            // The change stream's getMore is a small constant; viewers should add nothing. Driver
            // heartbeats (hello) come every 10 s per client, whatever the viewers: left out here.
            let extra = b.data_per_sec - a.data_per_sec;
            if extra <= 0.5 + 0.1 * a.data_per_sec {
                format!("met (+{} /s for {n} viewers)", figure(extra.max(0.0)))
            } else {
                format!("MISSED (+{} /s for {n} viewers)", figure(extra))
            }
        }
        _ => "not measured".into(),
    };
    let versus_seed = match (&ours, &theirs) {
        (Ok(o), Some(Ok(t))) => {
            let ratio = t.commands_per_sec / o.commands_per_sec.max(1e-9);
            let word = if ratio >= 10.0 { "met" } else { "MISSED" };
            format!("; {word} vs seed ({ratio:.0}× fewer)")
        }
        _ => String::new(),
    };
    let seed_cell =
        |f: &dyn Fn(&Result<scenarios::Idle, String>) -> String| theirs.as_ref().map_or(NOT_RUN.into(), f);
    vec![
        Row {
            scenario: "4. idle, no viewers".into(),
            measure: "MongoDB commands/s".into(),
            sse: rate(&none),
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: "—".into(),
        },
        Row {
            scenario: format!("4. idle, {} viewers on {} logs", thousands(n), thousands(n)),
            measure: "MongoDB commands/s".into(),
            sse: rate(&ours),
            seed: seed_cell(&rate),
            nchan: NOT_MEASURED.into(),
            target: "independent of viewers; ≥ 10× below seed".into(),
            verdict: format!("{independent}{versus_seed}"),
        },
        Row {
            scenario: format!("4. idle, {} viewers", thousands(n)),
            measure: "server CPU (% of one core)".into(),
            sse: cpu(&ours),
            seed: seed_cell(&cpu),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: format!("no viewers: {}", cpu(&none)),
        },
        Row {
            scenario: format!("4. idle, {} viewers", thousands(n)),
            measure: "MongoDB server CPU".into(),
            sse: mongod(&ours),
            seed: seed_cell(&mongod),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: format!("no viewers: {}", mongod(&none)),
        },
    ]
}

async fn push_section(ctx: &Ctx, plan: &Plan, sse: &SseLogs, notes: &mut Vec<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    for writers in [1, 4] {
        say(&format!("scenario 6: append, {writers} writer(s), 1,000-line requests"));
        let result = scenarios::push(ctx, sse, writers, 1000, plan.push_window, 2000).await;
        let cell = match &result {
            Ok(p) => {
                notes.push(format!(
                    "Scenario 6 ({writers} writer(s)): {} lines in {} requests; writer 0's first five requests \
                     took {} ms on average, its last five {} ms (each log grew to {} lines).",
                    thousands(p.lines),
                    p.request.n,
                    figure(p.first_ms),
                    figure(p.last_ms),
                    thousands(p.lines / p.writers)
                ));
                format!(
                    "{} lines/s (request p50 {} / p99 {} ms)",
                    figure(p.lines_per_sec),
                    figure(p.request.p50),
                    figure(p.request.p99)
                )
            }
            Err(e) => err_cell(e),
        };
        rows.push(Row {
            scenario: format!("6. append, {writers} writer(s) on own logs, 1,000 lines/request"),
            measure: "lines/s".into(),
            sse: cell,
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: "—".into(),
        });
    }
    rows
}

fn render(args: &Args, rows: &[Row], notes: &[String]) -> String {
    let mut out = String::new();
    let mode = if args.quick { "quick" } else { "full" };
    let _ = writeln!(out, "## Results ({mode} run)\n");
    let _ = writeln!(out, "Machine: {}\n", procs::machine());
    let _ = writeln!(
        out,
        "| Scenario | Measure | sse-logs | seed (Sanic, polling) | Nchan | Target | Verdict |\n|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario, r.measure, r.sse, r.seed, r.nchan, r.target, r.verdict
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nNotes:\n");
        for n in notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
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
        assert_eq!(args.seed_script, PathBuf::from("bench/peers/seed_sanic.py"));
        assert_eq!(args.nchan_conf, PathBuf::from("bench/peers/nchan.conf"));
        assert_eq!(args.nchan_module, PathBuf::from("/usr/lib/nginx/modules/ngx_nchan_module.so"));
        assert_eq!(args.work, std::env::temp_dir().join(format!("sse-logs-bench-{}", std::process::id())));
        assert!(args.only.is_empty());
        assert_eq!(args.connect_concurrency, 256);
    }

    #[test]
    fn every_option() {
        let more = [
            "--quick",
            "--mongodb-pid",
            "42",
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
            "fanout,replay",
            "--connect-concurrency",
            "8",
        ];
        let args = Args::try_parse_from(REQUIRED.into_iter().chain(more)).unwrap();
        assert!(args.quick);
        assert_eq!(args.mongodb_pid, Some(42));
        assert_eq!(args.seed_python, Some(PathBuf::from("py")));
        assert_eq!(args.seed_script, PathBuf::from("seed.py"));
        assert_eq!(args.seed_unavailable.as_deref(), Some("no python"));
        assert_eq!(args.nginx, Some(PathBuf::from("nginx")));
        assert_eq!(args.nchan_conf, PathBuf::from("n.conf"));
        assert_eq!(args.nchan_module, PathBuf::from("n.so"));
        assert_eq!(args.nchan_unavailable.as_deref(), Some("no nginx"));
        assert_eq!(args.work, PathBuf::from("w"));
        assert_eq!(args.out, Some(PathBuf::from("o.md")));
        assert_eq!(args.only, ["fanout", "replay"]);
        assert_eq!(args.connect_concurrency, 8);
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
