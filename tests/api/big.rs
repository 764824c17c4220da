//! Big logs (issue 15): the tail snapshot, the batched stream format, the plain-text `raw`
//! route with and without `follow`, and `sse-logs tail -n`.

use std::process::Stdio;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use crate::helpers::{spawn_app, spawn_app_with, sse_logs, Item, TestApp, PATIENCE};

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("line {n}")).collect()
}

async fn write_all(app: &TestApp, id: &str, lines: &[String]) {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.write("ci", id, &refs).await;
}

#[tokio::test]
async fn a_tail_snapshot_answers_the_last_positions_and_where_they_start() {
    let app = spawn_app().await;
    write_all(&app, "ended", &numbered(1..=10)).await;
    app.write("ci", "ended", &["[DONE]"]).await;
    write_all(&app, "open", &numbered(1..=5)).await;

    let (status, last3) = get_json(&app, "/api/v1/logs/ci/ended?tail=3").await;
    assert_eq!(status, 200);
    assert_eq!(
        last3,
        json!({"type": "ci", "id": "ended", "from": 8, "lines": ["line 9", "line 10"], "next": 11, "done": true,
               "outcome": null, "exit_code": null})
    );
    let (_, all) = get_json(&app, "/api/v1/logs/ci/ended?tail=10000").await;
    assert_eq!((all["from"].clone(), all["lines"].as_array().unwrap().len()), (json!(0), 10));
    let (_, open) = get_json(&app, "/api/v1/logs/ci/open?tail=2").await;
    assert_eq!(open["from"], 3);
    assert_eq!(open["lines"], json!(["line 4", "line 5"]));
    assert_eq!((open["next"].clone(), open["done"].clone()), (json!(5), json!(false)));
    // The window and `from` fit together: the page after the tail's `from` is the same text.
    let (_, page) = get_json(&app, "/api/v1/logs/ci/open?from=3").await;
    assert_eq!(page["lines"], open["lines"]);
    let (_, empty) = get_json(&app, "/api/v1/logs/ci/never?tail=5").await;
    assert_eq!(empty, json!({"type": "ci", "id": "never", "from": 0, "lines": [], "next": 0, "done": false}));
}

