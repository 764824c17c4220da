//! Several logs on one connection: `GET /api/v1/streams?log=T:I&log=T:I@N...`.
//!
//! Browsers open at most 6 HTTP/1.1 connections per origin, so a page following many logs
//! needs them on one. The request is checked whole before anything is streamed: every `log`
//! parses, none repeats, a `Last-Event-ID` has one position per log, and every log is readable
//! (one refusal refuses the request: never a silent subset). Then `crate::combine` runs a
//! session per log under one stream permit.

use futures_util::future::join_all;
use warp::reply::Response;
use warp::Filter;

use super::live::{already_ended, no_content};
use super::params::{self, incoming, Incoming};
use super::{event_stream, respond};
use crate::access::Action;
use crate::body::streaming;
use crate::combine::{self, Part};
use crate::encode::MultiEncoder;
use crate::error::ApiError;
use crate::log::LogKey;

/// The most logs one connection may follow.
pub(crate) const MAX_LOGS: usize = 50;

/// GET /api/v1/streams?log=T:I[@N]
pub fn streams(
    state: super::SharedState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "streams").and(warp::get()).and(incoming(state)).then(open).map(respond)
}

async fn open(request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let logs: Vec<&str> = query.pairs().iter().filter(|(k, _)| k == "log").map(|(_, v)| v.as_str()).collect();
    if logs.is_empty() {
        return Err(ApiError::MissingParameter("log"));
    }
    if logs.len() > MAX_LOGS {
        return Err(ApiError::invalid("log", format!("is given more than {MAX_LOGS} times")));
    }
    let mut parts = Vec::with_capacity(logs.len());
    for text in logs {
        let (key, from) = parse_log(text)?;
        if parts.iter().any(|part: &Part| part.key == key) {
            return Err(ApiError::invalid(
                "log",
                format!("names {}:{} more than once", key.log_type, key.id),
            ));
        }
        parts.push(Part { key, from, ended: false });
    }
    // EventSource's reconnect header wins over the positions in the URL it reconnects to.
    if let Some(text) = request.last_event_id().filter(|text| !text.trim().is_empty()) {
        let positions = parse_positions(text.trim(), parts.len())?;
        for (part, from) in parts.iter_mut().zip(positions) {
            part.from = from;
        }
    }
    for part in &parts {
        request.authorize(&query, &part.key, Action::Read).await?;
    }
    let state = &request.state;
    let permit = state.stream_permit()?;
    if state.service.hub.is_live() {
        let checks = parts
            .iter()
            .map(|part| async { part.from > 0 && already_ended(state, &part.key, part.from).await });
        let ended = join_all(checks).await;
        for (part, ended) in parts.iter_mut().zip(ended) {
            part.ended = ended;
        }
        if parts.iter().all(|part| part.ended) {
            return Ok(no_content());
        }
    }
    tracing::debug!(logs = parts.len(), "combined stream opened");
    let events = combine::merged(&state.service, &parts);
    let encoder = MultiEncoder::new(parts.into_iter().map(|part| (part.key, part.from)));
    Ok(event_stream(streaming(&state.service, combine::ROUTE, events, encoder, Some(permit))))
}

/// `T:I` or `T:I@N`: the type is up to the first `:` (so it holds none), the id the rest; `@N` is
/// a last `@` followed only by digits, the lines the client already has of that log.
fn parse_log(text: &str) -> Result<(LogKey, u64), ApiError> {
    let malformed = || ApiError::invalid("log", format!("must be `type:id` or `type:id@N`, not {text:?}"));
    let (log_type, rest) = text.split_once(':').ok_or_else(malformed)?;
    let (id, from) = match rest.rsplit_once('@') {
        Some((id, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (id, params::parse_count("log", n)?)
        }
        _ => (rest, 0),
    };
    if log_type.is_empty() || id.is_empty() {
        return Err(malformed());
    }
    Ok((params::log_key(log_type, id)?, from))
}

/// A `Last-Event-ID` of this route: one position per log, in the order of the `log`
/// parameters, joined by `,`.
fn parse_positions(text: &str, logs: usize) -> Result<Vec<u64>, ApiError> {
    let positions =
        text.split(',').map(|n| params::parse_count("Last-Event-ID", n)).collect::<Result<Vec<_>, _>>()?;
    if positions.len() != logs {
        return Err(ApiError::invalid("Last-Event-ID", format!("must hold {logs} positions joined by `,`")));
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_split_on_the_first_colon_and_the_last_at_with_digits() {
        let key = |t: &str, i: &str| LogKey::new(t, i);
        assert_eq!(parse_log("deploy:42").unwrap(), (key("deploy", "42"), 0));
        assert_eq!(parse_log("deploy:42@7").unwrap(), (key("deploy", "42"), 7));
        assert_eq!(parse_log("ci:a:b@c@3").unwrap(), (key("ci", "a:b@c"), 3));
        assert_eq!(parse_log("ci:x@").unwrap(), (key("ci", "x@"), 0));
        assert_eq!(parse_log("ci:x@1a").unwrap(), (key("ci", "x@1a"), 0));
        for bad in ["deploy", ":1", "deploy:", "deploy:@3", "a:b@99999999999999999999", "a\n:1"] {
            assert!(parse_log(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn positions_are_one_count_per_log() {
        assert_eq!(parse_positions("12,0,7", 3).unwrap(), [12, 0, 7]);
        for bad in ["12,0", "12,0,7,1", "1,,2", "1,-2,3", "a,b,c", "1, 2,3"] {
            assert!(parse_positions(bad, 3).is_err(), "{bad:?}");
        }
    }
}
