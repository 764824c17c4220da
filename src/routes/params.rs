//! Request parsing shared by the routes: path segments, query strings and `Last-Event-ID`.
//!
//! Query values are read as plain text pairs, so `type[$ne]=x` is just an unknown parameter.

use std::str::FromStr;

use std::convert::Infallible;

use warp::http::{HeaderMap, Method};
use warp::Filter;

use super::SharedState;
use crate::access::{authorize, refuse_credentials, Action};
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

    /// A parameter given at most once: `type=a&type=b` is ambiguous, so 400 rather than a guess.
    pub fn single(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (value, None) => Ok(value),
            (Some(_), Some(_)) => Err(ApiError::invalid(name, "is given more than once")),
            (None, Some(_)) => unreachable!("an iterator yields nothing after None"),
        }
    }

    /// A parameter that must be present once and non-empty.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.single(name)?.filter(|v| !v.is_empty()).ok_or(ApiError::MissingParameter(name))
    }

    /// An optional yes/no switch (`1`/`true` or `0`/`false`), given at most once; absent is no.
    pub fn flag(&self, name: &'static str) -> Result<bool, ApiError> {
        match self.single(name)? {
            None | Some("" | "0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(_) => Err(ApiError::invalid(name, "must be `1` or `0`")),
        }
    }

    /// An optional non-negative integer, given at most once.
    pub fn count(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.single(name)?.map(|v| parse_count(name, v)).transpose()
    }
}

/// A non-negative decimal integer, as `num`, `from`, `limit` and `Last-Event-ID` are.
pub fn parse_count(name: &'static str, text: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(name, "must be a non-negative integer"));
    }
    // MongoDB counts and skips in signed 64 bits.
    text.parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| ApiError::invalid(name, "is too large (at most 9223372036854775807)"))
}

/// The key of the log a request names. Type and id are plain values (`a/b` or `..` is just a
/// name), but control characters (NUL, newlines, escapes) are refused: no real log has them, and
/// they would only confuse logs, terminals and the auth service that gets them.
pub fn log_key(log_type: impl Into<String>, id: impl Into<String>) -> Result<LogKey, ApiError> {
    let key = LogKey::new(log_type, id);
    for (name, value) in [("type", &key.log_type), ("id", &key.id)] {
        if value.chars().any(char::is_control) {
            return Err(ApiError::invalid(name, "must not contain control characters"));
        }
    }
    Ok(key)
}

/// What every log route reads from its request, besides the path.
pub struct Incoming {
    pub state: SharedState,
    pub headers: HeaderMap,
    method: Method,
    raw_query: String,
}

impl Incoming {
    /// The query string, parsed in the handler so that a malformed one gets the contract's 400.
    pub fn query(&self) -> Result<Query, ApiError> {
        Query::parse(&self.raw_query)
    }

    /// Asks the access check; every log route does this before it touches MongoDB. A
    /// state-changing request from another site is refused first (see `crate::origin`).
    pub async fn authorize(&self, query: &Query, key: &LogKey, action: Action) -> Result<(), ApiError> {
        let origins = &self.state.allowed_origins;
        if let Some(refusal) = crate::origin::cross_site_refusal(&self.method, &self.headers, origins) {
            return Err(ApiError::CrossOrigin(refusal));
        }
        authorize(self.state.access.as_ref(), &self.headers, query.pairs(), key, action).await
    }

    /// Refuses missing or invalid credentials up front, where the access check can tell without
    /// a log: the index routes name none, and would otherwise wait for the list to be built (503)
    /// or find no log to decide about (an empty 200).
    pub fn refuse_credentials(&self, query: &Query) -> Result<(), ApiError> {
        refuse_credentials(self.state.access.as_ref(), &self.headers, query.pairs())
    }

    /// The `Last-Event-ID` header EventSource sends on reconnect, if any.
    pub fn last_event_id(&self) -> Option<String> {
        self.headers.get("last-event-id").map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }
}

/// The state, headers and query string of a request to a log route.
pub fn incoming(state: SharedState) -> impl Filter<Extract = (Incoming,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    raw_query
        .and(warp::header::headers_cloned())
        .and(warp::method())
        .map(move |raw_query, headers, method| Incoming { state: state.clone(), headers, method, raw_query })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plain_decimal() {
        assert_eq!(parse_count("num", "0").unwrap(), 0);
        assert_eq!(parse_count("num", "0042").unwrap(), 42);
        assert_eq!(parse_count("num", "9223372036854775807").unwrap(), i64::MAX as u64);
        for bad in ["", "-1", "+1", "1.5", "abc", " 1", "9223372036854775808", "99999999999999999999999"] {
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
    fn duplicated_keys_are_ambiguous() {
        let q = Query::parse("type=a&type=b&id=1&num=1&num=2&from=3").unwrap();
        assert!(matches!(q.required("type"), Err(ApiError::InvalidParameter { name: "type", .. })));
        assert_eq!(q.required("id").unwrap(), "1");
        assert!(q.count("num").is_err());
        assert_eq!(q.count("from").unwrap(), Some(3));
        assert_eq!(q.single("absent").unwrap(), None);
    }

    #[test]
    fn control_characters_are_refused_in_log_keys() {
        assert!(log_key("a/b", "..").is_ok());
        assert!(log_key("ci job", "é").is_ok());
        for (t, i) in [("a\0", "1"), ("a", "1\n"), ("a\u{1b}[31m", "1"), ("a", "\u{7f}"), ("a", "\u{85}")] {
            assert!(log_key(t, i).is_err(), "{t:?} {i:?}");
        }
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!("ci%20job".parse::<Segment>().unwrap().0, "ci job");
        assert!("%FF".parse::<Segment>().is_err());
    }
}