#[tokio::test]
async fn bad_tail_follow_and_format_values_are_the_contracts_400() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/logs/ci/1?tail=5&from=0",
        "/api/v1/logs/ci/1?tail=5&limit=10",
        "/api/v1/logs/ci/1?tail=0",
        "/api/v1/logs/ci/1?tail=10001",
        "/api/v1/logs/ci/1?tail=-1",
        "/api/v1/logs/ci/1?tail=x",
        "/api/v1/logs/ci/1/raw?follow=yes",
        "/api/v1/logs/ci/1/stream?format=lines",
    ] {
        let (status, body) = get_json(&app, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn raw_is_the_text_of_each_line_and_a_newline() {
    let app = spawn_app().await;
    app.write("ci", "r", &["  indented", "", "cr\r", "ünïcödé ✓", "\x1b[32mok\x1b[0m", "[DONE]"]).await;
    let response = app.http.get(app.url("/api/v1/logs/ci/r/raw")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    let body = response.text().await.unwrap();
    assert_eq!(body, "  indented\n\ncr\r\nünïcödé ✓\n\x1b[32mok\x1b[0m\n");

    // An unfinished log: the response ends at the current end.
    write_all(&app, "open", &numbered(1..=3)).await;
    let body = app.http.get(app.url("/api/v1/logs/ci/open/raw")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "line 1\nline 2\nline 3\n");
    let body = app.http.get(app.url("/api/v1/logs/ci/never/raw?follow=0")).send().await.unwrap();
    assert_eq!(body.text().await.unwrap(), "");
}

#[tokio::test]
async fn raw_streams_a_big_log_in_pieces() {
    let app = spawn_app().await;
    let lines = numbered(1..=30_000);
    for chunk in lines.chunks(10_000) {
        write_all(&app, "big", chunk).await;
    }
    let response = app.http.get(app.url("/api/v1/logs/ci/big/raw")).send().await.unwrap();
    let mut body = response.bytes_stream();
    let (mut text, mut pieces) = (Vec::new(), 0);
    while let Some(chunk) = body.next().await {
        text.extend_from_slice(&chunk.unwrap());
        pieces += 1;
    }
    let expected: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(text == expected.as_bytes(), "the whole log, in order, once");
    assert!(pieces > 10, "streamed as it is read, not sent as one body ({pieces} pieces)");
}

/// Reads a response body until it holds `want`.
async fn read_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    have: &mut String,
    want: &str,
) {
    while !have.contains(want) {
        let chunk = tokio::time::timeout(PATIENCE, body.next()).await.expect("bytes in time");
        have.push_str(std::str::from_utf8(&chunk.expect("more bytes").unwrap()).unwrap());
    }
}

#[tokio::test]
async fn raw_follow_streams_new_lines_once_until_done() {
    let app = spawn_app_with(&[("SSE__KEEP_ALIVE_SECS", "1")]).await;
    write_all(&app, "live", &numbered(1..=1000)).await;
    let response = app.http.get(app.url("/api/v1/logs/ci/live/raw?follow=1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    read_until(&mut body, &mut text, "line 1000\n").await;
    write_all(&app, "live", &numbered(1001..=1100)).await;
    read_until(&mut body, &mut text, "line 1100\n").await;
    app.write("ci", "live", &["[DONE]"]).await;
    while let Some(chunk) = tokio::time::timeout(PATIENCE, body.next()).await.expect("the response ends") {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let expected: String = numbered(1..=1100).iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(text, expected, "no keep-alive, retry or [DONE] in the text; every line once");

    // follow=1 on an ended log answers the text and ends.
    let ended = app.http.get(app.url("/api/v1/logs/ci/live/raw?follow=1")).send().await.unwrap();
    let ended = tokio::time::timeout(PATIENCE, ended.text()).await.expect("ends").unwrap();
    assert_eq!(ended, expected);
}

#[tokio::test]
async fn the_batch_format_carries_many_lines_per_event_and_hands_off_to_live_exactly_once() {
    let app = spawn_app().await;
    write_all(&app, "b", &numbered(1..=3000)).await;
    let mut client = app.get_stream(&app.stream_url("ci", "b", "format=batch&from=1000")).await;
    let mut next = 1001_u64;
    let mut events = 0;
    let mut wrote = false;
    let done = loop {
        let event = match client.next_item().await {
            Item::Event(event) => event,
            Item::End => panic!("ended before the done event"),
            _ => continue,
        };
        let data: Value = serde_json::from_str(&event.data).unwrap();
        if event.event == "done" {
            assert_eq!(event.id, data["n"].to_string());
            break data["n"].as_u64().unwrap();
        }
        assert_eq!(event.event, "lines");
        events += 1;
        assert_eq!(data["n"], next, "each event starts where the last one ended");
        for line in data["lines"].as_array().unwrap() {
            assert_eq!(line.as_str().unwrap(), format!("line {next}"));
            next += 1;
        }
        assert_eq!(event.id, (next - 1).to_string(), "id: the event's last line");
        if !wrote && next > 1500 {
            // Lines written while the backlog is being sent arrive once, in their place.
            write_all(&app, "b", &numbered(3001..=3010)).await;
            app.write("ci", "b", &["[DONE]"]).await;
            wrote = true;
        }
    };
    assert_eq!(next, 3011);
    assert_eq!(done, 3011);
    assert!(events < 100, "2,010 lines in {events} events");
}

async fn next_line(printed: &mut tokio::io::Lines<impl tokio::io::AsyncBufRead + Unpin>) -> Option<String> {
    tokio::time::timeout(PATIENCE, printed.next_line()).await.expect("a line in time").unwrap()
}

#[tokio::test]
async fn tail_n_prints_the_last_lines_then_follows() {
    let app = spawn_app().await;
    let server = app.url("");
    write_all(&app, "7", &numbered(1..=50)).await;
    let run = |args: Vec<String>| {
        let mut all = vec!["tail".to_owned(), "--type".into(), "ci".into(), "--id".into(), "7".into()];
        all.extend(["--server".to_owned(), server.clone()]);
        all.extend(args);
        async move {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            let output = tokio::time::timeout(PATIENCE, sse_logs(&args).stderr(Stdio::inherit()).output())
                .await
                .expect("tail finishes")
                .unwrap();
            assert!(output.status.success());
            String::from_utf8(output.stdout).unwrap()
        }
    };
    assert_eq!(run(vec!["-n".into(), "3".into(), "--no-follow".into()]).await, "line 48\nline 49\nline 50\n");

    // Following: the last 2 lines, then what comes, until [DONE].
    let mut follower = sse_logs(&["tail", "--type", "ci", "--id", "7", "--server", &server, "--tail", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = tokio::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut printed).await.as_deref(), Some("line 49"));
    assert_eq!(next_line(&mut printed).await.as_deref(), Some("line 50"));
    write_all(&app, "7", &numbered(51..=52)).await;
    app.write("ci", "7", &["[DONE]"]).await;
    assert_eq!(next_line(&mut printed).await.as_deref(), Some("line 51"));
    assert_eq!(next_line(&mut printed).await.as_deref(), Some("line 52"));
    assert_eq!(next_line(&mut printed).await, None, "tail exits at [DONE]");
    assert!(follower.wait().await.unwrap().success());

    // An ended log: the [DONE] position does not take a line's place; more than one snapshot holds.
    assert_eq!(run(vec!["-n".into(), "2".into()]).await, "line 51\nline 52\n");
    let all: String = numbered(1..=52).iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(run(vec!["-n".into(), "100".into()]).await, all);

    // More lines than one tail snapshot holds (10,000): printed from the right position on.
    write_all(&app, "long", &numbered(1..=10_050)).await;
    app.write("ci", "long", &["[DONE]"]).await;
    let args = ["tail", "--type", "ci", "--id", "long", "--server", &server, "-n", "10020"];
    let output = tokio::time::timeout(PATIENCE, sse_logs(&args).output()).await.expect("ends").unwrap();
    assert!(output.status.success());
    let expected: String = numbered(31..=10_050).iter().map(|l| format!("{l}\n")).collect();
    assert!(String::from_utf8(output.stdout).unwrap() == expected, "lines 31..=10050");
}
