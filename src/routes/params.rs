//! Request parsing shared by the routes: path segments, query strings and `Last-Event-ID`.
//!
//! Query values are read as plain text pairs, so `type[$ne]=x` is just an unknown parameter.

use std::str::FromStr;

use std::convert::Infallible;

use warp::http::HeaderMap;
use warp::Filter;

use super::SharedState;
use crate::access::{authorize, Action};
use crate::error::ApiError;
use crate::log::LogKey;

/// A path segment, percent-decoded (`/logs/ci%20job/7`).
#[derive(Debug, Clone)]
pub struct Segment(pub String);

impl FromStr for Segment {
    type Err = std::str::Utf8Error;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = percent_encoding::percent_decode_str(raw).decode_utf8()?;
        Ok(Self(text.into_owned()))
    }
}

/// The query string as ordered pairs; later duplicates win.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(raw)
            .map(Self)
            .map_err(|_| ApiError::invalid("query", "is not valid URL encoding"))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present and non-empty.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or(ApiError::MissingParameter(name))
    }

    /// An optional non-negative integer.
    pub fn count(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.get(name).map(|v| parse_count(name, v)).transpose()
    }
}

/// A non-negative decimal integer, as `num`, `from`, `limit` and `Last-Event-ID` are.
pub fn parse_count(name: &'static str, text: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(name, "must be a non-negative integer"));
    }
    text.parse().map_err(|_| ApiError::invalid(name, "is too large"))
}

/// What every log route reads from its request, besides the path.
pub struct Incoming {
    pub state: SharedState,
    pub headers: HeaderMap,
    raw_query: String,
}

impl Incoming {
    /// The query string, parsed in the handler so that a malformed one gets the contract's 400.
    pub fn query(&self) -> Result<Query, ApiError> {
        Query::parse(&self.raw_query)
    }

    /// Asks the access check; every log route does this before it touches MongoDB.
    pub async fn authorize(&self, query: &Query, key: &LogKey, action: Action) -> Result<(), ApiError> {
        authorize(self.state.access.as_ref(), &self.headers, query.pairs(), key, action).await
    }

    /// The `Last-Event-ID` header EventSource sends on reconnect, if any.
    pub fn last_event_id(&self) -> Option<String> {
        self.headers.get("last-event-id").map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }
}

/// The state, headers and query string of a request to a log route.
pub fn incoming(state: SharedState) -> impl Filter<Extract = (Incoming,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    raw_query.and(warp::header::headers_cloned()).map(move |raw_query, headers| Incoming {
        state: state.clone(),
        headers,
        raw_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_decimal() {
        assert_eq!(parse_count("num", "0").unwrap(), 0);
        assert_eq!(parse_count("num", "0042").unwrap(), 42);
        for bad in ["", "-1", "+1", "1.5", "abc", " 1", "99999999999999999999999"] {
            assert!(parse_count("num", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn operator_syntax_is_just_an_unknown_key() {
        let q = Query::parse("type[$ne]=x&id=1").unwrap();
        assert!(q.required("type").is_err());
        assert_eq!(q.required("id").unwrap(), "1");
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!("ci%20job".parse::<Segment>().unwrap().0, "ci job");
        assert!("%FF".parse::<Segment>().is_err());
    }
}
