//! The index: which logs exist, as a JSON list, as a live SSE stream, and the index page.
//!
//! Both API routes are served from the in-memory index (`src/index/`): no MongoDB call per
//! request or per open stream. Each listed log is shown only if the access check allows reading
//! it, asked once per log and request (the forward mode also caches its answers).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use warp::reply::{Reply, Response};
use warp::Filter as _;

use super::index_feed;
use super::params::{incoming, Incoming, Query};
use super::{event_stream, respond, SharedState};
use crate::access::Action;
use crate::error::ApiError;
use crate::index::{decode_cursor, encode_cursor, Filter, Index, Position, StateFilter, Summary};
use crate::log::{LogKey, Outcome};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;
/// How long a request waits for the list to be built at start before it gets 503.
const READY_WAIT: Duration = Duration::from_secs(10);
/// Access checks one list request may make; past it the page ends early, with a cursor.
const MAX_CHECKS: usize = 2000;
/// Decisions one index stream remembers before it forgets them all.
const KNOWN_LIMIT: usize = 10_000;

const PAGE: &str = include_str!("index.html");

/// What a list or an index stream asks for.
pub(super) struct ListParams {
    pub filter: Filter,
    pub limit: usize,
    pub before: Option<Position>,
}

impl ListParams {
    fn parse(query: &Query) -> Result<Self, ApiError> {
        let state = match query.single("state")? {
            None | Some("all") => StateFilter::All,
            Some("live") => StateFilter::Live,
            Some("ended") => StateFilter::Ended,
            Some("idle") => StateFilter::Idle,
            Some(word) => match Outcome::parse(word) {
                Some(outcome) => StateFilter::Outcome(outcome),
                None => {
                    return Err(ApiError::invalid(
                        "state",
                        "must be `live`, `ended`, `all`, `idle`, `succeeded`, `failed` or `cancelled`",
                    ))
                }
            },
        };
        let limit = query.count("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let before = match query.single("before")? {
            None | Some("") => None,
            Some(text) => Some(
                decode_cursor(text)
                    .ok_or_else(|| ApiError::invalid("before", "is not a cursor this service issued"))?,
            ),
        };
        let filter = Filter {
            log_type: query.single("type")?.filter(|t| !t.is_empty()).map(str::to_owned),
            state,
            q: query.single("q")?.filter(|q| !q.is_empty()).map(str::to_lowercase),
        };
        Ok(Self { filter, limit: usize::try_from(limit).unwrap_or(usize::MAX), before })
    }
}

#[derive(Serialize)]
struct List {
    logs: Vec<Summary>,
    next: Option<String>,
}

/// GET /api/v1/logs?type=T&state=live|ended|all|idle|succeeded|failed|cancelled&q=TEXT&limit=N&before=CURSOR
pub fn list(state: SharedState) -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs").and(warp::get()).and(incoming(state)).then(list_logs).map(respond)
}

async fn list_logs(request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let params = ListParams::parse(&query)?;
    request.refuse_credentials(&query)?;
    let index = &request.state.sessions.index;
    wait_ready(index).await?;
    let mut readable = Readable::default();
    let (logs, next) = readable.page(&request, &query, &params).await?;
    let body = List { logs, next: next.as_ref().map(encode_cursor) };
    Ok(warp::reply::json(&body).into_response())
}

/// GET /api/v1/logs/events?type=T&state=...&q=TEXT&limit=N
pub fn events(
    state: SharedState,
) -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs" / "events")
        .and(warp::get())
        .and(incoming(state))
        .then(open_events)
        .map(respond)
}

async fn open_events(request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    // A cursor is validated like the list's (a stream always starts from the top).
    let mut params = ListParams::parse(&query)?;
    params.before = None;
    request.refuse_credentials(&query)?;
    let state = request.state.clone();
    let permit = state.stream_permit()?;
    // Listen before the first list is taken, so that no change falls between the two.
    let changes = state.sessions.index.changes();
    wait_ready(&state.sessions.index).await?;
    // The first list is made here so that missing credentials are a 401, not an empty stream.
    let mut readable = Readable::default();
    let (first, _) = readable.page(&request, &query, &params).await?;
    let end_after = crate::backoff::jitter(request.state.sessions.drain);
    let feed = index_feed::Feed { request, query, params, readable, changes, first, end_after };
    let body = index_feed::start(feed, permit);
    Ok(event_stream(body))
}

/// GET /
pub fn page() -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    // Same policy as the viewer: the page writes log names only as text, and could load nothing.
    warp::path::end().and(warp::get()).map(|| super::viewer::html_page(PAGE))
}

async fn wait_ready(index: &Index) -> Result<(), ApiError> {
    let mut ready = index.watch_ready();
    let built =
        tokio::time::timeout(READY_WAIT, ready.wait_for(|ready| *ready)).await.is_ok_and(|r| r.is_ok());
    if built {
        Ok(())
    } else {
        Err(ApiError::NotReady("the list of logs is still being built"))
    }
}

/// The access check's answers for one request (or one index stream), by log.
#[derive(Default)]
pub(super) struct Readable {
    known: HashMap<LogKey, bool>,
}

impl Readable {
    /// Whether the caller may read `key`. Missing credentials (401) or an undecidable check
    /// (503) are errors of the whole request; a 403 only hides this log.
    pub async fn allows(
        &mut self,
        request: &Incoming,
        query: &Query,
        key: &LogKey,
    ) -> Result<bool, ApiError> {
        if let Some(known) = self.known.get(key) {
            return Ok(*known);
        }
        let allowed = match request.authorize(query, key, Action::Read).await {
            Ok(()) => true,
            Err(ApiError::Forbidden(_)) => false,
            Err(other) => return Err(other),
        };
        if self.known.len() >= KNOWN_LIMIT {
            self.known.clear();
        }
        self.known.insert(key.clone(), allowed);
        Ok(allowed)
    }

    /// Up to `limit` readable logs after the cursor, and the cursor of the next page if any.
    pub async fn page(
        &mut self,
        request: &Incoming,
        query: &Query,
        params: &ListParams,
    ) -> Result<(Vec<Summary>, Option<Position>), ApiError> {
        let index = &request.state.sessions.index;
        let mut out: Vec<Summary> = Vec::new();
        let mut after = params.before.clone();
        let mut checks = 0;
        loop {
            // One more than needed: whether a next page exists is known without another pass.
            let batch = index.page(&params.filter, after.as_ref(), params.limit + 1);
            let exhausted = batch.len() <= params.limit;
            for summary in batch {
                if checks == MAX_CHECKS {
                    return Ok((out, after));
                }
                checks += 1;
                after = Some(summary.position.clone());
                let key = LogKey::new(summary.log_type.clone(), summary.id.clone());
                if self.allows(request, query, &key).await? {
                    out.push(summary);
                    if out.len() > params.limit {
                        out.pop();
                        let next = out.last().map(|s| s.position.clone());
                        return Ok((out, next));
                    }
                }
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }
}
