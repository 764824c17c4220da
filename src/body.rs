//! The one streaming response body: any stream of items, encoded at the edge, kept alive,
//! ended at shutdown.
//!
//! Every streaming route (the SSE routes, `raw`, the multi-log stream, the index stream) hands
//! its items and its encoder here. The body writes `retry:` first (a jittered delay, so viewers
//! dropped together come back spread out), then everything its stream has ready in one write
//! (a backlog replays in 32 KiB chunks; one live line alone is its shared encoding), a keep-alive
//! comment after `sse.keep_alive_secs` of silence, and ends at its own moment of the shutdown
//! drain spread (`shutdown.drain_secs`). Dropping the stream ends the session behind it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use sync_wrapper::SyncWrapper;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::emit::Hold;
use crate::encode::Encode;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::sse;

/// Bytes gathered before a write to the client, so a backlog replays in large chunks.
const FLUSH_BYTES: usize = 32 * 1024;

/// A streaming body: `items` encoded by `encoder`. `route` labels it in the metrics; the
/// permit, if any (a slot of `limits.max_streams`), is held until it ends.
pub(crate) fn streaming<S, E>(
    service: &Service,
    route: &'static str,
    items: S,
    encoder: E,
    permit: Option<OwnedSemaphorePermit>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static
where
    S: Stream<Item = E::Item> + Hold + Send + Unpin + 'static,
    E: Encode,
    E::Item: Send,
{
    let keep_alive = service.sse.keep_alive();
    let stop = service.shutdown.wait_then_owned(crate::backoff::jitter(service.drain));
    let preamble = encoder.is_sse().then(|| sse::retry(service.sse.retry_ms));
    Body {
        parts: SyncWrapper::new(Parts {
            items: Some(items),
            encoder,
            out: BytesMut::new(),
            full: false,
            stop: Box::pin(stop),
            idle: Box::pin(tokio::time::sleep(keep_alive)),
            last_write: Instant::now(),
            keep_alive,
        }),
        preamble,
        open: OpenStream::new(service.metrics.clone(), route),
        _permit: permit,
    }
}

struct Body<S, E> {
    /// Polled only through `&mut`, so the body is `Sync` whatever they are.
    parts: SyncWrapper<Parts<S, E>>,
    preamble: Option<Bytes>,
    open: OpenStream,
    _permit: Option<OwnedSemaphorePermit>,
}

struct Parts<S, E> {
    /// The items, until they end or the stream stops.
    items: Option<S>,
    encoder: E,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// What is gathered for the next write.
    out: BytesMut,
    /// The last write was a full one (a backlog being replayed).
    full: bool,
    /// Fires at `last_write + keep_alive`; moved on only when it fires, not at every write.
    idle: Pin<Box<Sleep>>,
    last_write: Instant,
    keep_alive: Duration,
}

impl<S, E> Stream for Body<S, E>
where
    S: Stream<Item = E::Item> + Hold + Unpin,
    E: Encode,
{
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(preamble) = this.preamble.take() {
            return Poll::Ready(Some(Ok(preamble)));
        }
        let metrics = &this.open.metrics;
        this.parts.get_mut().poll_write(cx, metrics).map(|chunk| chunk.map(Ok))
    }
}

impl<S, E> Parts<S, E>
where
    S: Stream<Item = E::Item> + Hold + Unpin,
    E: Encode,
{
    fn poll_write(&mut self, cx: &mut Context<'_>, metrics: &Metrics) -> Poll<Option<Bytes>> {
        // The shutdown moment is looked at when there is nothing to write, and between full
        // writes (a long backlog): not for every live line, where thousands of viewers of a log
        // would all touch the one shutdown signal.
        if self.full && self.stopped(cx) {
            return Poll::Ready(None);
        }
        let Some(items) = self.items.as_mut() else { return Poll::Ready(None) };
        // One item alone is written as its shared encoding, so it is held back until the
        // next poll says whether another one follows.
        let mut alone: Option<E::Item> = None;
        let mut ended = false;
        while self.out.len() < FLUSH_BYTES {
            match Pin::new(&mut *items).poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    self.encoder.count(&item, metrics);
                    match alone.take() {
                        None if self.out.is_empty() => {
                            alone = Some(item);
                            if items.alone() {
                                break;
                            }
                        }
                        held => {
                            if let Some(held) = held {
                                self.encoder.encode(&held, &mut self.out);
                            }
                            self.encoder.encode(&item, &mut self.out);
                        }
                    }
                }
                Poll::Ready(None) => {
                    ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if ended {
            self.items = None;
        } else if self.out.len() < FLUSH_BYTES && items.holding() {
            // A backlog read goes on: gather more before writing (the keep-alive timer still
            // writes what was gathered if the read stalls).
            if let Some(item) = alone {
                self.encoder.encode(&item, &mut self.out);
            }
            return self.poll_idle(cx);
        }
        let shared = alone.and_then(|item| {
            self.encoder.shared(&item).or_else(|| {
                self.encoder.encode(&item, &mut self.out);
                None
            })
        });
        if let Some(chunk) = shared {
            self.wrote(&chunk);
            return Poll::Ready(Some(chunk));
        }
        if let Some(chunk) = self.take() {
            return Poll::Ready(Some(chunk));
        }
        if ended {
            return Poll::Ready(None);
        }
        self.poll_idle(cx)
    }

    /// What was gathered, sealed, if anything.
    fn take(&mut self) -> Option<Bytes> {
        self.encoder.seal(&mut self.out);
        if self.out.is_empty() {
            return None;
        }
        let chunk = self.out.split().freeze();
        self.wrote(&chunk);
        Some(chunk)
    }

    /// Notes a write: the keep-alive counts from it, and a full one makes the next poll look
    /// at the shutdown moment first.
    fn wrote(&mut self, chunk: &Bytes) {
        self.last_write = Instant::now();
        self.full = chunk.len() >= FLUSH_BYTES;
    }

    /// Whether this stream's moment of the shutdown drain has come (then it ends).
    fn stopped(&mut self, cx: &mut Context<'_>) -> bool {
        let stopped = self.stop.as_mut().poll(cx).is_ready();
        if stopped {
            self.items = None;
        }
        stopped
    }

    /// After `keep_alive` without a write: what was gathered, else a keep-alive comment (SSE
    /// only). Until then, pending.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.stopped(cx) {
            return Poll::Ready(None);
        }
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let due = self.last_write + self.keep_alive;
            if due > now {
                self.idle.as_mut().reset(due);
                continue;
            }
            self.idle.as_mut().reset(now + self.keep_alive);
            if let Some(chunk) = self.take() {
                return Poll::Ready(Some(chunk));
            }
            if self.encoder.is_sse() {
                let keep_alive = sse::keep_alive();
                self.wrote(&keep_alive);
                return Poll::Ready(Some(keep_alive));
            }
        }
    }
}

/// An open stream in the metrics, from its start until it ends or is dropped.
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
