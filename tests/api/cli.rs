//! `sse-logs push` and `sse-logs tail`, run as the real binary against a real service.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{spawn_app, sse_logs, PATIENCE};

/// Runs `tail` to completion and returns what it printed.
async fn tail(server: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["tail", "--type", "deploy", "--id", "7", "--server", server];
    args.extend_from_slice(extra);
    let output = tokio::time::timeout(PATIENCE * 6, sse_logs(&args).stderr(Stdio::inherit()).output())
        .await
        .expect("tail finishes")
        .unwrap();
    assert!(output.status.success(), "tail failed: {:?}", output.status);
    output.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_pushed_lines_come_back_from_tail_byte_for_byte() {
    let app = spawn_app().await;
    let server = app.url("");
    let mut input = Vec::new();
    for n in 1..=100_000 {
        match n % 1000 {
            0 => input.extend_from_slice(b""),
            1 => input.extend_from_slice(format!("  {n} indented\r").as_bytes()),
            2 => input.extend_from_slice(format!("{n} ünïcödé ✓").as_bytes()),
            _ => input.extend_from_slice(n.to_string().as_bytes()),
        }
        input.push(b'\n');
    }
    let mut push = sse_logs(&["push", "--type", "deploy", "--id", "7", "--server", &server])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        tokio::spawn(async move {
            stdin.write_all(&input).await.unwrap();
        })
    };
    // A tail that joins while the push is halfway through.
    let mut watcher = app.get_stream(&app.stream_url("deploy", "7", "from=49999")).await;
    assert_eq!(watcher.next_event().await.id, "50000");
    let halfway = {
        let server = server.clone();
        tokio::spawn(async move { tail(&server, &[]).await })
    };

    writer.await.unwrap();
    let status = tokio::time::timeout(PATIENCE * 6, push.wait()).await.expect("push finishes").unwrap();
    assert!(status.success());
    assert!(halfway.await.unwrap() == input, "the tail started halfway printed the same bytes");
    assert!(tail(&server, &[]).await == input, "a tail started after the end prints the same bytes");
    assert!(tail(&server, &["--no-follow"]).await == input, "--no-follow prints the same bytes");
}

#[tokio::test]
async fn tail_follows_a_log_across_a_service_restart_resuming_after_its_last_line_without_gaps_or_repeats() {
    let mut app = spawn_app().await;
    let server = app.url("");
    let mut tail = sse_logs(&["tail", "--type", "deploy", "--id", "7", "--server", &server])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = BufReader::new(tail.stdout.take().unwrap()).lines();
    let first: Vec<String> = (1..=100).map(|n| format!("before {n}")).collect();
    app.write("deploy", 7_i64, &first.iter().map(String::as_str).collect::<Vec<_>>()).await;
    // Read what tail prints as it arrives: the service stops only once line 100 is out.
    let mut lines = Vec::new();
    while lines.len() < first.len() {
        let line = tokio::time::timeout(PATIENCE, printed.next_line())
            .await
            .expect("tail prints the first lines in time")
            .unwrap()
            .expect("tail is still running");
        lines.push(line);
    }
    assert_eq!(lines, first, "tail printed lines 1 to 100 before the restart");

    app.stop().await;
    let second: Vec<String> = (1..=100).map(|n| format!("after {n}")).collect();
    app.write("deploy", 7_i64, &second.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let replacement = app.restart_in_place().await;
    replacement.write("deploy", 7_i64, &["[DONE]"]).await;

    while let Some(line) =
        tokio::time::timeout(PATIENCE * 2, printed.next_line()).await.expect("tail ends").unwrap()
    {
        lines.push(line);
    }
    let status = tokio::time::timeout(PATIENCE, tail.wait()).await.expect("tail exits").unwrap();
    assert!(status.success(), "tail exits 0 at [DONE]: {status}");
    let expected: Vec<String> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(lines, expected);
    // Resumed with Last-Event-ID: 100: the restarted service sent only the 100 new lines (a tail
    // starting over would have been sent all 200 and dropped the repeats itself).
    assert_eq!(replacement.metric("sse_logs_lines_sent_total"), 100.0);
}

#[tokio::test]
async fn push_refuses_a_finished_log_and_no_done_leaves_it_open() {
    let app = spawn_app().await;
    let server = app.url("");
    let mut open = sse_logs(&["push", "--type", "deploy", "--id", "7", "--server", &server, "--no-done"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    open.stdin.take().unwrap().write_all(b"one\ntwo\n").await.unwrap();
    assert!(open.wait().await.unwrap().success());
    let page: serde_json::Value =
        app.http.get(app.url("/api/v1/logs/deploy/7")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["lines"], serde_json::json!(["one", "two"]));
    assert_eq!(page["done"], false);

    app.write("deploy", 7_i64, &["[DONE]"]).await;
    let output = sse_logs(&["push", "--type", "deploy", "--id", "7", "--server", &server])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already ended"), "{stderr}");
}

#[tokio::test]
async fn push_can_write_straight_into_mongodb() {
    let app = spawn_app().await;
    let uri = crate::helpers::mongodb_uri();
    let mut push = sse_logs(&["push", "--type", "deploy", "--id", "7", "--mongodb-uri", &uri])
        .env("SSE_LOGS__MONGODB__DATABASE", &app.database)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    push.stdin.take().unwrap().write_all(b"direct\n").await.unwrap();
    assert!(push.wait().await.unwrap().success());
    let mut client = app.get_stream(&app.stream_url("deploy", "7", "")).await;
    let data: Vec<String> = client.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["direct", "[DONE]"]);
}
