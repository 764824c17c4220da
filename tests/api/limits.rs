//! `limits.max_header_bytes`: a request head over it is refused with 431 on every path the
//! server has (hyper's HTTP/1.1, the HTTP/1.1 streaming fast path, HTTP/2 by prior knowledge),
//! and one just under it is served.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, PATIENCE};

/// The default limit (shared/DESIGN.md): 64 KiB of request head.
const LIMIT: usize = 65_536;

/// Sends a request with one `X-Padding` header making the head about `head_bytes` long, and
/// returns the status line's code (`Connection: close`, so the answer ends).
async fn status_over_http1(addr: SocketAddr, path: &str, head_bytes: usize) -> u16 {
    let start = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Padding: ");
    let padding = "p".repeat(head_bytes.saturating_sub(start.len() + 4));
    let request = format!("{start}{padding}\r\n\r\n");
    let mut socket = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: that is still an answer.
    let _ = socket.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0_u8; 4096];
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 || answer.len() > 64 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("an answer in time");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {answer:?}"))
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431_over_http1_on_every_route() {
    let app = spawn_app().await;
    app.write("big", 1_i64, &["one", "[DONE]"]).await;
    for path in
        ["/api/v1/logs/big/1", "/api/v1/logs/big/1/stream", "/api/v1/sse/logs/?type=big&id=1", "/healthz"]
    {
        assert_eq!(status_over_http1(app.addr, path, LIMIT + 1024).await, 431, "{path}");
        assert_eq!(status_over_http1(app.addr, path, LIMIT * 4).await, 431, "{path}");
        assert_eq!(status_over_http1(app.addr, path, LIMIT - 4096).await, 200, "{path} under the limit");
    }
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431_over_h2c() {
    let app = spawn_app().await;
    app.write("big", 2_i64, &["one", "[DONE]"]).await;
    let http2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for path in ["/api/v1/logs/big/2", "/api/v1/logs/big/2/stream"] {
        let over =
            http2.get(app.url(path)).header("x-padding", "p".repeat(LIMIT + 1024)).send().await.unwrap();
        assert_eq!(over.version(), reqwest::Version::HTTP_2);
        assert_eq!(over.status(), 431, "{path}");
        let under =
            http2.get(app.url(path)).header("x-padding", "p".repeat(LIMIT - 4096)).send().await.unwrap();
        assert_eq!(under.status(), 200, "{path} under the limit");
    }
}
