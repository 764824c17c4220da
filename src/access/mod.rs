//! Who may read or append to a log: the [`AccessCheck`] an embedding app plugs in, and the
//! `serve` binary's own checks (`auth.mode`), each an implementation of it:
//!
//! - `none`: everyone may read and append (refused on a non-loopback address unless explicit).
//! - `token`: a signed JWT naming the logs its holder may read and append.
//! - `forward`: another service decides, from the request's `Cookie` and `Authorization`.
//!
//! Every route asks before it touches MongoDB or opens a stream. The default allows everything,
//! which is only right behind another gate (the `serve` binary refuses it on a public address).

mod forward;
mod token;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use warp::http::HeaderMap;

#[cfg(feature = "cli")]
pub(crate) use token::mint;
pub use token::Claims;

use crate::config::{AuthMode, AuthSettings, SettingsError};
use crate::error::ApiError;
use crate::log::LogKey;

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

    /// The refusal (401) of a request whose credentials are missing or invalid whatever the log,
    /// when this check can tell without one. Routes that name no log (the index) ask it first,
    /// so that such a request is refused even when there is no log to decide about yet. The
    /// default cannot tell (`None`): those routes then decide log by log.
    fn refuse_credentials(&self, _headers: &HeaderMap, _query: &[(String, String)]) -> Option<Access> {
        None
    }
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

impl AccessCheck for Box<dyn AccessCheck> {
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> Decision<'a> {
        self.as_ref().check(request)
    }

    fn refuse_credentials(&self, headers: &HeaderMap, query: &[(String, String)]) -> Option<Access> {
        self.as_ref().refuse_credentials(headers, query)
    }
}

impl std::fmt::Debug for dyn AccessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessCheck")
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

/// The 401 of a request to a route that names no log, if its credentials are refused whatever
/// the log (see [`AccessCheck::refuse_credentials`]).
pub(crate) fn refuse_credentials(
    check: &dyn AccessCheck,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), ApiError> {
    match check.refuse_credentials(headers, query) {
        None | Some(Access::Allow) => Ok(()),
        Some(Access::Unauthorized(message)) => Err(ApiError::Unauthorized(message)),
        Some(Access::Forbidden(message)) => Err(ApiError::Forbidden(message)),
        Some(Access::Unavailable(message)) => Err(ApiError::AccessUnavailable(message)),
    }
}

/// The check `auth` describes; fails (naming the key) when a key file cannot be read.
pub(crate) fn from_settings(auth: &AuthSettings) -> Result<Box<dyn AccessCheck>, SettingsError> {
    Ok(match auth.mode.unwrap_or(AuthMode::None) {
        AuthMode::None => Box::new(AllowAll),
        AuthMode::Token => Box::new(token::TokenCheck::new(auth)?),
        AuthMode::Forward => Box::new(forward::ForwardCheck::new(
            auth.forward_url.clone().unwrap_or_default(),
            Duration::from_millis(auth.forward_timeout_ms),
            Duration::from_secs(auth.forward_cache_secs),
        )),
    })
}

/// Does a scope entry (`deploy:42`, `deploy:*`, `*`) cover the log `log_type`/`id`?
fn scope_covers(entry: &str, log_type: &str, id: &str) -> bool {
    if entry == "*" {
        return true;
    }
    match entry.split_once(':') {
        Some((t, i)) => t == log_type && (i == "*" || i == id),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::scope_covers;

    #[test]
    fn scopes_name_one_log_every_log_of_a_type_or_everything() {
        assert!(scope_covers("deploy:42", "deploy", "42"));
        assert!(!scope_covers("deploy:42", "deploy", "420"));
        assert!(!scope_covers("deploy:42", "build", "42"));
        assert!(scope_covers("build:*", "build", "anything"));
        assert!(!scope_covers("build:*", "deploy", "1"));
        assert!(scope_covers("*", "x", "y"));
        assert!(!scope_covers("deploy", "deploy", "1"));
        assert!(scope_covers("ci:a:b", "ci", "a:b"));
    }
}
