//! One client's stream: the gapless hand-off from the backlog to the hub, then live lines.
//!
//! The order matters: subscribe to the hub first (events queue up), then read the backlog with
//! one cursor, then take queued events, dropping those the backlog already sent. "Already sent"
//! is decided by `_id` identity: the backlog `_id`s recent enough that the hub may still deliver
//! them are kept in a small set, so even a log written by several processes (whose `_id`s are
//! not in commit order) is served once. The same path serves a catch-up after the hub dropped
//! this subscriber (slow client, change stream lost): then the backlog is `_id > last sent`.
//! A session that does not follow (`raw` without `follow=1`) only reads the backlog once.
//!
//! A session is not a task of its own: it is the response body, run by whatever polls the body
//! (the connection's task), so a new line costs one wake-up between the hub and the socket, and
//! an idle stream holds only its state. It hands each chunk over through a one-chunk slot and
//! goes on only when the connection asks for the next one (a slow client holds it back, the hub
//! then drops it and it catches up later). Dropping the body (the client left) drops it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use sync_wrapper::SyncWrapper;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::config::SseSettings;
use crate::hub::{Event, Hub, Subscription};
use crate::index::Index;
use crate::log::{LogKey, LogLine};
use crate::metrics::{HubFigures, Metrics};
use crate::shutdown::Shutdown;
use crate::sse::{Format, Frames};
use crate::store::{Store, Stored};

/// How far before the hub's horizon a backlog `_id` is remembered for de-duplication. Covers
/// clock skew between writers and this process, and change-stream latency.
const DEDUP_MARGIN: Duration = Duration::from_secs(120);
/// Bytes gathered before a write to the client, so a backlog replays in large chunks.
const FLUSH_BYTES: usize = 32 * 1024;

/// What every session works with: one per process, shared.
#[derive(Debug)]
pub(crate) struct Sessions {
    pub hub: Hub,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub shutdown: Shutdown,
    pub sse: SseSettings,
    /// At shutdown, streams end at random moments over this long (`shutdown.drain_secs`).
    pub drain: Duration,
    /// A change stream silent for longer is reported stalled (not ready).
    pub stall_after: Duration,
    /// The list of logs, kept current by the hub.
    pub index: Index,
}

impl Sessions {
    /// The Prometheus text of `/metrics`; hub figures are sampled now.
    pub fn metrics_text(&self) -> String {
        self.metrics.index_logs.set(i64::try_from(self.index.len()).unwrap_or(i64::MAX));
        self.metrics.render(HubFigures {
            subscribers: self.hub.subscriber_count(),
            logs: self.hub.log_count(),
            live: self.hub.is_live(),
            idle_secs: self.hub.idle().as_secs_f64(),
            resumable: self.hub.is_resumable(),
        })
    }

    /// Why the service cannot serve live lines now, if it cannot.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.hub.is_live() {
            Some("the MongoDB change stream is not running")
        } else if self.hub.idle() > self.stall_after {
            Some(
                "the MongoDB change stream has not answered for longer than mongodb.change_stream_stall_secs",
            )
        } else {
            None
        }
    }
}

/// What a client asked for.
#[derive(Debug, Clone)]
pub(crate) struct StreamRequest {
    /// Which route opened it (a metrics label).
    pub route: &'static str,
    pub key: LogKey,
    /// How many lines the client already has.
    pub from: u64,
    pub format: Format,
    /// Whether to go live after the backlog; otherwise the response ends at the current end.
    pub follow: bool,
}

/// Why the session leaves its current step.
#[derive(Debug)]
enum Break {
    /// `[DONE]` was sent (or lies before the client's position): the response ends.
    Finished,
    /// Shutdown: the response ends cleanly and EventSource reconnects elsewhere.
    Shutdown,
    /// MongoDB failed: retried after a pause, from the last line sent.
    Database(mongodb::error::Error),
}

impl From<mongodb::error::Error> for Break {
    fn from(err: mongodb::error::Error) -> Self {
        Self::Database(err)
    }
}

