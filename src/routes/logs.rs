//! The JSON snapshot of a log and the append route.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::params::{incoming, log_key, Incoming, Segment};
use super::{respond, SharedState};
use crate::access::Action;
use crate::error::ApiError;
use crate::log::{Ending, Outcome, DONE};
use crate::store::Appended;

const DEFAULT_LIMIT: u64 = 1000;
const MAX_LIMIT: u64 = 10_000;

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    log_type: &'a str,
    id: &'a str,
    from: u64,
    lines: &'a [String],
    /// With `times=1`: each line's time, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    times: Option<&'a [u64]>,
    next: u64,
    done: bool,
    /// `outcome` and `exit_code`, once `done`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    ending: Option<Ending>,
}

/// GET /api/v1/logs/{type}/{id}?from=N&limit=M[&times=1], or ?tail=K for the last K positions
pub fn snapshot(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs" / Segment / Segment)
        .and(warp::get())
        .and(incoming(state))
        .then(read_snapshot)
        .map(respond)
}

async fn read_snapshot(log_type: Segment, id: Segment, request: Incoming) -> Result<Response, ApiError> {
    let query = request.query()?;
    let key = log_key(log_type.0, id.0)?;
    request.authorize(&query, &key, Action::Read).await?;
    let times = query.flag("times")?;
    let service = &request.state.service;
    let (from, page) = match query.count("tail")? {
        Some(_) if query.get("from").is_some() || query.get("limit").is_some() => {
            return Err(ApiError::invalid("tail", "cannot be combined with `from` or `limit`"));
        }
        Some(tail) if !(1..=MAX_LIMIT).contains(&tail) => {
            return Err(ApiError::invalid("tail", format!("must be between 1 and {MAX_LIMIT}")));
        }
        Some(tail) => service.tail(&key, tail).await?,
        None => {
            let from = query.count("from")?.unwrap_or(0);
            let limit = query.count("limit")?.unwrap_or(DEFAULT_LIMIT);
            if !(1..=MAX_LIMIT).contains(&limit) {
                return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
            }
            (from, service.page(&key, from, limit).await?)
        }
    };
    let body = Snapshot {
        log_type: &key.log_type,
        id: &key.id,
        from,
        lines: &page.lines,
        times: times.then_some(&page.times),
        next: page.next,
        done: page.done,
        ending: page.done.then_some(page.ending),
    };
    Ok(warp::reply::json(&body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendJson {
    #[serde(default)]
    lines: Vec<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default, deserialize_with = "integer")]
    exit_code: Option<i64>,
}

/// An exit code: an integer as JSON Schema (and so the OpenAPI document) counts them (`2.0` is
/// one, `2.5` not) of at most 2^53 - 1 either way, so that the pages' JavaScript shows it exactly
/// (and a double holds it exactly, so no number just past the bound rounds into it).
fn integer<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(value)? else { return Ok(None) };
    let whole = number.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64);
    match number.as_i64().or(whole).filter(|code| (-MAX_EXIT_CODE..=MAX_EXIT_CODE).contains(code)) {
        Some(code) => Ok(Some(code)),
        None => Err(serde::de::Error::custom(format!(
            "exit_code {number} is not an integer between -{MAX_EXIT_CODE} and {MAX_EXIT_CODE}"
        ))),
    }
}

/// The largest exit code (either way): 2^53 - 1, JavaScript's largest exact integer.
pub(crate) const MAX_EXIT_CODE: i64 = (1 << 53) - 1;

#[derive(Serialize)]
struct AppendAnswer {
    appended: usize,
    next: u64,
}

/// POST /api/v1/logs/{type}/{id}
pub fn append(state: SharedState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "v1" / "logs" / Segment / Segment)
        .and(warp::post())
        .and(incoming(state))
        .and(warp::body::stream())
        .then(append_lines)
        .map(respond)
}

async fn append_lines<S, B>(
    log_type: Segment,
    id: Segment,
    request: Incoming,
    body: S,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let key = log_key(log_type.0, id.0)?;
    request.authorize(&request.query()?, &key, Action::Write).await?;
    let store = &request.state.service.store;
    let body = read_body(body, request.state.limits.max_body_bytes).await?;
    let content_type = request.headers.get("content-type").and_then(|v| v.to_str().ok());
    let (lines, end) = parse_lines(content_type, &body)?;
    let Appended::Next(next) = store.append(&key, &lines, end).await? else {
        return Err(ApiError::LogFinished);
    };
    let appended = lines.len() + usize::from(end.is_some());
    let reply = warp::reply::json(&AppendAnswer { appended, next });
    Ok(warp::reply::with_status(reply, StatusCode::CREATED).into_response())
}

