//! The index's background task: builds the list from MongoDB when the hub asks (at start, and
//! after a change stream that could not resume), and announces growing logs once their second
//! has passed.
//!
//! Cost: one aggregation over the lines of the last `index.window_days` days (an `_id` range),
//! then, for the logs found there, one aggregation per 200 logs over their lines made before it
//! (the `{type, id, _id}` index), so that the counts and start times of logs that began earlier are
//! whole; then the `[DONE]` documents of the ended ones by `_id` (how they ended), 1000 a query.
//! Nothing else: every later change comes from the hub's change stream.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bson::oid::ObjectId;

use crate::backoff::Backoff;
use crate::index::Index;
use crate::log::LogKey;
use crate::shutdown::Shutdown;
use crate::store::{LogStats, Store};

/// `[DONE]` documents read per query, so the `$in` stays small.
const ENDINGS_PER_QUERY: usize = 1000;
/// How often growing logs are looked at for announcing.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Runs until shutdown.
pub(crate) async fn run(index: Index, store: Store, shutdown: Shutdown) {
    let mut generations = index.shared.generation.subscribe();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loaded = 0;
    loop {
        let wanted = *generations.borrow_and_update();
        if wanted > loaded {
            tokio::select! {
                _ = shutdown.wait() => return,
                done = load_until_done(&index, &store, wanted) => if done { loaded = wanted },
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = generations.changed() => {}
            _ = flush.tick() => index.flush_pending(),
        }
    }
}

/// Loads generation `wanted`, retrying MongoDB failures; false when a newer one superseded it.
async fn load_until_done(index: &Index, store: &Store, wanted: u64) -> bool {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        if *index.shared.generation.borrow() != wanted {
            return false;
        }
        let started = Instant::now();
        match read(index, store).await {
            Ok((stats, steps)) => {
                let logs = stats.len();
                let lines: u64 = stats.iter().map(|s| s.lines).sum();
                if index.finish_load(wanted, stats) {
                    // The steps' split is what the bench's `index` group reports (issue 24).
                    tracing::info!(
                        logs,
                        lines,
                        window_ms = steps.window.as_millis() as u64,
                        earlier_ms = steps.earlier.as_millis() as u64,
                        took_ms = started.elapsed().as_millis() as u64,
                        "index of logs built"
                    );
                    return true;
                }
                if *index.shared.generation.borrow() == wanted {
                    // Too many inserts arrived while it ran: start over, holding from now.
                    tracing::warn!("index load overtaken by inserts; starting over");
                    index.begin_load();
                }
                return false;
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?delay, "index of logs not built yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// How long each step of a load took.
#[derive(Debug, Default)]
struct Steps {
    window: Duration,
    earlier: Duration,
}

async fn read(index: &Index, store: &Store) -> mongodb::error::Result<(Vec<LogStats>, Steps)> {
    let settings = &index.shared.settings;
    let mut steps = Steps::default();
    if settings.window_days == 0 {
        return Ok((Vec::new(), steps));
    }
    let window = Duration::from_secs(settings.window_days.saturating_mul(86_400));
    let since = SystemTime::now().checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let started = Instant::now();
    let mut stats = store.log_stats_since(since, settings.max_logs).await?;
    steps.window = started.elapsed();
    let keys: Vec<LogKey> = stats.iter().map(|s| s.key.clone()).collect();
    let started = Instant::now();
    let earlier = store.log_stats_before(since, &keys).await?;
    steps.earlier = started.elapsed();
    for log in &mut stats {
        if let Some((first, lines)) = earlier.get(&log.key) {
            log.first = log.first.min(*first);
            log.lines += lines;
        }
    }
    // An ended log's last document is its `[DONE]` (one written after it is ignored, and then
    // the outcome reads as unknown).
    let ended: Vec<ObjectId> = stats.iter().filter(|s| s.done).map(|s| s.last).collect();
    let mut endings = HashMap::new();
    for chunk in ended.chunks(ENDINGS_PER_QUERY) {
        endings.extend(store.endings(chunk.to_vec()).await?);
    }
    for log in stats.iter_mut().filter(|s| s.done) {
        log.ending = endings.get(&log.last).copied().unwrap_or_default();
    }
    Ok((stats, steps))
}
