//! Issue 26's scale rows (`--only storm`, `storm100`, `idle100k`): reconnect storms on one log and
//! over 100 logs, and 100,000 idle streams on one process. One run each, in a fresh process.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::report::{err_cell, thousands, Report, Row, NOT_MEASURED};
use crate::scenarios::{self, Ctx};
use crate::sections::Launch;
use crate::storm::{self, Storm};
use crate::systems::figure;
use crate::{procs, say, Plan};

/// The targets for the 2,000-viewer storm.
const STORM_QUERIES: u64 = 10;
const STORM_LIVE_SECS: f64 = 3.0;
/// Streams per loopback source address: below the ~28,000 ephemeral ports of one address.
const PER_SOURCE: usize = 20_000;

/// A storm of `per_log` viewers on each of `logs` logs of `lines` lines, in a fresh process.
async fn run_storm(
    ctx: &Ctx,
    launch: Launch<'_>,
    name: &str,
    logs: usize,
    per_log: usize,
    lines: usize,
) -> Result<Storm, String> {
    raise_open_files(logs * per_log + logs + 1000)?;
    let sse = launch.start(ctx, name, &[]).await?;
    let cap = Duration::from_secs(90 + (logs * per_log / 100) as u64);
    let result = storm::storm(ctx, &sse, logs, per_log, lines, cap).await;
    drop(sse);
    // The next fresh process reads every log at start (the index of logs): keep that small.
    for log_type in ["storm", "stormby"] {
        let _ = ctx.coll.delete_many(bson::doc! { "type": log_type }).await;
    }
    result
}

