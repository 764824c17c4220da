//! Server-Sent Events framing, written by hand to be exact by the HTML specification, and the
//! plain-text framing of the `raw` route, which shares the session machinery.
//!
//! `warp::sse` is not used: an event's data must keep its leading spaces (so exactly one space
//! follows `data:`), and a line must be split on `\r\n`, `\n` *and* a bare `\r`, or a browser
//! would see a different text than MongoDB holds.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::log::{Ending, LogKey, DONE};

/// How each line is put into an event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Format {
    /// The seed's format: the line itself, one `data:` field per piece of the line.
    Text,
    /// `{"n":k,"line":"..."}`: lossless for empty lines and carriage returns.
    Json,
    /// `event: lines` with `{"n":first,"lines":[...]}` and the last line's number as `id:`: one
    /// event per write, so a browser replays a big backlog in hundreds of events, not one per line.
    /// With `times`, the event also has `"times":[ms,...]` parallel to `lines`.
    Batch { times: bool },
    /// Not SSE: each line's text and `\n`, nothing else (`raw`, for curl and downloads).
    Raw,
    /// One log of several on one connection (`/api/v1/streams`): `event: line` with
    /// `{"type","id","n","line","t"}`, `event: done` with `{"type","id","n"}`, and `id: @n`, a
    /// placeholder the combiner replaces by every log's position (see `crate::combine`), which
    /// also writes the preamble and keep-alives, once for the whole response.
    Multi(Arc<LogKey>),
}

/// Bytes being framed for one write, with the times of a `Batch` event still open in them (they
/// follow its lines in the JSON, so they wait here until the event is sealed).
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: BytesMut,
    times: Vec<u64>,
}

impl Frames {
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What is framed so far, leaving `self` empty. Seal it first.
    pub fn take(&mut self) -> Bytes {
        debug_assert!(self.times.is_empty(), "a batch event is still open");
        self.buf.split().freeze()
    }
}

/// How many formats can share a live line's frame between subscribers (`Format::shared_slot`).
pub(crate) const SHARED_FORMATS: usize = 6;

/// The first bytes of every stream: how long EventSource waits before reconnecting, `ms` plus
/// a random extra of up to `ms` again, different for each connection, so that viewers dropped
/// together (a replica stopped, a proxy reloaded) do not all come back in the same instant.
pub(crate) fn retry(ms: u64) -> Bytes {
    let extra = crate::backoff::jitter(std::time::Duration::from_millis(ms)).as_millis();
    Bytes::from(format!("retry: {}\n\n", u128::from(ms) + extra))
}

/// A comment that keeps proxies and browsers from timing out an idle stream.
pub(crate) fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

impl Format {
    /// The first bytes of a response in this format, if any.
    pub fn preamble(&self, retry_ms: u64) -> Option<Bytes> {
        self.frames_response().then(|| retry(retry_ms))
    }

    /// What an idle response sends so proxies keep it open; plain text has no comments.
    pub fn keep_alive(&self) -> Option<Bytes> {
        self.frames_response().then(keep_alive)
    }

    /// Where a live line's frame in this format is kept for other subscribers of the log
    /// (`crate::hub::Live`): a frame depends only on the line, its position and the format
    /// (for `Multi`, the log's key, the same for every subscriber of the log).
    pub fn shared_slot(&self) -> usize {
        match self {
            Format::Text => 0,
            Format::Json => 1,
            Format::Batch { times: false } => 2,
            Format::Batch { times: true } => 3,
            Format::Raw => 4,
            Format::Multi(_) => 5,
        }
    }

    /// Line number `n` alone, as a complete write (a sealed event in `Batch`).
    pub fn single(&self, n: u64, text: &str, t: u64) -> Bytes {
        let mut frames = Frames::default();
        self.line(&mut frames, n, text, t);
        self.seal(&mut frames, n);
        frames.take()
    }

    /// Whether the session writes the SSE preamble and keep-alives itself: not in plain text,
    /// and not as one part of a combined response, whose combiner writes them once for all.
    fn frames_response(&self) -> bool {
        !matches!(self, Format::Raw | Format::Multi(_))
    }

