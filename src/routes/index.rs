//! The index: which logs exist, as a JSON list, as a live SSE stream, and the index page.
//!
//! Both API routes are served from the in-memory index (`src/index/`): no MongoDB call per
//! request or per open stream. Each listed log is shown only if the access check allows reading
//! it, asked once per log and request (the forward mode also caches its answers).

use std::time::Duration;

use serde::Serialize;
use warp::reply::{Reply, Response};
use warp::Filter as _;

use super::index_feed;
use super::params::{incoming, Incoming};
use super::readable::{ListParams, Readable};
use super::{event_stream, respond, SharedState};
use crate::body::streaming;
use crate::encode::IndexEncoder;
use crate::error::ApiError;
use crate::index::{encode_cursor, Index, Summary};

/// How long a request waits for the list to be built at start before it gets 503.
const READY_WAIT: Duration = Duration::from_secs(10);

const PAGE: &str = include_str!("index.html");

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
    let index = &request.state.service.index;
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
    let changes = state.service.index.changes();
    wait_ready(&state.service.index).await?;
    // The first list is made here so that missing credentials are a 401, not an empty stream.
    let mut readable = Readable::default();
    let (first, _) = readable.page(&request, &query, &params).await?;
    let feed = index_feed::Feed { request, query, params, readable, changes, first };
    let body =
        streaming(&state.service, index_feed::ROUTE, index_feed::start(feed), IndexEncoder, Some(permit));
    Ok(event_stream(body))
}

/// GET /
pub fn page() -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    // Same policy as the viewer: the page writes log names only as text, and could load nothing.
    warp::path::end().and(warp::get()).map(|| super::viewer::html_page(PAGE))
}

pub(super) async fn wait_ready(index: &Index) -> Result<(), ApiError> {
    let mut ready = index.watch_ready();
    let built =
        tokio::time::timeout(READY_WAIT, ready.wait_for(|ready| *ready)).await.is_ok_and(|r| r.is_ok());
    if built {
        Ok(())
    } else {
        Err(ApiError::NotReady("the list of logs is still being built"))
    }
}