/// Starts a session and returns its body: a stream of chunks that ends with the log, at
/// shutdown, or never for a log that never ends. Dropping it ends the session. The permit, if
/// any, is held for as long (`crate::combine` holds one for all its sessions).
pub(crate) fn start(
    state: Arc<Sessions>,
    request: StreamRequest,
    permit: Option<OwnedSemaphorePermit>,
) -> Body {
    let span = tracing::info_span!("stream", log_type = %request.key.log_type, id = %request.key.id, from = request.from);
    let state_drain = state.drain;
    let slot = Arc::new(Slot::default());
    let session = Session {
        route: request.route,
        state,
        key: request.key,
        from: request.from,
        format: request.format,
        follow: request.follow,
        pos: 0,
        last: None,
        seen: HashSet::new(),
        out: slot.clone(),
        end_after: crate::backoff::jitter(state_drain),
    };
    let run = async move {
        let _permit = permit;
        session.run().await;
    };
    Body { slot, run: Some(SyncWrapper::new(Box::pin(run.instrument(span)))) }
}

/// Where a session leaves its next chunk for the body to take.
#[derive(Debug, Default)]
struct Slot(Mutex<Option<Bytes>>);

impl Slot {
    fn put(&self, chunk: Bytes) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(chunk);
    }

    fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

