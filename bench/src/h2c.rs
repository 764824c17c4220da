//! Server-Sent Events over HTTP/2 cleartext with prior knowledge (h2c): many streams sharing a
//! few connections, as a browser's EventSources share one HTTP/2 connection to an origin.
//!
//! Each stream is a task that waits for its response head, then for its first `data:` value,
//! and ends there (dropping the stream resets it); the connections are driven by tasks of their
//! own and closed when [`H2Streams`] is dropped.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::client::data_lines;

/// The first `data:` value a stream got, and when (ns since the epoch).
pub type FirstData = (u64, Vec<u8>);

/// Streams opened over a few HTTP/2 connections.
#[derive(Debug)]
pub struct H2Streams {
    /// Streams whose response head (200) arrived.
    pub ready: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
    /// Streams that got a `data:` value.
    pub got: Arc<AtomicUsize>,
    streams: Vec<JoinHandle<Option<FirstData>>>,
    connections: Vec<JoinHandle<()>>,
}

impl H2Streams {
    /// Opens `connections` connections to `addr` and spreads one `GET` per path over them
    /// (path k on connection k mod `connections`).
    pub async fn open(addr: SocketAddr, paths: Vec<String>, connections: usize) -> Result<Self, String> {
        let connections = connections.max(1);
        let mut senders = Vec::with_capacity(connections);
        let mut drivers = Vec::with_capacity(connections);
        for _ in 0..connections {
            let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let (sender, connection) =
                h2::client::handshake(tcp).await.map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            drivers.push(tokio::spawn(async move {
                let _ = connection.await;
            }));
            senders.push(sender);
        }
        let ready = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(AtomicUsize::new(0));
        let streams = paths
            .into_iter()
            .enumerate()
            .map(|(k, path)| {
                let sender = senders[k % connections].clone();
                let (ready, failed, got) = (ready.clone(), failed.clone(), got.clone());
                tokio::spawn(async move {
                    let first = stream(sender, addr, &path, &ready).await;
                    match &first {
                        Ok(Some(_)) => got.fetch_add(1, Ordering::Relaxed),
                        Ok(None) => 0,
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    first.ok().flatten()
                })
            })
            .collect();
        Ok(Self { ready, failed, got, streams, connections: drivers })
    }

    /// Waits until every stream's response head arrived.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let want = self.streams.len();
        let deadline = Instant::now() + limit;
        loop {
            let (ok, bad) = (self.ready.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed));
            if ok == want {
                return Ok(());
            }
            if ok + bad >= want || Instant::now() > deadline {
                return Err(format!("{ok} of {want} HTTP/2 streams open ({bad} failed)"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every stream got a `data:` value (or `limit`); returns how many lack one.
    pub async fn wait_data(&self, limit: Duration) -> usize {
        let want = self.streams.len();
        let deadline = Instant::now() + limit;
        loop {
            let got = self.got.load(Ordering::Relaxed);
            if got >= want || Instant::now() > deadline {
                return want.saturating_sub(got);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The streams' first `data:` values (those that got one by `limit`); then closes every
    /// connection.
    pub async fn finish(mut self, limit: Duration) -> Vec<FirstData> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::with_capacity(self.streams.len());
        for handle in std::mem::take(&mut self.streams) {
            let handle = tokio::time::timeout_at(deadline, handle);
            if let Ok(Ok(Some(first))) = handle.await {
                out.push(first);
            }
        }
        out
    }
}

impl Drop for H2Streams {
    fn drop(&mut self) {
        self.streams.iter().for_each(JoinHandle::abort);
        self.connections.iter().for_each(JoinHandle::abort);
    }
}

/// One stream: its first `data:` value, `None` if the response ended without one.
async fn stream(
    sender: h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
    path: &str,
    ready: &AtomicUsize,
) -> Result<Option<FirstData>, String> {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("accept", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(())
        .map_err(|e| e.to_string())?;
    let mut sender = sender.ready().await.map_err(|e| e.to_string())?;
    let (response, _) = sender.send_request(request, true).map_err(|e| e.to_string())?;
    let response = response.await.map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("HTTP status {}", response.status()));
    }
    ready.fetch_add(1, Ordering::Relaxed);
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
        let mut first = None;
        let _ = data_lines(&mut text, &mut |data| {
            first = Some((crate::client::now_ns(), data.to_vec()));
            ControlFlow::Break(())
        });
        if first.is_some() {
            return Ok(first);
        }
    }
    Ok(None)
}
