//! One client's view of one log: the gapless hand-off from the backlog to the hub, as events.
//!
//! The order matters: subscribe to the hub first (events queue up), then read the backlog with
//! one cursor, then take queued events, dropping those the backlog already gave. "Already
//! given" is decided by `_id` identity: the backlog `_id`s recent enough that the hub may still
//! deliver them are kept in a small set, so even a log written by several processes (whose
//! `_id`s are not in commit order) is served once. The same path serves a catch-up after the
//! hub dropped this subscriber (slow client, change stream lost): then the backlog is
//! `_id > last given`. A session that does not follow (`raw` without `follow=1`) only reads the
//! backlog once.
//!
//! A session yields [`Event`]s and knows nothing of bytes, keep-alives or shutdown: the body
//! that encodes it (`crate::body`) does those, and ends it by dropping it. It is made with
//! `crate::emit`, so it runs only as far as its client reads.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::emit::{emitted, Emitted, Emitter};
use crate::event::{Event, Line};
use crate::hub::{Resume, Subscription};
use crate::log::{LogKey, LogLine};
use crate::service::Service;
use crate::store::{LineCursor, Stored};

/// How far before the hub's horizon a backlog `_id` is remembered for de-duplication. Covers
/// clock skew between writers and this process, and change-stream latency.
const DEDUP_MARGIN: Duration = Duration::from_secs(120);

/// What a client asked for.
#[derive(Debug, Clone)]
pub(crate) struct StreamRequest {
    pub key: LogKey,
    /// How many lines the client already has.
    pub from: u64,
    /// Whether to go live after the backlog; otherwise the stream ends at the current end.
    pub follow: bool,
}

/// Why the session leaves its current step.
#[derive(Debug)]
enum Break {
    /// The end was given (or lies before the client's position): the stream ends.
    Finished,
    /// MongoDB failed: retried after a pause, from the last line given.
    Database(mongodb::error::Error),
}

impl From<mongodb::error::Error> for Break {
    fn from(err: mongodb::error::Error) -> Self {
        Self::Database(err)
    }
}

/// The events of the log the client lacks: its backlog, then (with `follow`) every line as it
/// is written, until its end. Dropping the stream ends the session.
pub(crate) fn start(service: Arc<Service>, request: StreamRequest) -> Emitted<Event> {
    let span = tracing::info_span!("stream", log_type = %request.key.log_type, id = %request.key.id, from = request.from);
    emitted(move |out| {
        let session = Session {
            service,
            key: request.key,
            from: request.from,
            follow: request.follow,
            pos: 0,
            last: None,
            seen: HashSet::new(),
            had_upto: None,
            out,
        };
        session.run().instrument(span)
    })
}

struct Session {
    service: Arc<Service>,
    key: LogKey,
    from: u64,
    follow: bool,
    /// Line positions consumed so far; the next line is `pos + 1`.
    pos: u64,
    /// `_id` of the last line consumed: where a catch-up starts.
    last: Option<ObjectId>,
    /// Backlog `_id`s the hub may still deliver.
    seen: HashSet<ObjectId>,
    /// After joining a window: the newest `_id` it held; the queue's lines up to it are had.
    had_upto: Option<ObjectId>,
    out: Emitter<Event>,
}

