//! HTTP/1.1 driven byte by byte over a raw socket, where the server writes streams itself
//! (src/server/h1.rs) and hands the connection to hyper afterwards: pipelined requests answered
//! in order, HTTP/1.0, `Connection: close`, a client that stops reading, a client that shuts its
//! writing side, and the request-head limit with a setting below the fast path's own buffer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_app_with, PATIENCE};

/// The end of a chunked body: its last chunk and an empty trailer.
const LAST_CHUNK: &str = "\r\n0\r\n\r\n";

/// A client socket and everything read from it; `seek` moves a cursor through what was read.
struct Raw {
    socket: TcpStream,
    read: Vec<u8>,
    cursor: usize,
}

impl Raw {
    async fn connect(app: &crate::helpers::TestApp) -> Self {
        Self { socket: TcpStream::connect(app.addr).await.unwrap(), read: Vec::new(), cursor: 0 }
    }

    async fn send(&mut self, bytes: &str) {
        self.socket.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` appears after the cursor, and moves the cursor past it.
    async fn seek(&mut self, needle: &str) {
        let found = tokio::time::timeout(PATIENCE, async {
            // Only new bytes are searched (and the needle's length before them), not all again.
            let mut from = self.cursor;
            loop {
                let after = &self.read[from..];
                if let Some(at) = after.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    return from + at + needle.len();
                }
                from = self.read.len().saturating_sub(needle.len()).max(self.cursor);
                let mut buf = [0_u8; 64 * 1024];
                let n = self.socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before {needle:?}: {}", self.tail());
                self.read.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        self.cursor = found.unwrap_or_else(|_| panic!("no {needle:?} in time: {}", self.tail()));
    }

    /// Reads until the server closes the connection.
    async fn read_to_end(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.socket.read_to_end(&mut self.read))
            .await
            .expect("the server closes the connection in time")
            .expect("a clean end");
        self.text()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.read).into_owned()
    }

    /// The last bytes read, for failure messages (a stream can be megabytes long).
    fn tail(&self) -> String {
        String::from_utf8_lossy(&self.read[self.read.len().saturating_sub(600)..]).into_owned()
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n")
}

/// Splits a connection's bytes after the first chunked response; the first half must be a
/// whole response ending with `[DONE]`.
fn after_first_response(all: &str) -> &str {
    let (first, rest) = all.split_once(LAST_CHUNK).unwrap_or_else(|| panic!("no end of the stream: {all}"));
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.ends_with("data: [DONE]\n\n"), "{first}");
    rest
}

#[tokio::test]
async fn two_requests_in_one_write_are_answered_in_order() {
    let app = spawn_app().await;
    app.write("pipe", 1_i64, &["first", "[DONE]"]).await;
    let mut raw = Raw::connect(&app).await;
    let health = get("/healthz", "Connection: close\r\n");
    raw.send(&format!("{}{health}", get("/api/v1/logs/pipe/1/stream", ""))).await;
    let all = raw.read_to_end().await;
    assert!(all.contains("data: first\n"), "{all}");
    assert!(after_first_response(&all).starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
}

#[tokio::test]
async fn a_request_sent_while_the_stream_runs_is_answered_once_the_stream_ends() {
    let app = spawn_app_with(&[("SSE__KEEP_ALIVE_SECS", "1")]).await;
    app.write("pipe", 2_i64, &["first"]).await;
    let mut raw = Raw::connect(&app).await;
    raw.send(&get("/api/v1/logs/pipe/2/stream", "")).await;
    raw.seek("data: first\n").await;
    raw.send(&get("/api/v1/logs/pipe/2?limit=1", "Connection: close\r\n")).await;
    // Two keep-alives later the server has looked at the socket with the request in it (it
    // waits on the socket and the log together between keep-alives).
    raw.seek(": keep-alive").await;
    raw.seek(": keep-alive").await;
    app.write("pipe", 2_i64, &["[DONE]"]).await;
    let all = raw.read_to_end().await;
    let second = after_first_response(&all);
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(second.contains("first"), "the snapshot's line: {all}");
}

#[tokio::test]
async fn connection_close_is_said_in_the_stream_response_and_honoured() {
    let app = spawn_app().await;
    app.write("close", 1_i64, &["only", "[DONE]"]).await;
    let mut raw = Raw::connect(&app).await;
    raw.send(&get("/api/v1/logs/close/1/stream", "Connection: close\r\n")).await;
    let all = raw.read_to_end().await;
    let (head, _) = all.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("\r\nconnection: close"), "{head}");
    assert!(after_first_response(&all).is_empty(), "{all}");
}

#[tokio::test]
async fn an_http_1_0_request_gets_a_body_ended_by_close_not_chunks() {
    let app = spawn_app().await;
    app.write("old", 1_i64, &["one", "[DONE]"]).await;
    let mut raw = Raw::connect(&app).await;
    raw.send("GET /api/v1/logs/old/1/stream HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let all = raw.read_to_end().await;
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    assert!(body.contains("data: one\n\n"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "no chunk framing in the body: {body:?}");
}

#[tokio::test]
async fn a_client_that_shuts_its_writing_side_has_its_stream_ended_and_closed() {
    let app = spawn_app().await;
    app.write("half", 1_i64, &["one"]).await;
    let mut raw = Raw::connect(&app).await;
    raw.send(&get("/api/v1/logs/half/1/stream", "")).await;
    raw.seek("data: one\n").await;
    raw.socket.shutdown().await.unwrap();
    // The log goes on, but the stream ends (as hyper's would): the socket reaches its end
    // without the last chunk, and the stream's slot is given back.
    let all = raw.read_to_end().await;
    assert!(!all.ends_with(LAST_CHUNK), "{all}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.metric("sse_logs_streams_open") > 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_up_no_one_and_gets_its_lines_once_it_reads_again() {
    const LINES: usize = 20_000;
    let app = spawn_app().await;
    app.write("slow", 1_i64, &["start"]).await;
    let mut stalled = Raw::connect(&app).await;
    stalled.send(&get("/api/v1/logs/slow/1/stream", "")).await;
    stalled.seek("data: start\n").await;
    // Far more than the socket buffers hold, so that the server's writes block.
    let padding = "x".repeat(1_000);
    let lines: Vec<String> = (1..=LINES).map(|k| format!("line {k} {padding}")).collect();
    for chunk in lines.chunks(2_000) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("slow", 1_i64, &refs).await;
    }
    app.write("slow", 1_i64, &["[DONE]"]).await;
    // Its queue in the hub was dropped rather than grown: it catches up from MongoDB instead.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.metric("sse_logs_slow_client_catch_ups_total") < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the stalled stream's queue was never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.write("other", 1_i64, &["served", "[DONE]"]).await;
    let others = tokio::time::timeout(
        Duration::from_secs(20),
        app.get_stream(&app.stream_url("other", "1", "")).await.collect_to_end(),
    )
    .await
    .expect("another viewer is served while one stalls");
    assert_eq!(others.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["served", "[DONE]"]);

    stalled.seek("data: [DONE]\n").await;
    let text = stalled.text();
    let got: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| l.starts_with("line ")).collect();
    assert_eq!(got.len(), LINES, "every line once");
    assert!(got.iter().zip(&lines).all(|(got, sent)| got == sent), "in order");
}

#[tokio::test]
async fn at_the_smallest_limit_a_stream_route_refuses_an_oversized_head_as_hyper_does() {
    // 8 KiB, the setting's floor, is also the most the fast path peeks at.
    let app = spawn_app_with(&[("LIMITS__MAX_HEADER_BYTES", "8192")]).await;
    app.write("limit", 1_i64, &["one", "[DONE]"]).await;
    for (padding, status) in [(8_300, "431"), (12_000, "431"), (7_900, "200")] {
        for path in ["/api/v1/logs/limit/1/stream", "/api/v1/logs/limit/1"] {
            let mut raw = Raw::connect(&app).await;
            let pad = format!("Connection: close\r\nX-Padding: {}\r\n", "p".repeat(padding));
            raw.send(&get(path, &pad)).await;
            let all = raw.read_to_end().await;
            assert!(all.starts_with(&format!("HTTP/1.1 {status} ")), "{path}, {padding} bytes: {all}");
        }
    }
}
