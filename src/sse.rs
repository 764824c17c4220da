//! The Server-Sent Events grammar, written by hand to be exact by the HTML specification: the
//! fields the encoders (`crate::encode`) write, and the frames of the stream itself.
//!
//! `warp::sse` is not used: an event's data must keep its leading spaces (so exactly one space
//! follows `data:`), and a line must be split on `\r\n`, `\n` *and* a bare `\r`, or a browser
//! would see a different text than MongoDB holds.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

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

pub(crate) fn write_id(out: &mut BytesMut, n: u64) {
    out.put_slice(format!("id: {n}\n").as_bytes());
}

pub(crate) fn write_json(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    // serde_json escapes CR and LF, so the JSON is always a single data line.
    out.put_slice(&serde_json::to_vec(value).expect("plain structs serialise"));
    out.put_u8(b'\n');
}

pub(crate) fn write_data(out: &mut BytesMut, text: &str) {
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

    #[test]
    fn a_text_splits_on_every_line_ending_of_the_grammar() {
        let pieces = |text| split_lines(text).collect::<Vec<_>>();
        assert_eq!(pieces("a\nb"), ["a", "b"]);
        assert_eq!(pieces("a\r\nb"), ["a", "b"]);
        assert_eq!(pieces("a\rb"), ["a", "b"]);
        assert_eq!(pieces("a\r\rb"), ["a", "", "b"]);
        assert_eq!(pieces("a\n"), ["a", ""]);
        assert_eq!(pieces(""), [""]);
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
