//! `redact.patterns`: a secret never leaves the service, whatever the route or format, whether
//! the line was written straight into MongoDB (backlog or live) or appended through the service
//! (then it never reaches storage either).

use bson::doc;
use futures_util::TryStreamExt;

use crate::helpers::{spawn_app_with, TestApp};

const PATTERNS: &str = "ghp_[A-Za-z0-9]{36}\nAKIA[0-9A-Z]{16}";

fn github_token() -> String {
    format!("ghp_{}", "Ab3".repeat(12))
}

const AWS_KEY: &str = "AKIAABCDEFGHIJKLMNOP";

async fn app() -> TestApp {
    spawn_app_with(&[("REDACT__PATTERNS", PATTERNS)]).await
}

async fn body(app: &TestApp, path: &str) -> String {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

fn assert_masked(text: &str, at: &str) {
    assert!(!text.contains(&github_token()) && !text.contains(AWS_KEY), "{at} leaked a secret: {text}");
    assert!(text.contains("***"), "{at} shows the mask: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matched_secret_is_masked_in_every_route_and_format_backlog_and_live() {
    let app = app().await;
    let secret_line = format!("token {} key {AWS_KEY} end", github_token());
    app.write("ci", 1_i64, &["clean", &secret_line]).await;

    let mut text = app.get_stream(&app.stream_url("ci", "1", "")).await;
    let mut json = app.get_stream(&app.stream_url("ci", "1", "format=json")).await;
    let mut batch = app.get_stream(&app.stream_url("ci", "1", "format=batch")).await;
    let mut seed = app.get_stream(&app.url("/api/v1/sse/logs/?type=ci&id=1&num=0")).await;
    let mut multi = app.get_stream(&app.url("/api/v1/streams?log=ci:1")).await;
    // Live too: a second secret line after the streams are open, then the end.
    app.write("ci", 1_i64, &[&secret_line, "[DONE]"]).await;

    for (client, name) in [
        (&mut text, "text"),
        (&mut json, "json"),
        (&mut batch, "batch"),
        (&mut seed, "seed"),
        (&mut multi, "streams"),
    ] {
        let events = client.collect_to_end().await;
        let all: String = events.iter().map(|e| format!("{}\n", e.data)).collect();
        assert_masked(&all, name);
        assert_eq!(all.matches("***").count(), 4, "{name}: two secrets in each of two lines: {all}");
        assert!(all.contains("clean"), "{name}");
    }
    assert_masked(&body(&app, "/api/v1/logs/ci/1").await, "snapshot");
    assert_masked(&body(&app, "/api/v1/logs/ci/1?tail=2").await, "tail");
    let raw = body(&app, "/api/v1/logs/ci/1/raw").await;
    assert_masked(&raw, "raw");
    assert_eq!(raw, "clean\ntoken *** key *** end\ntoken *** key *** end\n");
    assert_masked(&body(&app, "/api/v1/logs/ci/1/raw?follow=1").await, "raw?follow=1");
}

#[tokio::test]
async fn a_secret_appended_through_the_service_never_reaches_storage() {
    let app = app().await;
    let response = app
        .http
        .post(app.url("/api/v1/logs/ci/2"))
        .header("content-type", "text/plain")
        .body(format!("deploying with {}\n", github_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let stored: Vec<bson::Document> =
        app.logs.find(doc! { "type": "ci" }).await.unwrap().try_collect().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].get_str("log").unwrap(), "deploying with ***");
}

#[tokio::test]
async fn without_patterns_nothing_is_touched_and_done_is_never_masked() {
    let plain = spawn_app_with(&[]).await;
    let line = format!("token {}", github_token());
    plain.write("ci", 3_i64, &[&line]).await;
    assert!(body(&plain, "/api/v1/logs/ci/3/raw").await.contains(&github_token()));

    let greedy = spawn_app_with(&[("REDACT__PATTERNS", "DONE|\\[|\\]")]).await;
    greedy.write("ci", 4_i64, &["[x]", "[DONE]"]).await;
    let events = greedy.get_stream(&greedy.stream_url("ci", "4", "")).await.collect_to_end().await;
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["***x***", "[DONE]"], "the end marker still ends the log");
}

#[tokio::test]
async fn push_masks_its_values_and_add_mask_lines_before_anything_is_sent() {
    let app = spawn_app_with(&[]).await;
    let mut push = crate::helpers::sse_logs(&[
        "push",
        "--type",
        "ci",
        "--id",
        "5",
        "--server",
        &app.url(""),
        "--mask",
        "s3cr3t",
    ])
    .stdin(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stdin,
        b"password s3cr3t\n::add-mask::hunter2\nuser hunter2 logged in\n",
    )
    .await
    .unwrap();
    drop(stdin);
    assert!(push.wait().await.unwrap().success());
    let stored: Vec<String> = app
        .logs
        .find(doc! { "type": "ci" })
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect::<Vec<bson::Document>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d.get_str("log").unwrap().to_owned())
        .collect();
    assert_eq!(
        stored,
        ["password ***", "user *** logged in", "[DONE]"],
        "the ::add-mask:: line is not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_a_line_inserted_after_the_stream_went_live_is_masked_on_every_stream_format() {
    let app = app().await;
    app.write("ci", 6_i64, &["clean"]).await;
    let mut streams = Vec::new();
    for (url, name) in [
        (app.stream_url("ci", "6", ""), "text"),
        (app.stream_url("ci", "6", "format=json"), "json"),
        (app.stream_url("ci", "6", "format=batch"), "batch"),
        (app.url("/api/v1/streams?log=ci:6"), "streams"),
    ] {
        let mut client = app.get_stream(&url).await;
        // The backlog is out once its one line arrived: what comes next is live.
        assert!(client.next_event().await.data.contains("clean"), "{name}");
        streams.push((client, name));
    }
    let backlog_read = app.metric("sse_logs_backlog_lines_read_total");

    let secret_line = format!("token {} key {AWS_KEY} end", github_token());
    app.write("ci", 6_i64, &[&secret_line, "[DONE]"]).await;
    for (mut client, name) in streams {
        let events = client.collect_to_end().await;
        let all: String = events.iter().map(|e| format!("{}\n", e.data)).collect();
        assert_masked(&all, name);
        assert!(all.contains("token *** key *** end"), "{name}: {all}");
    }
    assert_eq!(
        app.metric("sse_logs_backlog_lines_read_total"),
        backlog_read,
        "the lines came from the change stream, not from a read of the collection"
    );
}
