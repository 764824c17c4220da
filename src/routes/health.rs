//! Liveness, readiness and metrics.

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::{with_state, SharedState};
use crate::error::ApiError;

/// GET /healthz: the process is up.
pub fn healthz() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({ "status": "ok" })).into_response())
}

/// GET /readyz: MongoDB is reachable and the change stream is running.
pub fn readyz(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("readyz").and(warp::get()).and(with_state(state)).map(|state: SharedState| {
        match state.service.not_ready() {
            None => {
                let body = warp::reply::json(&serde_json::json!({ "status": "ready" }));
                warp::reply::with_status(body, StatusCode::OK).into_response()
            }
            Some(reason) => ApiError::NotReady(reason).into_response(),
        }
    })
}

/// GET /metrics: Prometheus text format.
pub fn metrics(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).and(with_state(state)).map(|state: SharedState| {
        let text = state.service.metrics_text();
        warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
    })
}
