//! The HTTP routes, one function per route, combined into one filter with one `recover`.

mod health;
mod logs;
mod params;
mod stream;
mod viewer;

use std::convert::Infallible;

use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::error::recover;
use crate::state::SharedState;

/// Every route of the `serve` binary; errors leave as the contract's JSON.
pub fn routes(state: SharedState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    log_routes(state.clone())
        .or(health::healthz())
        .unify()
        .or(health::readyz(state.clone()))
        .unify()
        .or(health::metrics(state))
        .unify()
        .recover(recover)
        .unify()
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
