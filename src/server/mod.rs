//! The `serve` binary's HTTP server: warp's routes, served by hyper with our own settings.
//!
//! `warp::serve` gives no way to set hyper's timer, so a client that sends its headers one byte
//! at a time (slow-loris) could hold a connection forever. Here each connection gets a header
//! read timeout, `TCP_NODELAY` (an SSE event is small and must not wait for Nagle), and HTTP/1.1
//! or HTTP/2 by prior knowledge (h2c) on the same port. Shutdown stops accepting, lets every
//! response finish (the streams end themselves on the same signal), and closes idle keep-alive
//! connections.
//!
//! Which protocol a connection speaks is decided by peeking at its first bytes (the HTTP/2
//! client preface), not by reading them: hyper then reads the request head itself from an empty
//! socket into its default 8 KiB buffer. (hyper-util's auto builder reads the first 24 bytes
//! itself and hands them back through a wrapper, after which hyper's buffer, 24 bytes short of
//! its 8 KiB read, grows to 16 KiB and stays so for the connection's life: 16 KiB per idle
//! stream, BENCHMARKS.md "memory per idle stream".)

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::shutdown::Shutdown;

mod h1;

/// What an HTTP/2 client sends first (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before peeking again at a connection that sent part of the preface.
const PREFACE_POLL: Duration = Duration::from_millis(5);

/// What one client may send before its request is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long the request head may take to arrive (slow-loris).
    pub header_read_timeout: Duration,
    /// The largest request head; a larger one is answered 431, over HTTP/1.1 and HTTP/2 alike.
    pub max_header_bytes: usize,
}

/// The two protocol builders, configured once and shared by every connection.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
}

/// Serves `routes` on `listener` until shutdown; returns once every connection has closed.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: Limits,
    shutdown: Shutdown,
) {
    let Limits { header_read_timeout, max_header_bytes } = limits;
    let mut http1 = http1::Builder::new();
    // Without `max_header_size` hyper accepts heads up to its read buffer's ~400 KiB.
    http1.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).max_header_size(max_header_bytes);
    // hyper's buffers as small as it allows: the read buffer's cap no bigger than the largest
    // head (hyper's floor is 8 KiB, its first read's size), and body chunks queued for `writev`
    // rather than copied into the write buffer. The 8 KiB write buffer and the first 8 KiB read
    // have no setting (BENCHMARKS.md, "HTTP/1.1 fast path").
    http1.max_buf_size(max_header_bytes.max(8 * 1024)).writev(true);
    let fast_path = h1::enabled();
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    // h2 answers 431 to a header list over this (each field counted with 32 bytes of overhead).
    http2.timer(TokioTimer::new()).max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX));
    let builders = Arc::new(Builders { http1, http2, header_read_timeout });
    let connections = GracefulShutdown::new();
    // Connection tasks, including the streams written by `h1`, which hyper does not see.
    let tasks = TaskTracker::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        let (builders, watcher, shutdown) = (builders.clone(), connections.watcher(), shutdown.clone());
        tasks.spawn(async move {
            let mut stream = stream;
            let is_h2 = tokio::select! {
                _ = shutdown.wait() => return,
                is_h2 = tokio::time::timeout(builders.header_read_timeout, speaks_h2(&stream)) => is_h2,
            };
            let ended = match is_h2 {
                // Silent past the header read timeout, or already gone.
                Err(_) | Ok(Err(_)) => return,
                // Boxed, so that a stream answered by `h1` does not carry hyper's connection state.
                Ok(Ok(true)) => {
                    Box::pin(run(watcher, builders.http2.serve_connection(TokioIo::new(stream), service)))
                        .await
                }
                Ok(Ok(false)) => {
                    let taken = if fast_path { h1::take(&mut stream, max_header_bytes).await } else { None };
                    if let Some(taken) = taken {
                        if let h1::After::Close = h1::answer(&mut stream, taken, &service, &shutdown).await {
                            return;
                        }
                    }
                    Box::pin(run(watcher, builders.http1.serve_connection(TokioIo::new(stream), service)))
                        .await
                }
            };
            // A client hanging up mid-stream is normal traffic for a streaming service.
            if let Err(err) = ended {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tasks.close();
    tokio::join!(connections.shutdown(), tasks.wait());
}

async fn run<C>(watcher: Watcher, connection: C) -> Result<(), hyper::Error>
where
    C: hyper_util::server::graceful::GracefulConnection<Error = hyper::Error>,
{
    watcher.watch(connection).await
}

/// Whether the client opens with the HTTP/2 preface, judged from peeked bytes (none consumed).
/// Anything else, end of stream included, is left to HTTP/1.1, which answers or closes it.
async fn speaks_h2(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 || buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A part of the preface: peeking again at once would see the same bytes (a busy loop).
        tokio::time::sleep(PREFACE_POLL).await;
    }
}
