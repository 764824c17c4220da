//! One index stream's items: the first list, then every change of the index the caller may
//! read, until the client leaves or shutdown (the body, `crate::body`, encodes them as
//! `event: log` objects, keeps the stream alive and ends it).
//!
//! Fed by the index's broadcast (itself fed by the hub's one change stream), so an open index
//! page costs MongoDB nothing. A stream that falls behind, or an index rebuilt from MongoDB,
//! gets the whole list again: events carry whole objects, so a client just replaces rows.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::params::{Incoming, Query};
use super::readable::{ListParams, Readable};
use crate::emit::{emitted, Emitted, Emitter};
use crate::encode::IndexItem;
use crate::index::{Change, Filter, StateFilter, Summary};
use crate::log::LogKey;

/// The metrics label of these streams.
pub(super) const ROUTE: &str = "index";

/// Everything a stream needs, prepared by the route.
pub(super) struct Feed {
    pub request: Incoming,
    pub query: Query,
    pub params: ListParams,
    pub readable: Readable,
    pub changes: broadcast::Receiver<Change>,
    pub first: Vec<Summary>,
}

/// The stream's items.
pub(super) fn start(feed: Feed) -> Emitted<IndexItem> {
    emitted(|out| feed.run(out))
}

impl Feed {
    async fn run(mut self, out: Emitter<IndexItem>) {
        out.emit(IndexItem::List(std::mem::take(&mut self.first))).await;
        loop {
            let item = match self.changes.recv().await {
                Ok(Change::Log(summary)) => self.one(summary).await,
                Ok(Change::Reset) | Err(RecvError::Lagged(_)) => self.whole_list().await,
                // The index lives as long as the process: only at the very end.
                Err(RecvError::Closed) => return,
            };
            if let Some(item) = item {
                out.emit(item).await;
            }
        }
    }

    /// A changed log, if it matches the stream's type and text and the caller may read it. The
    /// state filter is left out here, so that a client sees a log leave the state it asked for.
    async fn one(&mut self, summary: Arc<Summary>) -> Option<IndexItem> {
        let filter = Filter { state: StateFilter::All, ..self.params.filter.clone() };
        if !filter.matches(&summary.log_type, &summary.id, summary.status()) {
            return None;
        }
        let key = LogKey::new(summary.log_type.clone(), summary.id.clone());
        // 401 or 503 now (an expired token, the auth service down): not shown, never allowed.
        match self.readable.allows(&self.request, &self.query, &key).await {
            Ok(true) => Some(IndexItem::Log(summary)),
            _ => None,
        }
    }

    async fn whole_list(&mut self) -> Option<IndexItem> {
        let (logs, _) = self.readable.page(&self.request, &self.query, &self.params).await.ok()?;
        (!logs.is_empty()).then_some(IndexItem::List(logs))
    }
}
