//! Each followed log's window of recent lines (issue 26): a viewer that comes back inside it is
//! served from memory, one that comes back before it reads MongoDB, and either way every line
//! arrives once, in order, across the window's edges and the live edge.

use crate::helpers::{assert_gets_every_line_once, spawn_app_counting, spawn_app_with, take_data};
use crate::mongo_proxy::IN_BESIDE_ID_RANGE;

/// What one line of these tests ("line N", N < 1000) costs in a window: its text and 160 bytes.
const LINE_COST: usize = 8 + 160;
/// A window that holds the newest 50 lines.
const FIFTY_LINES: usize = 50 * LINE_COST;

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|n| format!("line {n}")).collect()
}

/// A viewer of `win/1` coming back with `Last-Event-ID: from`.
async fn resume(app: &crate::helpers::TestApp, from: usize) -> crate::helpers::SseClient {
    let request = app.http.get(app.stream_url("win", "1", "")).header("Last-Event-ID", from.to_string());
    app.get_stream_with(request).await
}

async fn write(app: &crate::helpers::TestApp, from: usize, to: usize) {
    let lines = lines(from, to);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.write("win", 1_i64, &refs).await;
}

#[tokio::test]
async fn resumes_on_both_sides_of_the_windows_edges_get_every_line_once_and_only_inside_it_from_memory() {
    let per_log = FIFTY_LINES.to_string();
    let app = spawn_app_with(&[("window.bytes_per_log", per_log.as_str())]).await;
    write(&app, 1, 200).await;
    // The window holds lines 151..=200. Each viewer resumes with its Last-Event-ID.
    let before = app.metric("sse_logs_window_resumes_total");
    let mut resumed = Vec::new();
    for from in [100, 149, 150, 175] {
        let mut client = resume(&app, from).await;
        // Its first line: it has joined (from the window or from MongoDB) before the log moves on.
        assert_eq!(take_data(&mut client, 1).await, [format!("line {}", from + 1)]);
        resumed.push((client, from + 1));
    }
    let mut live_edge = resume(&app, 200).await;
    // Then the log goes on, past the window's first state (its oldest lines leave it), and ends.
    write(&app, 201, 230).await;
    assert_eq!(take_data(&mut live_edge, 1).await, ["line 201"], "the live edge goes live");
    app.write("win", 1_i64, &["[DONE]"]).await;
    for (client, from) in resumed {
        assert_gets_every_line_once(client, from, 230).await;
    }
    assert_gets_every_line_once(live_edge, 201, 230).await;
    let from_memory = app.metric("sse_logs_window_resumes_total") - before;
    assert_eq!(from_memory, 3.0, "at its start, inside and at the live edge; not before it");

    // After the end: the window answers the "already ended" check (EventSource stops on 204).
    let done =
        app.http.get(app.stream_url("win", "1", "")).header("Last-Event-ID", "231").send().await.unwrap();
    assert_eq!(done.status(), 204);
    let last = resume(&app, 230).await.collect_to_end().await;
    assert_eq!(last.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["[DONE]"]);
}

