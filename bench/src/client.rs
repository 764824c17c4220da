//! A minimal HTTP/1.1 Server-Sent Events client over a raw TCP stream.
//!
//! Ten thousand of these run in one process on a machine the server shares, so each is a socket,
//! two small buffers and a task: no HTTP client pool, no per-event allocation. It understands
//! chunked and close-delimited bodies (sse-logs and Sanic send chunks; Nchan may do either)
//! and hands each `data:` value to a callback.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How the event stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The callback asked to stop.
    Stopped,
    /// The server ended the response (terminating chunk or connection closed).
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

#[derive(Debug)]
pub struct SseClient {
    stream: TcpStream,
    /// Bytes read from the socket and not decoded yet, from `raw_pos`.
    raw: Vec<u8>,
    raw_pos: usize,
    /// Decoded body bytes not split into lines yet.
    body: Vec<u8>,
    /// Whether the response head has been read.
    head: bool,
    chunked: bool,
    chunk: Chunk,
}

impl SseClient {
    /// Connects and sends `GET path`; the response head is read by [`SseClient::read_head`] or
    /// at the start of [`SseClient::run`] (the seed's Sanic view sends it with its first line).
    pub async fn connect(addr: SocketAddr, path: &str) -> io::Result<Self> {
        Self::connect_with(addr, path, None, "").await
    }

    /// [`SseClient::connect`] from a source address of its own (`from`: 127.0.0.2 and up give
    /// each 64k ports more toward one server) with more request headers (`headers`: whole
    /// lines, each ending in CRLF, e.g. `Last-Event-ID: 7\r\n`).
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        from: Option<IpAddr>,
        headers: &str,
    ) -> io::Result<Self> {
        let mut stream = match from {
            Some(ip) => {
                let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        Ok(Self {
            stream,
            raw: Vec::with_capacity(READ_CHUNK),
            raw_pos: 0,
            body: Vec::new(),
            head: false,
            chunked: false,
            chunk: Chunk::Size,
        })
    }

    /// Reads the response head; anything but 200 is an error.
    pub async fn read_head(&mut self) -> io::Result<()> {
        if self.head {
            return Ok(());
        }
        let head_end = loop {
            if let Some(at) = find(&self.raw, b"\r\n\r\n") {
                break at + 4;
            }
            if self.raw.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "response head too long"));
            }
            self.raw.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the response head"));
            }
        };
        let head = String::from_utf8_lossy(&self.raw[..head_end]).to_ascii_lowercase();
        let status = head.split_ascii_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        if status != 200 {
            return Err(io::Error::other(format!("HTTP status {status}")));
        }
        self.chunked = head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        self.raw_pos = head_end;
        self.head = true;
        Ok(())
    }

    /// Feeds every `data:` value to `on_data` until it breaks or the response ends.
    pub async fn run<F>(&mut self, mut on_data: F) -> io::Result<End>
    where
        F: FnMut(&[u8]) -> ControlFlow<()>,
    {
        self.read_head().await?;
        loop {
            let finished = self.decode()?;
            if self.lines(&mut on_data).is_break() {
                return Ok(End::Stopped);
            }
            if finished {
                return Ok(End::Closed);
            }
            if self.raw_pos > 0 {
                self.raw.drain(..self.raw_pos);
                self.raw_pos = 0;
            }
            self.raw.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                return Ok(End::Closed);
            }
        }
    }

    /// Moves body bytes from `raw` to `body`; true once the terminating chunk was read.
    fn decode(&mut self) -> io::Result<bool> {
        if !self.chunked {
            self.body.extend_from_slice(&self.raw[self.raw_pos..]);
            self.raw_pos = self.raw.len();
            return Ok(false);
        }
        loop {
            let avail = &self.raw[self.raw_pos..];
            match self.chunk {
                Chunk::Size => {
                    let Some(eol) = find(avail, b"\r\n") else { return Ok(false) };
                    let digits = avail[..eol].split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                    self.raw_pos += eol + 2;
                    self.chunk = if size == 0 { Chunk::Done } else { Chunk::Data(size) };
                }
                Chunk::Data(left) => {
                    if avail.is_empty() {
                        return Ok(false);
                    }
                    let take = left.min(avail.len());
                    self.body.extend_from_slice(&avail[..take]);
                    self.raw_pos += take;
                    self.chunk = if take == left { Chunk::DataEnd } else { Chunk::Data(left - take) };
                }
                Chunk::DataEnd => {
                    if avail.len() < 2 {
                        return Ok(false);
                    }
                    self.raw_pos += 2;
                    self.chunk = Chunk::Size;
                }
                Chunk::Done => return Ok(true),
            }
        }
    }

    /// Hands the complete lines of `body` that are `data:` fields to `on_data`.
    fn lines<F>(&mut self, on_data: &mut F) -> ControlFlow<()>
    where
        F: FnMut(&[u8]) -> ControlFlow<()>,
    {
        data_lines(&mut self.body, on_data)
    }
}

/// Hands the complete lines of an event stream's `body` that are `data:` fields to `on_data`,
/// and removes them (and every other complete line) from `body`.
pub fn data_lines<F>(body: &mut Vec<u8>, on_data: &mut F) -> ControlFlow<()>
where
    F: FnMut(&[u8]) -> ControlFlow<()>,
{
    let mut start = 0;
    let mut flow = ControlFlow::Continue(());
    while let Some(eol) = body[start..].iter().position(|&b| b == b'\n') {
        let mut line = &body[start..start + eol];
        start += eol + 1;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if on_data(value).is_break() {
                flow = ControlFlow::Break(());
                break;
            }
        }
    }
    body.drain(..start);
    flow
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Now, in ns since the epoch: the clock lines are stamped with and read against.
pub fn now_ns() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