    /// Appends line number `n` of the log. In `Batch` it joins the event still open in `out`,
    /// which [`Format::seal`] closes before `out` is sent.
    /// `t` is when the line was written (ms since the epoch); `Json` and `Multi` send it.
    pub fn line(&self, frames: &mut Frames, n: u64, text: &str, t: u64) {
        let out = &mut frames.buf;
        match self {
            Format::Text => {
                write_id(out, n);
                write_data(out, text);
                out.put_u8(b'\n');
            }
            Format::Json => {
                write_id(out, n);
                write_json(out, &JsonLine { n, line: text, t });
                out.put_u8(b'\n');
            }
            Format::Batch { times } => {
                if batch_open(out) {
                    out.put_u8(b',');
                } else {
                    out.put_slice(format!("event: lines\ndata: {{\"n\":{n},\"lines\":[").as_bytes());
                }
                out.put_slice(&serde_json::to_vec(text).expect("a string serialises"));
                if *times {
                    frames.times.push(t);
                }
            }
            Format::Raw => {
                out.put_slice(text.as_bytes());
                out.put_u8(b'\n');
            }
            Format::Multi(key) => {
                out.put_slice(format!("event: line\nid: @{n}\n").as_bytes());
                write_json(out, &MultiLine { r#type: &key.log_type, id: &key.id, n, line: text, t });
                out.put_u8(b'\n');
            }
        }
    }

    /// Closes a `Batch` event left open in `out`; `last` is the number of its last line, its `id`.
    /// (SSE lets `id:` follow `data:`; the event is dispatched at the blank line.)
    pub fn seal(&self, frames: &mut Frames, last: u64) {
        let Format::Batch { times } = self else { return };
        let out = &mut frames.buf;
        if !batch_open(out) {
            return;
        }
        out.put_u8(b']');
        if *times {
            out.put_slice(b",\"times\":");
            out.put_slice(&serde_json::to_vec(&frames.times).expect("numbers serialise"));
            frames.times.clear();
        }
        out.put_slice(format!("}}\nid: {last}\n\n").as_bytes());
    }

    /// Appends the event for the `[DONE]` document at line number `n`, which ended the log so.
    /// The text format stays the seed's bare `[DONE]`; the JSON ones say how the log ended.
    pub fn done(&self, frames: &mut Frames, n: u64, ending: Ending) {
        self.seal(frames, n.saturating_sub(1));
        let out = &mut frames.buf;
        match self {
            Format::Text => {
                write_id(out, n);
                write_data(out, DONE);
                out.put_u8(b'\n');
            }
            Format::Json | Format::Batch { .. } => {
                write_id(out, n);
                out.put_slice(b"event: done\n");
                write_json(out, &JsonDone { n, ending });
                out.put_u8(b'\n');
            }
            // The text simply ends; `[DONE]` is not part of it.
            Format::Raw => {}
            Format::Multi(key) => {
                out.put_slice(format!("event: done\nid: @{n}\n").as_bytes());
                write_json(out, &MultiDone { r#type: &key.log_type, id: &key.id, n, ending });
                out.put_u8(b'\n');
            }
        }
    }
}

/// Whether `out` ends inside a `Batch` event: every sealed event ends with a blank line, and the
/// JSON of an open one never holds a raw newline.
fn batch_open(out: &BytesMut) -> bool {
    !out.is_empty() && !out.ends_with(b"\n\n")
}

#[derive(Serialize)]
struct JsonLine<'a> {
    n: u64,
    line: &'a str,
    t: u64,
}

#[derive(Serialize)]
struct JsonDone {
    n: u64,
    #[serde(flatten)]
    ending: Ending,
}

#[derive(Serialize)]
struct MultiLine<'a> {
    r#type: &'a str,
    id: &'a str,
    n: u64,
    line: &'a str,
    t: u64,
}

#[derive(Serialize)]
struct MultiDone<'a> {
    r#type: &'a str,
    id: &'a str,
    n: u64,
    #[serde(flatten)]
    ending: Ending,
}

fn write_id(out: &mut BytesMut, n: u64) {
    out.put_slice(format!("id: {n}\n").as_bytes());
}

fn write_json(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    // serde_json escapes CR and LF, so the JSON is always a single data line.
    out.put_slice(&serde_json::to_vec(value).expect("plain structs serialise"));
    out.put_u8(b'\n');
}

fn write_data(out: &mut BytesMut, text: &str) {
    for piece in split_lines(text) {
        out.put_slice(b"data: ");
        out.put_slice(piece.as_bytes());
        out.put_u8(b'\n');
    }
}

/// Splits on `\r\n`, `\n` and `\r`, the three line ends of the SSE grammar. An empty text is one
/// empty piece, so an empty log line still becomes an (empty) event.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: Format = Format::Batch { times: false };
    const FAILED: Ending = Ending { outcome: Some(crate::log::Outcome::Failed), exit_code: Some(2) };

