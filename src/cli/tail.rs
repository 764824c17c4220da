//! `sse-logs tail`: prints a log to standard output byte for byte, following it live.
//!
//! It reads the JSON stream format (lossless for empty lines and carriage returns), reconnects
//! with `Last-Event-ID` after a dropped connection, and exits 0 at `[DONE]`. With `--timestamps`
//! each line starts with its time (RFC 3339, UTC, milliseconds) and a space.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::client::{retry_backoff, wait, ApiClient};
use crate::log::LogKey;

/// A stream that sent nothing, not even a keep-alive, for this long is considered dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

#[derive(serde::Deserialize)]
struct JsonLine {
    n: u64,
    line: String,
    #[serde(default)]
    t: Option<u64>,
}

/// Standard output, with each line's time in front when `--timestamps` asked for it.
pub struct Output {
    out: tokio::io::BufWriter<tokio::io::Stdout>,
    timestamps: bool,
}

impl Output {
    pub fn stdout(timestamps: bool) -> Self {
        Self { out: tokio::io::BufWriter::new(tokio::io::stdout()), timestamps }
    }

    async fn line(&mut self, text: &str, t: Option<u64>) -> Result<(), String> {
        if self.timestamps {
            // RFC 3339 in UTC with milliseconds, then a space, as `kubectl logs --timestamps`.
            let at = i64::try_from(t.unwrap_or(0)).unwrap_or(i64::MAX);
            let stamp = bson::DateTime::from_millis(at).try_to_rfc3339_string().unwrap_or_default();
            self.out.write_all(stamp.as_bytes()).await.map_err(|e| e.to_string())?;
            self.out.write_all(b" ").await.map_err(|e| e.to_string())?;
        }
        self.out.write_all(text.as_bytes()).await.map_err(|e| e.to_string())?;
        self.out.write_all(b"\n").await.map_err(|e| e.to_string())
    }

    async fn flush(&mut self) -> Result<(), String> {
        self.out.flush().await.map_err(|e| e.to_string())
    }
}

/// Where `tail` starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// After this many lines (`--from`).
    After(u64),
    /// At the last this many lines (`-n`, `--tail`).
    Last(u64),
}

/// The most positions one tail snapshot answers.
const MAX_TAIL: u64 = 10_000;

pub async fn run(
    client: ApiClient,
    key: LogKey,
    start: Start,
    follow: bool,
    out: Output,
) -> Result<(), String> {
    let mut out = out;
    let from = match start {
        Start::After(from) => from,
        Start::Last(k) => match print_tail(&client, &key, k, &mut out).await? {
            Tail::Printed { done, .. } if done || !follow => return Ok(()),
            Tail::Printed { next, .. } => next,
            Tail::StartAt(from) => from,
        },
    };
    if follow {
        follow_stream(&client, &key, from, &mut out).await
    } else {
        print_snapshot(&client, &key, from, &mut out).await
    }
}

enum Tail {
    /// The last lines are printed; `next` is where following goes on.
    Printed { next: u64, done: bool },
    /// More lines than one snapshot holds: print from this position on.
    StartAt(u64),
}

/// Prints the last `k` lines when one tail snapshot holds them. It asks for one position more,
/// so that the `[DONE]` position of an ended log does not take the place of a line.
async fn print_tail(client: &ApiClient, key: &LogKey, k: u64, out: &mut Output) -> Result<Tail, String> {
    let page = client.tail(key, (k + 1).min(MAX_TAIL)).await?;
    let held = page.lines.len() as u64;
    if held < k && page.from > 0 {
        return Ok(Tail::StartAt(page.next.saturating_sub(u64::from(page.done) + k)));
    }
    let skip = page.lines.len().saturating_sub(usize::try_from(k).unwrap_or(usize::MAX));
    for (at, line) in page.lines.iter().enumerate().skip(skip) {
        out.line(line, page.times.get(at).copied()).await?;
    }
    out.flush().await?;
    Ok(Tail::Printed { next: page.next, done: page.done })
}

async fn print_snapshot(
    client: &ApiClient,
    key: &LogKey,
    mut from: u64,
    out: &mut Output,
) -> Result<(), String> {
    loop {
        let page = client.page(key, from, 10_000).await?;
        for (at, line) in page.lines.iter().enumerate() {
            out.line(line, page.times.get(at).copied()).await?;
        }
        out.flush().await?;
        if page.done || page.next == from {
            return Ok(());
        }
        from = page.next;
    }
}

async fn follow_stream(client: &ApiClient, key: &LogKey, from: u64, out: &mut Output) -> Result<(), String> {
    let mut have = from;
    let mut backoff = retry_backoff();
    let mut started = Instant::now();
    loop {
        let url = client.log_url(key, &format!("/stream?format=json&from={have}"));
        let reason = match client.get(&url).header("Last-Event-ID", have.to_string()).send().await {
            Err(err) => err.to_string(),
            Ok(response) if response.status() == 204 => return Ok(()),
            Ok(response) if response.status().is_client_error() => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(format!("the server refused the stream ({status}): {body}"));
            }
            Ok(response) if !response.status().is_success() => format!("HTTP {}", response.status()),
            Ok(response) => {
                let before = have;
                match read_events(response, &mut have, out).await? {
                    Ended::Done => return Ok(()),
                    Ended::Dropped(reason) => {
                        if have > before {
                            backoff.reset();
                            started = Instant::now();
                        }
                        reason
                    }
                }
            }
        };
        wait(&mut backoff, started, &format!("stream interrupted ({reason}) after line {have}")).await?;
    }
}

enum Ended {
    Done,
    Dropped(String),
}

/// Prints the lines of one response; `have` follows the last line printed.
async fn read_events(response: reqwest::Response, have: &mut u64, out: &mut Output) -> Result<Ended, String> {
    let mut body = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut event, mut data) = (String::new(), String::new());
    loop {
        let chunk = match tokio::time::timeout(SILENCE_LIMIT, body.next()).await {
            Err(_) => return Ok(Ended::Dropped("no data for 60 s".into())),
            Ok(None) => return Ok(Ended::Dropped("the server closed the stream".into())),
            Ok(Some(Err(err))) => return Ok(Ended::Dropped(err.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        buf.extend_from_slice(&chunk);
        // The service frames every field on its own `\n`-terminated line.
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if !line.is_empty() {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value.to_owned();
                }
                continue;
            }
            let (kind, payload) = (std::mem::take(&mut event), std::mem::take(&mut data));
            if kind == "done" {
                out.flush().await?;
                return Ok(Ended::Done);
            }
            if payload.is_empty() {
                continue;
            }
            let line: JsonLine =
                serde_json::from_str(&payload).map_err(|e| format!("unexpected event: {e}"))?;
            if line.n > *have {
                out.line(&line.line, line.t).await?;
                *have = line.n;
            }
        }
        out.flush().await?;
    }
}
