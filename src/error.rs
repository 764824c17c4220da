//! The one error type of the HTTP API, and the one place that maps it to a status and body.
//!
//! Clients get `{"error":{"code":"<word>","message":"<text>"}}`. MongoDB's own error texts can
//! name hosts, users or collections, so they are logged here and never sent.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Rejection;

/// Seconds a client is asked to wait before retrying a 503.
pub(crate) const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing query parameter `{0}`")]
    MissingParameter(&'static str),
    #[error("`{name}` {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    CrossOrigin(String),
    #[error("access could not be checked: {0}")]
    AccessUnavailable(String),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("unsupported content type; send text/plain or application/json")]
    UnsupportedMediaType,
    #[error("the log has already ended with [DONE]")]
    LogFinished,
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("too many open streams; retry shortly")]
    TooManyStreams,
    #[error("the log database is unavailable; retry shortly")]
    Database(#[from] mongodb::error::Error),
    #[error("not ready: {0}")]
    NotReady(&'static str),
    #[error("internal error")]
    Internal,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MissingParameter(_) => (StatusCode::BAD_REQUEST, "missing_parameter"),
            Self::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            Self::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::CrossOrigin(_) => (StatusCode::FORBIDDEN, "cross_origin"),
            Self::AccessUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "access_unavailable"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            // The contract keeps body problems at 400.
            Self::UnsupportedMediaType => (StatusCode::BAD_REQUEST, "unsupported_media_type"),
            Self::LogFinished => (StatusCode::CONFLICT, "log_finished"),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::TooManyStreams => (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams"),
            Self::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        if let Self::Database(err) = &self {
            tracing::error!(error = %err, "MongoDB operation failed");
        }
        let (status, code) = self.status_and_code();
        let body = Body { error: Detail { code, message: self.to_string() } };
        let mut response = warp::reply::with_status(warp::reply::json(&body), status).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// Turns warp's own rejections (unknown route, wrong method, bad media type) into the contract's
/// JSON error. Handlers answer their own `ApiError`s directly, so none arrive here.
pub(crate) async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<warp::filters::cors::CorsForbidden>().is_some() {
        ApiError::Forbidden("this origin may not use the API (cors.allowed_origins)".into())
    } else if rejection.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::UnsupportedMediaType
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::Internal
    };
    Ok(error.into_response())
}
