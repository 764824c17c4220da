//! The log as plain text, for curl, wget and the viewer's download button.
//!
//! It is a session in the `Raw` format: the same backlog cursor, and with `follow=1` the same
//! gapless hand-off to live lines as the SSE routes, so `curl -N .../raw?follow=1` prints each
//! line once. The body is streamed as it is read, never built in memory.

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::params::{self, incoming, Incoming, Segment};
use super::{respond, streamed, SharedState};
use crate::access::Action;
use crate::body::streaming;
use crate::encode::{Format, LogEncoder};
use crate::error::ApiError;
use crate::session::{self, StreamRequest};

/// GET /api/v1/logs/{type}/{id}/raw[?follow=1]
pub fn raw(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs" / Segment / Segment / "raw")
        .and(warp::get())
        .and(incoming(state))
        .then(open_raw)
        .map(respond)
}

async fn open_raw(log_type: Segment, id: Segment, request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let follow = query.flag("follow")?;
    let key = params::log_key(log_type.0, id.0)?;
    request.authorize(&query, &key, Action::Read).await?;
    let state = &request.state;
    // A download can take as long as a stream, so it holds a stream slot too.
    let permit = state.stream_permit()?;
    let events = session::start(state.service.clone(), StreamRequest { key, from: 0, follow });
    let body = streaming(&state.service, "raw", events, LogEncoder::new(Format::Raw), Some(permit));
    // `follow=1` is a stream: nginx must pass each line on as it comes.
    let mut response = streamed(body, "text/plain; charset=utf-8");
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
