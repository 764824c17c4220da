//! The hub: the process's one change stream, fanned out in memory to the streams of each log.
//!
//! MongoDB cost does not grow with viewers: an idle viewer is an entry in a map. Each subscriber
//! has a bounded queue; a subscriber that falls behind is dropped from the hub (its queue closes)
//! and catches up from MongoDB by `_id` before it subscribes again, so nothing is lost and a slow
//! browser never holds memory or delays the others. When the change stream fails it is reopened
//! from its resume token; when resuming is impossible every subscriber is dropped the same way.
//!
//! It also keeps each followed log's recent lines with their positions (`window.rs`), so that
//! viewers coming back together resume from memory after one read of the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bson::oid::ObjectId;
use mongodb::change_stream::event::ResumeToken;
use mongodb::error::ErrorKind;
use tokio::sync::{mpsc, watch};

mod window;

use window::{Begin, Reach, Windows};
pub(crate) use window::{Bounds, Resume};

use crate::backoff::Backoff;
use crate::event::Live;
use crate::index::{Index, Insert};
use crate::log::LogKey;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::shutdown::Shutdown;
use crate::store::{Change, Inserts, Store};

/// A subscriber's end of its queue of lines.
type Queue = mpsc::Sender<Arc<Live>>;

/// The most lines one read of a log's end gives its window.
const WINDOW_READ: u64 = 1000;

/// Events a subscriber may have queued before it is considered slow.
const QUEUE_CAPACITY: usize = 1024;

#[derive(Clone, Debug)]
pub(crate) struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    live: watch::Sender<bool>,
    /// When the change stream last answered (an event or an empty batch): a stream that stays
    /// open and sends nothing (a replica set that lost its majority) shows up as a growing gap.
    last_answer: Mutex<Instant>,
    /// Whether a resume token is held, so a reopened stream resumes instead of resyncing.
    resumable: AtomicBool,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// Hears every insert, to keep the list of logs current.
    index: Index,
    /// Hears every insert, to tell webhooks of ends and matches.
    notify: Notifier,
}

#[derive(Debug)]
struct State {
    /// Every event committed before this instant has been dispatched (or will be replayed from
    /// the resume token); a subscriber's de-duplication window starts from it.
    caught_up_at: SystemTime,
    subscribers: HashMap<LogKey, Vec<(u64, Queue)>>,
    windows: Windows,
}

