//! The bytes of every format, event by event.

use super::*;
use crate::log::{LogLine, Outcome};

const BATCH: Format = Format::Batch { times: false };
const FAILED: Ending = Ending { outcome: Some(Outcome::Failed), exit_code: Some(2) };

fn line(n: u64, text: &str, t: u64) -> Event {
    let oid = bson::oid::ObjectId::new();
    let ts = Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(t));
    let line = LogLine { oid, text: text.to_owned(), inserted_at: None, ts, ending: Ending::default() };
    Event::Line { n, line: Line::Read(line) }
}

fn end(n: u64, ending: Ending) -> Event {
    Event::End { n, ending }
}

/// What `encoder` writes for `events` in one write.
fn written<E: Encode>(encoder: &mut E, events: &[E::Item]) -> String {
    let mut out = BytesMut::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.seal(&mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

fn text_event(n: u64, text: &str) -> String {
    written(&mut LogEncoder::new(Format::Text), &[line(n, text, 0)])
}

#[test]
fn a_plain_line_is_one_data_field_with_its_id() {
    assert_eq!(text_event(1, "hello"), "id: 1\ndata: hello\n\n");
}

#[test]
fn leading_spaces_survive_because_exactly_one_space_follows_the_colon() {
    assert_eq!(text_event(2, "  indented"), "id: 2\ndata:   indented\n\n");
}

#[test]
fn every_line_ending_splits_the_data() {
    assert_eq!(text_event(3, "a\nb"), "id: 3\ndata: a\ndata: b\n\n");
    assert_eq!(text_event(3, "a\r\nb"), "id: 3\ndata: a\ndata: b\n\n");
    assert_eq!(text_event(3, "a\rb"), "id: 3\ndata: a\ndata: b\n\n");
    assert_eq!(text_event(3, "a\r\rb"), "id: 3\ndata: a\ndata: \ndata: b\n\n");
    assert_eq!(text_event(3, "a\n"), "id: 3\ndata: a\ndata: \n\n");
}

#[test]
fn an_empty_line_is_still_an_event() {
    assert_eq!(text_event(4, ""), "id: 4\ndata: \n\n");
}

#[test]
fn unicode_passes_through_untouched() {
    assert_eq!(text_event(5, "部署完成 ✓ — ünïcödé"), "id: 5\ndata: 部署完成 ✓ — ünïcödé\n\n");
}

#[test]
fn lines_that_look_like_fields_stay_inside_data() {
    assert_eq!(text_event(6, "id: 5"), "id: 6\ndata: id: 5\n\n");
    assert_eq!(text_event(6, "data: x"), "id: 6\ndata: data: x\n\n");
    assert_eq!(text_event(6, ": comment"), "id: 6\ndata: : comment\n\n");
    assert_eq!(text_event(6, "x\nevent: done"), "id: 6\ndata: x\ndata: event: done\n\n");
}

#[test]
fn done_is_the_seed_marker_in_text_format() {
    assert_eq!(written(&mut LogEncoder::new(Format::Text), &[end(9, FAILED)]), "id: 9\ndata: [DONE]\n\n");
}

#[test]
fn json_format_is_lossless_and_single_line() {
    let mut json = LogEncoder::new(Format::Json);
    assert_eq!(
        written(&mut json, &[line(7, " a\r\nb\r", 1_700_000_000_123)]),
        "id: 7\ndata: {\"n\":7,\"line\":\" a\\r\\nb\\r\",\"t\":1700000000123}\n\n"
    );
    assert_eq!(
        written(&mut json, &[end(8, Ending::default())]),
        "id: 8\nevent: done\ndata: {\"n\":8,\"outcome\":null,\"exit_code\":null}\n\n"
    );
    assert_eq!(
        written(&mut json, &[end(8, FAILED)]),
        "id: 8\nevent: done\ndata: {\"n\":8,\"outcome\":\"failed\",\"exit_code\":2}\n\n"
    );
}

#[test]
fn batch_format_groups_consecutive_lines_into_one_event_whose_id_is_the_last_line() {
    let mut batch = LogEncoder::new(BATCH);
    // Position 6 is missing (a document that is not served): the batch breaks there.
    let events = [line(4, "a", 0), line(5, " b\r\n", 0), line(7, "c", 0), end(8, Ending::default())];
    let expected = "event: lines\ndata: {\"n\":4,\"lines\":[\"a\",\" b\\r\\n\"]}\nid: 5\n\n\
                    event: lines\ndata: {\"n\":7,\"lines\":[\"c\"]}\nid: 7\n\n\
                    id: 8\nevent: done\ndata: {\"n\":8,\"outcome\":null,\"exit_code\":null}\n\n";
    assert_eq!(written(&mut batch, &events), expected);
    assert_eq!(
        written(&mut batch, &[line(9, "d", 0)]),
        "event: lines\ndata: {\"n\":9,\"lines\":[\"d\"]}\nid: 9\n\n"
    );
}

#[test]
fn batch_format_with_times_adds_them_parallel_to_the_lines() {
    let mut batch = LogEncoder::new(Format::Batch { times: true });
    let first = [line(4, "a", 1_700_000_000_001), line(5, "b", 1_700_000_000_002)];
    let second = [line(6, "c", 1_700_000_000_003), end(7, FAILED)];
    let expected = "event: lines\ndata: {\"n\":4,\"lines\":[\"a\",\"b\"],\"times\":[1700000000001,1700000000002]}\nid: 5\n\n";
    assert_eq!(written(&mut batch, &first), expected);
    let expected = "event: lines\ndata: {\"n\":6,\"lines\":[\"c\"],\"times\":[1700000000003]}\nid: 6\n\n\
                    id: 7\nevent: done\ndata: {\"n\":7,\"outcome\":\"failed\",\"exit_code\":2}\n\n";
    assert_eq!(written(&mut batch, &second), expected);
}

#[test]
fn raw_format_is_the_text_and_a_newline_and_nothing_else() {
    let mut raw = LogEncoder::new(Format::Raw);
    assert_eq!(written(&mut raw, &[line(1, " a\r", 0), line(2, "", 0), end(3, FAILED)]), " a\r\n\n");
    assert!(!raw.is_sse() && LogEncoder::new(Format::Json).is_sse());
}

#[test]
fn a_live_line_is_encoded_once_for_every_viewer_of_the_same_format() {
    let Event::Line { line: Line::Read(read), .. } = line(3, "x", 0) else { unreachable!() };
    let live = Arc::new(crate::event::Live::new(read));
    let event = || Event::Line { n: 3, line: Line::Live(live.clone()) };
    let first = LogEncoder::new(Format::Json).shared(&event()).unwrap();
    let second = LogEncoder::new(Format::Json).shared(&event()).unwrap();
    assert_eq!(first.as_ptr(), second.as_ptr(), "the same bytes, not a copy");
    let text = LogEncoder::new(Format::Text).shared(&event()).unwrap();
    assert_eq!(&text[..], b"id: 3\ndata: x\n\n");
    // A viewer that counts another position never gets another's bytes.
    let other = LogEncoder::new(Format::Text).shared(&Event::Line { n: 4, line: Line::Live(live.clone()) });
    assert_eq!(&other.unwrap()[..], b"id: 4\ndata: x\n\n");
    assert!(LogEncoder::new(Format::Text).shared(&line(3, "x", 0)).is_none(), "a backlog line is its own");
}

#[test]
fn multi_format_names_the_log_and_writes_every_logs_position_as_the_id() {
    let mut multi = MultiEncoder::new([(LogKey::new("ci", "a:b"), 4), (LogKey::new("ci", "c"), 0)]);
    let events = [(0, line(5, "x\ny", 1_700_000_000_123)), (1, line(1, "z", 0)), (0, end(6, FAILED))];
    assert_eq!(
        written(&mut multi, &events),
        "event: line\nid: 5,0\ndata: {\"type\":\"ci\",\"id\":\"a:b\",\"n\":5,\"line\":\"x\\ny\",\"t\":1700000000123}\n\n\
         event: line\nid: 5,1\ndata: {\"type\":\"ci\",\"id\":\"c\",\"n\":1,\"line\":\"z\",\"t\":0}\n\n\
         event: done\nid: 6,1\ndata: {\"type\":\"ci\",\"id\":\"a:b\",\"n\":6,\"outcome\":\"failed\",\"exit_code\":2}\n\n"
    );
}