/// A session as the response body: polling it runs the session until it has a chunk.
pub(crate) struct Body {
    slot: Arc<Slot>,
    /// The session, until it ends.
    run: Option<SyncWrapper<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Stream for Body {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(chunk) = this.slot.take() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let Some(run) = this.run.as_mut() else { return Poll::Ready(None) };
        let ended = run.get_mut().as_mut().poll(cx).is_ready();
        if ended {
            this.run = None;
        }
        match this.slot.take() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

struct Session {
    route: &'static str,
    state: Arc<Sessions>,
    key: LogKey,
    from: u64,
    format: Format,
    follow: bool,
    /// Line positions consumed so far; the next line is `pos + 1`.
    pos: u64,
    /// `_id` of the last line consumed: where a catch-up starts.
    last: Option<ObjectId>,
    /// Backlog `_id`s the hub may still deliver.
    seen: HashSet<ObjectId>,
    out: Arc<Slot>,
    /// How long after shutdown starts this stream ends (its share of the drain spread).
    end_after: Duration,
}

impl Session {
    async fn run(mut self) {
        // Counted closed however it ends, also when the body is dropped mid-way.
        let _open = OpenStream::new(self.state.metrics.clone(), self.route);
        let preamble = match self.format.preamble(self.state.sse.retry_ms) {
            Some(retry) => self.send(retry).await,
            None => Ok(()),
        };
        let end = match preamble {
            Ok(()) => self.serve().await,
            Err(end) => end,
        };
        tracing::debug!(log_type = %self.key.log_type, id = %self.key.id, position = self.pos, ?end, "stream ended");
    }

    async fn serve(&mut self) -> Break {
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            // The backlog read (a MongoDB cursor and its futures) is boxed: an idle stream's
            // state is then only what following the hub needs.
            let step = async {
                if !self.follow {
                    Box::pin(self.catch_up(SystemTime::now())).await?;
                    return Err(Break::Finished);
                }
                let mut subscription = self.subscribe().await?;
                Box::pin(self.catch_up(subscription.horizon)).await?;
                self.follow(&mut subscription).await
            };
            match step.await {
                // The hub dropped us (we fell behind, or its change stream was lost): catch up.
                Ok(()) => retry.reset(),
                Err(Break::Database(err)) => {
                    tracing::warn!(error = %err, log_type = %self.key.log_type, id = %self.key.id, "reading the log failed; retrying");
                    if let Err(stop) = self.idle(retry.next_delay()).await {
                        return stop;
                    }
                }
                Err(stop) => return stop,
            }
        }
    }

    /// Waits until the hub is live, then subscribes. Sends keep-alives while waiting.
    async fn subscribe(&mut self) -> Result<Subscription, Break> {
        let mut live = self.state.hub.watch_live();
        loop {
            if let Some(subscription) = self.state.hub.subscribe(&self.key) {
                return Ok(subscription);
            }
            let keep_alive = self.state.sse.keep_alive();
            tokio::select! {
                _ = live.changed() => {}
                _ = tokio::time::sleep(keep_alive) => self.keep_alive().await?,
                _ = self.state.shutdown.wait_then(self.end_after) => return Err(Break::Shutdown),
            }
        }
    }

    /// Sends what the client lacks, read from MongoDB with one cursor.
    async fn catch_up(&mut self, horizon: SystemTime) -> Result<(), Break> {
        let cutoff = horizon.checked_sub(DEDUP_MARGIN).unwrap_or(SystemTime::UNIX_EPOCH);
        // Entries older than the new window can no longer arrive from the hub.
        self.seen.retain(|oid| SystemTime::from(oid.timestamp()) >= cutoff);
        let store = self.state.store.clone();
        let mut cursor = match self.last {
            Some(after) => self.guard(store.lines_after(&self.key, after)).await??,
            None if self.from == 0 => {
                self.pos = 0;
                self.guard(store.lines_from(&self.key, 0)).await??
            }
            None => {
                // Read the recent part of the log in full, the part the hub may still deliver,
                // so that lines the client already has are known by `_id` too, not only skipped.
                let (before, recent) = self.guard(store.lines_since(&self.key, cutoff)).await??;
                if before <= self.from {
                    self.pos = before;
                    recent
                } else {
                    self.pos = self.from;
                    self.guard(store.lines_from(&self.key, self.from)).await??
                }
            }
        };
        let mut buf = Frames::default();
        while let Some(stored) = self.guard(cursor.next()).await?? {
            self.state.metrics.backlog_lines_read.inc();
            let Stored::Line(line) = stored else {
                // A batch numbers its lines from its first: it must not span a skipped position.
                self.format.seal(&mut buf, self.pos);
                self.pos += 1;
                continue;
            };
            if SystemTime::from(line.oid.timestamp()) >= cutoff {
                self.seen.insert(line.oid);
            }
            let finished = self.consume(&line, &mut buf);
            if finished || buf.len() >= FLUSH_BYTES {
                self.format.seal(&mut buf, self.pos);
                self.send(buf.take()).await?;
            }
            if finished {
                return Err(Break::Finished);
            }
        }
        if !buf.is_empty() {
            self.format.seal(&mut buf, self.pos);
            self.send(buf.take()).await?;
        }
        Ok(())
    }

    /// Sends live events until the hub drops this subscriber (returns `Ok`) or the session stops.
    async fn follow(&mut self, subscription: &mut Subscription) -> Result<(), Break> {
        let keep_alive = self.state.sse.keep_alive();
        // The keep-alive timer and the shutdown waiter are made once, not per line: with many
        // subscribers of a log, making them anew for each line registers and removes a timer
        // and a waiter per subscriber, on structures every session shares. The timer is moved
        // on only when it fires, to `keep_alive` after the last write.
        let stop = self.state.shutdown.wait_then_owned(self.end_after);
        tokio::pin!(stop);
        let idle = tokio::time::sleep(keep_alive);
        tokio::pin!(idle);
        let mut last_sent = Instant::now();
        loop {
            let event = tokio::select! {
                // A queued line is taken without polling the others.
                biased;
                event = subscription.events.recv() => event,
                _ = &mut stop => return Err(Break::Shutdown),
                _ = &mut idle => {
                    let due = last_sent + keep_alive;
                    if due <= Instant::now() {
                        self.keep_alive().await?;
                        last_sent = Instant::now();
                    }
                    idle.as_mut().reset(last_sent + keep_alive);
                    continue;
                }
            };
            let Some(event) = event else { return Ok(()) };
            last_sent = Instant::now();
            // One new line and nothing queued behind it, the usual case: its frame is the same
            // for every subscriber of the log, so it is encoded once and shared.
            if subscription.events.is_empty() {
                if let Some(frame) = self.shared(&event) {
                    self.send(frame).await?;
                    continue;
                }
            }
            let mut buf = Frames::default();
            let mut finished = self.live(&event, &mut buf);
            // Take a burst in one write.
            while !finished && buf.len() < FLUSH_BYTES {
                let Ok(event) = subscription.events.try_recv() else {
                    break;
                };
                finished = self.live(&event, &mut buf);
            }
            if !buf.is_empty() {
                self.format.seal(&mut buf, self.pos);
                self.send(buf.take()).await?;
            }
            if finished {
                return Err(Break::Finished);
            }
        }
    }

    fn live(&mut self, event: &Event, buf: &mut Frames) -> bool {
        if self.seen.remove(&event.oid) {
            return false;
        }
        self.observe_delay(event);
        self.consume(event, buf)
    }

    /// The shared frame of a live line the client lacks, taking it as [`Session::live`] would;
    /// `None` (and nothing taken) for any other case: a line already sent from the backlog,
    /// one before the client's position, or `[DONE]`, which ends the stream.
    fn shared(&mut self, event: &Event) -> Option<Bytes> {
        let n = self.pos + 1;
        if event.is_done() || n <= self.from || self.seen.contains(&event.oid) {
            return None;
        }
        let format = &self.format;
        let frame = event.frame(format.shared_slot(), n, || format.single(n, &event.text, event.time_ms()));
        self.observe_delay(event);
        self.pos = n;
        self.last = Some(event.oid);
        self.state.metrics.lines_sent.inc();
        Some(frame)
    }

    fn observe_delay(&self, event: &Event) {
        if let Some(delay) = event.inserted_at.and_then(|at| at.elapsed().ok()) {
            self.state.metrics.insert_to_send.observe(delay.as_secs_f64());
        }
    }

    /// Takes the next line of the log; writes it if the client lacks it. True at `[DONE]`.
    fn consume(&mut self, line: &LogLine, buf: &mut Frames) -> bool {
        self.pos += 1;
        self.last = Some(line.oid);
        if self.pos <= self.from {
            return line.is_done();
        }
        if line.is_done() {
            self.format.done(buf, self.pos, line.ending);
            return true;
        }
        self.format.line(buf, self.pos, &line.text, line.time_ms());
        self.state.metrics.lines_sent.inc();
        false
    }

    /// Hands `chunk` to the body and returns once the body asks for the next one.
    async fn send(&self, chunk: Bytes) -> Result<(), Break> {
        let mut chunk = Some(chunk);
        std::future::poll_fn(|_| match chunk.take() {
            Some(chunk) => {
                // Pending without a wake-up: the body takes the chunk in the same poll and polls
                // again when the connection wants more.
                self.out.put(chunk);
                Poll::Pending
            }
            None if self.out.is_empty() => Poll::Ready(Ok(())),
            None => Poll::Pending,
        })
        .await
    }

    /// Runs a MongoDB call unless shutdown starts first (a client that leaves drops it).
    async fn guard<T>(&self, call: impl std::future::Future<Output = T>) -> Result<T, Break> {
        tokio::select! {
            value = call => Ok(value),
            _ = self.state.shutdown.wait_then(self.end_after) => Err(Break::Shutdown),
        }
    }

    /// Waits `period` with keep-alives.
    async fn idle(&self, period: Duration) -> Result<(), Break> {
        self.guard(tokio::time::sleep(period)).await?;
        self.keep_alive().await
    }

    async fn keep_alive(&self) -> Result<(), Break> {
        match self.format.keep_alive() {
            Some(frame) => self.send(frame).await,
            None => Ok(()),
        }
    }
}

/// An open stream in the metrics, from the session's start until it ends or is dropped.
struct OpenStream {
    metrics: Arc<Metrics>,
    route: &'static str,
}

impl OpenStream {
    fn new(metrics: Arc<Metrics>, route: &'static str) -> Self {
        metrics.stream_opened(route);
        Self { metrics, route }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.metrics.stream_closed(self.route);
    }
}