#[tokio::test]
async fn a_resync_empties_the_windows_so_a_log_written_anew_is_never_served_from_the_old_one() {
    let app = spawn_app_with(&[]).await;
    write(&app, 1, 20).await;
    let mut first = resume(&app, 10).await;
    assert_eq!(take_data(&mut first, 10).await, lines(11, 20));
    let resyncs = app.metric("sse_logs_resyncs_total");
    // Dropping the collection invalidates the change stream: the hub resyncs.
    app.logs.drop().await.unwrap();
    app.write("win", 1_i64, &["new 1", "new 2", "new 3", "new 4", "new 5"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.metric("sse_logs_resyncs_total") == resyncs {
        assert!(std::time::Instant::now() < deadline, "the hub resyncs after the collection is dropped");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut again = resume(&app, 3).await;
    assert_eq!(take_data(&mut again, 2).await, ["new 4", "new 5"]);
}

#[tokio::test]
async fn with_windows_off_a_resume_reads_mongodb_and_still_gets_every_line_once() {
    let app = spawn_app_with(&[("window.bytes_per_log", "0")]).await;
    write(&app, 1, 20).await;
    // At the live edge: even a window of one line would serve this resume.
    let client = resume(&app, 20).await;
    write(&app, 21, 25).await;
    app.write("win", 1_i64, &["[DONE]"]).await;
    assert_gets_every_line_once(client, 20, 25).await;
    assert_eq!(app.metric("sse_logs_window_resumes_total"), 0.0, "no window, no resume from one");
}

#[tokio::test]
async fn a_resume_of_a_log_whose_id_is_stored_in_two_forms_reads_each_form_on_its_own() {
    // Without windows, a resume reads MongoDB: by `_id` range, one query per form of the id
    // (an `$in` beside the range makes the test server read every log of the type).
    let (app, proxy) = spawn_app_counting(&[("WINDOW__BYTES_PER_LOG", "0")]).await;
    let documents: Vec<bson::Document> = (1..=30)
        .map(|n: u32| {
            let id = if n.is_multiple_of(3) { bson::Bson::String("7".into()) } else { bson::Bson::Int64(7) };
            bson::doc! { "_id": bson::oid::ObjectId::new(), "type": "two", "id": id, "log": format!("line {n}") }
        })
        .collect();
    app.logs.insert_many(documents).await.unwrap();
    let request = app.http.get(app.stream_url("two", "7", "")).header("Last-Event-ID", "20");
    let mut client = app.get_stream_with(request).await;
    let expected: Vec<String> = (21..=30).map(|n| format!("line {n}")).collect();
    assert_eq!(take_data(&mut client, 10).await, expected);
    assert_eq!(proxy.count(IN_BESIDE_ID_RANGE), 0, "{:?}", proxy.counts());
}

#[tokio::test]
async fn a_window_reaches_back_as_far_as_its_bound_allows_and_a_resume_before_that_reads_mongodb() {
    // Room for the window's first read (the last 1,000 lines: 501..=1500) and 100 lines more.
    let per_log = (499 * LINE_COST + 501 * (LINE_COST + 1) + 100 * LINE_COST).to_string();
    let app = spawn_app_with(&[("window.bytes_per_log", per_log.as_str())]).await;
    // Followed while written, so the hub has heard every line before the viewers come back.
    let mut watcher = app.get_stream(&app.stream_url("win", "1", "")).await;
    write(&app, 1, 1500).await;
    assert_eq!(take_data(&mut watcher, 1500).await.len(), 1500);
    let before = app.metric("sse_logs_window_resumes_total");
    let mut resumed = Vec::new();
    // The first makes the window reach back: it reads lines 1..=500 and keeps 401..=500, so
    // the window starts at 401, one line after what this viewer needs.
    for from in [399, 400, 401, 450] {
        let mut client = resume(&app, from).await;
        assert_eq!(take_data(&mut client, 1).await, [format!("line {}", from + 1)]);
        resumed.push((client, from + 1));
    }
    write(&app, 1501, 1510).await;
    app.write("win", 1_i64, &["[DONE]"]).await;
    for (client, from) in resumed {
        assert_gets_every_line_once(client, from, 1510).await;
    }
    let from_memory = app.metric("sse_logs_window_resumes_total") - before;
    assert_eq!(from_memory, 3.0, "at the window's new start and inside it; not before it");
    drop(watcher);
}

#[tokio::test]
async fn a_viewer_that_joined_a_window_is_never_given_older_lines_a_lagging_change_stream_brings_later() {
    let per_log = FIFTY_LINES.to_string();
    let (app, proxy) = spawn_app_counting(&[("window.bytes_per_log", per_log.as_str())]).await;
    // The service's change stream hears nothing until let go: it lags behind the writer.
    proxy.hold_change_stream(true);
    write(&app, 1, 200).await;
    // At the live edge: the window, read from MongoDB, holds 151..=200 and nothing after.
    let client = resume(&app, 200).await;
    // Let go: the stream brings lines 1..=200 (1..=150 older than the window), then new ones.
    proxy.hold_change_stream(false);
    write(&app, 201, 205).await;
    app.write("win", 1_i64, &["[DONE]"]).await;
    assert_gets_every_line_once(client, 200, 205).await;
    assert_eq!(app.metric("sse_logs_window_resumes_total"), 1.0, "it had joined the window");
}
