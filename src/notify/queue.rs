//! Claiming and delivering, off the change stream's path.
//!
//! One task takes the events the hub and the index queued, builds each fired webhook's body,
//! claims it in MongoDB and, when the claim is won, starts its first attempt at once. The same
//! task looks every `scan_every` for pending deliveries that are due with no live lease (retries,
//! deliveries of a claimer that died, and those this process had no room for). Attempts run in
//! tasks of their own, at most `IN_FLIGHT` at once and `PER_WEBHOOK` per webhook, so a
//! receiver that never answers holds a few slots for 10 s each and never the others'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::claims::{Claim, Claims, Outcome};
use super::deliver::{attempt, client, next_retry, Answer, ATTEMPT_TIMEOUT};
use super::rules::{Event, Rules};
use super::settings::NotifyTiming;
use super::{body, signature, Notice, NotifyConfig, Trigger};
use crate::backoff::Backoff;
use crate::log::Ending;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Attempts in flight at once, all webhooks together.
const IN_FLIGHT: usize = 16;
/// Attempts in flight at once to one webhook.
const PER_WEBHOOK: usize = 4;
/// How often the age of the oldest pending delivery is read for the metric.
const OLDEST_EVERY: Duration = Duration::from_secs(10);
/// The migration that makes claims unique; nothing is claimed before it is applied.
const CLAIMS_MIGRATION: &str = "0003_notifications";

pub(crate) struct Worker {
    rules: Rules,
    store: Store,
    claims: Claims,
    redactor: Redactor,
    public_url: Option<String>,
    retry_secs: u64,
    timing: NotifyTiming,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    in_flight: Arc<Semaphore>,
    per_webhook: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Worker {
    pub fn new(config: &NotifyConfig, store: Store, redactor: Redactor, metrics: Arc<Metrics>) -> Arc<Self> {
        let settings = &config.settings;
        Arc::new(Self {
            rules: Rules::new(settings).unwrap_or_default(),
            claims: Claims::new(store.database(), settings.timing.lease),
            store,
            redactor,
            public_url: config.public_url.clone(),
            retry_secs: settings.retry_secs,
            timing: settings.timing,
            client: client(ATTEMPT_TIMEOUT),
            metrics,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            per_webhook: Mutex::default(),
        })
    }

    /// Claims every webhook `trigger` fires and starts the attempts of the claims won.
    async fn claim(self: &Arc<Self>, trigger: &Trigger) -> mongodb::error::Result<()> {
        let (key, fired, ending, line) = match trigger {
            Trigger::End { key, ending } => (key, self.rules.on_end(key, *ending), *ending, None),
            Trigger::Idle { key } => (key, self.rules.on_idle(key), Ending::default(), None),
            Trigger::Match { key, oid, text, rules } => {
                let n = self.store.position_of(key, *oid).await?;
                let fired = rules.iter().map(|&r| (r, Event::Match)).collect();
                (key, fired, Ending::default(), Some((n, text.clone())))
            }
        };
        let lines = self.store.count(key).await?;
        for (n, event) in fired {
            let rule = &self.rules.all()[n];
            let notice = Notice { event, key: key.clone(), ending, lines, line: line.clone() };
            let bytes = body(&notice, self.public_url.as_deref(), &self.redactor);
            let won = self.claims.claim(&rule.id, key, event, bytes).await?;
            let result = if won.is_some() { "won" } else { "taken" };
            self.metrics.notify_claims.with_label_values(&[result]).inc();
            if let Some(claim) = won {
                self.start(claim).await;
            }
        }
        Ok(())
    }

    /// Starts an attempt, or gives the delivery back to MongoDB when there is no free slot
    /// (for its webhook, or at all): the scan takes it up once there is.
    async fn start(self: &Arc<Self>, claim: Claim) {
        let slots = self.webhook_slot(&claim.webhook).zip(self.in_flight.clone().try_acquire_owned().ok());
        let Some((slot, global)) = slots else {
            if let Err(err) = self.claims.release(&claim).await {
                tracing::warn!(error = %err, "a delivery could not be given back; its lease runs out");
            }
            return;
        };
        let worker = self.clone();
        tokio::spawn(async move {
            worker.deliver(claim).await;
            drop((slot, global));
        });
    }

    fn webhook_slot(&self, webhook: &str) -> Option<OwnedSemaphorePermit> {
        let mut slots = self.per_webhook.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(webhook.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(PER_WEBHOOK)));
        slot.clone().try_acquire_owned().ok()
    }

