//! The HTTP routes, one function per route, combined into one filter with one `recover`.

mod health;
mod logs;
mod params;
mod stream;
mod viewer;

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::error::recover;
use crate::state::SharedState;

/// Every route of the `serve` binary; errors leave as the contract's JSON. With allowed
/// origins, browsers on those origins may use the API (credentials included); without, only
/// the same origin.
pub fn routes(state: SharedState, allowed_origins: &[String]) -> BoxedFilter<(Response,)> {
    let all = log_routes(state.clone())
        .or(health::healthz())
        .unify()
        .or(health::readyz(state.clone()))
        .unify()
        .or(health::metrics(state.clone()))
        .unify();
    let metrics = state.metrics.clone();
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
pub fn log_routes(state: SharedState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    stream::seed_stream(state.clone())
        .or(stream::log_stream(state.clone()))
        .unify()
        .or(logs::snapshot(state.clone()))
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
