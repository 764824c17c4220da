//! Several logs on one connection (`GET /api/v1/streams`): one session per log, combined.
//!
//! Each log gets an ordinary [`session`](crate::session), so each keeps the gapless,
//! duplicate-free hand-off of a single-log stream. Their format (`Format::Multi`) writes
//! `id: @n`, this log's position only; the combiner replaces that line by every log's position
//! (`id: 12,0,7`, in the order the logs were asked for), so `Last-Event-ID` resumes them all.
//! The combiner alone writes `retry:` and keep-alives, ends when every session has ended (each
//! ends after its `[DONE]`), and at shutdown or when the client goes away; dropping the
//! sessions (they are streams it polls, not tasks) then ends them too.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::log::LogKey;
use crate::session::{self, Sessions, StreamRequest};
use crate::sse::{self, Format};

/// The metrics label of the per-log sessions of combined streams.
pub(crate) const ROUTE: &str = "streams";
/// Chunks buffered between the combiner and the HTTP connection.
const OUTPUT_CHUNKS: usize = 8;
/// The field line a `Format::Multi` session writes, before its position.
const PLACEHOLDER: &[u8] = b"id: @";

/// One log of a combined stream.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub key: LogKey,
    /// How many lines of it the client already has.
    pub from: u64,
    /// The client already has its `[DONE]`: no session; it only keeps its place in the ids.
    pub ended: bool,
}

/// Starts a session per log that has not ended and the combiner that reads them all; returns
/// the response body. One stream permit covers the whole connection.
pub(crate) fn start(
    state: Arc<Sessions>,
    parts: Vec<Part>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync + 'static {
    let (out, mut body) = mpsc::channel(OUTPUT_CHUNKS);
    let positions: Vec<u64> = parts.iter().map(|part| part.from).collect();
    let sources = parts.into_iter().enumerate().filter(|(_, part)| !part.ended).map(|(at, part)| {
        let format = Format::Multi(Arc::new(part.key.clone()));
        let request = StreamRequest { route: ROUTE, key: part.key, from: part.from, format, follow: true };
        session::start(state.clone(), request, None)
            .map(move |chunk| (at, chunk.unwrap_or_else(|never| match never {})))
            .boxed()
    });
    let sources = futures_util::stream::select_all(sources);
    let end_after = crate::backoff::jitter(state.drain);
    let combiner = Combiner { state, positions, out, end_after };
    tokio::spawn(async move {
        let _permit = permit;
        combiner.run(sources).await;
    });
    futures_util::stream::poll_fn(move |cx| body.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

struct Combiner {
    state: Arc<Sessions>,
    /// Every log's position as sent so far: the `id:` of the next event.
    positions: Vec<u64>,
    out: mpsc::Sender<Bytes>,
    /// How long after shutdown starts the response ends (its share of the drain spread).
    end_after: Duration,
}

/// Why the combiner stops early.
struct Stop;

impl Combiner {
    /// Forwards every session's chunks until all have ended; returning drops `sources`, which
    /// ends every session still running.
    async fn run(mut self, mut sources: impl Stream<Item = (usize, Bytes)> + Unpin) {
        if self.send(sse::retry(self.state.sse.retry_ms)).await.is_err() {
            return;
        }
        let keep_alive = self.state.sse.keep_alive();
        loop {
            let sent = tokio::select! {
                next = sources.next() => match next {
                    Some((log, chunk)) => {
                        let chunk = rewrite_ids(&chunk, log, &mut self.positions);
                        self.send(chunk).await
                    }
                    // Every session ended: each sent its `[DONE]` (or the client had it).
                    None => return,
                },
                _ = tokio::time::sleep(keep_alive) => self.send(sse::keep_alive()).await,
                _ = self.out.closed() => return,
                _ = self.state.shutdown.wait_then(self.end_after) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    async fn send(&self, chunk: Bytes) -> Result<(), Stop> {
        tokio::select! {
            sent = self.out.send(chunk) => sent.map_err(|_| Stop),
            _ = self.state.shutdown.wait_then(self.end_after) => Err(Stop),
        }
    }
}

/// Replaces each `id: @n` field line of log `log`'s chunk by every log's position, with this
/// log's set to `n`. Only whole lines are fields: JSON data never holds a raw newline, so a
/// line starting with `id: @` is always the placeholder, never text of a log line.
fn rewrite_ids(chunk: &[u8], log: usize, positions: &mut [u64]) -> Bytes {
    let mut out = BytesMut::with_capacity(chunk.len() + 64);
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        let position = line
            .strip_prefix(PLACEHOLDER)
            .and_then(|rest| std::str::from_utf8(rest.strip_suffix(b"\n").unwrap_or(rest)).ok())
            .and_then(|digits| digits.parse::<u64>().ok());
        let Some(n) = position else {
            out.put_slice(line);
            continue;
        };
        positions[log] = n;
        out.put_slice(b"id: ");
        for (at, position) in positions.iter().enumerate() {
            if at > 0 {
                out.put_u8(b',');
            }
            out.put_slice(position.to_string().as_bytes());
        }
        out.put_u8(b'\n');
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_becomes_every_position() {
        let mut positions = vec![4, 0, 9];
        let chunk = b"event: line\nid: @1\ndata: {\"line\":\"id: @7\"}\n\nevent: done\nid: @2\ndata: {}\n\n";
        let out = rewrite_ids(chunk, 1, &mut positions);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "event: line\nid: 4,1,9\ndata: {\"line\":\"id: @7\"}\n\nevent: done\nid: 4,2,9\ndata: {}\n\n"
        );
        assert_eq!(positions, [4, 2, 9]);
    }

    #[test]
    fn other_lines_pass_through() {
        let mut positions = vec![1];
        let out = rewrite_ids(b": keep-alive\n\nretry: 5\n\n", 0, &mut positions);
        assert_eq!(&out[..], b": keep-alive\n\nretry: 5\n\n");
        assert_eq!(positions, [1]);
    }
}
