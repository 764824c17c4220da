//! What operators rely on: metrics that move with the traffic, JSON logs, clean exit on SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{mongodb_uri, spawn_app, sse_logs, take_data, TestApp, PATIENCE};

async fn scrape(app: &TestApp) -> String {
    app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The value of one sample line, e.g. `sse_logs_streams_open{route="stream"}`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} is not in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_follow_streams_lines_and_responses() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, r#"sse_logs_streams_open{route="stream"}"#), 0.0);
    assert_eq!(sample(&before, "sse_logs_hub_live"), 1.0);
    assert_eq!(sample(&before, "sse_logs_change_stream_starts_total"), 1.0);

    app.write("deploy", 1_i64, &["backlog"]).await;
    let mut client = app.get_stream(&app.stream_url("deploy", "1", "")).await;
    assert_eq!(take_data(&mut client, 1).await, ["backlog"]);
    app.write("deploy", 1_i64, &["live 1", "live 2"]).await;
    assert_eq!(take_data(&mut client, 2).await, ["live 1", "live 2"]);

    let during = scrape(&app).await;
    assert_eq!(sample(&during, r#"sse_logs_streams_open{route="stream"}"#), 1.0);
    assert_eq!(sample(&during, r#"sse_logs_streams_opened_total{route="stream"}"#), 1.0);
    assert_eq!(sample(&during, "sse_logs_hub_subscribers"), 1.0);
    assert_eq!(sample(&during, "sse_logs_hub_logs"), 1.0);
    assert_eq!(sample(&during, "sse_logs_lines_sent_total"), 3.0);
    assert_eq!(sample(&during, "sse_logs_backlog_lines_read_total"), 1.0);
    assert_eq!(
        sample(&during, "sse_logs_insert_to_send_seconds_count"),
        2.0,
        "one observation per live line"
    );
    assert!(sample(&during, r#"sse_logs_http_responses_total{status="200"}"#) >= 2.0);

    drop(client);
    let deadline = Instant::now() + PATIENCE;
    while sample(&scrape(&app).await, "sse_logs_hub_subscribers") > 0.0 {
        assert!(Instant::now() < deadline, "the subscriber was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = scrape(&app).await;
    assert_eq!(sample(&after, r#"sse_logs_streams_open{route="stream"}"#), 0.0);
    let _ = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(sample(&scrape(&app).await, r#"sse_logs_http_responses_total{status="404"}"#), 1.0);
}

#[tokio::test]
async fn json_log_mode_writes_one_json_object_per_line_and_sigterm_exits_zero() {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut child = sse_logs(&["serve"])
        .env("SSE_LOGS__LOG__FORMAT", "json")
        .env("SSE_LOGS__HTTP__BIND", "127.0.0.1:0")
        .env("SSE_LOGS__MONGODB__URI", mongodb_uri())
        .env("SSE_LOGS__MONGODB__DATABASE", &database)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line =
            tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("a log line").unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        seen.push(value.clone());
        if value["fields"]["message"] == "listening" {
            break value["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().unwrap().to_string()).status();
    let status =
        tokio::time::timeout(Duration::from_secs(6), child.wait()).await.expect("exits in time").unwrap();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    assert!(seen.iter().any(|v| v["fields"]["message"] == "stopped"), "{seen:?}");
    assert!(seen.iter().all(|v| v["level"].is_string() && v["timestamp"].is_string()));
    let client = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
    client.database(&database).drop().await.unwrap();
}
