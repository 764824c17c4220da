//! Issue 26's reconnect storm: viewers of live logs come back at once, each with a
//! `Last-Event-ID` among the last 100 lines, while a writer adds 100 lines to each log and `[DONE]`.
//! Measured: MongoDB's commands by name meanwhile, when every viewer was live, whether each got
//! every line once and in order, and what a bystander viewer of another log saw.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use tokio::sync::Semaphore;

use crate::client::{End, SseClient};
use crate::scenarios::{parse_stamp, stamp, Ctx, Dist, Peer, Viewers};
use crate::systems::{Counters, SseLogs};

/// Each viewer resumes from one of the last this many lines of its log.
const RECENT: usize = 100;
/// Lines written to each log during the storm (then `[DONE]`), one every `TICK`.
const DURING: usize = 100;
const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Storm {
    pub viewers: usize,
    /// MongoDB's commands while the storm lasted, by name (`getMore` includes the hub's change
    /// stream, which these server-wide counters cannot tell apart).
    pub commands: Counters,
    /// Viewers that got the last line written before the storm, and when the last of them did.
    pub live: usize,
    pub live_secs: f64,
    /// Viewers that got every line after their `Last-Event-ID` once, in order, then `[DONE]`,
    /// and when the last of them was done.
    pub exact: usize,
    pub done_secs: f64,
    /// Viewers whose connection or response head failed.
    pub failed: usize,
    /// A viewer of another log, a line every 10 ms: insert→event during the storm.
    pub bystander: Dist,
    pub bystander_missing: usize,
}

impl Storm {
    /// `find + aggregate`: the "query commands" (backlog, tail and count reads).
    pub fn queries(&self) -> u64 {
        self.commands.count("find") + self.commands.count("aggregate")
    }
}

/// What one storm viewer saw.
struct Outcome {
    live_at: Option<Duration>,
    done_at: Option<Duration>,
    connected: bool,
}

/// `logs` live logs of `lines` lines, `per_log` viewers of each coming back at once; each viewer
/// gets until `cap` after the storm began.
pub async fn storm(
    ctx: &Ctx,
    sse: &SseLogs,
    logs: usize,
    per_log: usize,
    lines: usize,
    cap: Duration,
) -> Result<Storm, String> {
    let peer = Peer::SseLogs(sse);
    let prefix = ctx.fresh("storm");
    let ids: Vec<String> = (0..logs).map(|i| format!("{prefix}-{i}")).collect();
    let path = |id: &str| format!("/api/v1/logs/storm/{id}/stream");
    let total = lines + DURING;

    // One watcher per log follows it while it is written, as the viewers did before they were
    // dropped: the service has seen every line go by.
    let before = Counters::read(&ctx.mongo).await?;
    let watchers = Viewers::spawn(ctx, peer, ids.iter().map(|id| path(id)).collect(), total, None, cap * 3);
    let watchers = watchers.ready(ctx, peer, logs, &before).await?;
    for start in (0..lines).step_by(10_000) {
        let end = (start + 10_000).min(lines);
        for id in &ids {
            let documents: Vec<Document> =
                (start..end).map(|seq| doc! { "type": "storm", "id": id, "log": stamp(seq) }).collect();
            ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
        }
    }
    let lacking = watchers.wait_line(lines - 1, Duration::from_secs(120)).await;
    if lacking > 0 {
        watchers.abort();
        return Err(format!("{lacking} watchers did not get the log's last line within 120 s"));
    }

    let (bystander, bystander_id, stop, writer, first_during) = bystander(ctx, peer, cap).await?;
    let c0 = Counters::read(&ctx.mongo).await?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + cap;
    let gate = Arc::new(Semaphore::new(ctx.connect_concurrency));
    let mut viewers = Vec::with_capacity(logs * per_log);
    for k in 0..logs * per_log {
        let (addr, path, gate) = (peer.addr(), path(&ids[k % logs]), gate.clone());
        // A Last-Event-ID of L means lines 1..=L were seen: the next is seq L (stamps count from 0).
        let last_id = lines - RECENT + (k / logs) % RECENT;
        viewers.push(tokio::spawn(async move {
            let mut outcome = Outcome { live_at: None, done_at: None, connected: false };
            let permit = gate.acquire_owned().await.map_err(|e| e.to_string());
            let header = format!("Last-Event-ID: {last_id}\r\n");
            let opened = tokio::time::timeout_at(deadline, async {
                let mut client = SseClient::connect_with(addr, &path, None, &header).await?;
                client.read_head().await?;
                Ok::<_, std::io::Error>(client)
            })
            .await;
            drop(permit);
            let Ok(Ok(mut client)) = opened else { return outcome };
            outcome.connected = true;
            let (mut next, mut exact) = (last_id, true);
            let run = client.run(|data| {
                if data == b"[DONE]" {
                    return ControlFlow::Break(());
                }
                match parse_stamp(data) {
                    Some((seq, _)) if seq == next => next += 1,
                    _ => exact = false,
                }
                if next == lines && outcome.live_at.is_none() {
                    outcome.live_at = Some(started.elapsed());
                }
                ControlFlow::Continue(())
            });
            let ended = tokio::time::timeout_at(deadline, run).await;
            if matches!(ended, Ok(Ok(End::Stopped))) && exact && next == total {
                outcome.done_at = Some(started.elapsed());
            }
            outcome
        }));
    }
    write_during(ctx, &ids, lines).await?;
    let mut outcomes = Vec::with_capacity(viewers.len());
    for viewer in viewers {
        outcomes.push(viewer.await.map_err(|e| e.to_string())?);
    }
    let commands = Counters::read(&ctx.mongo).await?.since(&c0);
    let last_during = bystander_end(ctx, &bystander_id, stop, writer).await?;
    let samples = bystander.join(Duration::from_secs(10)).await;
    watchers.abort();
    let during: Vec<f64> = samples
        .iter()
        .flatten()
        .filter(|(seq, _)| (first_during..last_during).contains(&(*seq as usize)))
        .map(|&(_, micros)| f64::from(micros) / 1000.0)
        .collect();
    let latest = |at: &dyn Fn(&Outcome) -> Option<Duration>| {
        outcomes.iter().filter_map(at).max().map_or(f64::NAN, |d| d.as_secs_f64())
    };
    Ok(Storm {
        viewers: outcomes.len(),
        live: outcomes.iter().filter(|o| o.live_at.is_some()).count(),
        live_secs: latest(&|o| o.live_at),
        exact: outcomes.iter().filter(|o| o.done_at.is_some()).count(),
        done_secs: latest(&|o| o.done_at),
        failed: outcomes.iter().filter(|o| !o.connected).count(),
        bystander_missing: (last_during - first_during).saturating_sub(during.len()),
        bystander: Dist::of(during),
        commands,
    })
}

