//! The `serve` binary's HTTP server: warp's routes, served by hyper with our own settings.
//!
//! `warp::serve` gives no way to set hyper's timer, so a client that sends its headers one byte
//! at a time (slow-loris) could hold a connection forever. Here each connection gets a header
//! read timeout, `TCP_NODELAY` (an SSE event is small and must not wait for Nagle), and HTTP/1.1
//! or HTTP/2 by prior knowledge (h2c) on the same port. Shutdown stops accepting, lets every
//! response finish (the streams end themselves on the same signal), and closes idle keep-alive
//! connections.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::shutdown::Shutdown;

/// Serves `routes` on `listener` until shutdown; returns once every connection has closed.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    header_read_timeout: Duration,
    shutdown: Shutdown,
) {
    let connections = GracefulShutdown::new();
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client hanging up mid-stream is normal traffic for a streaming service.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
