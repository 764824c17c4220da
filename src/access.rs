//! Who may read or append to a log: the decision an embedding app (or an auth mode) plugs in.
//!
//! Every route asks before it touches MongoDB or opens a stream. The default allows everything,
//! which is only right behind another gate (the `serve` binary refuses it on a public address).

use std::future::Future;
use std::pin::Pin;

use warp::http::HeaderMap;

use crate::error::ApiError;
use crate::key::LogKey;

/// What the request wants to do with the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stream it or read a snapshot.
    Read,
    /// Append lines to it.
    Write,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Go ahead.
    Allow,
    /// No or invalid credentials: answered 401.
    Unauthorized(String),
    /// Valid credentials, but not for this log or action: answered 403.
    Forbidden(String),
    /// The decision could not be made (an auth service is down): answered 503, never allowed.
    Unavailable(String),
}

/// What a decision can look at.
#[derive(Debug)]
pub struct AccessRequest<'a> {
    /// The request's headers (`Cookie`, `Authorization`, ...).
    pub headers: &'a HeaderMap,
    /// The query string's pairs, decoded.
    pub query: &'a [(String, String)],
    /// Which log.
    pub key: &'a LogKey,
    /// Read or write.
    pub action: Action,
}

impl AccessRequest<'_> {
    /// The value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A boxed decision future, so that checks can call other services.
pub type Decision<'a> = Pin<Box<dyn Future<Output = Access> + Send + 'a>>;

/// Decides whether a request may use a log.
///
/// Any `Fn(&AccessRequest) -> Access` closure is one; implement the trait directly for checks
/// that need to wait on something (a token store, an auth service).
pub trait AccessCheck: Send + Sync + 'static {
    /// Decides for one request.
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> Decision<'a>;
}

impl<F> AccessCheck for F
where
    F: Fn(&AccessRequest<'_>) -> Access + Send + Sync + 'static,
{
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> Decision<'a> {
        let decision = self(request);
        Box::pin(std::future::ready(decision))
    }
}

/// Allows every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessCheck for AllowAll {
    fn check<'a>(&'a self, _request: &'a AccessRequest<'a>) -> Decision<'a> {
        Box::pin(std::future::ready(Access::Allow))
    }
}

/// Asks the configured check; anything but `Allow` becomes the matching API error.
pub(crate) async fn authorize(
    check: &dyn AccessCheck,
    headers: &HeaderMap,
    query: &[(String, String)],
    key: &LogKey,
    action: Action,
) -> Result<(), ApiError> {
    let request = AccessRequest { headers, query, key, action };
    match check.check(&request).await {
        Access::Allow => Ok(()),
        Access::Unauthorized(message) => Err(ApiError::Unauthorized(message)),
        Access::Forbidden(message) => Err(ApiError::Forbidden(message)),
        Access::Unavailable(message) => Err(ApiError::AccessUnavailable(message)),
    }
}