/// A subscriber's queue, removed from the hub when dropped.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub events: mpsc::Receiver<Arc<Live>>,
    /// Events committed before this instant may already be in a backlog read made now.
    pub horizon: SystemTime,
    hub: Hub,
    key: LogKey,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(list) = state.subscribers.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                state.subscribers.remove(&self.key);
            }
        }
    }
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>, index: Index, notify: Notifier, bounds: Bounds) -> Self {
        let (live, _) = watch::channel(false);
        let state = State {
            caught_up_at: SystemTime::now(),
            subscribers: HashMap::new(),
            windows: Windows::new(bounds),
        };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                live,
                last_answer: Mutex::new(Instant::now()),
                resumable: AtomicBool::new(false),
                next_id: AtomicU64::new(0),
                metrics,
                index,
                notify,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the map consistent; keep serving.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the subscribers of `key`, or `None` while the change stream is not running (the
    /// caller waits on [`Hub::watch_live`]: a backlog read now could miss what the hub never saw).
    pub fn subscribe(&self, key: &LogKey) -> Option<Subscription> {
        self.subscribe_locked(&mut self.lock(), key)
    }

    fn subscribe_locked(&self, state: &mut State, key: &LogKey) -> Option<Subscription> {
        if !*self.shared.live.borrow() {
            return None;
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        state.subscribers.entry(key.clone()).or_default().push((id, tx));
        let horizon = state.caught_up_at.min(SystemTime::now());
        Some(Subscription { events: rx, horizon, hub: self.clone(), key: key.clone(), id })
    }

    /// Joins the subscribers of `key` and takes, in the same step, the lines after position
    /// `from` that the log's window holds; `None` for the lines when the window does not reach
    /// back that far (or there is none). `None` while the change stream is not running.
    pub fn subscribe_from(&self, key: &LogKey, from: u64) -> Option<(Subscription, Option<Resume>)> {
        // One lock for both: a line dispatched in between would be in the window and the queue.
        let mut state = self.lock();
        let subscription = self.subscribe_locked(&mut state, key)?;
        let lines = state.windows.after(key, from);
        Some((subscription, lines))
    }

    /// Makes sure `key` has a window of recent lines if it can: one read of the log's last lines,
    /// shared by every caller that asks meanwhile (the others wait for it).
    pub async fn ensure_window(&self, store: &Store, key: &LogKey) {
        if !self.is_live() {
            return;
        }
        let Some(begin) = self.lock().windows.begin(key) else { return };
        match begin {
            Begin::Ready => {}
            Begin::Wait(mut done) => {
                let _ = done.wait_for(|done| *done).await;
            }
            Begin::Fill => {
                // A task of its own: the viewer that started it may leave; others wait on it.
                let (hub, store, key) = (self.clone(), store.clone(), key.clone());
                let _ = tokio::spawn(async move { hub.fill_window(&store, &key).await }).await;
            }
        }
    }

    async fn fill_window(&self, store: &Store, key: &LogKey) {
        let read = async {
            let Some(last) = store.last(key).await? else { return Ok(None) };
            let recent = store.recent(key, last.oid, WINDOW_READ).await?;
            Ok::<_, mongodb::error::Error>(Some((last, recent)))
        };
        let read = read.await;
        let mut state = self.lock();
        match read {
            Ok(Some((last, recent))) => state.windows.finish(key, recent, last.position),
            Ok(None) => state.windows.fail(key),
            Err(err) => {
                tracing::warn!(error = %err, log_type = %key.log_type, id = %key.id, "reading a log's last lines failed; its viewers read MongoDB themselves");
                state.windows.fail(key);
            }
        }
    }

    /// Makes `key`'s window reach back to position `from` if it can (`window/reach.rs`): one read
    /// of the lines between, shared by the viewers that ask meanwhile.
    pub async fn reach_back(&self, store: &Store, key: &LogKey, from: u64) {
        // Twice at most: after a read, or after waiting for another, the window says.
        for _ in 0..2 {
            let reach = self.lock().windows.reach(key, from);
            match reach {
                Reach::Done => return,
                Reach::Wait(mut done) => {
                    let _ = done.wait_for(|done| *done).await;
                }
                Reach::Read { before, first, count } => {
                    // A task of its own, as for a fill: the others wait on it.
                    let (hub, store, key) = (self.clone(), store.clone(), key.clone());
                    let _ = tokio::spawn(async move {
                        let read = store.older(&key, before, count).await;
                        if let Err(err) = &read {
                            tracing::warn!(error = %err, log_type = %key.log_type, id = %key.id, "reading the lines before a log's window failed; its viewers read MongoDB themselves");
                        }
                        hub.lock().windows.reached(&key, before, first, count, read.ok());
                    })
                    .await;
                }
            }
        }
    }

    /// Whether `key` has ended, as its window knows it (`Some(Some(position of [DONE]))`,
    /// `Some(None)`: not ended); `None` without a window.
    pub fn known_end(&self, key: &LogKey) -> Option<Option<u64>> {
        self.lock().windows.end(key)
    }

    pub fn is_live(&self) -> bool {
        *self.shared.live.borrow()
    }

    pub fn watch_live(&self) -> watch::Receiver<bool> {
        self.shared.live.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.values().map(Vec::len).sum()
    }

    /// How many logs have at least one subscriber.
    pub fn log_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Whether a stream of this process follows `key` now.
    pub fn is_watched(&self, key: &LogKey) -> bool {
        self.lock().subscribers.contains_key(key)
    }

    fn dispatch(&self, key: &LogKey, event: Arc<Live>) {
        let mut state = self.lock();
        state.windows.heard(key, &event);
        let Some(list) = state.subscribers.get_mut(key) else {
            return;
        };
        list.retain(|(_, tx)| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender closes the queue: the subscriber drains it, then catches up.
                self.shared.metrics.slow_client_catch_ups.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if list.is_empty() {
            state.subscribers.remove(key);
        }
    }

    /// How long since the change stream last answered.
    pub fn idle(&self) -> Duration {
        self.shared.last_answer.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }

    /// Whether the hub holds a resume token.
    pub fn is_resumable(&self) -> bool {
        self.shared.resumable.load(Ordering::Relaxed)
    }

    fn answered(&self) {
        *self.shared.last_answer.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn mark_caught_up(&self, at: SystemTime) {
        let mut state = self.lock();
        state.caught_up_at = state.caught_up_at.max(at);
    }

    fn set_live(&self, live: bool) {
        let _state = self.lock();
        self.shared.live.send_replace(live);
    }

    /// Drops every subscriber; each catches up from MongoDB by its last `_id` and rejoins.
    fn resync_all(&self) {
        let mut state = self.lock();
        if !state.subscribers.is_empty() {
            self.shared.metrics.resyncs.inc();
        }
        state.subscribers.clear();
        state.windows.clear();
    }

    /// Follows the collection's change stream until shutdown. Never fails: errors are logged,
    /// the stream is reopened with backoff, and readiness reflects whether it is running.
    pub async fn run(self, store: Store, shutdown: Shutdown) {
        let mut token: Option<ResumeToken> = None;
        // The last line the stream announced: if MongoDB no longer has it, the token is suspect.
        let mut last_seen: Option<ObjectId> = None;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_triggered() {
            if let (Some(_), Some(oid)) = (&token, last_seen) {
                // A server that crashed may have lost writes it had already announced; its
                // history then no longer holds the token's point, and resuming "after" it could
                // skip the next line written. Checked once per reopen: one `_id` lookup.
                if let Ok(false) = store.contains(oid).await {
                    tracing::warn!("the last line announced is gone from MongoDB (lost in a crash?); every subscriber resyncs");
                    token = None;
                    last_seen = None;
                    self.resync_all();
                }
            }
            let opened = tokio::select! {
                _ = shutdown.wait() => break,
                opened = store.watch_inserts(token.clone()) => opened,
            };
            let mut inserts = match opened {
                Ok(inserts) => inserts,
                Err(err) if token.is_some() && is_server_refusal(&err) => {
                    tracing::warn!(error = %err, "change stream cannot resume; every subscriber resyncs from MongoDB");
                    token = None;
                    self.resync_all();
                    continue;
                }
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "change stream could not open");
                    self.set_live(false);
                    tokio::select! {
                        _ = shutdown.wait() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            };
            if token.is_none() {
                // A fresh stream has not seen what happened before it opened.
                self.resync_all();
                self.mark_caught_up(SystemTime::now());
                // Nor has the index: it is rebuilt from MongoDB, holding inserts from now on.
                self.shared.index.begin_load();
            }
            self.shared.metrics.change_stream_starts.inc();
            self.shared
                .resumable
                .store(inserts.resume_token().or(token.clone()).is_some(), Ordering::Relaxed);
            self.answered();
            self.set_live(true);
            backoff.reset();
            tracing::info!(resumed = token.is_some(), "change stream running");
            token = self.follow(&mut inserts, token, &shutdown, &mut last_seen).await;
            self.shared.resumable.store(token.is_some(), Ordering::Relaxed);
        }
        self.set_live(false);
    }

    /// Dispatches events until the stream fails, is invalidated or shutdown starts; returns the
    /// token to resume from (`None` when the stream cannot be resumed).
    async fn follow(
        &self,
        inserts: &mut Inserts,
        mut token: Option<ResumeToken>,
        shutdown: &Shutdown,
        last_seen: &mut Option<ObjectId>,
    ) -> Option<ResumeToken> {
        loop {
            let next = tokio::select! {
                _ = shutdown.wait() => return token,
                next = inserts.next() => next,
            };
            if next.is_ok() {
                self.answered();
            }
            match next {
                Ok(Some(Change::Inserted { key, line, committed })) => {
                    if let Some(at) = committed {
                        self.mark_caught_up(at);
                    }
                    let (done, ending) = (line.is_done(), line.ending);
                    if done {
                        self.shared.metrics.log_ended(ending.outcome);
                    }
                    let insert = Insert { oid: line.oid, done, ending, at: line.inserted_at };
                    self.shared.index.record(&key, insert);
                    self.shared.notify.observe(&key, &line);
                    *last_seen = Some(line.oid);
                    self.dispatch(&key, Arc::new(Live::new(line)));
                }
                Ok(Some(Change::Invalidated)) => {
                    tracing::warn!("change stream invalidated; every subscriber resyncs from MongoDB");
                    self.set_live(false);
                    self.resync_all();
                    return None;
                }
                Ok(Some(Change::Ignored)) => {}
                Ok(None) => self.mark_caught_up(SystemTime::now()),
                Err(err) => {
                    tracing::warn!(error = %err, "change stream failed; resuming");
                    self.set_live(false);
                    return inserts.resume_token().or(token);
                }
            }
            token = inserts.resume_token().or(token);
            self.shared.resumable.store(token.is_some(), Ordering::Relaxed);
        }
    }
}

/// The server answered and said no (as opposed to being unreachable): resuming will not work.
fn is_server_refusal(err: &mongodb::error::Error) -> bool {
    matches!(*err.kind, ErrorKind::Command(_))
}
