//! One index stream: the first list, then every change of the index the caller may read, as
//! `event: log` objects, with keep-alives, until the client leaves or shutdown.
//!
//! Fed by the index's broadcast (itself fed by the hub's one change stream), so an open index
//! page costs MongoDB nothing. A stream that falls behind, or an index rebuilt from MongoDB,
//! gets the whole list again: events carry whole objects, so a client just replaces rows.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit};

use super::index::{ListParams, Readable};
use super::params::{Incoming, Query};
use crate::index::{Change, Filter, StateFilter, Summary};
use crate::log::LogKey;
use crate::sse;

/// The metrics label of these streams.
const ROUTE: &str = "index";

/// Everything a stream needs, prepared by the route.
pub(super) struct Feed {
    pub request: Incoming,
    pub query: Query,
    pub params: ListParams,
    pub readable: Readable,
    pub changes: broadcast::Receiver<Change>,
    pub first: Vec<Summary>,
    /// How long after shutdown starts this stream ends (its share of the drain spread).
    pub end_after: std::time::Duration,
}

/// Why the stream stops.
enum Stop {
    ClientGone,
    Shutdown,
}

/// Starts the stream's task; returns its body.
pub(super) fn start(
    feed: Feed,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
    let (out, mut body) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let _permit = permit;
        let metrics = feed.request.state.sessions.metrics.clone();
        metrics.stream_opened(ROUTE);
        let _ = feed.run(&out).await;
        metrics.stream_closed(ROUTE);
    });
    futures_util::stream::poll_fn(move |cx| body.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

impl Feed {
    async fn run(mut self, out: &mpsc::Sender<Bytes>) -> Result<(), Stop> {
        let sessions = self.request.state.sessions.clone();
        let mut first = BytesMut::from(&sse::retry(sessions.sse.retry_ms)[..]);
        // Oldest first, so that on every stream a later event is a more recent update.
        for summary in std::mem::take(&mut self.first).iter().rev() {
            write_log(&mut first, summary);
        }
        self.send(out, first.freeze()).await?;
        let keep_alive = sessions.sse.keep_alive();
        loop {
            let change = tokio::select! {
                change = self.changes.recv() => change,
                _ = tokio::time::sleep(keep_alive) => {
                    self.send(out, sse::keep_alive()).await?;
                    continue;
                }
                _ = out.closed() => return Err(Stop::ClientGone),
                _ = sessions.shutdown.wait_then(self.end_after) => return Err(Stop::Shutdown),
            };
            let chunk = match change {
                Ok(Change::Log(summary)) => self.one(&summary).await,
                Ok(Change::Reset) | Err(RecvError::Lagged(_)) => self.whole_list().await,
                // The index lives as long as the process: only at the very end.
                Err(RecvError::Closed) => return Err(Stop::Shutdown),
            };
            if !chunk.is_empty() {
                self.send(out, chunk.freeze()).await?;
            }
        }
    }

    /// A changed log, if it matches the stream's type and text and the caller may read it. The
    /// state filter is left out here, so that a client sees a log leave the state it asked for.
    async fn one(&mut self, summary: &Arc<Summary>) -> BytesMut {
        let mut chunk = BytesMut::new();
        let filter = Filter { state: StateFilter::All, ..self.params.filter.clone() };
        if !filter.matches(&summary.log_type, &summary.id, summary.status()) {
            return chunk;
        }
        let key = LogKey::new(summary.log_type.clone(), summary.id.clone());
        // 401 or 503 now (an expired token, the auth service down): not shown, never allowed.
        if let Ok(true) = self.readable.allows(&self.request, &self.query, &key).await {
            write_log(&mut chunk, summary);
        }
        chunk
    }

    async fn whole_list(&mut self) -> BytesMut {
        let mut chunk = BytesMut::new();
        if let Ok((logs, _)) = self.readable.page(&self.request, &self.query, &self.params).await {
            for summary in logs.iter().rev() {
                write_log(&mut chunk, summary);
            }
        }
        chunk
    }

    async fn send(&self, out: &mpsc::Sender<Bytes>, chunk: Bytes) -> Result<(), Stop> {
        tokio::select! {
            sent = out.send(chunk) => sent.map_err(|_| Stop::ClientGone),
            _ = self.request.state.sessions.shutdown.wait_then(self.end_after) => Err(Stop::Shutdown),
        }
    }
}

fn write_log(out: &mut BytesMut, summary: &Summary) {
    out.put_slice(b"event: log\ndata: ");
    // serde_json escapes line ends, so the object is always one data line.
    out.put_slice(&serde_json::to_vec(summary).expect("a summary serialises"));
    out.put_slice(b"\n\n");
}
