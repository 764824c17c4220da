//! Catching up: the ends and first matches that happened while no process was following.
//!
//! Every process records, every few seconds, the last line its change stream showed it (a
//! checkpoint in `sse_logs_notify_checkpoints`, one document per log collection, the highest
//! `_id` any replica saw). Each time the hub's change stream starts (at start, and after one that
//! had to be reopened) the lines from the checkpoint on are read by `_id` range and queued as if
//! the change stream had shown them; so are those of a queue that overflowed. Claims make the
//! overlap with what was already notified harmless: a second claim of a (webhook, log, event) is
//! refused by the unique key.
//!
//! Limits: the read starts `catch_up_margin` (60 s) before the checkpoint, for writers whose
//! clocks run behind, and never more than `notify.retry_secs` back (what ended earlier is not
//! notified any more); without a checkpoint (the first start with webhooks) nothing before the
//! start is notified. A log that turned idle while no process ran is not notified as idle.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;
use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::Collection;
use tokio::sync::watch;

use super::settings::NotifySettings;
use super::{Inner, Trigger};
use crate::backoff::Backoff;
use crate::log::{Ending, LogKey, DONE};
use crate::redact::Redactor;
use crate::shutdown::Shutdown;
use crate::store::{oid_at, Store};

/// Where the checkpoints are kept.
const CHECKPOINTS: &str = "sse_logs_notify_checkpoints";
/// How often the last line seen is written down.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

struct CatchUp {
    inner: Arc<Inner>,
    store: Store,
    checkpoints: Collection<Document>,
    redactor: Redactor,
    settings: NotifySettings,
}

/// Runs until shutdown: a catch-up read each time `live` turns true or the queue overflowed,
/// and the checkpoint written meanwhile.
pub(super) async fn run(
    inner: Arc<Inner>,
    store: Store,
    mut live: watch::Receiver<bool>,
    redactor: Redactor,
    settings: NotifySettings,
    shutdown: Shutdown,
) {
    let checkpoints = store.database().collection(CHECKPOINTS);
    let task = CatchUp { inner, store, checkpoints, redactor, settings };
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            running = turns(&mut live, true) => if !running { return },
        }
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while let Err(err) = task.read().await {
            let delay = backoff.next_delay();
            tracing::warn!(error = %err, retry_in = ?delay, "notification catch-up read failed");
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = turns(&mut live, false) => break,
                _ = task.inner.rescan.notified() => {
                    if let Err(err) = task.read().await {
                        tracing::warn!(error = %err, "notification catch-up read failed");
                        task.inner.rescan.notify_one();
                    }
                }
                _ = tick.tick() => {
                    if let Err(err) = task.write_checkpoint().await {
                        tracing::warn!(error = %err, "notification checkpoint not written");
                    }
                }
            }
        }
    }
}

/// Waits until `live` is `to`; false when the hub is gone.
async fn turns(live: &mut watch::Receiver<bool>, to: bool) -> bool {
    live.wait_for(|now| *now == to).await.is_ok()
}

impl CatchUp {
    fn key(&self) -> &str {
        self.store.collection_name()
    }

    /// The last line seen, unless an event after it was dropped (the next read starts there).
    async fn write_checkpoint(&self) -> mongodb::error::Result<()> {
        let seen = *self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (Some(last), None) = (seen.last, seen.dropped) else { return Ok(()) };
        let filter = doc! { "_id": self.key() };
        self.checkpoints.update_one(filter, doc! { "$max": { "seen": last } }).upsert(true).await?;
        Ok(())
    }

    async fn read(&self) -> mongodb::error::Result<()> {
        let dropped = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner()).dropped;
        let checkpoint = self.checkpoints.find_one(doc! { "_id": self.key() }).await?;
        let Some(seen) = checkpoint.and_then(|c| c.get_object_id("seen").ok()).or(dropped) else {
            // The first start with webhooks: from now on only. Written `margin` ahead, so that
            // the next read, which starts `margin` before the checkpoint, starts now too.
            let now = oid_at(SystemTime::now() + self.settings.timing.catch_up_margin);
            let filter = doc! { "_id": self.key() };
            self.checkpoints.update_one(filter, doc! { "$max": { "seen": now } }).upsert(true).await?;
            return Ok(());
        };
        let from = seen.min(dropped.unwrap_or(seen));
        let timing = self.settings.timing;
        let horizon = timing.second.mul_f64(self.settings.retry_secs as f64);
        let earliest = SystemTime::now().checked_sub(horizon).unwrap_or(SystemTime::UNIX_EPOCH);
        let start = SystemTime::from(from.timestamp()).checked_sub(timing.catch_up_margin);
        let since = oid_at(start.unwrap_or(SystemTime::UNIX_EPOCH).max(earliest));
        let (ends, matches) = (self.ends(since).await?, self.matches(since).await?);
        tracing::info!(ends, matches, since = %since.timestamp(), "notification catch-up read");
        let mut seen = self.inner.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.dropped == dropped {
            seen.dropped = None;
        }
        Ok(())
    }

    /// Queues the ends stored from `since` on.
    async fn ends(&self, since: ObjectId) -> mongodb::error::Result<usize> {
        let filter = doc! { "_id": { "$gte": since }, "log": DONE };
        let mut cursor = self.store.find_documents(filter, doc! { "log": 0 }).await?;
        let mut queued = 0;
        while let Some(document) = cursor.try_next().await? {
            let Some(key) = LogKey::of_document(&document) else { continue };
            let ending = Ending::of_document(&document);
            if !self.inner.rules.on_end(&key, ending).is_empty()
                && self.queue(Trigger::End { key, ending }).await
            {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues each log's first line matching each `match` rule, from `since` on.
    async fn matches(&self, since: ObjectId) -> mongodb::error::Result<usize> {
        let rules = &self.inner.rules;
        if !rules.any_match() {
            return Ok(0);
        }
        let mut filter = doc! { "_id": { "$gte": since } };
        if let Some(types) = rules.match_types() {
            filter.insert("type", doc! { "$in": types });
        }
        let mut cursor =
            self.store.find_documents(filter, doc! { "_id": 1, "type": 1, "id": 1, "log": 1 }).await?;
        let mut fired: HashSet<(usize, LogKey)> = HashSet::new();
        let mut queued = 0;
        while let Some(document) = cursor.try_next().await? {
            let (Some(key), Ok(oid), Ok(text)) =
                (LogKey::of_document(&document), document.get_object_id("_id"), document.get_str("log"))
            else {
                continue;
            };
            let text = self.redactor.apply(text).into_owned();
            let hits = rules.on_line_unless(&key, &text, |n| fired.contains(&(n, key.clone())));
            if hits.is_empty() {
                continue;
            }
            fired.extend(hits.iter().map(|&n| (n, key.clone())));
            if self.queue(Trigger::Match { key, oid, text, rules: hits }).await {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Queues a trigger, waiting for room (this task is not on the change stream's path).
    async fn queue(&self, trigger: Trigger) -> bool {
        let sent = self.inner.triggers.send(trigger).await.is_ok();
        if sent {
            self.inner.metrics.notify_queue.inc();
        }
        sent
    }
}
