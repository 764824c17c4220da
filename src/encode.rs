//! The encoders at the edge: a stream's events become the bytes of the format asked for.
//!
//! Every streaming route ends here, through the one body of `crate::body`: the single-log
//! formats (the seed's text events, `format=json`, `format=batch`, `raw`), the multi-log stream
//! and the index stream. Sessions and the hub never see bytes. A live line's encoding is shared
//! by every viewer that encodes it alike (`crate::event::Live`), so fan-out encodes once.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::event::{Event, Line};
use crate::index::Summary;
use crate::log::{Ending, LogKey, DONE};
use crate::metrics::Metrics;
use crate::sse::{write_data, write_id, write_json};

/// Turns one kind of item into bytes, keeping whatever state a format needs between items.
pub(crate) trait Encode: Send + Unpin + 'static {
    type Item;

    /// Whether the response is SSE (`retry:` first, keep-alive comments) rather than plain text.
    fn is_sse(&self) -> bool {
        true
    }

    /// Appends `item`. An event may be left open for the next item (a batch); see `seal`.
    fn encode(&mut self, item: &Self::Item, out: &mut BytesMut);

    /// Closes what `encode` left open, before `out` is written.
    fn seal(&mut self, _out: &mut BytesMut) {}

    /// `item` as a write of its own, made once and shared by every viewer encoding it alike;
    /// `None` when it is not shared (then `encode` and `seal` make it).
    fn shared(&mut self, _item: &Self::Item) -> Option<Bytes> {
        None
    }

    /// Counts what `item` sends to the client.
    fn count(&self, _item: &Self::Item, _metrics: &Metrics) {}
}

/// How a single log's lines are written, as the client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The seed's format: the line itself, one `data:` field per piece of the line.
    Text,
    /// `{"n":k,"line":"...","t":ms}`: lossless for empty lines and carriage returns.
    Json,
    /// `event: lines` with `{"n":first,"lines":[...]}` and the last line's number as `id:`: one
    /// event per write, so a browser replays a big backlog in hundreds of events, not one per line.
    /// With `times`, the event also has `"times":[ms,...]` parallel to `lines`.
    Batch { times: bool },
    /// Not SSE: each line's text and `\n`, nothing else (`raw`, for curl and downloads).
    Raw,
}

impl Format {
    /// Where a live line's encoding in this format is kept (`crate::event::SHARED_ENCODINGS`).
    fn shared_slot(self) -> usize {
        match self {
            Format::Text => 0,
            Format::Json => 1,
            Format::Batch { times: false } => 2,
            Format::Batch { times: true } => 3,
            Format::Raw => 4,
        }
    }
}

/// One log's events in a [`Format`].
#[derive(Debug)]
pub(crate) struct LogEncoder {
    format: Format,
    /// The `Batch` event still open: its last line's number and its lines' times.
    batch: Option<(u64, Vec<u64>)>,
}

impl LogEncoder {
    pub fn new(format: Format) -> Self {
        Self { format, batch: None }
    }

    fn line(&mut self, n: u64, text: &str, t: u64, out: &mut BytesMut) {
        match self.format {
            Format::Text => {
                write_id(out, n);
                write_data(out, text);
                out.put_u8(b'\n');
            }
            Format::Json => {
                write_id(out, n);
                write_json(out, &JsonLine { n, line: text, t });
                out.put_u8(b'\n');
            }
            Format::Batch { times } => {
                // A batch numbers its lines from its first, so it never spans a missing position.
                match &mut self.batch {
                    Some((last, _)) if *last + 1 == n => {
                        out.put_u8(b',');
                        *last = n;
                    }
                    _ => {
                        self.seal(out);
                        out.put_slice(format!("event: lines\ndata: {{\"n\":{n},\"lines\":[").as_bytes());
                        self.batch = Some((n, Vec::new()));
                    }
                }
                out.put_slice(&serde_json::to_vec(text).expect("a string serialises"));
                if let (true, Some((_, at))) = (times, &mut self.batch) {
                    at.push(t);
                }
            }
            Format::Raw => {
                out.put_slice(text.as_bytes());
                out.put_u8(b'\n');
            }
        }
    }

    fn end(&mut self, n: u64, ending: Ending, out: &mut BytesMut) {
        self.seal(out);
        match self.format {
            // The text format stays the seed's bare `[DONE]`; the JSON ones say how the log ended.
            Format::Text => {
                write_id(out, n);
                write_data(out, DONE);
                out.put_u8(b'\n');
            }
            Format::Json | Format::Batch { .. } => {
                write_id(out, n);
                out.put_slice(b"event: done\n");
                write_json(out, &JsonDone { n, ending });
                out.put_u8(b'\n');
            }
            // The text simply ends; `[DONE]` is not part of it.
            Format::Raw => {}
        }
    }
}

impl Encode for LogEncoder {
    type Item = Event;

    fn is_sse(&self) -> bool {
        self.format != Format::Raw
    }

    fn encode(&mut self, event: &Event, out: &mut BytesMut) {
        match event {
            Event::Line { n, line } => self.line(*n, &line.text, line.time_ms(), out),
            Event::End { n, ending } => self.end(*n, *ending, out),
        }
    }