/// Reads the body up to `limit` bytes; a larger one is refused without reading it all.
async fn read_body<S, B>(body: S, limit: u64) -> Result<BytesMut, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut body = body;
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|_| ApiError::InvalidBody("the request body could not be read".into()))?;
        if (out.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::BodyTooLarge(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            out.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// The lines of a body and, if it ends the log, how. A `[DONE]` line ends it and must be last.
fn parse_lines(content_type: Option<&str>, body: &[u8]) -> Result<(Vec<String>, Option<Ending>), ApiError> {
    if body.is_empty() {
        return Err(ApiError::InvalidBody("the request body is empty".into()));
    }
    let media =
        content_type.unwrap_or("text/plain").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (mut lines, mut done, ending) = match media.as_str() {
        "application/json" => {
            let parsed: AppendJson = serde_json::from_slice(body).map_err(|e| {
                ApiError::InvalidBody(format!(
                    "expected {{\"lines\":[...],\"done\":bool,\"outcome\":\"succeeded\"|\"failed\"|\"cancelled\",\"exit_code\":integer}}: {e}"
                ))
            })?;
            let ending = Ending { outcome: parsed.outcome, exit_code: parsed.exit_code };
            // Said of the body's own `done`, so that the OpenAPI schema can state the rule.
            if !parsed.done && ending != Ending::default() {
                return Err(ApiError::InvalidBody("`outcome` and `exit_code` need `\"done\": true`".into()));
            }
            (parsed.lines, parsed.done, ending)
        }
        "text/plain" | "" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::InvalidBody("the body is not UTF-8 text".into()))?;
            let text = text.strip_suffix('\n').unwrap_or(text);
            (text.split('\n').map(str::to_owned).collect(), false, Ending::default())
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    if let Some(at) = lines.iter().position(|l| l == DONE) {
        if at + 1 != lines.len() {
            return Err(ApiError::InvalidBody("no line may follow [DONE]".into()));
        }
        lines.pop();
        done = true;
    }
    if lines.is_empty() && !done {
        return Err(ApiError::InvalidBody("no lines to append".into()));
    }
    Ok((lines, done.then_some(ending)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> (Vec<String>, bool) {
        let (lines, end) = parse_lines(Some("text/plain; charset=utf-8"), body.as_bytes()).unwrap();
        (lines, end.is_some())
    }

    fn json(body: &str) -> Result<(Vec<String>, Option<Ending>), ApiError> {
        parse_lines(Some("application/json"), body.as_bytes())
    }

    #[test]
    fn text_bodies_split_on_newline_and_keep_carriage_returns() {
        assert_eq!(text("a\nb\n"), (vec!["a".into(), "b".into()], false));
        assert_eq!(text("a\r\nb"), (vec!["a\r".into(), "b".into()], false));
        assert_eq!(text("\n"), (vec!["".into()], false));
        assert_eq!(text("a\n\nb"), (vec!["a".into(), "".into(), "b".into()], false));
    }

    #[test]
    fn a_done_line_ends_the_log_only_when_last() {
        assert_eq!(text("a\n[DONE]\n"), (vec!["a".into()], true));
        assert!(parse_lines(None, b"[DONE]\nb").is_err());
    }

    #[test]
    fn json_bodies_carry_lines_and_done() {
        let parsed = json(r#"{"lines":["x"," y\r"],"done":true}"#).unwrap();
        assert_eq!(parsed, (vec!["x".into(), " y\r".into()], Some(Ending::default())));
        assert!(parse_lines(Some("application/json"), br#"{"lines":[1]}"#).is_err());
        assert!(parse_lines(Some("application/json"), br#"{"lines":[]}"#).is_err());
    }

    #[test]
    fn json_bodies_say_how_the_log_ended_only_when_they_end_it() {
        let failed = Ending { outcome: Some(Outcome::Failed), exit_code: Some(2) };
        assert_eq!(json(r#"{"done":true,"outcome":"failed","exit_code":2}"#).unwrap().1, Some(failed));
        assert_eq!(
            json(r#"{"done":true,"outcome":null,"exit_code":null}"#).unwrap().1,
            Some(Ending::default())
        );
        assert_eq!(json(r#"{"lines":["x"],"outcome":null}"#).unwrap().1, None);
        let whole = json(r#"{"done":true,"exit_code":3931434.0}"#).unwrap().1;
        assert_eq!(whole.and_then(|e| e.exit_code), Some(3_931_434), "2.0 is an integer in JSON Schema");
        let largest = json(r#"{"done":true,"exit_code":-9007199254740991}"#).unwrap().1;
        assert_eq!(largest.and_then(|e| e.exit_code), Some(-MAX_EXIT_CODE));
        for bad in [
            r#"{"lines":["x"],"outcome":"failed"}"#,
            r#"{"lines":["x"],"exit_code":1}"#,
            r#"{"lines":["[DONE]"],"outcome":"failed"}"#,
            r#"{"done":false,"outcome":"failed"}"#,
            r#"{"done":true,"outcome":"exploded"}"#,
            r#"{"done":true,"exit_code":2.5}"#,
            r#"{"done":true,"exit_code":"2"}"#,
            r#"{"done":true,"exit_code":9007199254740992}"#,
            r#"{"done":true,"exit_code":-9223372036854775809}"#,
        ] {
            assert!(matches!(json(bad), Err(ApiError::InvalidBody(_))), "{bad}");
        }
    }

    #[test]
    fn empty_or_foreign_bodies_are_refused() {
        assert!(parse_lines(None, b"").is_err());
        assert!(matches!(parse_lines(Some("image/png"), b"x"), Err(ApiError::UnsupportedMediaType)));
    }
}
