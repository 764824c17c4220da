//! The `index` group (issue 24): how long a fresh sse-logs takes, from its process start, until
//! `GET /api/v1/logs` answers 200 (it answers 503 `not_ready` while the index of logs is being
//! built), for collections of several sizes, with the split the service logs between the window
//! aggregation and the earlier-lines step (src/index/load.rs, "index of logs built").
//!
//! Each size gets a database of its own, written straight through the driver (as other writers
//! would) after `sse-logs migrate` made its indexes, so the start measured is that of a service
//! restarted on a collection it already knows, not a first start that also builds indexes.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;
use bson::{doc, Document};

use crate::procs::{self, Child};
use crate::report::{err_cell, thousands, Report, Row, NOT_MEASURED};
use crate::say;
use crate::scenarios::{json_u64, Ctx};
use crate::sections::Launch;

/// Lines per log, as in BENCHMARKS.md's earlier figures (N lines in N/100 logs).
const LINES_PER_LOG: usize = 100;
/// Documents per `insert_many`.
const BATCH: usize = 50_000;
/// The service's default `index.window_days`; every line is written inside it.
const WINDOW_DAYS: u64 = 7;
/// The longest start waited for.
const START_LIMIT: Duration = Duration::from_secs(900);
const TYPES: [&str; 3] = ["build", "deploy", "ci"];

/// One start of sse-logs on `lines` lines.
#[derive(Debug, Clone)]
pub struct IndexStart {
    pub fill_secs: f64,
    /// Process start to accepting connections, and to the list's first 200.
    pub listening_secs: f64,
    pub ready_secs: f64,
    /// What the service logged: the window aggregation, the earlier-lines step, the whole load.
    pub window_ms: Option<u64>,
    pub earlier_ms: Option<u64>,
    pub load_ms: Option<u64>,
    /// Logs and lines the index holds, as logged.
    pub logs: Option<u64>,
    pub indexed_lines: Option<u64>,
    /// CPU seconds from start to 200: sse-logs, and MongoDB when its pid is known.
    pub sse_cpu: Option<f64>,
    pub mongod_cpu: Option<f64>,
    pub load_average: String,
}

/// The ObjectId of line `k` of `total`, its time spread evenly over the window (less a margin at
/// either end), the counter making it unique.
fn oid_of(k: usize, total: usize, now: u64, process: [u8; 5]) -> ObjectId {
    let span = WINDOW_DAYS * 86_400 - 2 * 3_600;
    let at = now - span - 60 + (span as u128 * k as u128 / total.max(1) as u128) as u64;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&(at as u32).to_be_bytes());
    bytes[4..9].copy_from_slice(&process);
    bytes[9..].copy_from_slice(&(k as u32).to_be_bytes()[1..]);
    ObjectId::from_bytes(bytes)
}

/// The line `k`: log `k / 100`, each log written in a stretch of its own and ended with
/// `[DONE]` but the last, which is still growing.
fn line(k: usize, total: usize, now: u64, process: [u8; 5]) -> Document {
    let log = k / LINES_PER_LOG;
    let last_of_log = k % LINES_PER_LOG == LINES_PER_LOG - 1;
    let text = if last_of_log && k + 1 < total {
        "[DONE]".to_owned()
    } else {
        format!("{k:07} step {}/{LINES_PER_LOG} ok, pulled layer sha256:4f1a9c in 1.8s", k % LINES_PER_LOG)
    };
    doc! {
        "_id": oid_of(k, total, now, process),
        "type": TYPES[log % TYPES.len()],
        "id": format!("log-{log}"),
        "log": text,
    }
}

fn environment<'a>(command: &'a mut Command, launch: &Launch<'_>, database: &str) -> &'a mut Command {
    command
        .env("SSE_LOGS__MONGODB__URI", launch.uri)
        .env("SSE_LOGS__MONGODB__DATABASE", database)
        .env("SSE_LOGS__INDEX__WINDOW_DAYS", WINDOW_DAYS.to_string())
        .env("SSE_LOGS__LOG__FORMAT", "json")
}