    fn text_event(n: u64, line: &str) -> String {
        let mut out = Frames::default();
        Format::Text.line(&mut out, n, line, 0);
        String::from_utf8(out.take().to_vec()).unwrap()
    }

    #[test]
    fn a_plain_line_is_one_data_field_with_its_id() {
        assert_eq!(text_event(1, "hello"), "id: 1\ndata: hello\n\n");
    }

    #[test]
    fn leading_spaces_survive_because_exactly_one_space_follows_the_colon() {
        assert_eq!(text_event(2, "  indented"), "id: 2\ndata:   indented\n\n");
    }

    #[test]
    fn every_line_ending_splits_the_data() {
        assert_eq!(text_event(3, "a\nb"), "id: 3\ndata: a\ndata: b\n\n");
        assert_eq!(text_event(3, "a\r\nb"), "id: 3\ndata: a\ndata: b\n\n");
        assert_eq!(text_event(3, "a\rb"), "id: 3\ndata: a\ndata: b\n\n");
        assert_eq!(text_event(3, "a\r\rb"), "id: 3\ndata: a\ndata: \ndata: b\n\n");
        assert_eq!(text_event(3, "a\n"), "id: 3\ndata: a\ndata: \n\n");
    }

    #[test]
    fn an_empty_line_is_still_an_event() {
        assert_eq!(text_event(4, ""), "id: 4\ndata: \n\n");
    }

    #[test]
    fn unicode_passes_through_untouched() {
        assert_eq!(text_event(5, "部署完成 ✓ — ünïcödé"), "id: 5\ndata: 部署完成 ✓ — ünïcödé\n\n");
    }

    #[test]
    fn lines_that_look_like_fields_stay_inside_data() {
        assert_eq!(text_event(6, "id: 5"), "id: 6\ndata: id: 5\n\n");
        assert_eq!(text_event(6, "data: x"), "id: 6\ndata: data: x\n\n");
        assert_eq!(text_event(6, ": comment"), "id: 6\ndata: : comment\n\n");
        assert_eq!(text_event(6, "x\nevent: done"), "id: 6\ndata: x\ndata: event: done\n\n");
    }

    #[test]
    fn done_is_the_seed_marker_in_text_format() {
        let mut out = Frames::default();
        Format::Text.done(&mut out, 9, FAILED);
        assert_eq!(&out.take()[..], b"id: 9\ndata: [DONE]\n\n");
    }

    #[test]
    fn json_format_is_lossless_and_single_line() {
        let mut out = Frames::default();
        Format::Json.line(&mut out, 7, " a\r\nb\r", 1_700_000_000_123);
        assert_eq!(
            &out.take()[..],
            b"id: 7\ndata: {\"n\":7,\"line\":\" a\\r\\nb\\r\",\"t\":1700000000123}\n\n"
        );
        let mut out = Frames::default();
        Format::Json.done(&mut out, 8, Ending::default());
        assert_eq!(
            &out.take()[..],
            b"id: 8\nevent: done\ndata: {\"n\":8,\"outcome\":null,\"exit_code\":null}\n\n"
        );
        let mut out = Frames::default();
        Format::Json.done(&mut out, 8, FAILED);
        assert_eq!(
            &out.take()[..],
            b"id: 8\nevent: done\ndata: {\"n\":8,\"outcome\":\"failed\",\"exit_code\":2}\n\n"
        );
    }

