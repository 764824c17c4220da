//! HTTP/1.1 streams written without hyper.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for the life of an HTTP/1.1
//! connection, which for a stream that reads nothing after its request is most of what an idle
//! stream costs; no hyper setting makes them smaller (BENCHMARKS.md, "HTTP/1.1 fast path"). So a
//! plain `GET` of a streaming route (`routes::is_stream_path`) that arrives whole in the
//! connection's first packet is answered here: its head is parsed from peeked bytes (with
//! httparse, hyper's own parser), the request goes through the same warp service as every other,
//! and the response is written straight to the socket, each body chunk as one chunked-encoding
//! chunk in one write, with nothing kept between chunks. Anything else (another route, another
//! method, HTTP/1.0, a body, an upgrade, a head that is not complete yet or over
//! `limits.max_header_bytes`, bytes after the head) is left unread for hyper.
//!
//! As in hyper, a request pipelined behind the stream's is not read while the stream runs: it
//! waits in the socket and hyper answers it, in order, once the stream has ended. An end of
//! input from the client ends the stream (hyper's default, `half_close(false)`): a reader that
//! closed its tab and one that only shut its writing side look the same, and the first must
//! give back its stream at once, not at the next keep-alive.

use std::io::IoSlice;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Body as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use warp::reply::Response;

use crate::shutdown::Shutdown;

/// Turns the fast path off when set to `off`, so that hyper serves every request: for measuring
/// one against the other (BENCHMARKS.md), read once by the server and not a setting.
const SWITCH: &str = "SSE_LOGS_HTTP1_FAST_PATH";
/// The largest request head taken here; a bigger one (many cookies) goes to hyper.
const MAX_HEAD: usize = 8 * 1024;
/// Most heads fit in this much, peeked first (the buffer is short-lived, but many connections
/// opening at once each have one).
const USUAL_HEAD: usize = 2 * 1024;
/// The most header fields taken here (hyper's limit is 100; more go to hyper, which refuses).
const MAX_HEADERS: usize = 64;

/// A streaming request read from the socket, ready for the service.
pub(super) struct Taken {
    pub request: Request<Empty<Bytes>>,
    /// The client said `Connection: close`.
    close: bool,
}

/// What became of the connection after a response written here.
pub(super) enum After {
    /// The response ended cleanly; hyper serves what follows.
    KeepAlive,
    /// The connection is done (closed by the client, an error, `Connection: close`, shutdown).
    Close,
}

/// Whether the fast path is on (unless `SSE_LOGS_HTTP1_FAST_PATH=off`).
pub(super) fn enabled() -> bool {
    !std::env::var(SWITCH).is_ok_and(|value| value.eq_ignore_ascii_case("off"))
}

/// Takes the connection's first request if it is a complete streaming `GET` of at most
/// `max_header_bytes` (reading exactly its head); otherwise reads nothing and returns `None`.
pub(super) async fn take(stream: &mut TcpStream, max_header_bytes: usize) -> Option<Taken> {
    let mut buf = vec![0u8; USUAL_HEAD];
    let mut n = stream.peek(&mut buf).await.ok()?;
    if n == USUAL_HEAD {
        buf.resize(MAX_HEAD, 0);
        n = stream.peek(&mut buf).await.ok()?;
    }
    let (len, taken) = parse(&buf[..n])?;
    // Only a head that is all there is: bytes after it (a body, a pipelined request) are hyper's.
    // A head over the limit is too: hyper refuses it (431) by the same measure, the parsed length.
    if len != n || len > max_header_bytes {
        return None;
    }
    stream.read_exact(&mut buf[..len]).await.ok()?;
    Some(taken)
}

