//! Several logs on one connection (`GET /api/v1/streams`): one session per log, merged.
//!
//! Each log gets an ordinary [`session`](crate::session), so each keeps the gapless,
//! duplicate-free hand-off of a single-log stream. Their event streams are merged as they come,
//! each event tagged with its log's place in the request, and the multi-log encoder
//! (`crate::encode::MultiEncoder`) writes every log's position as the `id:` (`12,0,7`), so
//! `Last-Event-ID` resumes them all. The merged stream ends when every session has ended (each
//! ends after its `[DONE]`); dropping it (the client left, shutdown) ends them all.

use std::sync::Arc;

use futures_util::stream::{select_all, SelectAll};
use futures_util::{Stream, StreamExt};

use crate::emit::Hold;
use crate::event::Event;
use crate::log::LogKey;
use crate::service::Service;
use crate::session::{self, StreamRequest};

/// The metrics label of combined streams.
pub(crate) const ROUTE: &str = "streams";

/// One log of a combined stream.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub key: LogKey,
    /// How many lines of it the client already has.
    pub from: u64,
    /// The client already has its `[DONE]`: no session; it only keeps its place in the ids.
    pub ended: bool,
}

/// The events of every part that has not ended, each with its part's index.
pub(crate) fn merged(
    service: &Arc<Service>,
    parts: &[Part],
) -> SelectAll<impl Stream<Item = (usize, Event)> + Hold + Send + Unpin + use<>> {
    let sessions = parts.iter().enumerate().filter(|(_, part)| !part.ended).map(|(at, part)| {
        let request = StreamRequest { key: part.key.clone(), from: part.from, follow: true };
        session::start(service.clone(), request).map(move |event| (at, event))
    });
    select_all(sessions)
}
