//! The measurements. Every loop is bounded in count and in time; every viewer is a raw SSE client.

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use mongodb::Collection;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::client::{now_ns, SseClient};
use crate::h2c::H2Streams;
use crate::procs;
use crate::systems::{Counters, Nchan, Seed, SseLogs};

/// Text after the stamp so a line is as long as a typical build log line (about 80 bytes).
const PAD: &str = "web-1-7f9c: step 12/60 ok, pulled layer sha256:4f1a9c in 1.8s";
/// Lines sent (and not counted) before a fan-out run's measured lines.
const WARMUP: usize = 3;

/// What the scenarios share.
#[derive(Debug)]
pub struct Ctx {
    pub mongo: mongodb::Client,
    pub coll: Collection<Document>,
    pub http: reqwest::Client,
    /// Makes this run's log ids unique.
    pub run: String,
    pub mongod_pid: Option<u32>,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Numbers the logs of this run, so that no two measurements share one.
    pub serial: AtomicUsize,
}

impl Ctx {
    /// A log id (or type) no other measurement of this run uses: `{prefix}{run}-{serial}`.
    pub fn fresh(&self, prefix: &str) -> String {
        format!("{prefix}{}-{}", self.run, self.serial.fetch_add(1, Ordering::Relaxed))
    }
}

/// A system that serves SSE streams of logs.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    SseLogs(&'a SseLogs),
    Seed(&'a Seed),
    Nchan(&'a Nchan),
}

impl Peer<'_> {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Peer::SseLogs(s) => s.addr,
            Peer::Seed(s) => s.addr,
            Peer::Nchan(s) => s.addr,
        }
    }

    fn tag(&self) -> &'static str {
        match self {
            Peer::SseLogs(_) => "s",
            Peer::Seed(_) => "p",
            Peer::Nchan(_) => "n",
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Peer::SseLogs(s) => s.child.pid(),
            Peer::Seed(s) => s.child.pid(),
            Peer::Nchan(s) => s.child.pid(),
        }
    }

    /// The seed-compatible URL for sse-logs and the seed (the same request for both); a
    /// channel for Nchan.
    fn stream_path(&self, log_type: &str, id: &str) -> String {
        match self {
            Peer::SseLogs(_) | Peer::Seed(_) => format!("/api/v1/sse/logs/?type={log_type}&id={id}&num=0"),
            Peer::Nchan(_) => format!("/sub/{id}"),
        }
    }

    /// Inserts the line into MongoDB (sse-logs, seed) or publishes it (Nchan).
    async fn publish(&self, ctx: &Ctx, log_type: &str, id: &str, line: String) -> Result<(), String> {
        match self {
            Peer::Nchan(nchan) => nchan.publish(&ctx.http, id, line).await,
            _ => ctx
                .coll
                .insert_one(doc! { "type": log_type, "id": id, "log": line })
                .await
                .map(drop)
                .map_err(|e| format!("insert: {e}")),
        }
    }

    /// Waits until `viewers` streams are live. sse-logs: subscribed to the hub (its metric) and
    /// done with their backlog read (one `find` each since `before`), so that no stream is still
    /// queued for a pooled MongoDB connection when the measured lines are inserted. The others
    /// get a pause (and the warm-up lines).
    async fn wait_subscribed(&self, ctx: &Ctx, viewers: usize, before: &Counters) -> Result<(), String> {
        let limit = Duration::from_secs(30 + viewers as u64 / 200);
        match self {
            Peer::SseLogs(sse) => wait_live(ctx, sse, viewers, before, limit).await,
            // Nchan subscribes a client before it answers; the warm-up lines make sure anyway.
            Peer::Nchan(_) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            }
            // A poller needs no subscription: its next poll (within 0.2 s) sees any new line.
            Peer::Seed(_) => {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok(())
            }
        }
    }
}

