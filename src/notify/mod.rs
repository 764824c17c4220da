//! Notifications: telling webhooks how a log ended, that it went idle, or that it matched.
//!
//! `rules` turns `notify.webhooks` into checked rules and says which fire for a log's end or
//! line; `body` builds the exact bytes sent and their signature; `deliver` makes one attempt
//! and says when the next is due; `claims` makes each (webhook, log, event) one document in
//! MongoDB, so N replicas deliver it once; `queue` claims and delivers off the change stream's
//! path; `catch_up` finds what ended or matched while no process was following.
//!
//! The hub hands every insert to [`Notifier::observe`] and the index every log turning idle to
//! [`Notifier::idle`]. Both only decide whether the line matters (an end, or a log's first
//! matching line) and `try_send` it on a bounded queue: a slow or dead receiver, or MongoDB,
//! never delays the change stream. A full queue drops the event and asks for a catch-up read,
//! which finds it again in MongoDB.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bson::oid::ObjectId;
use tokio::sync::{mpsc, watch};

use crate::log::{Ending, LogKey, LogLine};
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::shutdown::Shutdown;
use crate::store::Store;
use settings::NotifySettings;

/// The collection of delivery claims (the contract names it; it does not follow the logs').
pub const NOTIFICATIONS: &str = "sse_logs_notifications";

mod body;
mod catch_up;
mod claims;
mod deliver;
mod queue;
pub(crate) mod rules;
pub mod settings;

use body::{body, signature, Notice};
pub use rules::{RuleError, Rules};

/// Events waiting to be claimed, at most.
const TRIGGERS: usize = 4096;
/// (rule, log) pairs remembered as having matched; beyond it the memory starts afresh (the
/// claims' unique key still stops a second delivery, at the cost of one insert).
const MATCHED: usize = 100_000;

/// What the notifier is told: webhooks and where the viewer is reached.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `notify.*`.
    pub settings: NotifySettings,
    /// `http.public_url`, for the body's links.
    pub public_url: Option<String>,
}

/// Something that may fire webhooks, as the hub or the index saw it.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    End {
        key: LogKey,
        ending: Ending,
    },
    Idle {
        key: LogKey,
    },
    /// The first line of a log matching the rules listed (by index).
    Match {
        key: LogKey,
        oid: ObjectId,
        text: String,
        rules: Vec<usize>,
    },
}

/// The hub's and the index's handle on notifications; does nothing without webhooks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notifier {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    rules: Rules,
    triggers: mpsc::Sender<Trigger>,
    /// The (rule, log) pairs whose `match` has fired here already.
    matched: Mutex<HashSet<(usize, LogKey)>>,
    /// The last line seen, and the first one whose event was dropped for a full queue.
    seen: Mutex<Seen>,
    rescan: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    last: Option<ObjectId>,
    dropped: Option<ObjectId>,
}

/// The notifier's tasks, started once the hub they follow exists.
pub(crate) struct Tasks {
    inner: Arc<Inner>,
    triggers: mpsc::Receiver<Trigger>,
    config: NotifyConfig,
}

impl Notifier {
    /// A notifier for `config`'s rules (none: a notifier that does nothing, and no tasks).
    pub fn new(
        config: Option<NotifyConfig>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Option<Tasks>), RuleError> {
        let Some(config) = config.filter(|c| !c.settings.webhooks.is_empty()) else {
            return Ok((Self::default(), None));
        };
        let rules = Rules::new(&config.settings)?;
        let (tx, rx) = mpsc::channel(TRIGGERS);
        let inner = Arc::new(Inner {
            rules,
            triggers: tx,
            matched: Mutex::default(),
            seen: Mutex::default(),
            rescan: tokio::sync::Notify::new(),
            metrics,
        });
        let tasks = Tasks { inner: inner.clone(), triggers: rx, config };
        Ok((Self { inner: Some(inner) }, Some(tasks)))
    }

    /// One insert from the change stream. Cheap: a look at the line, and at most one `try_send`.
    pub fn observe(&self, key: &LogKey, line: &LogLine) {
        let Some(inner) = &self.inner else { return };
        inner.saw(line.oid);
        if line.is_done() {
            if !inner.rules.on_end(key, line.ending).is_empty() {
                inner.send(Trigger::End { key: key.clone(), ending: line.ending }, line.oid);
            }
            inner.forget_matches(key);
            return;
        }
        if !inner.rules.watches_lines(&key.log_type) {
            return;
        }
        let fired = {
            let matched = inner.matched.lock().unwrap_or_else(|e| e.into_inner());
            inner.rules.on_line_unless(key, &line.text, |n| matched.contains(&(n, key.clone())))
        };
        if fired.is_empty() {
            return;
        }
        {
            let mut matched = inner.matched.lock().unwrap_or_else(|e| e.into_inner());
            if matched.len() >= MATCHED {
                matched.clear();
            }
            matched.extend(fired.iter().map(|&n| (n, key.clone())));
        }
        let trigger =
            Trigger::Match { key: key.clone(), oid: line.oid, text: line.text.clone(), rules: fired };
        inner.send(trigger, line.oid);
    }

    /// A live log the index has just marked idle.
    pub fn idle(&self, key: &LogKey) {
        let Some(inner) = &self.inner else { return };
        if !inner.rules.on_idle(key).is_empty() {
            // A dropped idle event is not found again by a catch-up read (see catch_up.rs).
            if inner.triggers.try_send(Trigger::Idle { key: key.clone() }).is_err() {
                inner.metrics.notify_overflows.inc();
            } else {
                inner.metrics.notify_queue.inc();
            }
        }
    }
}

impl Inner {
    fn saw(&self, oid: ObjectId) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.last = seen.last.max(Some(oid));
    }

    fn send(&self, trigger: Trigger, oid: ObjectId) {
        match self.triggers.try_send(trigger) {
            Ok(()) => self.metrics.notify_queue.inc(),
            Err(_) => {
                // Left in MongoDB: the catch-up read starts at or before this line.
                self.metrics.notify_overflows.inc();
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.dropped = Some(seen.dropped.map_or(oid, |d| d.min(oid)));
                drop(seen);
                self.rescan.notify_one();
            }
        }
    }

    fn forget_matches(&self, key: &LogKey) {
        if !self.rules.watches_lines(&key.log_type) {
            return;
        }
        let mut matched = self.matched.lock().unwrap_or_else(|e| e.into_inner());
        for n in 0..self.rules.all().len() {
            matched.remove(&(n, key.clone()));
        }
    }
}

impl Tasks {
    /// Starts claiming and delivering, and the catch-up reads each time `live` turns true.
    pub fn spawn(self, store: Store, live: watch::Receiver<bool>, redactor: Redactor, shutdown: Shutdown) {
        let worker =
            queue::Worker::new(&self.config, store.clone(), redactor.clone(), self.inner.metrics.clone());
        tokio::spawn(queue::run(worker, self.triggers, shutdown.clone()));
        tokio::spawn(catch_up::run(self.inner, store, live, redactor, self.config.settings, shutdown));
    }
}
