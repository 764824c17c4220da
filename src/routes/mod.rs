//! The HTTP routes, one function per route, combined into one filter with one `recover`.
//!
//! Each route is a filter (`/// GET /path`) that hands a named async handler what it parsed;
//! handlers return `Result<Response, ApiError>` and [`respond`] turns errors into the contract's
//! JSON.

mod health;
mod index;
mod index_feed;
mod live;
mod logs;
pub(crate) mod openapi;
mod params;
mod raw;
mod readable;
mod streams;
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
use crate::service::Service;

/// What every route shares: the service's parts (store, hub, metrics, shutdown), the access
/// check and the limits.
#[derive(Debug)]
pub(crate) struct AppState {
    pub service: Arc<Service>,
    pub access: Box<dyn AccessCheck>,
    /// Other origins whose state-changing requests are allowed (`cors.allowed_origins`).
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    /// One permit per open stream, so `limits.max_streams` is a hard cap.
    pub stream_slots: Arc<Semaphore>,
}

pub(crate) type SharedState = Arc<AppState>;

impl AppState {
    /// A slot for one more open stream, or 503: `limits.max_streams` is a hard cap.
    pub fn stream_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.stream_slots.clone().try_acquire_owned().map_err(|_| ApiError::TooManyStreams)
    }

    pub fn new(
        service: Service,
        access: Box<dyn AccessCheck>,
        allowed_origins: Vec<String>,
        limits: Limits,
    ) -> SharedState {
        Arc::new(Self {
            service: Arc::new(service),
            access,
            allowed_origins,
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
        .unify()
        .or(openapi::route())
        .unify()
        .or(other_requests())
        .unify();
    let metrics = state.service.metrics.clone();
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
    // warp's CORS filter refuses every origin not listed, this service's own included; its own
    // pages (and clients that send no Origin) skip it. `all` never rejects (`other_requests`
    // answers the rest), so a same-origin request is always answered by the first branch.
    let same_origin = warp::header::headers_cloned()
        .and_then(|headers: warp::http::HeaderMap| async move {
            if crate::origin::is_same_origin(&headers) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    same_origin
        .and(all.clone())
        .or(all.with(cors).map(Reply::into_response))
        .unify()
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
        .or(streams::streams(state.clone()))
        .unify()
        .or(logs::snapshot(state.clone()))
        .unify()
        .or(logs::append(state.clone()))
        .unify()
        .or(index::list(state.clone()))
        .unify()
        .or(index::events(state.clone()))
        .unify()
        .or(raw::raw(state))
        .unify()
        .or(viewer::page())
        .unify()
        .or(viewer::merged_page())
        .unify()
        .or(index::page())
        .unify()
}

/// Every request no route took: 405 with the `Allow` header when its path exists with other
/// methods (the API document knows which), else 404.
fn other_requests() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path::full().and_then(|path: warp::path::FullPath| async move {
        let response = match openapi::allowed_methods(path.as_str()) {
            Some(allow) => {
                let mut response = ApiError::MethodNotAllowed.into_response();
                if let Ok(value) = warp::http::HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(warp::http::header::ALLOW, value);
                }
                response
            }
            None => ApiError::NotFound.into_response(),
        };
        Ok::<_, Rejection>(response)
    })
}

/// Hands the shared state to a handler.
fn with_state(state: SharedState) -> impl Filter<Extract = (SharedState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// An SSE response around `body`.
fn event_stream<S>(body: S) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, Infallible>> + Send + Sync + 'static,
{
    streamed(body, "text/event-stream")
}

/// A response written as `body` produces it: never cached, never buffered by a proxy (nginx
/// reads `X-Accel-Buffering`, so a stock `proxy_pass` passes each piece on as it comes).
fn streamed<S>(body: S, content_type: &'static str) -> Response
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, Infallible>> + Send + Sync + 'static,
{
    use warp::http::{header, HeaderValue};
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Answers a handler's result: the response, or its error as the contract's JSON.
fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

/// Whether `path` is one of the long-lived streaming routes (SSE and `raw`), whose HTTP/1.1
/// responses the server writes itself (see `crate::server`); every other route goes to hyper.
pub(crate) fn is_stream_path(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "api", "v1", "sse", "logs"]
            | ["", "api", "v1", "streams"]
            | ["", "api", "v1", "logs", "events"]
            | ["", "api", "v1", "logs", _, _, "stream" | "raw"]
    )
}

#[cfg(test)]
mod tests {
    use super::is_stream_path;

    #[test]
    fn stream_paths_are_the_streaming_routes_only() {
        for path in [
            "/api/v1/sse/logs/",
            "/api/v1/sse/logs",
            "/api/v1/streams",
            "/api/v1/logs/events",
            "/api/v1/logs/ci/42/stream",
            "/api/v1/logs/ci/a%2Fb/raw",
        ] {
            assert!(is_stream_path(path), "{path}");
        }
        for path in
            ["/", "/api/v1/logs", "/api/v1/logs/ci/42", "/logs/ci/42", "/metrics", "/api/v1/logs/ci/stream"]
        {
            assert!(!is_stream_path(path), "{path}");
        }
    }
}