impl Session {
    async fn run(mut self) {
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            // The backlog read (a MongoDB cursor and its futures) is boxed: an idle stream's
            // state is then only what following the hub needs.
            let step = async {
                if !self.follow {
                    Box::pin(self.catch_up(SystemTime::now())).await?;
                    return Err(Break::Finished);
                }
                let (mut subscription, window) = self.subscribe().await;
                self.had_upto = None;
                match window {
                    Some(resume) => self.give_window(resume).await?,
                    None => Box::pin(self.catch_up(subscription.horizon)).await?,
                }
                self.follow(&mut subscription).await
            };
            match step.await {
                // The hub dropped us (we fell behind, or its change stream was lost): catch up.
                Ok(()) => retry.reset(),
                Err(Break::Database(err)) => {
                    tracing::warn!(error = %err, log_type = %self.key.log_type, id = %self.key.id, "reading the log failed; retrying");
                    tokio::time::sleep(retry.next_delay()).await;
                }
                Err(Break::Finished) => break,
            }
        }
        tracing::debug!(log_type = %self.key.log_type, id = %self.key.id, position = self.pos, "stream ended");
    }

    /// Waits until the hub is live, then subscribes. A viewer that comes back (its first
    /// subscription, from a position) takes the lines after it from the log's window of recent
    /// lines in the same step, when the window reaches back that far.
    async fn subscribe(&mut self) -> (Subscription, Option<Resume>) {
        let hub = &self.service.hub;
        let resuming = self.last.is_none() && self.from > 0;
        let mut live = hub.watch_live();
        loop {
            let joined = if resuming {
                hub.ensure_window(&self.service.store, &self.key).await;
                hub.reach_back(&self.service.store, &self.key, self.from).await;
                hub.subscribe_from(&self.key, self.from)
            } else {
                hub.subscribe(&self.key).map(|subscription| (subscription, None))
            };
            if let Some(joined) = joined {
                return joined;
            }
            // The hub outlives every stream, so its sender never goes away.
            let _ = live.changed().await;
        }
    }

    /// Gives the window's lines after the client's position: no MongoDB read. The queue's lines
    /// up to the window's newest are then dropped, whatever their age: the change stream may
    /// still bring lines the window's read found first, or older ones (a stream catching up with
    /// lines older than the window gave "line 1" as line 201: `window::a_viewer_that_joined_...`).
    async fn give_window(&mut self, resume: Resume) -> Result<(), Break> {
        self.service.metrics.window_resumes.inc();
        self.had_upto = Some(resume.upto);
        self.pos = self.from;
        for (n, live) in resume.lines {
            debug_assert_eq!(n, self.pos + 1, "a window's positions follow each other");
            if self.consume(&live) {
                self.give(Line::Live(live)).await?;
            }
        }
        Ok(())
    }

    /// Gives what the client lacks, read from MongoDB with one cursor.
    async fn catch_up(&mut self, horizon: SystemTime) -> Result<(), Break> {
        let cutoff = horizon.checked_sub(DEDUP_MARGIN).unwrap_or(SystemTime::UNIX_EPOCH);
        // Entries older than the new window can no longer arrive from the hub.
        self.seen.retain(|oid| SystemTime::from(oid.timestamp()) >= cutoff);
        let store = self.service.store.clone();
        let mut cursor = match self.last {
            Some(after) => store.lines_after(&self.key, after).await?,
            None if self.from == 0 => {
                self.pos = 0;
                store.lines_from(&self.key, 0).await?
            }
            None => {
                // Read the recent part of the log in full, the part the hub may still deliver,
                // so that lines the client already has are known by `_id` too, not only skipped.
                let (before, recent) = store.lines_since(&self.key, cutoff).await?;
                if before <= self.from {
                    self.pos = before;
                    recent
                } else {
                    self.pos = self.from;
                    store.lines_from(&self.key, self.from).await?
                }
            }
        };
        self.out.hold(true);
        let read = self.read(&mut cursor, cutoff).await;
        self.out.hold(false);
        read
    }

    async fn read(&mut self, cursor: &mut LineCursor, cutoff: SystemTime) -> Result<(), Break> {
        while let Some(stored) = cursor.next().await? {
            self.service.metrics.backlog_lines_read.inc();
            let Stored::Line(line) = stored else {
                // It takes a position but is not served.
                self.pos += 1;
                continue;
            };
            if SystemTime::from(line.oid.timestamp()) >= cutoff {
                self.seen.insert(line.oid);
            }
            if self.consume(&line) {
                self.give(Line::Read(line)).await?;
            }
        }
        Ok(())
    }

    /// Gives live events until the hub drops this subscriber (returns `Ok`) or the log ends.
    async fn follow(&mut self, subscription: &mut Subscription) -> Result<(), Break> {
        while let Some(live) = subscription.events.recv().await {
            if self.seen.remove(&live.oid) || self.had_upto.is_some_and(|upto| live.oid <= upto) {
                continue;
            }
            if self.consume(&live) {
                // One new line and nothing behind it, the usual case: written at once.
                self.out.last_ready(subscription.events.is_empty());
                self.give(Line::Live(live)).await?;
                self.out.last_ready(false);
            }
        }
        Ok(())
    }

    /// Takes the next line of the log: true when the client lacks it.
    fn consume(&mut self, line: &LogLine) -> bool {
        self.pos += 1;
        self.last = Some(line.oid);
        if self.pos <= self.from && line.is_done() {
            // The client has the end already; nothing more will come.
            return true;
        }
        self.pos > self.from
    }

    /// Hands the line just consumed to the client; at `[DONE]`, its end, and the stream ends.
    async fn give(&mut self, line: Line) -> Result<(), Break> {
        let n = self.pos;
        if !line.is_done() {
            self.out.emit(Event::Line { n, line }).await;
            return Ok(());
        }
        if n > self.from {
            self.out.emit(Event::End { n, ending: line.ending }).await;
        }
        Err(Break::Finished)
    }
}
