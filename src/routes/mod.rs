//! The HTTP routes, one function per route, combined into one filter with one `recover`.
//!
//! Each route is a filter (`/// GET /path`) that hands a named async handler what it parsed;
//! handlers return `Result<Response, ApiError>` and [`respond`] turns errors into the contract's
//! JSON.

mod health;
mod live;
mod logs;
mod params;
mod raw;
mod viewer;

use std::convert::Infallible;
use std::sync::Arc;

use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::access::AccessCheck;
use crate::config::Limits;
use crate::error::{recover, ApiError};
use crate::session::Sessions;

/// What every route shares: the sessions' machinery (store, hub, metrics, shutdown), the
/// access check and the limits.
#[derive(Debug)]
pub(crate) struct AppState {
    pub sessions: Arc<Sessions>,
    pub access: Box<dyn AccessCheck>,
    pub limits: Limits,
    /// One permit per open stream, so `limits.max_streams` is a hard cap.
    pub stream_slots: Arc<Semaphore>,
}

pub(crate) type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(sessions: Sessions, access: Box<dyn AccessCheck>, limits: Limits) -> SharedState {
        Arc::new(Self {
            sessions: Arc::new(sessions),
            access,
            stream_slots: Arc::new(Semaphore::new(limits.max_streams)),
            limits,
        })
    }
}

/// Every route of the `serve` binary; errors leave as the contract's JSON. With allowed
/// origins, browsers on those origins may use the API (credentials included); without, only
/// the same origin.
pub(crate) fn routes(state: SharedState, allowed_origins: &[String]) -> BoxedFilter<(Response,)> {
    let all = log_routes(state.clone())
        .or(health::healthz())
        .unify()
        .or(health::readyz(state.clone()))
        .unify()
        .or(health::metrics(state.clone()))
        .unify();
    let metrics = state.sessions.metrics.clone();
    let count = warp::log::custom(move |info| {
        metrics.http_responses.with_label_values(&[info.status().as_str()]).inc()
    });
    if allowed_origins.is_empty() {
        return all.recover(recover).unify().with(count).map(Reply::into_response).boxed();
    }
    let cors = warp::cors()
        .allow_origins(allowed_origins.iter().map(String::as_str))
        .allow_credentials(true)
        .allow_methods(["GET", "POST", "OPTIONS"])
        .allow_headers(["authorization", "content-type", "last-event-id", "cache-control"]);
    all.with(cors)
        .map(Reply::into_response)
        .recover(recover)
        .unify()
        .with(count)
        .map(Reply::into_response)
        .boxed()
}

/// The routes an embedding app mounts (see [`crate::LogStreams::filter`]).
pub(crate) fn log_routes(
    state: SharedState,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    live::seed_stream(state.clone())
        .or(live::log_stream(state.clone()))
        .unify()
        .or(logs::snapshot(state.clone()))
        .unify()
        .or(raw::raw(state.clone()))
        .unify()
        .or(logs::append(state))
        .unify()
        .or(viewer::page())
        .unify()
}

/// Hands the shared state to a handler.
fn with_state(state: SharedState) -> impl Filter<Extract = (SharedState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Answers a handler's result: the response, or its error as the contract's JSON.
fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}
