//! The two SSE routes, the seed-compatible one and the RESTful one; each opens a session.

use std::time::Duration;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::params::{self, incoming, Incoming, Query, Segment};
use super::{event_stream, respond, SharedState};
use crate::access::Action;
use crate::body::streaming;
use crate::encode::{Format, LogEncoder};
use crate::error::ApiError;
use crate::log::LogKey;
use crate::session::{self, StreamRequest};

/// How long the "has this log already ended?" check may delay a stream's first byte.
const DONE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// GET /api/v1/sse/logs/?type=T&id=I&num=N
pub fn seed_stream(
    state: SharedState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    // Matches with and without the trailing slash.
    warp::path!("api" / "v1" / "sse" / "logs")
        .and(warp::get())
        .and(incoming(state))
        .then(open_seed)
        .map(respond)
}

/// GET /api/v1/logs/{type}/{id}/stream?from=N[&format=json|batch[&times=1]]
pub fn log_stream(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs" / Segment / Segment / "stream")
        .and(warp::get())
        .and(incoming(state))
        .then(open_log)
        .map(respond)
}

async fn open_seed(request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let key = params::log_key(query.required("type")?, query.required("id")?)?;
    let from = query.count("num")?.unwrap_or(0);
    open(&request, &query, "seed", key, from, Format::Text).await
}

async fn open_log(log_type: Segment, id: Segment, request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let from = query.count("from")?.unwrap_or(0);
    let times = query.flag("times")?;
    let format = match query.single("format")? {
        None | Some("text") if times => {
            return Err(ApiError::invalid("times", "needs `format=batch` (`json` events always carry `t`)"));
        }
        None | Some("text") => Format::Text,
        Some("json") => Format::Json,
        Some("batch") => Format::Batch { times },
        Some(_) => return Err(ApiError::invalid("format", "must be `text`, `json` or `batch`")),
    };
    open(&request, &query, "stream", params::log_key(log_type.0, id.0)?, from, format).await
}

async fn open(
    request: &Incoming,
    query: &Query,
    route: &'static str,
    key: LogKey,
    from: u64,
    format: Format,
) -> Result<Response, ApiError> {
    // EventSource's reconnect header wins over the URL it reconnects to.
    let from = match request.last_event_id().as_deref() {
        Some("") | None => from,
        Some(text) => params::parse_count("Last-Event-ID", text.trim())?,
    };
    request.authorize(query, &key, Action::Read).await?;
    let state = &request.state;
    let permit = state.stream_permit()?;
    if from > 0 && state.service.hub.is_live() && already_ended(state, &key, from).await {
        return Ok(no_content());
    }
    tracing::debug!(log_type = %key.log_type, id = %key.id, from, "stream opened");
    let events = session::start(state.service.clone(), StreamRequest { key, from, follow: true });
    Ok(event_stream(streaming(&state.service, route, events, LogEncoder::new(format), Some(permit))))
}

/// The answer to a client that already has every `[DONE]` it asked for.
pub(super) fn no_content() -> Response {
    // 204 is what makes EventSource stop reconnecting.
    warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response()
}

/// True when the client already has the `[DONE]` line. A failed or slow check opens the stream
/// anyway: the session itself waits out a MongoDB outage with keep-alives.
pub(super) async fn already_ended(state: &SharedState, key: &LogKey, from: u64) -> bool {
    // A log being followed is answered from its window: a storm of reconnects costs one read.
    let service = &state.service;
    let window = tokio::time::timeout(DONE_CHECK_TIMEOUT, service.hub.ensure_window(&service.store, key));
    if window.await.is_ok() {
        if let Some(end) = service.hub.known_end(key) {
            return end.is_some_and(|done| from >= done);
        }
    }
    match tokio::time::timeout(DONE_CHECK_TIMEOUT, state.service.store.done_position(key)).await {
        Ok(Ok(done)) => done.is_some_and(|done| from >= done),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not check whether the log has ended");
            false
        }
        Err(_) => false,
    }
}