/// Writes `lines` lines into `database` (its indexes made first, by `sse-logs migrate`).
async fn fill(ctx: &Ctx, launch: &Launch<'_>, database: &str, lines: usize) -> Result<f64, String> {
    let started = Instant::now();
    let mut migrate = Command::new(launch.bin);
    environment(&mut migrate, launch, database).arg("migrate").env("RUST_LOG", "warn");
    let out = migrate.output().map_err(|e| format!("sse-logs migrate: {e}"))?;
    if !out.status.success() {
        return Err(format!("sse-logs migrate: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let coll = ctx.mongo.database(database).collection::<Document>("sse_logs");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let process: [u8; 5] = rand::random();
    let mut next = 0;
    while next < lines {
        let end = (next + BATCH).min(lines);
        let batch: Vec<Document> = (next..end).map(|k| line(k, lines, now, process)).collect();
        coll.insert_many(batch).await.map_err(|e| format!("insert_many: {e}"))?;
        next = end;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Starts sse-logs on `database` and polls the list until it answers 200.
async fn start(ctx: &Ctx, launch: &Launch<'_>, database: &str, lines: usize) -> Result<IndexStart, String> {
    let port = procs::free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = launch.work.join(format!("sse-logs-index-{lines}.log"));
    let mut command = Command::new(launch.bin);
    environment(&mut command, launch, database)
        .arg("serve")
        .env("SSE_LOGS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn,sse_logs::index=info");
    let mongod_before = ctx.mongod_pid.and_then(procs::cpu_seconds);
    let started = Instant::now();
    let mut child = Child::spawn("sse-logs", &mut command, &log)?;
    let addr = ([127, 0, 0, 1], port).into();
    procs::wait_listening(addr, &mut child, START_LIMIT).await?;
    let listening = started.elapsed();
    // A list request waits (up to 10 s) for the index before answering 503, so polling it
    // answers as soon as the load ends.
    let ready = loop {
        let answer =
            ctx.http.get(format!("{base}/api/v1/logs?limit=1")).timeout(Duration::from_secs(15)).send().await;
        if matches!(answer, Ok(ref r) if r.status().is_success()) {
            break started.elapsed();
        }
        if let Some(status) = child.exited() {
            return Err(format!(
                "sse-logs exited ({status}) before its list answered 200; see {}",
                log.display()
            ));
        }
        if started.elapsed() > START_LIMIT {
            return Err(format!("the list did not answer 200 within {START_LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sse_cpu = procs::cpu_seconds(child.pid());
    let mongod_cpu = match (ctx.mongod_pid.and_then(procs::cpu_seconds), mongod_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let built = text.lines().find(|l| l.contains("index of logs built")).unwrap_or("");
    Ok(IndexStart {
        fill_secs: 0.0,
        listening_secs: listening.as_secs_f64(),
        ready_secs: ready.as_secs_f64(),
        window_ms: json_u64(built, "window_ms"),
        earlier_ms: json_u64(built, "earlier_ms"),
        load_ms: json_u64(built, "took_ms"),
        logs: json_u64(built, "logs"),
        indexed_lines: json_u64(built, "lines"),
        sse_cpu,
        mongod_cpu,
        load_average: procs::load_average(),
    })
}

/// One size: a fresh database, filled, one start measured, the database dropped.
pub async fn measure(ctx: &Ctx, launch: &Launch<'_>, lines: usize) -> Result<IndexStart, String> {
    let database = format!("idx{}-{lines}", ctx.run);
    say(&format!("index: writing {} lines in {} logs", thousands(lines), thousands(lines / LINES_PER_LOG)));
    let filled = fill(ctx, launch, &database, lines).await;
    let result = match filled {
        Ok(fill_secs) => {
            say(&format!("index: written in {fill_secs:.1} s; starting sse-logs"));
            start(ctx, launch, &database, lines).await.map(|r| IndexStart { fill_secs, ..r })
        }
        Err(e) => Err(e),
    };
    if let Err(e) = ctx.mongo.database(&database).drop().await {
        say(&format!("index: dropping {database}: {e}"));
    }
    result
}

fn secs(ms: Option<u64>) -> String {
    ms.map_or_else(|| "?".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

/// The row of one size.
pub fn row(lines: usize, result: &Result<IndexStart, String>) -> Row {
    let scenario = format!(
        "7. index of logs at start: {} lines in {} logs, all inside index.window_days = {WINDOW_DAYS}",
        thousands(lines),
        thousands(lines / LINES_PER_LOG)
    );
    let measure = "process start → `GET /api/v1/logs` 200 (the load as logged: window aggregation + \
                   earlier-lines step; listening at); CPU s sse-logs / MongoDB"
        .to_owned();
    let r = match result {
        Ok(r) => r,
        Err(e) => return Row { scenario, measure, sse: err_cell(e), ..Row::default() },
    };
    let complete = r.logs == Some((lines / LINES_PER_LOG) as u64) && r.indexed_lines == Some(lines as u64);
    let cpu = |x: Option<f64>| x.map_or_else(|| "?".into(), |s| format!("{s:.1}"));
    Row {
        scenario,
        measure,
        sse: format!(
            "{:.1} s (load {}: {} + {}; listening at {:.2} s); CPU {} / {}{}",
            r.ready_secs,
            secs(r.load_ms),
            secs(r.window_ms),
            secs(r.earlier_ms),
            r.listening_secs,
            cpu(r.sse_cpu),
            cpu(r.mongod_cpu),
            if complete { "" } else { " INCOMPLETE (the index did not hold every log and line)" }
        ),
        seed: NOT_MEASURED.into(),
        nchan: NOT_MEASURED.into(),
        target: "—".into(),
        verdict: format!(
            "{:.1} µs per line; written in {:.1} s; load average {}",
            r.ready_secs * 1e6 / lines as f64,
            r.fill_secs,
            r.load_average
        ),
    }
}

/// Runs every size of the plan and adds its rows.
pub async fn index(ctx: &Ctx, sizes: &[usize], launch: Launch<'_>, report: &mut Report) {
    for &lines in sizes {
        let result = measure(ctx, &launch, lines).await;
        if let Ok(r) = &result {
            say(&format!("index: {} lines: 200 after {:.1} s", thousands(lines), r.ready_secs));
        }
        report.rows.push(row(lines, &result));
    }
    report.notes.push(format!(
        "Index at start (group `index`): one start per size, each on a database of its own written \
         straight through the driver after `sse-logs migrate` (so no index is built at start); the \
         split is what the service logs (\"index of logs built\": window_ms, earlier_ms). Lines \
         spread evenly over the last {WINDOW_DAYS} days, {LINES_PER_LOG} per log."
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fall_inside_the_window_in_order_and_logs_end_with_done_but_the_last() {
        let now = 2_000_000_000;
        let total = 1_000;
        let docs: Vec<Document> = (0..total).map(|k| line(k, total, now, [1; 5])).collect();
        let ids: Vec<ObjectId> = docs.iter().map(|d| d.get_object_id("_id").unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let oldest = ids[0].timestamp().timestamp_millis() / 1000;
        let newest = ids[total - 1].timestamp().timestamp_millis() / 1000;
        assert!(oldest as u64 > now - WINDOW_DAYS * 86_400 && (newest as u64) < now);
        let done = docs.iter().filter(|d| d.get_str("log") == Ok("[DONE]")).count();
        assert_eq!(done, total / LINES_PER_LOG - 1);
        assert_eq!(docs[total - 1].get_str("id"), Ok("log-9"));
        assert_eq!(docs[0].get_str("type"), Ok("build"));
        assert_eq!(docs[100].get_str("type"), Ok("deploy"));
    }
}