    /// The webhooks with no free slot: the scan leaves their deliveries for later.
    fn busy_webhooks(&self) -> Vec<String> {
        let slots = self.per_webhook.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter().filter(|(_, s)| s.available_permits() == 0).map(|(id, _)| id.clone()).collect()
    }

    async fn deliver(&self, mut claim: Claim) {
        let Some(rule) = self.rules.by_id(&claim.webhook) else {
            // The webhook was removed from the configuration since it was claimed.
            tracing::warn!(webhook = %claim.webhook, "a pending delivery's webhook is no longer configured; giving up");
            self.record(&claim, Outcome::GaveUp(None)).await;
            return;
        };
        let sig = rule.secret.as_ref().map(|secret| signature(secret, &claim.body));
        let answer = attempt(&self.client, &rule.url, claim.body.clone(), sig.as_deref()).await;
        claim.attempts += 1;
        let outcome = match answer {
            Answer::Delivered(status) => Outcome::Delivered(status),
            Answer::Refused(status) => self.after_failure(&claim, Some(status)),
            Answer::Silent => self.after_failure(&claim, None),
        };
        self.record(&claim, outcome).await;
    }

    fn after_failure(&self, claim: &Claim, status: Option<u16>) -> Outcome {
        match next_retry(claim.attempts, self.retry_secs) {
            Some(due) => {
                Outcome::Retry(status, claim.created + self.timing.second.mul_f64(due.as_secs_f64()))
            }
            None => Outcome::GaveUp(status),
        }
    }

    async fn record(&self, claim: &Claim, outcome: Outcome) {
        let result = match outcome {
            Outcome::Delivered(_) => "delivered",
            Outcome::Retry(..) => "retried",
            Outcome::GaveUp(_) => "gave_up",
        };
        self.metrics.notify_attempts.with_label_values(&[result]).inc();
        if let Err(err) = self.claims.record(claim, outcome).await {
            // Unrecorded: its lease runs out and it is attempted again (at least once, then).
            tracing::warn!(error = %err, "a webhook attempt's answer could not be recorded");
        }
    }

    /// Takes up the due deliveries this process has room for.
    async fn scan(self: &Arc<Self>) -> mongodb::error::Result<()> {
        while self.in_flight.available_permits() > 0 {
            let Some(claim) = self.claims.take_due(&self.busy_webhooks()).await? else { break };
            self.start(claim).await;
        }
        Ok(())
    }
}

/// Runs until shutdown: claims what `triggers` brings, and scans for due deliveries.
pub(crate) async fn run(worker: Arc<Worker>, mut triggers: mpsc::Receiver<Trigger>, shutdown: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    // Without the unique index two replicas could both win a claim.
    while !matches!(worker.store.migration_applied(CLAIMS_MIGRATION).await, Ok(true)) {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    let mut scan = tokio::time::interval(worker.timing.scan_every);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut oldest = tokio::time::interval(OLDEST_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            trigger = triggers.recv() => {
                let Some(trigger) = trigger else { return };
                worker.metrics.notify_queue.dec();
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
                while let Err(err) = worker.claim(&trigger).await {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "a notification could not be claimed yet");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            _ = scan.tick() => {
                if let Err(err) = worker.scan().await {
                    tracing::warn!(error = %err, "pending webhook deliveries could not be read");
                }
            }
            _ = oldest.tick() => {
                if let Ok(oldest) = worker.claims.oldest_pending().await {
                    let age = oldest.and_then(|t| SystemTime::now().duration_since(t).ok());
                    worker.metrics.notify_oldest_pending.set(age.map_or(0.0, |a| a.as_secs_f64()));
                }
            }
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("rules", &self.rules.all().len()).finish_non_exhaustive()
    }
}
