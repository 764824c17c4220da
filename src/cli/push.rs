//! `sse-logs push`: standard input into a log, in batches, ending it with `[DONE]` at EOF.
//!
//! A line is sent as soon as no request is under way, and the lines that arrive meanwhile go in
//! the next request (up to 1000 lines or 512 KiB), so a slow build streams live and a fast one is
//! not a request per line. A batch whose fate is unknown (the
//! connection broke, the server answered 503) is looked up before it is sent again, so a retry
//! never writes a line twice.

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::client::{ApiClient, AppendError};
use crate::log::LogKey;
use crate::store::{Appended, Store};

const MAX_BATCH_LINES: usize = 1000;
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Where the lines go.
pub enum Sink {
    Service(ApiClient),
    /// Straight into MongoDB (no service needed); the driver's retryable writes cover retries.
    Direct(Store),
}

pub async fn run(sink: Sink, key: LogKey, done: bool, masks: Vec<String>) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel::<String>(4 * MAX_BATCH_LINES);
    let mut writer = Writer::new(sink, key).await?;
    tokio::spawn(read_stdin(tx, Masks::new(masks)));
    loop {
        // Send as soon as there is a line; what arrives while a request is under way forms the
        // next batch. A slow producer's lines go out at once, a fast one's in large batches.
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
            return writer.append(batch, done).await;
        }
        writer.append(batch, false).await?;
    }
}

/// Lines of standard input without their `\n` (a `\r` stays); invalid UTF-8 is replaced.
/// Values that never leave this process: `--mask` and GitHub's `::add-mask::` lines.
struct Masks(Vec<String>);

impl Masks {
    fn new(values: Vec<String>) -> Self {
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

async fn read_stdin(tx: mpsc::Sender<String>, mut masks: Masks) {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let Some(line) = masks.process(String::from_utf8_lossy(&buf).into_owned()) else { continue };
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct Writer {
    sink: Sink,
    key: LogKey,
}

impl Writer {
    async fn new(mut sink: Sink, key: LogKey) -> Result<Self, String> {
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

    async fn append(&mut self, lines: Vec<String>, done: bool) -> Result<(), String> {
        if lines.is_empty() && !done {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Direct(store) => {
                match store.append(&self.key, &lines, done).await.map_err(|e| format!("MongoDB: {e}"))? {
                    Appended::Next(_) => Ok(()),
                    Appended::Finished => Err(finished(&self.key)),
                }
            }
            Sink::Service(client) => match client.append_exactly_once(&self.key, lines, done).await {
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