/// Waits until `streams` streams of sse-logs are subscribed to its hub (its metric) and
/// MongoDB has run their backlog `find`s since `before`.
pub async fn wait_live(
    ctx: &Ctx,
    sse: &SseLogs,
    streams: usize,
    before: &Counters,
    limit: Duration,
) -> Result<(), String> {
    sse.wait_metric(&ctx.http, "sse_logs_hub_subscribers", limit, |v| v >= streams as f64).await?;
    let deadline = Instant::now() + limit;
    loop {
        let finds = Counters::read(&ctx.mongo).await?.since(before).count("find");
        if finds >= streams as u64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {finds} of {streams} backlog reads done after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A latency sample: (line sequence number, microseconds from send to receipt).
pub type Sample = (u32, u32);

pub fn stamp(seq: usize) -> String {
    format!("{seq} {} {PAD}", now_ns())
}

pub fn parse_stamp(data: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut words = text.split_ascii_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Median, 99th percentile and count of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dist {
    pub p50: f64,
    pub p99: f64,
    pub n: usize,
}

impl Dist {
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Self { p50: rank(0.50), p99: rank(0.99), n: values.len() }
    }
}

/// Viewers that record stamped lines.
pub struct Viewers {
    handles: Vec<JoinHandle<Result<Vec<Sample>, String>>>,
    /// Viewers whose response head arrived (or, for a server that sends it late, whose request
    /// was sent).
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    /// Receipts per line sequence number.
    pub counts: Arc<Vec<AtomicU32>>,
}

impl Viewers {
    /// Waits until all `viewers` are connected and the peer has subscribed them; on failure the
    /// group is stopped.
    pub async fn ready(
        self,
        ctx: &Ctx,
        peer: Peer<'_>,
        viewers: usize,
        before: &Counters,
    ) -> Result<Self, String> {
        let ready = async {
            self.wait_connected(Duration::from_secs(60 + viewers as u64 / 100)).await?;
            peer.wait_subscribed(ctx, viewers, before).await
        };
        match ready.await {
            Ok(()) => Ok(self),
            Err(e) => {
                self.abort();
                Err(e)
            }
        }
    }

    /// One task per path; a task ends at `[DONE]`, at the end of the response, after
    /// `stop_after` samples, or after `limit`.
    pub fn spawn(
        ctx: &Ctx,
        peer: Peer<'_>,
        paths: Vec<String>,
        lines: usize,
        stop_after: Option<usize>,
        limit: Duration,
    ) -> Self {
        Self::spawn_from(ctx, peer, paths, &[], lines, stop_after, limit)
    }

    /// [`Viewers::spawn`], the viewers spread over the source addresses `sources` (none: the
    /// system's choice), to open more streams than one address has ports.
    pub fn spawn_from(
        ctx: &Ctx,
        peer: Peer<'_>,
        paths: Vec<String>,
        sources: &[IpAddr],
        lines: usize,
        stop_after: Option<usize>,
        limit: Duration,
    ) -> Self {
        let addr = peer.addr();
        // The seed's Sanic view sends its response head with the first line.
        let head_first = !matches!(peer, Peer::Seed(_));
        let ready = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let counts: Arc<Vec<AtomicU32>> = Arc::new((0..lines.max(1)).map(|_| AtomicU32::new(0)).collect());
        let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));
        let handles = paths
            .into_iter()
            .enumerate()
            .map(|(i, path)| {
                let (ready, failed, counts, gate) =
                    (ready.clone(), failed.clone(), counts.clone(), gate.clone());
                let from = (!sources.is_empty()).then(|| sources[i % sources.len()]);
                tokio::spawn(async move {
                    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                    let opened = tokio::time::timeout(Duration::from_secs(60), async {
                        let mut client = SseClient::connect_with(addr, &path, from, "").await?;
                        if head_first {
                            client.read_head().await?;
                        }
                        Ok::<_, std::io::Error>(client)
                    })
                    .await;
                    drop(permit);
                    let mut client = match opened {
                        Ok(Ok(client)) => client,
                        Ok(Err(e)) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return Err(format!("connect: {e}"));
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            return Err("connect timed out".into());
                        }
                    };
                    ready.fetch_add(1, Ordering::Relaxed);
                    let mut samples = Vec::new();
                    let run = client.run(|data| {
                        if data == b"[DONE]" {
                            return ControlFlow::Break(());
                        }
                        if let Some((seq, sent)) = parse_stamp(data) {
                            let micros = now_ns().saturating_sub(sent) / 1000;
                            samples.push((seq as u32, u32::try_from(micros).unwrap_or(u32::MAX)));
                            if let Some(count) = counts.get(seq) {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            if stop_after.is_some_and(|n| samples.len() >= n) {
                                return ControlFlow::Break(());
                            }
                        }
                        ControlFlow::Continue(())
                    });
                    let _ = tokio::time::timeout(limit, run).await;
                    Ok(samples)
                })
            })
            .collect();
        Self { handles, ready, failed, counts }
    }

    pub async fn wait_connected(&self, limit: Duration) -> Result<(), String> {
        let want = self.handles.len();
        let deadline = Instant::now() + limit;
        loop {
            let (ok, bad) = (self.ready.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed));
            if ok == want {
                return Ok(());
            }
            if ok + bad == want || Instant::now() > deadline {
                return Err(format!("{ok} of {want} viewers connected ({bad} failed)"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until line `seq` reached every viewer (or `limit`); returns how many lack it.
    pub async fn wait_line(&self, seq: usize, limit: Duration) -> usize {
        let want = self.handles.len();
        let deadline = Instant::now() + limit;
        loop {
            let got = self.counts[seq].load(Ordering::Relaxed) as usize;
            if got >= want || Instant::now() > deadline {
                return want.saturating_sub(got);
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    /// Collects every viewer's samples, aborting those still running after `limit`.
    pub async fn join(self, limit: Duration) -> Vec<Vec<Sample>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut all = Vec::with_capacity(self.handles.len());
        for mut handle in self.handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(Ok(samples))) => all.push(samples),
                Ok(_) => all.push(Vec::new()),
                Err(_) => {
                    handle.abort();
                    all.push(Vec::new());
                }
            }
        }
        all
    }

    pub fn abort(self) {
        for handle in self.handles {
            handle.abort();
        }
    }
}

/// Scenario 1: one log, `viewers` streams, `lines` stamped lines sent one at a time.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Every (viewer, line) latency.
    pub each: Dist,
    /// Per line, the latency to the last viewer: insert-to-all-viewers.
    pub all: Dist,
    pub missing: usize,
    pub connect_secs: f64,
}

pub async fn fanout(ctx: &Ctx, peer: Peer<'_>, viewers: usize, lines: usize) -> Result<Fanout, String> {
    let total = WARMUP + lines;
    let id = ctx.fresh(&format!("f{}{viewers}-", peer.tag()));
    let paths = vec![peer.stream_path("fanout", &id); viewers];
    let before = Counters::read(&ctx.mongo).await?;
    let started = Instant::now();
    let group = Viewers::spawn(ctx, peer, paths, total, None, Duration::from_secs(900));
    let group = group.ready(ctx, peer, viewers, &before).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let per_line = Duration::from_secs(5) + Duration::from_millis(viewers as u64);
    let mut missing = 0;
    for seq in 0..total {
        // The seed polls every 0.2 s: a random pause puts each insert at a random point of its cycle.
        let pause = match peer {
            Peer::Seed(_) => rng.gen_range(5..205),
            _ => rng.gen_range(2..12),
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if let Err(e) = peer.publish(ctx, "fanout", &id, stamp(seq)).await {
            group.abort();
            return Err(e);
        }
        let lacking = group.wait_line(seq, per_line).await;
        if seq >= WARMUP {
            missing += lacking;
        }
    }
    peer.publish(ctx, "fanout", &id, "[DONE]".into()).await?;
    let samples = group.join(Duration::from_secs(30)).await;
    let mut last = vec![0_u32; total];
    let mut each = Vec::with_capacity(viewers * lines);
    for &(seq, micros) in samples.iter().flatten() {
        let seq = seq as usize;
        if seq >= WARMUP && seq < total {
            each.push(f64::from(micros) / 1000.0);
            last[seq] = last[seq].max(micros);
        }
    }
    let all = last[WARMUP..].iter().map(|&m| f64::from(m) / 1000.0).collect();
    Ok(Fanout { each: Dist::of(each), all: Dist::of(all), missing, connect_secs })
}

/// Scenarios 2 and 5: `n` streams on `n` logs (memory before and after), then one line each.
#[derive(Debug, Clone, Copy)]
pub struct ManyLogs {
    pub n: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// After every stream closed again.
    pub rss_closed_kib: u64,
    pub insert_secs: f64,
    pub each: Dist,
    pub all_secs: f64,
    pub missing: usize,
    pub connect_secs: f64,
}

/// `sources`: the source addresses to spread the streams over (none: the system's choice).
pub async fn many_logs(ctx: &Ctx, sse: &SseLogs, n: usize, sources: &[IpAddr]) -> Result<ManyLogs, String> {
    let pid = sse.child.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    let prefix = ctx.fresh("m");
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let peer = Peer::SseLogs(sse);
    let paths = ids.iter().map(|id| peer.stream_path("many", id)).collect();
    let before = Counters::read(&ctx.mongo).await?;
    let started = Instant::now();
    let group = Viewers::spawn_from(ctx, peer, paths, sources, 1, Some(1), Duration::from_secs(600));
    let group = group.ready(ctx, peer, n, &before).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    let sent = Instant::now();
    for chunk in ids.chunks(100) {
        let documents: Vec<Document> =
            chunk.iter().map(|id| doc! { "type": "many", "id": id, "log": stamp(0) }).collect();
        ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
    }
    let insert_secs = sent.elapsed().as_secs_f64();
    let missing = group.wait_line(0, Duration::from_secs(60)).await;
    let all_secs = sent.elapsed().as_secs_f64();
    let samples = group.join(Duration::from_secs(10)).await;
    let each = samples.iter().flatten().map(|&(_, micros)| f64::from(micros) / 1000.0).collect();
    let _ = sse.wait_metric(&ctx.http, "sse_logs_streams_open", Duration::from_secs(15), |v| v == 0.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    Ok(ManyLogs {
        n,
        rss_before_kib,
        rss_after_kib,
        rss_closed_kib,
        insert_secs,
        each: Dist::of(each),
        all_secs,
        missing,
        connect_secs,
    })
}

/// Writes a log of `lines` lines ending with `[DONE]` (unless `open`); returns how long MongoDB
/// took.
pub async fn prepare_log(
    ctx: &Ctx,
    log_type: &str,
    id: &str,
    lines: usize,
    open: bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut next = 0;
    while next < lines {
        let end = (next + 10_000).min(lines);
        let documents: Vec<Document> = (next..end)
            .map(|i| doc! { "type": log_type, "id": id, "log": format!("{i:07} {PAD}") })
            .collect();
        ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
        next = end;
    }
    if !open {
        ctx.coll
            .insert_one(doc! { "type": log_type, "id": id, "log": "[DONE]" })
            .await
            .map_err(|e| format!("insert: {e}"))?;
    }
    Ok(started.elapsed())
}

/// Scenario 3: one client reads a finished log from the start.
#[derive(Debug, Clone)]
pub struct Replay {
    pub lines: usize,
    pub complete: bool,
    pub secs: f64,
    pub first_line_ms: f64,
    pub commands: u64,
    pub breakdown: String,
}

impl Replay {
    pub fn rate(&self) -> f64 {
        self.lines as f64 / self.secs.max(1e-9)
    }

    /// Lines per second once the first line arrived.
    pub fn streaming_rate(&self) -> f64 {
        self.lines.saturating_sub(1) as f64 / (self.secs - self.first_line_ms / 1000.0).max(1e-9)
    }
}

pub async fn replay(
    ctx: &Ctx,
    peer: Peer<'_>,
    log_type: &str,
    id: &str,
    expect: usize,
    cap: Duration,
) -> Result<Replay, String> {
    let before = Counters::read(&ctx.mongo).await?;
    let started = Instant::now();
    // The head comes with the first line from the seed: `run` reads it, inside the cap.
    let mut client = SseClient::connect(peer.addr(), &peer.stream_path(log_type, id))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut lines = 0;
    let mut first = None;
    let run = client.run(|data| {
        if data == b"[DONE]" {
            return ControlFlow::Break(());
        }
        lines += 1;
        first.get_or_insert_with(|| started.elapsed());
        ControlFlow::Continue(())
    });
    let ended = tokio::time::timeout(cap, run).await;
    let secs = started.elapsed().as_secs_f64();
    drop(client);
    let delta = Counters::read(&ctx.mongo).await?.since(&before);
    let (commands, breakdown) = (delta.total(), delta.breakdown(1.0));
    let complete = matches!(ended, Ok(Ok(_))) && lines == expect;
    let first_line_ms = first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Ok(Replay { lines, complete, secs, first_line_ms, commands, breakdown })
}

/// Scenario 4: MongoDB commands and CPU while `viewers` streams wait on as many empty logs.
#[derive(Debug, Clone)]
pub struct Idle {
    pub viewers: usize,
    pub commands_per_sec: f64,
    /// Leaving out the drivers' monitoring (`hello`, `isMaster`), which no viewer causes.
    pub data_per_sec: f64,
    pub breakdown: String,
    pub cpu_percent: f64,
    pub mongod_cpu_percent: Option<f64>,
}

pub async fn idle(ctx: &Ctx, peer: Peer<'_>, viewers: usize, window: Duration) -> Result<Idle, String> {
    let prefix = ctx.fresh(&format!("i{}{viewers}-", peer.tag()));
    let ids: Vec<String> = (0..viewers).map(|i| format!("{prefix}-{i}")).collect();
    let paths = ids.iter().map(|id| peer.stream_path("idle", id)).collect();
    let before = Counters::read(&ctx.mongo).await?;
    let group = Viewers::spawn(ctx, peer, paths, 1, None, Duration::from_secs(600));
    let group = group.ready(ctx, peer, viewers, &before).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = peer.pid();
    let cpu = || procs::tree_cpu_seconds(pid);
    let mongod = || ctx.mongod_pid.and_then(procs::cpu_seconds);
    let (c0, cpu0, m0, t0) = (Counters::read(&ctx.mongo).await?, cpu(), mongod(), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, cpu1, m1) = (Counters::read(&ctx.mongo).await?, cpu(), mongod());
    let secs = t0.elapsed().as_secs_f64();
    // End the logs so that a poller's loop ends too, then hang up.
    for chunk in ids.chunks(1000) {
        let documents: Vec<Document> =
            chunk.iter().map(|id| doc! { "type": "idle", "id": id, "log": "[DONE]" }).collect();
        ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
    }
    let _ = group.join(Duration::from_secs(15)).await;
    let delta = c1.since(&c0);
    let percent = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / secs * 100.0);
    Ok(Idle {
        viewers,
        commands_per_sec: delta.total() as f64 / secs,
        data_per_sec: (delta.total() - delta.count("hello") - delta.count("isMaster")) as f64 / secs,
        breakdown: delta.breakdown(secs),
        cpu_percent: percent(cpu0, cpu1).unwrap_or(f64::NAN),
        mongod_cpu_percent: percent(m0, m1),
    })
}

/// Scenario 6: `writers` clients append `batch`-line text bodies, one request at a time each.
#[derive(Debug, Clone, Copy)]
pub struct Push {
    pub writers: usize,
    pub lines_per_sec: f64,
    pub request: Dist,
    /// Mean request time of the first and of the last (up to) five requests of writer 0.
    pub first_ms: f64,
    pub last_ms: f64,
    pub lines: usize,
}

pub async fn push(
    ctx: &Ctx,
    sse: &SseLogs,
    writers: usize,
    batch: usize,
    window: Duration,
    max_requests: usize,
) -> Result<Push, String> {
    let body: String = (0..batch).map(|i| format!("{i:07} {PAD}\n")).collect();
    let started = Instant::now();
    let deadline = started + window;
    let handles: Vec<JoinHandle<Result<Vec<f64>, String>>> = (0..writers)
        .map(|w| {
            let (http, body) = (ctx.http.clone(), body.clone());
            let url =
                format!("http://{}/api/v1/logs/push/{}", sse.addr, ctx.fresh(&format!("w{w}-{batch}-")));
            tokio::spawn(async move {
                let mut times = Vec::new();
                while Instant::now() < deadline && times.len() < max_requests {
                    let t = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", "text/plain")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if response.status().as_u16() != 201 {
                        return Err(format!("append answered {}", response.status()));
                    }
                    let _ = response.bytes().await;
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(times)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut writer0 = Vec::new();
    for (w, handle) in handles.into_iter().enumerate() {
        let times = handle.await.map_err(|e| e.to_string())??;
        if w == 0 {
            writer0.clone_from(&times);
        }
        all.extend(times);
    }
    let secs = started.elapsed().as_secs_f64();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let k = (writer0.len() / 2).min(5);
    Ok(Push {
        writers,
        lines: all.len() * batch,
        lines_per_sec: (all.len() * batch) as f64 / secs,
        request: Dist::of(all),
        first_ms: mean(&writer0[..k]),
        last_ms: mean(&writer0[writer0.len() - k..]),
    })
}

/// Scenario 5 over HTTP/2: `n` streams on `n` logs sharing `connections` h2c connections
/// (memory before and after), then one line to each log.
pub async fn many_logs_h2(
    ctx: &Ctx,
    sse: &SseLogs,
    n: usize,
    connections: usize,
) -> Result<ManyLogs, String> {
    let pid = sse.child.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    let prefix = ctx.fresh("h");
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let peer = Peer::SseLogs(sse);
    let paths = ids.iter().map(|id| peer.stream_path("many", id)).collect();
    let before = Counters::read(&ctx.mongo).await?;
    let started = Instant::now();
    let streams = H2Streams::open(sse.addr, paths, connections).await?;
    let limit = Duration::from_secs(60 + n as u64 / 100);
    streams.wait_ready(limit).await?;
    wait_live(ctx, sse, n, &before, limit).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    let sent = Instant::now();
    for chunk in ids.chunks(100) {
        let documents: Vec<Document> =
            chunk.iter().map(|id| doc! { "type": "many", "id": id, "log": stamp(0) }).collect();
        ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
    }
    let insert_secs = sent.elapsed().as_secs_f64();
    let missing = streams.wait_data(Duration::from_secs(60)).await;
    let all_secs = sent.elapsed().as_secs_f64();
    let firsts = streams.finish(Duration::from_secs(10)).await;
    let each = firsts
        .iter()
        .filter_map(|(at, data)| Some(at.saturating_sub(parse_stamp(data)?.1) as f64 / 1e6))
        .collect();
    let _ = sse.wait_metric(&ctx.http, "sse_logs_streams_open", Duration::from_secs(15), |v| v == 0.0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed_kib = procs::rss_kib(pid).ok_or("no VmRSS")?;
    Ok(ManyLogs {
        n,
        rss_before_kib,
        rss_after_kib,
        rss_closed_kib,
        insert_secs,
        each: Dist::of(each),
        all_secs,
        missing,
        connect_secs,
    })
}

/// Append cost as a log grows: `requests` text bodies of 1,000 lines, one at a time, to one new
/// log of a type that already holds `others` lines of another log (written straight into
/// MongoDB).
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// Mean request time of the first and of the last ten requests.
    pub first_ms: f64,
    pub last_ms: f64,
    /// Lines in the log at the end, as the service answered (`next`).
    pub lines: u64,
}

impl Growth {
    pub fn ratio(&self) -> f64 {
        self.last_ms / self.first_ms.max(1e-9)
    }
}

pub async fn growth(ctx: &Ctx, sse: &SseLogs, requests: usize, others: usize) -> Result<Growth, String> {
    let log_type = ctx.fresh("growth");
    prepare_log(ctx, &log_type, "other", others, true).await?;
    let body: String = (0..1000).map(|i| format!("{i:07} {PAD}\n")).collect();
    let url = format!("http://{}/api/v1/logs/{log_type}/grown", sse.addr);
    let mut times = Vec::with_capacity(requests);
    let mut lines = 0;
    for _ in 0..requests {
        let t = Instant::now();
        let response = ctx
            .http
            .post(&url)
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() != 201 {
            return Err(format!("append answered {}", response.status()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        lines = json_u64(&text, "next").unwrap_or(0);
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let k = 10.min(times.len());
    Ok(Growth { first_ms: mean(&times[..k]), last_ms: mean(&times[times.len() - k..]), lines })
}

/// The number after `"key":` in a flat JSON object.
pub fn json_u64(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Live delivery while many streams open: one viewer follows a log written every ~10 ms; after
/// `before`, `streams` streams open at once on a `long_lines`-line log (each reads it from line 1)
/// for `window`.
#[derive(Debug, Clone)]
pub struct Burst {
    /// The viewer's insert→event latency before the burst and during it.
    pub before: Dist,
    pub during: Dist,
    /// Lines written during the window that never reached the viewer.
    pub missing: usize,
    /// Burst streams whose response head had arrived, and that were subscribed to the hub, at
    /// the end of the window.
    pub opened: usize,
    pub subscribed: usize,
    /// Backlog lines sse-logs read from MongoDB during the window.
    pub backlog_lines: f64,
    /// MongoDB `find`s and `getMore`s run during the window.
    pub finds: u64,
    pub get_mores: u64,
    /// From hanging up the burst streams until sse-logs had closed them all.
    pub close_secs: f64,
    /// Then, how long a snapshot of the long log took (`None`: no answer within 10 s).
    pub snapshot_after_ms: Option<f64>,
}

pub async fn burst(
    ctx: &Ctx,
    sse: &SseLogs,
    long_id: &str,
    streams: usize,
    before: Duration,
    window: Duration,
) -> Result<Burst, String> {
    const EVERY: Duration = Duration::from_millis(10);
    let peer = Peer::SseLogs(sse);
    let live = ctx.fresh("live");
    let most = ((before + window).as_millis() / EVERY.as_millis()) as usize + 1;
    let counters = Counters::read(&ctx.mongo).await?;
    let viewer = Viewers::spawn(
        ctx,
        peer,
        vec![peer.stream_path("burst", &live)],
        most,
        None,
        Duration::from_secs(600),
    );
    let viewer = viewer.ready(ctx, peer, 1, &counters).await?;

    // The writer: one line every ~10 ms until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (coll, live, stop, written) = (ctx.coll.clone(), live.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for seq in 0..most {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                coll.insert_one(doc! { "type": "burst", "id": &live, "log": stamp(seq) })
                    .await
                    .map_err(|e| format!("insert: {e}"))?;
                written.store(seq + 1, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        })
    };
    tokio::time::sleep(before).await;
    let first_during = written.load(Ordering::Relaxed);
    let lines0 = sse.metric(&ctx.http, "sse_logs_backlog_lines_read_total").await.unwrap_or(f64::NAN);
    let c0 = Counters::read(&ctx.mongo).await?;
    let crowd = Viewers::spawn(
        ctx,
        peer,
        vec![peer.stream_path("burst", long_id); streams],
        1,
        None,
        Duration::from_secs(600),
    );
    tokio::time::sleep(window).await;
    let last_during = written.load(Ordering::Relaxed);
    let lines1 = sse.metric(&ctx.http, "sse_logs_backlog_lines_read_total").await.unwrap_or(f64::NAN);
    let c1 = Counters::read(&ctx.mongo).await?;
    let subscribed =
        sse.metric(&ctx.http, "sse_logs_hub_subscribers").await.map_or(0, |v| (v as usize).saturating_sub(1));
    let opened = crowd.ready.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.map_err(|e| e.to_string())??;
    let written = written.load(Ordering::Relaxed);
    // Lines written during the window that are still on their way get 10 s.
    if let Some(last) = written.checked_sub(1) {
        viewer.wait_line(last, Duration::from_secs(10)).await;
    }
    let hung_up = Instant::now();
    crowd.abort();
    let closed =
        sse.wait_metric(&ctx.http, "sse_logs_streams_open", Duration::from_secs(60), |v| v <= 1.0).await;
    let close_secs = hung_up.elapsed().as_secs_f64();
    ctx.coll
        .insert_one(doc! { "type": "burst", "id": &live, "log": "[DONE]" })
        .await
        .map_err(|e| format!("insert: {e}"))?;
    let samples = viewer.join(Duration::from_secs(10)).await;
    closed.map_err(|e| format!("the burst's streams did not close: {e}"))?;
    // Whether the service still reads MongoDB once the burst is gone.
    let probe = Instant::now();
    let url = format!("http://{}/api/v1/logs/burst/{long_id}?limit=1", sse.addr);
    let snapshot = tokio::time::timeout(Duration::from_secs(10), ctx.http.get(&url).send()).await;
    let snapshot_after_ms = match snapshot {
        Ok(Ok(r)) if r.status().is_success() => Some(probe.elapsed().as_secs_f64() * 1000.0),
        _ => None,
    };
    let (mut pre, mut during) = (Vec::new(), Vec::new());
    let last_during = last_during.min(written);
    for &(seq, micros) in samples.iter().flatten() {
        let ms = f64::from(micros) / 1000.0;
        match seq as usize {
            s if s < first_during => pre.push(ms),
            s if s < last_during => during.push(ms),
            _ => {}
        }
    }
    let missing = (last_during - first_during).saturating_sub(during.len());
    let delta = c1.since(&c0);
    Ok(Burst {
        before: Dist::of(pre),
        during: Dist::of(during),
        missing,
        opened,
        subscribed,
        backlog_lines: lines1 - lines0,
        finds: delta.count("find"),
        get_mores: delta.count("getMore"),
        close_secs,
        snapshot_after_ms,
    })
}