fn storm_row(scenario: String, result: Result<Storm, String>, report: &mut Report) {
    let target = format!("≤ {STORM_QUERIES} queries, every viewer live ≤ {STORM_LIVE_SECS} s (issue 26)");
    let measure = "MongoDB find + aggregate (all commands in the notes) / viewers live, and when / \
                   bystander insert→event p50 / p99 ms"
        .to_owned();
    let s = match result {
        Ok(s) => s,
        Err(e) => {
            report.rows.push(Row { scenario, measure, sse: err_cell(&e), target, ..Row::default() });
            return;
        }
    };
    let n = thousands(s.viewers);
    let live = if s.live == s.viewers {
        format!("all {n} live after {} s", figure(s.live_secs))
    } else {
        format!("{} of {n} live", thousands(s.live))
    };
    report.notes.push(format!(
        "{scenario} (one run): MongoDB ran {} while it lasted (getMore includes the hub's change stream); \
         {} of {n} viewers got every line once, in order, then [DONE]{}; {} could not connect; \
         the bystander got {} lines during it, {} missing.",
        s.commands.breakdown(1.0),
        thousands(s.exact),
        if s.exact > 0 { format!(" (the last after {} s)", figure(s.done_secs)) } else { String::new() },
        thousands(s.failed),
        s.bystander.n,
        s.bystander_missing,
    ));
    let met = s.queries() <= STORM_QUERIES && s.exact == s.viewers && s.live_secs <= STORM_LIVE_SECS;
    report.rows.push(Row {
        scenario,
        measure,
        sse: format!(
            "{} queries (find {}, aggregate {}); {live}; bystander {} / {}",
            s.queries(),
            s.commands.count("find"),
            s.commands.count("aggregate"),
            figure(s.bystander.p50),
            figure(s.bystander.p99)
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target,
        verdict: format!("{} ({} queries)", if met { "met" } else { "MISSED" }, s.queries()),
    });
}

/// `--only storm`: every viewer count of the plan on one log.
pub async fn storm(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, report: &mut Report) {
    for &viewers in &plan.storm_viewers {
        let lines = plan.storm_lines;
        say(&format!("reconnect storm: {} viewers of a {}-line log", thousands(viewers), thousands(lines)));
        let result = run_storm(ctx, launch, &format!("storm-{viewers}"), 1, viewers, lines).await;
        let scenario = format!(
            "8. reconnect storm: {} viewers of a {}-line live log resume at once (Last-Event-ID among the \
             last 100) while 100 lines and [DONE] are written",
            thousands(viewers),
            thousands(lines)
        );
        storm_row(scenario, result, report);
    }
}

/// `--only storm100`: 10,000 viewers over 100 logs.
pub async fn storm100(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, report: &mut Report) {
    let (logs, per_log, lines) = (100, 100, plan.storm100_lines);
    say(&format!("reconnect storm over {logs} logs of {} lines, {per_log} viewers each", thousands(lines)));
    let result = run_storm(ctx, launch, "storm100", logs, per_log, lines).await;
    let scenario = format!(
        "9. reconnect storm over {logs} logs: {} viewers ({per_log} per {}-line live log) resume at once",
        thousands(logs * per_log),
        thousands(lines)
    );
    storm_row(scenario, result, report);
}

/// `--only idle100k`: that many streams on as many logs, from several loopback source addresses.
pub async fn idle100k(ctx: &Ctx, plan: &Plan, launch: Launch<'_>, report: &mut Report) {
    let n = plan.idle_streams;
    let sources: Vec<IpAddr> =
        (0..n.div_ceil(PER_SOURCE)).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8))).collect();
    say(&format!("{} idle streams on one process from {} source addresses", thousands(n), sources.len()));
    let most = (n + 1000).to_string();
    let started = match raise_open_files(n + 1000) {
        Ok(()) => launch.start(ctx, "idle100k", &[("SSE_LOGS__LIMITS__MAX_STREAMS", &most)]).await,
        Err(e) => Err(e),
    };
    let result = match started {
        Ok(sse) => {
            let r = scenarios::many_logs(ctx, &sse, n, &sources).await;
            drop(sse);
            r
        }
        Err(e) => Err(e),
    };
    let _ = ctx.coll.delete_many(bson::doc! { "type": "many" }).await;
    let scenario = format!("10. {} idle streams on one process, one per log", thousands(n));
    let measure =
        "RSS per stream / time to connect them all / one line to each log: insert→event p99".to_owned();
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            report.rows.push(Row { scenario, measure, sse: err_cell(&e), ..Row::default() });
            return;
        }
    };
    let per_stream = (m.rss_after_kib as f64 - m.rss_before_kib as f64) / m.n as f64;
    report.notes.push(format!(
        "{scenario} (one run, {} loopback source addresses): RSS {:.1} MiB before, {:.1} MiB with them open, \
         {:.1} MiB after they closed; one line to each log (insert_many of 100, {:.1} s for MongoDB) reached \
         its stream: p50 / p99 {} / {} ms, all {:.1} s after the first insert ({} missing).",
        sources.len(),
        m.rss_before_kib as f64 / 1024.0,
        m.rss_after_kib as f64 / 1024.0,
        m.rss_closed_kib as f64 / 1024.0,
        m.insert_secs,
        figure(m.each.p50),
        figure(m.each.p99),
        m.all_secs,
        m.missing
    ));
    report.rows.push(Row {
        scenario,
        measure,
        sse: format!(
            "{:.1} KiB; {:.1} s; p99 {} ms (all within {:.1} s)",
            per_stream,
            m.connect_secs,
            figure(m.each.p99),
            m.all_secs
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "measured (issue 26)".into(),
        verdict: if m.missing == 0 { "measured".into() } else { format!("{} missing", m.missing) },
    });
}

/// Raises this process's open-files limit (soft and hard) to at least `n`, so that the
/// processes it starts afterwards inherit it. Raising the hard limit needs CAP_SYS_RESOURCE;
/// without it the run would end in refused connections, so it is an error.
fn raise_open_files(n: usize) -> Result<(), String> {
    if procs::open_files_limit().is_some_and(|limit| limit >= n as u64) {
        return Ok(());
    }
    let output = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), &format!("--nofile={n}:{n}")])
        .output()
        .map_err(|e| format!("prlimit: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{n} open files are needed and the limit is {} (prlimit: {})",
        procs::open_files_limit().map_or("unknown".into(), |l| l.to_string()),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}