    #[test]
    fn batch_format_groups_lines_into_one_event_whose_id_is_the_last_line() {
        let mut out = Frames::default();
        BATCH.line(&mut out, 4, "a", 0);
        BATCH.line(&mut out, 5, " b\r\n", 0);
        BATCH.seal(&mut out, 5);
        BATCH.seal(&mut out, 5);
        BATCH.line(&mut out, 6, "c", 0);
        BATCH.done(&mut out, 7, Ending::default());
        let expected = "event: lines\ndata: {\"n\":4,\"lines\":[\"a\",\" b\\r\\n\"]}\nid: 5\n\n\
                        event: lines\ndata: {\"n\":6,\"lines\":[\"c\"]}\nid: 6\n\n\
                        id: 7\nevent: done\ndata: {\"n\":7,\"outcome\":null,\"exit_code\":null}\n\n";
        assert_eq!(std::str::from_utf8(&out.take()).unwrap(), expected);
    }

    #[test]
    fn batch_format_with_times_adds_them_parallel_to_the_lines() {
        let batch = Format::Batch { times: true };
        let mut out = Frames::default();
        batch.line(&mut out, 4, "a", 1_700_000_000_001);
        batch.line(&mut out, 5, "b", 1_700_000_000_002);
        batch.seal(&mut out, 5);
        batch.line(&mut out, 6, "c", 1_700_000_000_003);
        batch.done(&mut out, 7, FAILED);
        let expected = "event: lines\ndata: {\"n\":4,\"lines\":[\"a\",\"b\"],\"times\":[1700000000001,1700000000002]}\nid: 5\n\n\
                        event: lines\ndata: {\"n\":6,\"lines\":[\"c\"],\"times\":[1700000000003]}\nid: 6\n\n\
                        id: 7\nevent: done\ndata: {\"n\":7,\"outcome\":\"failed\",\"exit_code\":2}\n\n";
        assert_eq!(std::str::from_utf8(&out.take()).unwrap(), expected);
    }

    #[test]
    fn raw_format_is_the_text_and_a_newline_and_nothing_else() {
        let mut out = Frames::default();
        Format::Raw.line(&mut out, 1, " a\r", 0);
        Format::Raw.line(&mut out, 2, "", 0);
        Format::Raw.seal(&mut out, 2);
        Format::Raw.done(&mut out, 3, FAILED);
        assert_eq!(&out.take()[..], b" a\r\n\n");
        assert!(Format::Raw.preamble(2000).is_none() && Format::Raw.keep_alive().is_none());
        assert!(Format::Json.preamble(2000).is_some() && BATCH.keep_alive().is_some());
    }

    #[test]
    fn multi_format_names_the_log_and_leaves_the_id_to_the_combiner() {
        let format = Format::Multi(Arc::new(LogKey::new("ci", "a:b")));
        let mut out = Frames::default();
        format.line(&mut out, 3, "x\ny", 1700000000123);
        format.done(&mut out, 4, FAILED);
        assert_eq!(
            std::str::from_utf8(&out.take()).unwrap(),
            "event: line\nid: @3\ndata: {\"type\":\"ci\",\"id\":\"a:b\",\"n\":3,\"line\":\"x\\ny\",\"t\":1700000000123}\n\n\
             event: done\nid: @4\ndata: {\"type\":\"ci\",\"id\":\"a:b\",\"n\":4,\"outcome\":\"failed\",\"exit_code\":2}\n\n"
        );
        assert!(format.preamble(2000).is_none() && format.keep_alive().is_none());
    }

    #[test]
    fn retry_and_keep_alive_frames() {
        let delays: std::collections::HashSet<u64> = (0..20)
            .map(|_| {
                let frame = String::from_utf8(retry(2000).to_vec()).unwrap();
                let value = frame.strip_prefix("retry: ").and_then(|v| v.strip_suffix("\n\n")).unwrap();
                value.parse().unwrap()
            })
            .collect();
        assert!(delays.iter().all(|ms| (2000..=4000).contains(ms)), "{delays:?}");
        assert!(delays.len() > 1, "spread: {delays:?}");
        assert_eq!(&keep_alive()[..], b": keep-alive\n\n");
    }
}
