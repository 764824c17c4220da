//! Each group of scenarios (`--only` names one): runs its measurements as many times as the plan
//! says and turns them into rows (medians with min–max), notes and the figures of the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::report::{
    err_cell, pair, runs_note, thousands, IdleFigures, Report, Row, Runs, SmallReplay, NOT_MEASURED, NOT_RUN,
};
use crate::scenarios::{self, Ctx, Fanout, ManyLogs, Peer};
use crate::systems::{figure, Nchan, Seed, SseLogs};
use crate::{say, settle, Plan, DATABASE};

/// How to start more sse-logs processes (a fresh one per memory run, one with redaction).
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    pub bin: &'a Path,
    pub uri: &'a str,
    pub work: &'a Path,
}

impl Launch<'_> {
    pub async fn start(&self, ctx: &Ctx, name: &str, env: &[(&str, &str)]) -> Result<SseLogs, String> {
        let log = self.work.join(format!("sse-logs-{name}.log"));
        SseLogs::start(self.bin, self.uri, DATABASE, &log, &ctx.http, env).await
    }
}

/// The successes of a set of runs, the failures as notes.
fn split<T>(what: &str, results: Vec<Result<T, String>>, report: &mut Report) -> (Vec<T>, usize) {
    let tried = results.len();
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => report.notes.push(format!("{what}: a run failed: {e}")),
        }
    }
    (ok, tried)
}

/// "one run" or "medians of 3 runs", for the notes.
fn medians(runs: usize) -> String {
    if runs == 1 {
        "one run".into()
    } else {
        format!("medians of {runs} runs")
    }
}

fn kib(x: f64) -> String {
    format!("{x:.1}")
}

/// Scenarios 5 and 2 (HTTP/1.1) or 5 over HTTP/2: each run in a freshly started sse-logs.
pub async fn many(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, h2: bool, report: &mut Report) {
    let n = plan.many_logs;
    let (conns, per) = (plan.h2_connections, n.div_ceil(plan.h2_connections.max(1)));
    let how = if h2 {
        format!("HTTP/2 (h2c), {} connections × {} streams", thousands(conns), thousands(per))
    } else {
        "HTTP/1.1, a connection each".to_owned()
    };
    let mut results = Vec::new();
    for round in 0..plan.runs {
        say(&format!(
            "scenario 5{}: {} streams on as many logs, {how}, run {}/{}",
            if h2 { " (h2c)" } else { " and 2" },
            thousands(n),
            round + 1,
            plan.runs
        ));
        let name = format!("{}-{round}", if h2 { "h2mem" } else { "many" });
        let result = match launch.start(ctx, &name, &[]).await {
            Ok(sse) => {
                let r = if h2 {
                    scenarios::many_logs_h2(ctx, &sse, n, conns).await
                } else {
                    scenarios::many_logs(ctx, &sse, n, &[]).await
                };
                drop(sse);
                r
            }
            Err(e) => Err(e),
        };
        results.push(result);
        // The next fresh process reads every log at start (the index of logs): keep that small.
        if let Err(e) = ctx.coll.delete_many(bson::doc! { "type": "many" }).await {
            report.notes.push(format!("Scenario 5: could not delete the run's logs: {e}"));
        }
    }
    let what = if h2 { "Scenario 5 (HTTP/2)" } else { "Scenario 2/5" };
    let (runs, tried) = split(what, results, report);
    let per_stream =
        Runs::of(runs.iter().map(|m| (m.rss_after_kib as f64 - m.rss_before_kib as f64) / m.n as f64));
    let m = |f: &dyn Fn(&ManyLogs) -> f64| Runs::of(runs.iter().map(f)).median();
    if !runs.is_empty() {
        let missing: usize = runs.iter().map(|r| r.missing).sum();
        report.notes.push(format!(
            "{what} ({how}; {} in fresh processes): {} streams connected in {:.1} s; \
             sse-logs RSS {:.1} MiB before, {:.1} MiB with them open, {:.1} MiB after they closed; \
             one line to each log (insert_many of 100, {:.2} s for MongoDB) reached its stream: \
             p50 / p99 {} ms, all {:.2} s after the first insert ({} missing in all runs).",
            medians(runs.len()),
            thousands(n),
            m(&|r| r.connect_secs),
            m(&|r| r.rss_before_kib as f64) / 1024.0,
            m(&|r| r.rss_after_kib as f64) / 1024.0,
            m(&|r| r.rss_closed_kib as f64) / 1024.0,
            m(&|r| r.insert_secs),
            pair(&Runs::of(runs.iter().map(|r| r.each.p50)), &Runs::of(runs.iter().map(|r| r.each.p99))),
            m(&|r| r.all_secs),
            missing
        ));
    }
    let note = runs_note(runs.len(), tried, plan.runs);
    let failed = || format!("error: every run failed (see notes){note}");
    let (memory, verdict) = if runs.is_empty() {
        (failed(), "not measured".to_owned())
    } else {
        let median = per_stream.median();
        let word = |ok: bool| if ok { "met" } else { "MISSED" };
        if h2 {
            report.summary.memory_h2 = Some((median, conns, per));
            (per_stream.show_unit(&kib, " KiB") + &note, format!("{} (≤ 10 KiB)", word(median <= 10.0)))
        } else {
            report.summary.memory_h1 = Some(median);
            (
                per_stream.show_unit(&kib, " KiB") + &note,
                format!("{} (≤ 20 KiB); {} (≤ 10 KiB)", word(median <= 20.0), word(median <= 10.0)),
            )
        }
    };
    if h2 {
        report.rows.push(Row {
            scenario: format!(
                "5. memory, {} idle streams ({} logs) over HTTP/2: {} connections × {} streams",
                thousands(n),
                thousands(n),
                thousands(conns),
                thousands(per)
            ),
            measure: "VmRSS growth per stream".into(),
            sse: memory,
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "≤ 10 KiB (issue 18)".into(),
            verdict,
        });
        return;
    }
    let latency = if runs.is_empty() {
        failed()
    } else {
        format!(
            "{} (all in {} s){note}",
            pair(&Runs::of(runs.iter().map(|r| r.each.p50)), &Runs::of(runs.iter().map(|r| r.each.p99))),
            Runs::of(runs.iter().map(|r| r.all_secs)).show()
        )
    };
    report.rows.push(Row {
        scenario: format!("2. {} viewers on {} logs, one line each", thousands(n), thousands(n)),
        measure: "insert→event p50 / p99 ms".into(),
        sse: latency,
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: "—".into(),
    });
    report.rows.push(Row {
        scenario: format!("5. memory, {} idle streams ({} logs)", thousands(n), thousands(n)),
        measure: "VmRSS growth per stream".into(),
        sse: memory,
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "≤ 20 KiB; ≤ 10 KiB (issue 18)".into(),
        verdict,
    });
}

