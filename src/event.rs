//! What a stream carries before it is bytes: a log's lines with their positions, and its end.
//!
//! Sessions (`crate::session`) yield these, whatever the route; only the encoder at the edge
//! (`crate::encode`) turns them into SSE, JSON, batches or plain text. A line heard on the
//! change stream is one [`Live`] shared by every viewer of its log, and carries the bytes each
//! encoding made of it, so a line followed by thousands of viewers is encoded once per format.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::log::{Ending, LogLine};

/// One item of a log's stream, at its position in the log (the first line is 1).
#[derive(Debug)]
pub(crate) enum Event {
    /// Line `n`: read from MongoDB, or heard on the change stream.
    Line { n: u64, line: Line },
    /// The log's `[DONE]` document, at position `n`, and how the log ended.
    End { n: u64, ending: Ending },
}

impl Event {
    pub fn position(&self) -> u64 {
        match self {
            Event::Line { n, .. } | Event::End { n, .. } => *n,
        }
    }
}

/// A line's content: its own, read from a backlog, or shared with the other viewers of its log.
#[derive(Debug)]
pub(crate) enum Line {
    Read(LogLine),
    Live(Arc<Live>),
}

impl std::ops::Deref for Line {
    type Target = LogLine;

    fn deref(&self) -> &LogLine {
        match self {
            Line::Read(line) => line,
            Line::Live(live) => live,
        }
    }
}

/// How many encodings a live line can keep (one per format that shares them).
pub(crate) const SHARED_ENCODINGS: usize = 5;

/// One inserted line as the hub hands it out, with the encodings made of it so far.
///
/// A line's position is the same for every viewer of its log, so its encoding in a format is
/// the same bytes for all of them: the first viewer's encoder makes it, the others share it.
#[derive(Debug)]
pub(crate) struct Live {
    pub line: LogLine,
    /// Per encoding slot: the position it was encoded at, and the bytes.
    encodings: [OnceLock<(u64, Bytes)>; SHARED_ENCODINGS],
}

impl Live {
    pub fn new(line: LogLine) -> Self {
        Self { line, encodings: Default::default() }
    }

    /// This line's encoding in slot `slot` at position `n`: the one made already, or
    /// `encode()`. An encoder at another position (which would be a bug elsewhere) still gets
    /// its own bytes, never another's.
    pub fn encoded(&self, slot: usize, n: u64, encode: impl FnOnce() -> Bytes) -> Bytes {
        let mut encode = Some(encode);
        let (at, bytes) = self.encodings[slot].get_or_init(|| (n, encode.take().expect("called once")()));
        match encode {
            Some(encode) if *at != n => encode(),
            _ => bytes.clone(),
        }
    }
}

impl std::ops::Deref for Live {
    type Target = LogLine;

    fn deref(&self) -> &LogLine {
        &self.line
    }
}
