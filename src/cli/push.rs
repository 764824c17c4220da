//! `sse-logs push`: standard input into a log, in batches, ending it with `[DONE]` at EOF.
//! `sse-logs run` (`run.rs`) sends its command's output through the same reader and writer.
//!
//! A line is sent as soon as no request is under way, and the lines that arrive meanwhile go in
//! the next request (up to 1000 lines or 512 KiB), so a slow build streams live and a fast one is
//! not a request per line. A batch whose fate is unknown (the
//! connection broke, the server answered 503) is looked up before it is sent again, so a retry
//! never writes a line twice.

use std::future::Future;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;

use super::client::{ApiClient, AppendError};
use crate::log::{Ending, LogKey};
use crate::store::{Appended, Store};

const MAX_BATCH_LINES: usize = 1000;
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Where the lines go.
pub enum Sink {
    Service(ApiClient),
    /// Straight into MongoDB (no service needed); the driver's retryable writes cover retries.
    Direct(Store),
}

/// Standard input into the log, ended with `end` at EOF (left open when `None`).
pub async fn run(sink: Sink, key: LogKey, end: Option<Ending>, masks: Vec<String>) -> Result<(), String> {
    let writer = Writer::new(sink, key).await?;
    let (tx, rx) = lines();
    tokio::spawn(read_lines(tokio::io::stdin(), tx, Masks::new(masks), false));
    writer.forward(rx, async move { end }).await
}

/// Where the reader leaves lines for the writer.
pub(super) fn lines() -> (mpsc::Sender<String>, mpsc::Receiver<String>) {
    mpsc::channel(4 * MAX_BATCH_LINES)
}

/// Values that never leave this process: `--mask` and GitHub's `::add-mask::` lines.
pub(super) struct Masks(Vec<String>);

impl Masks {
    pub(super) fn new(values: Vec<String>) -> Self {
        let mut masks = Self(Vec::new());
        for value in values {
            masks.add(value);
        }
        masks
    }

    fn add(&mut self, value: String) {
        if !value.is_empty() && !self.0.contains(&value) {
            self.0.push(value);
            // Longest first, so a value containing another is masked whole.
            self.0.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// The line to send, or `None` for an `::add-mask::` line (it only adds a mask).
    fn process(&mut self, line: String) -> Option<String> {
        if let Some(value) = line.strip_prefix("::add-mask::") {
            self.add(value.trim_end_matches('\r').to_owned());
            return None;
        }
        let mut line = line;
        for value in &self.0 {
            if line.contains(value.as_str()) {
                line = line.replace(value.as_str(), crate::redact::MASK);
            }
        }
        Some(line)
    }
}

/// Lines of `input` without their `\n` (a `\r` stays; a last line without `\n` counts);
/// invalid UTF-8 is replaced. With `echo`, each line is also written to standard output as it
/// was read, and reading goes on after the writer has stopped, so the producer never blocks on
/// a full pipe.
pub(super) async fn read_lines(
    input: impl AsyncRead + Unpin,
    tx: mpsc::Sender<String>,
    mut masks: Masks,
    echo: bool,
) {
    let mut input = tokio::io::BufReader::new(input);
    let mut stdout = tokio::io::stdout();
    let mut buf = Vec::new();
    let mut sending = true;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if echo {
                    // The terminal sees what the command wrote, as without `run`.
                    let _ = stdout.write_all(&buf).await;
                    let _ = stdout.flush().await;
                }
                if !sending {
                    continue;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let Some(line) = masks.process(String::from_utf8_lossy(&buf).into_owned()) else { continue };
                if tx.send(line).await.is_err() {
                    if !echo {
                        return;
                    }
                    sending = false;
                }
            }
        }
    }
}

/// The log being written: batches of lines, each sent exactly once.
pub(super) struct Writer {
    sink: Sink,
    key: LogKey,
}

impl Writer {
    /// A writer of `key`, refusing a log that has already ended.
    pub(super) async fn new(mut sink: Sink, key: LogKey) -> Result<Self, String> {
        // Refuse up front to write into a finished log, before reading any input.
        let ended = match &mut sink {
            Sink::Direct(store) => {
                store.done_position(&key).await.map_err(|e| format!("MongoDB: {e}"))?.is_some()
            }
            Sink::Service(client) => match client.find_end(&key).await {
                Ok(()) => false,
                Err(AppendError::Finished) => true,
                Err(AppendError::Refused(message)) => return Err(message),
            },
        };
        if ended {
            return Err(finished(&key));
        }
        Ok(Self { sink, key })
    }

    /// Sends the lines arriving on `rx` until it closes, then ends the log with what `finish`
    /// says (`None`: left open), in the same request as the last lines.
    pub(super) async fn forward(
        mut self,
        mut rx: mpsc::Receiver<String>,
        finish: impl Future<Output = Option<Ending>>,
    ) -> Result<(), String> {
        loop {
            // Send as soon as there is a line; what arrives while a request is under way forms
            // the next batch. A slow producer's lines go out at once, a fast one's in large batches.
            let mut batch = Vec::new();
            let mut ended = match rx.recv().await {
                Some(line) => {
                    batch.push(line);
                    false
                }
                None => true,
            };
            let mut bytes = batch.first().map_or(0, String::len);
            while !ended && batch.len() < MAX_BATCH_LINES && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(line) => {
                        bytes += line.len();
                        batch.push(line);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => ended = true,
                }
            }
            if ended {
                return self.append(batch, finish.await).await;
            }
            self.append(batch, None).await?;
        }
    }

    /// Appends `lines`, and `[DONE]` saying how the log ended when `end` is given.
    pub(super) async fn append(&mut self, lines: Vec<String>, end: Option<Ending>) -> Result<(), String> {
        if lines.is_empty() && end.is_none() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Direct(store) => {
                match store.append(&self.key, &lines, end).await.map_err(|e| format!("MongoDB: {e}"))? {
                    Appended::Next(_) => Ok(()),
                    Appended::Finished => Err(finished(&self.key)),
                }
            }
            Sink::Service(client) => match client.append_exactly_once(&self.key, lines, end).await {
                Ok(_) => Ok(()),
                Err(AppendError::Finished) => Err(finished(&self.key)),
                Err(AppendError::Refused(message)) => Err(message),
            },
        }
    }
}

fn finished(key: &LogKey) -> String {
    format!("the log {}/{} has already ended with [DONE]", key.log_type, key.id)
}

#[cfg(test)]
mod tests {
    use super::Masks;

    #[test]
    fn masks_from_flags_and_add_mask_lines_are_replaced_and_add_mask_lines_are_dropped() {
        let mut masks = Masks::new(vec!["s3cr3t".into(), String::new()]);
        assert_eq!(masks.process("pw=s3cr3t!".into()).as_deref(), Some("pw=***!"));
        assert_eq!(masks.process("::add-mask::hunter2\r".into()), None);
        assert_eq!(masks.process("hunter2 and s3cr3t".into()).as_deref(), Some("*** and ***"));
        masks.add("hunter".into());
        assert_eq!(masks.process("hunter2".into()).as_deref(), Some("***"), "the longer value wins");
        assert_eq!(masks.process("plain".into()).as_deref(), Some("plain"));
    }
}