    /// Closes an open `Batch` event; its `id` is its last line's number. (SSE lets `id:` follow
    /// `data:`; the event is dispatched at the blank line.)
    fn seal(&mut self, out: &mut BytesMut) {
        let Some((last, times)) = self.batch.take() else { return };
        out.put_u8(b']');
        if matches!(self.format, Format::Batch { times: true }) {
            out.put_slice(b",\"times\":");
            out.put_slice(&serde_json::to_vec(&times).expect("numbers serialise"));
        }
        out.put_slice(format!("}}\nid: {last}\n\n").as_bytes());
    }

    fn shared(&mut self, event: &Event) -> Option<Bytes> {
        let Event::Line { n, line: Line::Live(live) } = event else { return None };
        if self.batch.is_some() {
            return None;
        }
        let format = self.format;
        Some(live.encoded(format.shared_slot(), *n, || {
            let mut alone = LogEncoder::new(format);
            let mut out = BytesMut::new();
            alone.encode(event, &mut out);
            alone.seal(&mut out);
            out.freeze()
        }))
    }

    fn count(&self, event: &Event, metrics: &Metrics) {
        count_line(event, metrics);
    }
}

fn count_line(event: &Event, metrics: &Metrics) {
    let Event::Line { line, .. } = event else { return };
    metrics.lines_sent.inc();
    if let Some(delay) = line.inserted_at.and_then(|at| at.elapsed().ok()) {
        metrics.insert_to_send.observe(delay.as_secs_f64());
    }
}

/// Several logs on one connection (`/api/v1/streams`): `event: line` with
/// `{"type","id","n","line","t"}`, `event: done` with `{"type","id","n",...}`, and as `id:`
/// every log's position (`12,0,7`, in the order asked), so `Last-Event-ID` resumes them all.
#[derive(Debug)]
pub(crate) struct MultiEncoder {
    keys: Vec<Arc<LogKey>>,
    positions: Vec<u64>,
}

impl MultiEncoder {
    /// `logs`: each log and the lines the client already has of it.
    pub fn new(logs: impl IntoIterator<Item = (LogKey, u64)>) -> Self {
        let (keys, positions) = logs.into_iter().map(|(key, from)| (Arc::new(key), from)).unzip();
        Self { keys, positions }
    }

    fn write_ids(&self, out: &mut BytesMut) {
        out.put_slice(b"id: ");
        for (at, position) in self.positions.iter().enumerate() {
            if at > 0 {
                out.put_u8(b',');
            }
            out.put_slice(position.to_string().as_bytes());
        }
        out.put_u8(b'\n');
    }
}

impl Encode for MultiEncoder {
    /// An event of the log at this index of the request's logs.
    type Item = (usize, Event);

    fn encode(&mut self, (log, event): &(usize, Event), out: &mut BytesMut) {
        self.positions[*log] = event.position();
        let key = &self.keys[*log];
        let (r#type, id) = (key.log_type.as_str(), key.id.as_str());
        match event {
            Event::Line { n, line } => {
                out.put_slice(b"event: line\n");
                self.write_ids(out);
                write_json(out, &MultiLine { r#type, id, n: *n, line: &line.text, t: line.time_ms() });
            }
            Event::End { n, ending } => {
                out.put_slice(b"event: done\n");
                self.write_ids(out);
                write_json(out, &MultiDone { r#type, id, n: *n, ending: *ending });
            }
        }
        out.put_u8(b'\n');
    }

    fn count(&self, (_, event): &(usize, Event), metrics: &Metrics) {
        count_line(event, metrics);
    }
}

/// What the index stream sends: logs as whole objects, oldest first, so a client replaces rows.
#[derive(Debug)]
pub(crate) enum IndexItem {
    /// The first list, or the whole list again (after a lag or a rebuild), newest first.
    List(Vec<Summary>),
    /// One log that changed.
    Log(Arc<Summary>),
}

/// The index stream's `event: log` objects.
#[derive(Debug, Default)]
pub(crate) struct IndexEncoder;

impl Encode for IndexEncoder {
    type Item = IndexItem;

    fn encode(&mut self, item: &IndexItem, out: &mut BytesMut) {
        match item {
            IndexItem::List(logs) => logs.iter().rev().for_each(|summary| write_log(out, summary)),
            IndexItem::Log(summary) => write_log(out, summary),
        }
    }
}

fn write_log(out: &mut BytesMut, summary: &Summary) {
    out.put_slice(b"event: log\ndata: ");
    // serde_json escapes line ends, so the object is always one data line.
    out.put_slice(&serde_json::to_vec(summary).expect("a summary serialises"));
    out.put_slice(b"\n\n");
}

#[derive(Serialize)]
struct JsonLine<'a> {
    n: u64,
    line: &'a str,
    t: u64,
}

#[derive(Serialize)]
struct JsonDone {
    n: u64,
    #[serde(flatten)]
    ending: Ending,
}

#[derive(Serialize)]
struct MultiLine<'a> {
    r#type: &'a str,
    id: &'a str,
    n: u64,
    line: &'a str,
    t: u64,
}

#[derive(Serialize)]
struct MultiDone<'a> {
    r#type: &'a str,
    id: &'a str,
    n: u64,
    #[serde(flatten)]
    ending: Ending,
}

#[cfg(test)]
mod tests;