type FanKey = (&'static str, usize);

/// Scenario 1: fan-out latency, sse-logs and Nchan `runs` times (interleaved), the seed
/// `seed_runs` times.
pub async fn fanout(
    ctx: &Ctx,
    plan: &Plan,
    sse: &SseLogs,
    seed: Option<&Seed>,
    nchan: Option<&Nchan>,
    report: &mut Report,
) {
    let mut fan: BTreeMap<FanKey, Vec<Result<Fanout, String>>> = BTreeMap::new();
    for round in 0..plan.runs {
        for &(viewers, lines) in &plan.fanout {
            say(&format!(
                "scenario 1: sse-logs, {viewers} viewers, {lines} lines, run {}/{}",
                round + 1,
                plan.runs
            ));
            let r = scenarios::fanout(ctx, Peer::SseLogs(sse), viewers, lines).await;
            fan.entry(("sse", viewers)).or_default().push(r);
            settle(ctx, sse).await;
            if let Some(nchan) = nchan {
                say(&format!(
                    "scenario 1: Nchan, {viewers} viewers, {lines} lines, run {}/{}",
                    round + 1,
                    plan.runs
                ));
                let r = scenarios::fanout(ctx, Peer::Nchan(nchan), viewers, lines).await;
                fan.entry(("nchan", viewers)).or_default().push(r);
            }
        }
    }
    if let Some(seed) = seed {
        for round in 0..plan.seed_runs {
            for &(viewers, lines) in &plan.seed_fanout {
                say(&format!(
                    "scenario 1: seed, {viewers} viewers, {lines} lines, run {}/{}",
                    round + 1,
                    plan.seed_runs
                ));
                let r = scenarios::fanout(ctx, Peer::Seed(seed), viewers, lines).await;
                fan.entry(("seed", viewers)).or_default().push(r);
            }
        }
    }
    let mut ok: BTreeMap<FanKey, (Vec<Fanout>, usize)> = BTreeMap::new();
    for (key, results) in fan {
        let what = format!("Scenario 1 ({}, {} viewers)", key.0, thousands(key.1));
        let (runs, tried) = split(&what, results, report);
        if key.1 >= 1000 && !runs.is_empty() {
            report.notes.push(format!(
                "{what}: connected and subscribed in {} s.",
                Runs::of(runs.iter().map(|f| f.connect_secs)).show()
            ));
        }
        if !runs.is_empty() {
            let p50 = Runs::of(runs.iter().map(|f| f.all.p50)).median();
            let p99 = Runs::of(runs.iter().map(|f| f.all.p99)).median();
            report.summary.fanout.insert(key, (p50, p99));
            report.summary.fanout_complete.insert(key, runs.iter().all(|f| f.missing == 0));
        }
        ok.insert(key, (runs, tried));
    }
    // A cell with fewer runs than the rest of the table (the seed's) says so.
    let usual = |_: &str| plan.runs;
    let cell = |system: &'static str, viewers: usize, ran: bool, each: bool| match ok.get(&(system, viewers))
    {
        Some((runs, tried)) if !runs.is_empty() => {
            let d = |f: &Fanout| if each { f.each } else { f.all };
            let mut text =
                pair(&Runs::of(runs.iter().map(|f| d(f).p50)), &Runs::of(runs.iter().map(|f| d(f).p99)));
            let missing: usize = runs.iter().map(|f| f.missing).sum();
            if missing > 0 && !each {
                let _ = write!(text, " ({missing} missing)");
            }
            text + &runs_note(runs.len(), *tried, usual(system))
        }
        Some(_) => "error: every run failed (see notes)".into(),
        None if ran => NOT_MEASURED.into(),
        None => NOT_RUN.into(),
    };
    let get = |system: &'static str, viewers: usize| report.summary.fanout.get(&(system, viewers)).copied();
    let (seed_ran, nchan_ran) = (seed.is_some(), nchan.is_some());
    let mut rows = Vec::new();
    for &(viewers, lines) in &plan.fanout {
        let sse = get("sse", viewers);
        let (target, verdict) = match viewers {
            1 => {
                let mut verdict = match sse {
                    Some((p50, _)) if p50 <= 2.0 => "met".to_owned(),
                    Some((p50, _)) => format!("MISSED (p50 {} ms)", figure(p50)),
                    None => "not measured".into(),
                };
                if let (Some(s), Some(p)) = (sse, get("seed", 1)) {
                    let _ = write!(verdict, "; {:.0}× below seed", p.0 / s.0);
                }
                ("p50 ≤ 2 ms; ≥ 10× below seed", verdict)
            }
            1000 => {
                let complete =
                    report.summary.fanout_complete.get(&("sse", viewers)).copied().unwrap_or(false);
                let mut verdict = match sse {
                    Some((_, p99)) if p99 <= 50.0 && complete => "met".to_owned(),
                    Some((_, p99)) => format!("MISSED (p99 {} ms)", figure(p99)),
                    None => "not measured".into(),
                };
                if let (Some(s), Some(n)) = (sse, get("nchan", viewers)) {
                    let _ = write!(verdict, "; {:.2}× Nchan's p99", s.1 / n.1);
                }
                ("p99 ≤ 50 ms", verdict)
            }
            10_000 => {
                let verdict = match (sse, get("nchan", viewers)) {
                    (Some(s), Some(n)) => {
                        let ratio = s.1 / n.1;
                        let word = if ratio <= 1.5 { "met" } else { "MISSED" };
                        format!("{word} ({ratio:.2}× Nchan's p99, {:.2}× its p50)", s.0 / n.0)
                    }
                    _ => "not measured".into(),
                };
                ("p99 ≤ 1.5× Nchan", verdict)
            }
            _ => {
                let verdict = match (sse, get("seed", viewers)) {
                    (Some(s), Some(p)) => {
                        let ratio = p.0 / s.0;
                        let word = if ratio >= 10.0 { "met" } else { "MISSED" };
                        format!("{word} ({ratio:.0}× below seed at p50, {:.0}× at p99)", p.1 / s.1)
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
            sse: cell("sse", viewers, true, false),
            seed: if plan.seed_fanout.iter().any(|s| s.0 == viewers) {
                cell("seed", viewers, seed_ran, false)
            } else if seed_ran {
                NOT_MEASURED.into()
            } else {
                NOT_RUN.into()
            },
            nchan: cell("nchan", viewers, nchan_ran, false),
            target: target.into(),
            verdict,
        });
        if viewers >= 1000 {
            let each = |system: &'static str| match ok.get(&(system, viewers)) {
                Some((runs, _)) if !runs.is_empty() => cell(system, viewers, true, true),
                _ => NOT_MEASURED.into(),
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
    // The seed at viewer counts sse-logs did not run (full mode's 1,000 when it is not planned).
    for &(viewers, lines) in &plan.seed_fanout {
        if !plan.fanout.iter().any(|f| f.0 == viewers) {
            rows.push(Row {
                scenario: format!("1. insert→all {} viewers, one log", thousands(viewers)),
                measure: format!("p50 / p99 ms ({lines} lines)"),
                sse: NOT_MEASURED.into(),
                seed: cell("seed", viewers, seed_ran, false),
                nchan: NOT_MEASURED.into(),
                target: "—".into(),
                verdict: "—".into(),
            });
        }
    }
    report.rows.extend(rows);
}

/// Writes the big replay log (shared by the replay and redaction groups); its id.
pub async fn big_log(ctx: &Ctx, plan: &Plan, report: &mut Report) -> Result<String, String> {
    let big = ctx.fresh("big");
    say(&format!("scenario 3: writing a {}-line log", thousands(plan.replay_lines)));
    let took = scenarios::prepare_log(ctx, "replay", &big, plan.replay_lines, false).await?;
    report.notes.push(format!(
        "Scenario 3: MongoDB took {:.1} s to insert the {}-line log ({} docs/s, insert_many of 10,000).",
        took.as_secs_f64(),
        thousands(plan.replay_lines),
        figure(plan.replay_lines as f64 / took.as_secs_f64())
    ));
    Ok(big)
}

/// Replays of a finished log (type, id, lines) by one client: `runs` of them, settled in between.
async fn replays(
    ctx: &Ctx,
    peer: Peer<'_>,
    sse: &SseLogs,
    (log_type, id, lines): (&str, &str, usize),
    runs: usize,
    cap: Duration,
) -> Vec<Result<scenarios::Replay, String>> {
    let mut out = Vec::new();
    for _ in 0..runs {
        out.push(scenarios::replay(ctx, peer, log_type, id, lines, cap).await);
        settle(ctx, sse).await;
    }
    out
}

/// Scenario 3: replay.
pub async fn replay(
    ctx: &Ctx,
    plan: &Plan,
    sse: &SseLogs,
    seed: Option<&Seed>,
    big: &str,
    report: &mut Report,
) {
    let peer = Peer::SseLogs(sse);
    say(&format!(
        "scenario 3: sse-logs replay of {} lines, {} run(s)",
        thousands(plan.replay_lines),
        plan.runs
    ));
    let results =
        replays(ctx, peer, sse, ("replay", big, plan.replay_lines), plan.runs, Duration::from_secs(120))
            .await;
    let (runs, tried) = split("Scenario 3 (the big replay)", results, report);
    let note = runs_note(runs.len(), tried, plan.runs);
    let complete = runs.iter().all(|r| r.complete);
    let rate = Runs::of(runs.iter().map(scenarios::Replay::rate));
    let (cell, first, verdict) = if runs.is_empty() {
        ("failed".to_owned(), "failed".to_owned(), "not measured".to_owned())
    } else {
        report.summary.replay = Some((rate.median(), complete, plan.replay_lines));
        let breakdown = &runs[runs.len() / 2].breakdown;
        report.notes.push(format!(
            "Scenario 3: each {}-line replay cost MongoDB {} commands ({}; one run: {breakdown}).",
            thousands(plan.replay_lines),
            figure(Runs::of(runs.iter().map(|r| r.commands as f64)).median()),
            medians(runs.len())
        ));
        (
            format!(
                "{} ({} s; {} lines/s after the first line){}{note}",
                rate.show_unit(&figure, " lines/s"),
                figure(Runs::of(runs.iter().map(|r| r.secs)).median()),
                figure(Runs::of(runs.iter().map(scenarios::Replay::streaming_rate)).median()),
                if complete { "" } else { " INCOMPLETE" }
            ),
            Runs::of(runs.iter().map(|r| r.first_line_ms)).show_unit(&figure, " ms") + &note,
            if rate.median() >= 100_000.0 && complete { "met".to_owned() } else { "MISSED".to_owned() },
        )
    };
    report.rows.push(Row {
        scenario: format!("3. replay a {}-line log to 1 client", thousands(plan.replay_lines)),
        measure: "lines/s (time)".into(),
        sse: cell,
        seed: if seed.is_some() { "see next rows".into() } else { NOT_RUN.into() },
        nchan: NOT_MEASURED.into(),
        target: "≥ 100,000 lines/s".into(),
        verdict,
    });
    report.rows.push(Row {
        scenario: format!("3. same, time to first line ({} lines)", thousands(plan.replay_lines)),
        measure: "ms".into(),
        sse: first,
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: "—".into(),
    });

    // The same smaller log for both, since the seed's skip(num) polling is quadratic.
    let small = ctx.fresh("small");
    let n = plan.seed_replay_lines;
    if let Err(e) = scenarios::prepare_log(ctx, "replay-small", &small, n, false).await {
        report.notes.push(format!("Scenario 3: could not write the {n}-line log: {e}"));
        return;
    }
    say(&format!("scenario 3: replay of {} lines, sse-logs and seed", thousands(n)));
    let results =
        replays(ctx, peer, sse, ("replay-small", &small, n), plan.runs, Duration::from_secs(60)).await;
    let ours = split("Scenario 3 (small replay, sse-logs)", results, report);
    let theirs = match seed {
        Some(seed) => {
            let results = replays(
                ctx,
                Peer::Seed(seed),
                sse,
                ("replay-small", &small, n),
                plan.seed_runs,
                plan.seed_replay_cap,
            )
            .await;
            Some(split("Scenario 3 (small replay, seed)", results, report))
        }
        None => None,
    };
    // Time for the whole log; for a capped seed run, its rate understates the time.
    let whole = |r: &scenarios::Replay| if r.complete { r.secs } else { n as f64 / r.rate() };
    let per_line = |r: &scenarios::Replay| r.commands as f64 / r.lines.max(1) as f64;
    let describe = |(runs, tried): &(Vec<scenarios::Replay>, usize), usual: usize| {
        if runs.is_empty() {
            return "error: every run failed (see notes)".to_owned();
        }
        let capped = runs.iter().filter(|r| !r.complete).count();
        let secs = Runs::of(runs.iter().map(|r| r.secs)).show_unit(&|x| format!("{x:.3}"), " s");
        let rate = figure(Runs::of(runs.iter().map(scenarios::Replay::rate)).median());
        let capped = if capped > 0 { format!(", {capped} run(s) stopped at the cap") } else { String::new() };
        format!("{secs} ({rate} lines/s{capped}){}", runs_note(runs.len(), *tried, usual))
    };
    let commands = |(runs, tried): &(Vec<scenarios::Replay>, usize), usual: usize| {
        if runs.is_empty() {
            return "error: every run failed (see notes)".to_owned();
        }
        let c = Runs::of(runs.iter().map(|r| r.commands as f64));
        format!(
            "{} ({:.3}/line){}",
            c.show(),
            Runs::of(runs.iter().map(per_line)).median(),
            runs_note(runs.len(), *tried, usual)
        )
    };
    let med = |runs: &[scenarios::Replay], f: &dyn Fn(&scenarios::Replay) -> f64| {
        Runs::of(runs.iter().map(f)).median()
    };
    let seed_ok = theirs.as_ref().filter(|t| !t.0.is_empty());
    if !ours.0.is_empty() {
        report.summary.small_replay = Some(SmallReplay {
            lines: n,
            sse_secs: med(&ours.0, &whole),
            seed_secs: seed_ok.map(|t| med(&t.0, &whole)),
            sse_per_line: med(&ours.0, &per_line),
            seed_per_line: seed_ok.map(|t| med(&t.0, &per_line)),
        });
    }
    let (time_verdict, commands_verdict) = match &report.summary.small_replay {
        Some(SmallReplay {
            sse_secs,
            seed_secs: Some(seed_secs),
            sse_per_line,
            seed_per_line: Some(seed_per_line),
            ..
        }) => {
            let word = |r: f64| if r >= 10.0 { "met" } else { "MISSED" };
            let (t, c) = (seed_secs / sse_secs, seed_per_line / sse_per_line);
            (format!("{} ({t:.0}× faster)", word(t)), format!("{} ({c:.0}× fewer per line)", word(c)))
        }
        _ => ("not measured".to_owned(), "not measured".to_owned()),
    };
    report.rows.push(Row {
        scenario: format!("3. replay a {}-line log to 1 client", thousands(n)),
        measure: "time (lines/s)".into(),
        sse: describe(&ours, plan.runs),
        seed: theirs.as_ref().map_or(NOT_RUN.into(), |t| describe(t, plan.runs)),
        nchan: NOT_MEASURED.into(),
        target: "≥ 10× faster than seed".into(),
        verdict: time_verdict,
    });
    report.rows.push(Row {
        scenario: format!("3. MongoDB commands for that {}-line replay", thousands(n)),
        measure: "commands (per line)".into(),
        sse: commands(&ours, plan.runs),
        seed: theirs.as_ref().map_or(NOT_RUN.into(), |t| commands(t, plan.runs)),
        nchan: NOT_MEASURED.into(),
        target: "≥ 10× fewer than seed".into(),
        verdict: commands_verdict,
    });

    // A short log whose `type` the big log shares: what opening a stream costs in a collection
    // where one type holds many lines.
    let near = ctx.fresh("near");
    if let Err(e) = scenarios::prepare_log(ctx, "replay", &near, 10, false).await {
        report.notes.push(format!("Scenario 3: could not write the 10-line log: {e}"));
        return;
    }
    say("scenario 3: a 10-line log beside the big one");
    let cap = Duration::from_secs(30);
    let results = replays(ctx, peer, sse, ("replay", &near, 10), plan.runs, cap).await;
    let ours = split("Scenario 3 (10-line log, sse-logs)", results, report);
    let theirs = match seed {
        Some(seed) => {
            let results = replays(ctx, Peer::Seed(seed), sse, ("replay", &near, 10), plan.runs, cap).await;
            Some(split("Scenario 3 (10-line log, seed)", results, report))
        }
        None => None,
    };
    let first = |(runs, tried): &(Vec<scenarios::Replay>, usize)| {
        if runs.is_empty() {
            return "error: every run failed (see notes)".to_owned();
        }
        format!(
            "{} (all 10 in {} ms){}",
            Runs::of(runs.iter().map(|r| r.first_line_ms)).show_unit(&figure, " ms"),
            figure(Runs::of(runs.iter().map(|r| r.secs * 1000.0)).median()),
            runs_note(runs.len(), *tried, plan.runs)
        )
    };
    report.rows.push(Row {
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
}

/// Ten secret shapes of the kind `redact.patterns` is for (issue 17).
pub const REDACT_PATTERNS: [&str; 10] = [
    "ghp_[A-Za-z0-9]{36}",
    "github_pat_[A-Za-z0-9_]{82}",
    "glpat-[A-Za-z0-9_-]{20}",
    "AKIA[0-9A-Z]{16}",
    "xox[baprs]-[A-Za-z0-9-]+",
    "-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "sk_live_[0-9a-zA-Z]{24,}",
    "AIza[0-9A-Za-z_-]{35}",
    "eyJ[A-Za-z0-9_-]{10,}\\.eyJ[A-Za-z0-9_-]{10,}\\.[A-Za-z0-9_-]{10,}",
    "(?i)(?:password|passwd|secret)[ \\t]*[=:][ \\t]*[^ \\t]+",
];

/// Issue 17's redaction cost: the big replay from two fresh sse-logs, one started with ten
/// `redact.patterns`, one without, taking turns.
pub async fn redact(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, big: &str, report: &mut Report) {
    let patterns = REDACT_PATTERNS.join("\n");
    // Two processes started together, so that neither has served more than the other.
    let started = async {
        let plain = launch.start(ctx, "redact-none", &[]).await?;
        let redacting =
            launch.start(ctx, "redact-with", &[("SSE_LOGS__REDACT__PATTERNS", &patterns)]).await?;
        Ok::<_, String>((plain, redacting))
    };
    let (plain, redacting) = match started.await {
        Ok(both) => both,
        Err(e) => {
            report.notes.push(format!("Redaction: an sse-logs did not start: {e}"));
            report.rows.push(Row {
                scenario: "3. replay with redact.patterns".into(),
                sse: err_cell(&e),
                ..Row::default()
            });
            return;
        }
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..plan.runs {
        say(&format!(
            "redaction: replay of {} lines with and without {} patterns, run {}/{}",
            thousands(plan.replay_lines),
            REDACT_PATTERNS.len(),
            round + 1,
            plan.runs
        ));
        let cap = Duration::from_secs(120);
        // Each goes first in turn.
        for redacts in [round % 2 == 1, round % 2 == 0] {
            let sse = if redacts { &redacting } else { &plain };
            let r = scenarios::replay(ctx, Peer::SseLogs(sse), "replay", big, plan.replay_lines, cap).await;
            if redacts {
                with.push(r)
            } else {
                without.push(r)
            }
            settle(ctx, sse).await;
        }
    }
    drop(redacting);
    drop(plain);
    let (with, tried) = split("Redaction (with patterns)", with, report);
    let (without, _) = split("Redaction (without)", without, report);
    let incomplete = with.iter().chain(&without).any(|r| !r.complete);
    if with.is_empty() || without.is_empty() {
        report.rows.push(Row {
            scenario: "3. replay with 10 redact.patterns".into(),
            sse: "error: every run failed (see notes)".into(),
            ..Row::default()
        });
        return;
    }
    let total = |runs: &[scenarios::Replay]| Runs::of(runs.iter().map(scenarios::Replay::rate));
    let streaming = |runs: &[scenarios::Replay]| Runs::of(runs.iter().map(scenarios::Replay::streaming_rate));
    let (sw, so) = (streaming(&with).median(), streaming(&without).median());
    let (tw, to) = (total(&with).median(), total(&without).median());
    if !incomplete {
        report.summary.redact = Some((sw, so, REDACT_PATTERNS.len()));
    }
    report.rows.push(Row {
        scenario: format!(
            "3. replay the {}-line log with {} redact.patterns vs none (issue 17; no line matches)",
            thousands(plan.replay_lines),
            REDACT_PATTERNS.len()
        ),
        measure: "lines/s after the first line, with / without (whole replay)".into(),
        sse: format!(
            "{} (whole: {} / {}){}{}",
            pair(&streaming(&with), &streaming(&without)),
            figure(tw),
            figure(to),
            if incomplete { " INCOMPLETE" } else { "" },
            runs_note(with.len(), tried, plan.runs)
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: if incomplete {
            "not measured (a replay was incomplete)".into()
        } else {
            format!("with = {:.2}× without ({:.2}× whole)", sw / so, tw / to)
        },
    });
}

/// Scenario 4: idle cost.
pub async fn idle(ctx: &Ctx, plan: &Plan, sse: &SseLogs, seed: Option<&Seed>, report: &mut Report) {
    let window = plan.idle_window;
    let n = plan.idle_viewers;
    let (mut none, mut ours) = (Vec::new(), Vec::new());
    for round in 0..plan.runs {
        say(&format!(
            "scenario 4: idle cost, 0 and {n} viewers, {window:?} windows, run {}/{}",
            round + 1,
            plan.runs
        ));
        none.push(scenarios::idle(ctx, Peer::SseLogs(sse), 0, window).await);
        settle(ctx, sse).await;
        ours.push(scenarios::idle(ctx, Peer::SseLogs(sse), n, window).await);
        settle(ctx, sse).await;
    }
    let mut theirs = Vec::new();
    if let Some(seed) = seed {
        for round in 0..plan.seed_runs {
            say(&format!("scenario 4: seed, {n} idle viewers, run {}/{}", round + 1, plan.seed_runs));
            theirs.push(scenarios::idle(ctx, Peer::Seed(seed), n, window).await);
        }
    }
    let none = split("Scenario 4 (no viewers)", none, report);
    let ours = split("Scenario 4 (sse-logs)", ours, report);
    let theirs = seed.map(|_| split("Scenario 4 (seed)", theirs, report));
    for (who, r) in [("sse-logs", Some(&none)), ("sse-logs", Some(&ours)), ("seed", theirs.as_ref())] {
        if let Some((runs, _)) = r {
            if let Some(r) = runs.first() {
                report.notes.push(format!(
                    "Scenario 4 ({who}, {} viewers; first run): commands/s by name: {}.",
                    r.viewers, r.breakdown
                ));
            }
        }
    }
    type Idles = (Vec<scenarios::Idle>, usize);
    let runs_of = |r: &Idles, f: &dyn Fn(&scenarios::Idle) -> f64| Runs::of(r.0.iter().map(f));
    // A cell with fewer runs than the rest of the table (the seed's) says so.
    let usual = |_: bool| plan.runs;
    let rate = |r: &Idles, seedy: bool| {
        if r.0.is_empty() {
            return "error: every run failed (see notes)".to_owned();
        }
        format!(
            "{} ({} without heartbeats){}",
            runs_of(r, &|i| i.commands_per_sec).show(),
            runs_of(r, &|i| i.data_per_sec).show(),
            runs_note(r.0.len(), r.1, usual(seedy))
        )
    };
    let cpu = |r: &Idles, seedy: bool| {
        if r.0.is_empty() {
            return "error: every run failed (see notes)".to_owned();
        }
        runs_of(r, &|i| i.cpu_percent).show_unit(&|x| format!("{x:.1}"), " %")
            + &runs_note(r.0.len(), r.1, usual(seedy))
    };
    let mongod = |r: &Idles, seedy: bool| {
        let m = runs_of(r, &|i| i.mongod_cpu_percent.unwrap_or(f64::NAN));
        if m.len() == 0 {
            return if r.0.is_empty() {
                "error: every run failed (see notes)".into()
            } else {
                "unknown pid".into()
            };
        }
        m.show_unit(&|x| format!("{x:.1}"), " %") + &runs_note(r.0.len(), r.1, usual(seedy))
    };
    let median = |r: &Idles, f: &dyn Fn(&scenarios::Idle) -> f64| runs_of(r, f).median();
    if !none.0.is_empty() && !ours.0.is_empty() {
        let seed_ok = theirs.as_ref().filter(|t| !t.0.is_empty());
        let opt = |x: f64| x.is_finite().then_some(x);
        report.summary.idle = Some(IdleFigures {
            viewers: n,
            none: median(&none, &|i| i.data_per_sec),
            with: median(&ours, &|i| i.data_per_sec),
            with_all: median(&ours, &|i| i.commands_per_sec),
            seed_all: seed_ok.map(|t| median(t, &|i| i.commands_per_sec)),
            mongod_cpu: opt(median(&ours, &|i| i.mongod_cpu_percent.unwrap_or(f64::NAN))),
            seed_mongod_cpu: seed_ok
                .and_then(|t| opt(median(t, &|i| i.mongod_cpu_percent.unwrap_or(f64::NAN)))),
        });
    }
    let independent = match &report.summary.idle {
        Some(i) => {
            // The change stream's getMore is a small constant; viewers should add nothing. Driver
            // heartbeats (hello) come every 10 s per client, whatever the viewers: left out here.
            let extra = i.with - i.none;
            if extra <= 0.5 + 0.1 * i.none {
                format!("met (+{} /s for {n} viewers)", figure(extra.max(0.0)))
            } else {
                format!("MISSED (+{} /s for {n} viewers)", figure(extra))
            }
        }
        None => "not measured".into(),
    };
    let versus_seed = match &report.summary.idle {
        Some(IdleFigures { with_all, seed_all: Some(seed), .. }) => {
            let ratio = seed / with_all.max(1e-9);
            let word = if ratio >= 10.0 { "met" } else { "MISSED" };
            format!("; {word} vs seed ({ratio:.0}× fewer)")
        }
        _ => String::new(),
    };
    let seed_cell =
        |f: &dyn Fn(&Idles, bool) -> String| theirs.as_ref().map_or(NOT_RUN.into(), |t| f(t, true));
    report.rows.extend([
        Row {
            scenario: "4. idle, no viewers".into(),
            measure: "MongoDB commands/s".into(),
            sse: rate(&none, false),
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: "—".into(),
        },
        Row {
            scenario: format!("4. idle, {} viewers on {} logs", thousands(n), thousands(n)),
            measure: "MongoDB commands/s".into(),
            sse: rate(&ours, false),
            seed: seed_cell(&rate),
            nchan: NOT_MEASURED.into(),
            target: "independent of viewers; ≥ 10× below seed".into(),
            verdict: format!("{independent}{versus_seed}"),
        },
        Row {
            scenario: format!("4. idle, {} viewers", thousands(n)),
            measure: "server CPU (% of one core)".into(),
            sse: cpu(&ours, false),
            seed: seed_cell(&cpu),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: format!("no viewers: {}", cpu(&none, false)),
        },
        Row {
            scenario: format!("4. idle, {} viewers", thousands(n)),
            measure: "MongoDB server CPU".into(),
            sse: mongod(&ours, false),
            seed: seed_cell(&mongod),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: format!("no viewers: {}", mongod(&none, false)),
        },
    ]);
}

/// Scenario 6: append throughput with 1 and 4 writers.
pub async fn push(ctx: &Ctx, plan: &Plan, sse: &SseLogs, report: &mut Report) {
    let mut results: BTreeMap<usize, Vec<Result<scenarios::Push, String>>> = BTreeMap::new();
    for round in 0..plan.runs {
        for writers in [1, 4] {
            say(&format!(
                "scenario 6: append, {writers} writer(s), 1,000-line requests, run {}/{}",
                round + 1,
                plan.runs
            ));
            results
                .entry(writers)
                .or_default()
                .push(scenarios::push(ctx, sse, writers, 1000, plan.push_window, 2000).await);
        }
    }
    for (writers, results) in results {
        let (runs, tried) = split(&format!("Scenario 6 ({writers} writer(s))"), results, report);
        let cell = if runs.is_empty() {
            "error: every run failed (see notes)".to_owned()
        } else {
            let m = |f: &dyn Fn(&scenarios::Push) -> f64| Runs::of(runs.iter().map(f)).median();
            report.notes.push(format!(
                "Scenario 6 ({writers} writer(s), {}): {} lines in {} requests; writer 0's first five \
                 requests took {} ms on average, its last five {} ms (each log grew to {} lines).",
                medians(runs.len()),
                thousands(m(&|p| p.lines as f64) as usize),
                thousands(m(&|p| p.request.n as f64) as usize),
                figure(m(&|p| p.first_ms)),
                figure(m(&|p| p.last_ms)),
                thousands(m(&|p| (p.lines / p.writers) as f64) as usize)
            ));
            format!(
                "{} (request p50 {} / p99 {} ms){}",
                Runs::of(runs.iter().map(|p| p.lines_per_sec)).show_unit(&figure, " lines/s"),
                figure(m(&|p| p.request.p50)),
                figure(m(&|p| p.request.p99)),
                runs_note(runs.len(), tried, plan.runs)
            )
        };
        report.rows.push(Row {
            scenario: format!("6. append, {writers} writer(s) on own logs, 1,000 lines/request"),
            measure: "lines/s".into(),
            sse: cell,
            seed: NOT_MEASURED.into(),
            nchan: NOT_MEASURED.into(),
            target: "—".into(),
            verdict: "—".into(),
        });
    }
}

/// Issue 18: the cost of an append as its log grows.
pub async fn growth(ctx: &Ctx, plan: &Plan, sse: &SseLogs, report: &mut Report) {
    let (requests, others) = (plan.growth_requests, plan.growth_others);
    let mut results = Vec::new();
    for round in 0..plan.runs {
        say(&format!(
            "append growth: {requests} requests of 1,000 lines, type holding {} more lines, run {}/{}",
            thousands(others),
            round + 1,
            plan.runs
        ));
        results.push(scenarios::growth(ctx, sse, requests, others).await);
    }
    let (runs, tried) = split("Append growth", results, report);
    let scenario = format!(
        "6. append growth: {requests} requests of 1,000 lines to one log (to {} lines; its type holds {} more)",
        thousands(requests * 1000),
        thousands(others)
    );
    if runs.is_empty() {
        report.rows.push(Row {
            scenario,
            sse: "error: every run failed (see notes)".into(),
            ..Row::default()
        });
        return;
    }
    let first = Runs::of(runs.iter().map(|g| g.first_ms));
    let last = Runs::of(runs.iter().map(|g| g.last_ms));
    let ratio = Runs::of(runs.iter().map(scenarios::Growth::ratio));
    let lines = runs.iter().map(|g| g.lines).min().unwrap_or(0);
    report.summary.growth = Some((first.median(), last.median(), requests, lines));
    let r = ratio.median();
    report.rows.push(Row {
        scenario,
        measure: "mean request ms, first 10 / last 10 (last ÷ first)".into(),
        sse: format!(
            "{} ({}){}",
            pair(&first, &last),
            ratio.show_unit(&|x| format!("{x:.2}"), "×"),
            runs_note(runs.len(), tried, plan.runs)
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "last 10 ≤ 1.2× first 10 (issue 18)".into(),
        verdict: if r <= 1.2 { format!("met ({r:.2}×)") } else { format!("MISSED ({r:.2}×)") },
    });
}

/// Issue 18: live delivery to one viewer while many streams open on a long log; each run in a
/// freshly started sse-logs (what the burst leaves behind must not reach other scenarios).
pub async fn burst(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, report: &mut Report) {
    let (streams, long) = (plan.burst_streams, plan.burst_long_lines);
    let long_id = ctx.fresh("long");
    say(&format!("live delivery during an open burst: writing a {}-line log", thousands(long)));
    if let Err(e) = scenarios::prepare_log(ctx, "burst", &long_id, long, true).await {
        report.notes.push(format!("Open burst: could not write the long log: {e}"));
        return;
    }
    let mut results = Vec::new();
    for round in 0..plan.runs {
        say(&format!(
            "live delivery while {} streams open on the {}-line log ({:?} window), run {}/{}",
            thousands(streams),
            thousands(long),
            plan.burst_window,
            round + 1,
            plan.runs
        ));
        let result = match launch.start(ctx, &format!("burst-{round}"), &[]).await {
            Ok(sse) => {
                let r = scenarios::burst(ctx, &sse, &long_id, streams, plan.burst_before, plan.burst_window)
                    .await;
                drop(sse);
                r
            }
            Err(e) => Err(e),
        };
        results.push(result);
    }
    let (runs, tried) = split("Open burst", results, report);
    let scenario = format!(
        "7. live delivery while {} streams open on a {}-line log (each reads it from line 1)",
        thousands(streams),
        thousands(long)
    );
    let target = format!("p99 ≤ {} ms (issue 18)", figure(crate::report::BURST_P99_MS));
    if runs.is_empty() {
        report.rows.push(Row {
            scenario,
            sse: "error: every run failed (see notes)".into(),
            target,
            ..Row::default()
        });
        return;
    }
    let of = |f: &dyn Fn(&scenarios::Burst) -> f64| Runs::of(runs.iter().map(f));
    let (p50, p99) = (of(&|b| b.during.p50), of(&|b| b.during.p99));
    let (b50, b99) = (of(&|b| b.before.p50), of(&|b| b.before.p99));
    report.summary.burst = Some((p50.median(), p99.median(), b99.median(), streams));
    let missing: usize = runs.iter().map(|b| b.missing).sum();
    let backlog = match of(&|b| b.backlog_lines).median() {
        lines if lines.is_finite() => thousands(lines as usize),
        _ => "an unknown number of (metrics did not answer)".into(),
    };
    report.notes.push(format!(
        "Open burst ({}): at the end of the {:?} window {} of the {} streams had their response \
         head and {} were subscribed; sse-logs read {} backlog lines meanwhile, MongoDB ran {} find and {} getMore; \
         after hanging up, sse-logs had closed them all {} s later. The viewer got {} lines during the window \
         ({missing} missing in all runs). Then a snapshot of the long log (`?limit=1`) answered in: {}.",
        medians(runs.len()),
        plan.burst_window,
        thousands(of(&|b| b.opened as f64).median() as usize),
        thousands(streams),
        thousands(of(&|b| b.subscribed as f64).median() as usize),
        backlog,
        figure(of(&|b| b.finds as f64).median()),
        figure(of(&|b| b.get_mores as f64).median()),
        of(&|b| b.close_secs).show(),
        figure(of(&|b| b.during.n as f64).median()),
        runs.iter()
            .map(|b| b.snapshot_after_ms.map_or("no answer within 10 s".to_owned(), |ms| format!("{} ms", figure(ms))))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    let p = p99.median();
    let word = if p <= crate::report::BURST_P99_MS && missing == 0 { "met" } else { "MISSED" };
    report.rows.push(Row {
        scenario,
        measure: "1 viewer of another log, a line every 10 ms: insert→event p50 / p99 ms".into(),
        sse: format!(
            "{} (before the burst: {}){}{}",
            pair(&p50, &p99),
            pair(&b50, &b99),
            if missing > 0 { format!(" ({missing} missing)") } else { String::new() },
            runs_note(runs.len(), tried, plan.runs)
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target,
        verdict: format!("{word} (p99 {} ms)", figure(p)),
    });
}
