//! The change stream of the log collection, read as the inserts of log lines.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bson::Document;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::error::Result;

use super::last::LastLines;
use crate::log::{LogKey, LogLine};
use crate::redact::Redactor;

/// What the change stream reported.
#[derive(Debug)]
pub(crate) enum Change {
    /// A line was inserted; `committed` is the cluster time (second resolution).
    Inserted { key: LogKey, line: LogLine, committed: Option<SystemTime> },
    /// The collection was dropped or renamed: the stream cannot go on.
    Invalidated,
    /// Something that is not a line (a document of no log, another operation).
    Ignored,
}

/// The collection's inserts, as a change stream.
pub(crate) struct Inserts {
    stream: ChangeStream<ChangeStreamEvent<Document>>,
    redact: Arc<Redactor>,
    /// Told what other writers do, so that appends need not ask MongoDB (see `last.rs`).
    last_lines: Arc<LastLines>,
}

impl Inserts {
    pub(super) fn new(
        stream: ChangeStream<ChangeStreamEvent<Document>>,
        redact: Arc<Redactor>,
        last_lines: Arc<LastLines>,
    ) -> Self {
        last_lines.hearing_started();
        Self { stream, redact, last_lines }
    }

    /// The next change; `None` when the server answered with an empty batch (caught up).
    pub async fn next(&mut self) -> Result<Option<Change>> {
        let event = match self.stream.next_if_any().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(None),
            Err(err) => {
                self.last_lines.hearing_stopped();
                return Err(err);
            }
        };
        Ok(Some(match event.operation_type {
            OperationType::Insert => {
                let committed = event.cluster_time.map(|at| UNIX_EPOCH + Duration::from_secs(at.time.into()));
                if let Some(document) = event.full_document.as_ref().filter(|d| !d.contains_key("n")) {
                    if let Some(key) = LogKey::of_document(document) {
                        self.last_lines.heard_unpositioned(&key);
                    }
                }
                let parsed = event
                    .full_document
                    .as_ref()
                    .and_then(|d| Some((LogKey::of_document(d)?, LogLine::from_document(d)?)));
                match parsed {
                    Some((key, mut line)) => {
                        line.inserted_at = event.wall_time.map(SystemTime::from);
                        self.redact.apply_owned(&mut line.text);
                        Change::Inserted { key, line, committed }
                    }
                    None => Change::Ignored,
                }
            }
            OperationType::Invalidate => Change::Invalidated,
            _ => Change::Ignored,
        }))
    }

    pub fn resume_token(&self) -> Option<ResumeToken> {
        self.stream.resume_token()
    }
}

impl Drop for Inserts {
    fn drop(&mut self) {
        self.last_lines.hearing_stopped();
    }
}