/// Parses a request head; `None` unless it is a complete `GET` of a streaming route, HTTP/1.1,
/// without a body or an upgrade.
fn parse(bytes: &[u8]) -> Option<(usize, Taken)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = head.parse(bytes).ok()? else { return None };
    if head.method? != "GET" || head.version? != 1 {
        return None;
    }
    let uri: Uri = head.path?.parse().ok()?;
    if !crate::routes::is_stream_path(uri.path()) {
        return None;
    }
    let mut map = HeaderMap::with_capacity(head.headers.len());
    let mut close = false;
    for field in head.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return None;
        }
        if name == header::CONNECTION {
            let value = std::str::from_utf8(field.value).ok()?;
            close |= value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
        map.append(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = map;
    Some((len, Taken { request, close }))
}

/// Answers a taken request through `service` and writes the response.
pub(super) async fn answer<S>(stream: &mut TcpStream, taken: Taken, service: &S, shutdown: &Shutdown) -> After
where
    S: hyper::service::Service<Request<Empty<Bytes>>, Response = Response, Error = std::convert::Infallible>,
{
    let Taken { request, close } = taken;
    let response = match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    match write(stream, response, close).await {
        Ok(()) if !close && !shutdown.is_triggered() => After::KeepAlive,
        Ok(()) => After::Close,
        Err(err) => {
            tracing::debug!(error = %err, "stream connection ended");
            After::Close
        }
    }
}

/// Writes `response`, to its end.
async fn write(stream: &mut TcpStream, response: Response, close: bool) -> std::io::Result<()> {
    let (parts, mut body) = response.into_parts();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    let chunked = !bodiless && length.is_none();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        field(&mut head, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        field(&mut head, "date", httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    }
    if chunked {
        field(&mut head, "transfer-encoding", b"chunked");
    } else if !bodiless {
        field(&mut head, "content-length", length.unwrap_or(0).to_string().as_bytes());
    }
    if close {
        field(&mut head, "connection", b"close");
    }
    head.extend_from_slice(b"\r\n");
    drop(parts);
    stream.write_all(&head).await?;
    drop(head);
    if bodiless {
        return Ok(());
    }
    // While the response streams, a peek tells when the client goes away. Bytes it sends
    // meanwhile (a pipelined request) stay in the socket for hyper once this response has ended;
    // from then on peeking would return at once, so it stops, as hyper's own check for the end
    // of input does when its buffer holds the next request.
    let mut probe = [0u8; 1];
    let mut quiet = true;
    loop {
        let frame = if quiet {
            tokio::select! {
                frame = body.frame() => frame,
                peeked = stream.peek(&mut probe) => match peeked {
                    Ok(0) | Err(_) => return Err(std::io::ErrorKind::ConnectionAborted.into()),
                    Ok(_) => {
                        quiet = false;
                        continue;
                    }
                },
            }
        } else {
            body.frame().await
        };
        let data = match frame {
            None => break,
            Some(Err(err)) => {
                // As hyper does: a body that fails aborts the connection, with no clean end.
                return Err(std::io::Error::other(err));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers (warp sends none) and empty chunks (which would end a chunked body).
                _ => continue,
            },
        };
        if chunked {
            let mut size = [0u8; 18];
            let size = chunk_size_line(data.len(), &mut size);
            write_all_vectored(stream, [size, &data, b"\r\n"]).await?;
        } else {
            stream.write_all(&data).await?;
        }
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// `len` in hex and CRLF, the line before a chunk, written into `buf`.
fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (at, slot) in buf[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - at))) & 0xf;
        *slot = b"0123456789abcdef"[nibble];
    }
    buf[digits..digits + 2].copy_from_slice(b"\r\n");
    &buf[..digits + 2]
}

fn field(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// Writes the pieces in one system call when the socket takes them all (the usual case for an
/// event), else finishes piece by piece.
async fn write_all_vectored(stream: &mut TcpStream, pieces: [&[u8]; 3]) -> std::io::Result<()> {
    let slices = pieces.map(IoSlice::new);
    let mut written = stream.write_vectored(&slices).await?;
    for piece in pieces {
        if written >= piece.len() {
            written -= piece.len();
            continue;
        }
        stream.write_all(&piece[written..]).await?;
        written = 0;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(head: &str) -> Option<Taken> {
        parse(head.as_bytes()).map(|(len, taken)| {
            assert_eq!(len, head.len());
            taken
        })
    }

    #[test]
    fn a_plain_stream_get_is_taken_with_its_headers() {
        let t = taken("GET /api/v1/logs/ci/42/stream?from=3 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n")
            .unwrap();
        assert_eq!(t.request.uri().path(), "/api/v1/logs/ci/42/stream");
        assert_eq!(t.request.uri().query(), Some("from=3"));
        assert_eq!(t.request.headers()["last-event-id"], "7");
        assert!(!t.close);
        let t = taken("GET /api/v1/sse/logs/?type=a&id=1 HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n")
            .unwrap();
        assert!(t.close);
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut buf = [0u8; 18];
        for len in [0, 1, 9, 10, 15, 16, 255, 4096, 32 * 1024 + 7, usize::MAX] {
            assert_eq!(chunk_size_line(len, &mut buf), format!("{len:x}\r\n").as_bytes());
        }
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for head in [
            "GET /api/v1/logs/ci/42 HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /api/v1/logs/ci/42/stream HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /api/v1/logs/ci/42/stream HTTP/1.1\r\nHost: x\r\n",
        ] {
            assert!(parse(head.as_bytes()).is_none(), "{head}");
        }
    }
}