/// The storm's writer: a line to every log each tick, then `[DONE]` to every log.
async fn write_during(ctx: &Ctx, ids: &[String], lines: usize) -> Result<(), String> {
    let mut tick = tokio::time::interval(TICK);
    for seq in lines..lines + DURING {
        tick.tick().await;
        let documents: Vec<Document> =
            ids.iter().map(|id| doc! { "type": "storm", "id": id, "log": stamp(seq) }).collect();
        ctx.coll.insert_many(documents).await.map_err(|e| format!("insert_many: {e}"))?;
    }
    let done: Vec<Document> =
        ids.iter().map(|id| doc! { "type": "storm", "id": id, "log": "[DONE]" }).collect();
    ctx.coll.insert_many(done).await.map_err(|e| format!("insert_many: {e}"))?;
    Ok(())
}

type Writer = tokio::task::JoinHandle<Result<(), String>>;

/// A viewer of a log of its own and a writer adding a stamped line to it every 10 ms until
/// stopped; returns them with the first line's number written from now on.
async fn bystander(
    ctx: &Ctx,
    peer: Peer<'_>,
    cap: Duration,
) -> Result<(Viewers, String, Arc<AtomicBool>, Writer, usize), String> {
    const BEFORE: Duration = Duration::from_millis(500);
    let id = ctx.fresh("by");
    let most = ((cap * 2 + BEFORE).as_millis() / TICK.as_millis()) as usize + 1;
    let before = Counters::read(&ctx.mongo).await?;
    let viewer =
        Viewers::spawn(ctx, peer, vec![format!("/api/v1/logs/stormby/{id}/stream")], most, None, cap * 3);
    let viewer = viewer.ready(ctx, peer, 1, &before).await?;
    let (stop, written) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let writer = {
        let (coll, id, stop, written) = (ctx.coll.clone(), id.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for seq in 0..most {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                coll.insert_one(doc! { "type": "stormby", "id": &id, "log": stamp(seq) })
                    .await
                    .map_err(|e| format!("insert: {e}"))?;
                written.store(seq + 1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    // Some lines before the storm, so that the figures during it start from a settled viewer.
    tokio::time::sleep(BEFORE).await;
    Ok((viewer, id, stop, writer, written.load(Ordering::Relaxed)))
}

/// Stops the bystander's writer, ends its log; returns how many lines it had written.
async fn bystander_end(ctx: &Ctx, id: &str, stop: Arc<AtomicBool>, writer: Writer) -> Result<usize, String> {
    stop.store(true, Ordering::Relaxed);
    writer.await.map_err(|e| e.to_string())??;
    let written =
        ctx.coll.count_documents(doc! { "type": "stormby", "id": id }).await.map_err(|e| e.to_string())?;
    ctx.coll
        .insert_one(doc! { "type": "stormby", "id": id, "log": "[DONE]" })
        .await
        .map_err(|e| format!("insert: {e}"))?;
    Ok(written as usize)
}
