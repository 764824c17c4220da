//! Several logs on one connection (`/api/v1/streams`): every line of every log once and in
//! order, a done per log, the end after the last, exact resume of all logs from one
//! `Last-Event-ID`, `@N` starts, all-or-nothing access, and every bad input refused.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use sse_logs::access::Claims;

use crate::helpers::{spawn_app, spawn_app_with, Event, Item, SseClient, TestApp};

const SECRET: &str = "a-test-secret-for-combined-streams";

fn streams_url(app: &TestApp, logs: &[&str]) -> String {
    let query: Vec<String> = logs.iter().map(|log| format!("log={}", urlencode(log))).collect();
    app.url(&format!("/api/v1/streams?{}", query.join("&")))
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Every event's log and data, as `(type:id, event, json)`; checks that the event's id puts
/// this log at the event's `n`.
fn decode(events: &[Event], logs: &[&str]) -> Vec<(String, String, Value)> {
    events
        .iter()
        .map(|event| {
            let data: Value = serde_json::from_str(&event.data).expect("JSON data");
            let log = format!("{}:{}", data["type"].as_str().unwrap(), data["id"].as_str().unwrap());
            let at = logs.iter().position(|l| *l == log).expect("a requested log");
            let positions: Vec<u64> = event.id.split(',').map(|n| n.parse().unwrap()).collect();
            assert_eq!(positions.len(), logs.len(), "one position per log: {}", event.id);
            assert_eq!(positions[at], data["n"].as_u64().unwrap(), "the id holds this event's n");
            (log, event.event.clone(), data)
        })
        .collect()
}

/// Each log's lines (text) and whether its done came, checking `n` counts up by one.
fn per_log(decoded: &[(String, String, Value)]) -> BTreeMap<String, (Vec<String>, bool)> {
    let mut logs: BTreeMap<String, (Vec<String>, bool, u64)> = BTreeMap::new();
    for (log, event, data) in decoded {
        let entry = logs.entry(log.clone()).or_default();
        let n = data["n"].as_u64().unwrap();
        assert!(entry.2 == 0 || n == entry.2 + 1, "{log}: {n} after {}", entry.2);
        assert!(!entry.1, "{log}: nothing after done");
        entry.2 = n;
        match event.as_str() {
            "line" => {
                assert!(data["t"].as_u64().unwrap() > 1_600_000_000_000, "t is ms since the epoch");
                entry.0.push(data["line"].as_str().unwrap().to_owned());
            }
            "done" => entry.1 = true,
            other => panic!("unexpected event {other}"),
        }
    }
    logs.into_iter().map(|(log, (lines, done, _))| (log, (lines, done))).collect()
}

fn lines(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("{prefix}{n}")).collect()
}

async fn write_range(app: &TestApp, id: &str, range: std::ops::RangeInclusive<u32>) {
    let texts = lines(id, range);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    app.write("ci", id, &refs).await;
}

#[tokio::test]
async fn three_logs_interleave_each_once_in_order_and_the_response_ends_after_the_last_done() {
    let app = spawn_app().await;
    let logs = ["ci:a", "ci:b", "ci:c"];
    write_range(&app, "a", 1..=2).await;
    write_range(&app, "b", 1..=1).await;
    let mut client = app.get_stream(&streams_url(&app, &logs)).await;
    client.expect_retry().await;
    let mut events = vec![client.next_event().await, client.next_event().await, client.next_event().await];
    // Live lines, interleaved across logs; the ends one after another.
    write_range(&app, "c", 1..=2).await;
    write_range(&app, "a", 3..=3).await;
    write_range(&app, "b", 2..=2).await;
    app.write("ci", "b", &["[DONE]"]).await;
    write_range(&app, "a", 4..=4).await;
    app.write("ci", "a", &["[DONE]"]).await;
    app.write("ci", "c", &["[DONE]"]).await;
    events.extend(client.collect_to_end().await);

    let decoded = decode(&events, &logs);
    let got = per_log(&decoded);
    assert_eq!(got["ci:a"], (lines("a", 1..=4), true));
    assert_eq!(got["ci:b"], (lines("b", 1..=2), true));
    assert_eq!(got["ci:c"], (lines("c", 1..=2), true));
    assert_eq!(decoded.last().unwrap().1, "done", "the response ends with the last done");
    assert_eq!(events.last().unwrap().id, "5,3,3", "the last id holds every log's end");
}

#[tokio::test]
async fn last_event_id_resumes_every_log_exactly() {
    let app = spawn_app().await;
    let logs = ["ci:a", "ci:b"];
    write_range(&app, "a", 1..=5).await;
    write_range(&app, "b", 1..=5).await;
    let url = streams_url(&app, &logs);
    let mut first = app.get_stream(&url).await;
    let mut events = Vec::new();
    for _ in 0..6 {
        events.push(first.next_event().await);
    }
    let last_id = first.last_event_id().to_owned();
    drop(first);

    write_range(&app, "a", 6..=8).await;
    app.write("ci", "a", &["[DONE]"]).await;
    write_range(&app, "b", 6..=7).await;
    app.write("ci", "b", &["[DONE]"]).await;
    let mut second = app.get_stream_with(app.http.get(&url).header("last-event-id", &last_id)).await;
    events.extend(second.collect_to_end().await);

    let got = per_log(&decode(&events, &logs));
    assert_eq!(got["ci:a"], (lines("a", 1..=8), true), "after {last_id}");
    assert_eq!(got["ci:b"], (lines("b", 1..=7), true), "after {last_id}");
}

#[tokio::test]
async fn at_n_starts_after_line_n_and_ids_may_hold_colons_and_ats() {
    let app = spawn_app().await;
    let logs = ["ci:x:y@z", "ci:b"];
    app.write("ci", "x:y@z", &["1", "2", "3", "[DONE]"]).await;
    app.write("ci", "b", &["1", "[DONE]"]).await;
    // `b@2`: the client has b's [DONE] already, so b only keeps its place in the ids.
    let mut client = app.get_stream(&streams_url(&app, &["ci:x:y@z@2", "ci:b@2"])).await;
    let events = client.collect_to_end().await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["3,2", "4,2"]);
    let got = per_log(&decode(&events, &logs));
    assert_eq!(got["ci:x:y@z"], (vec!["3".to_owned()], true));
    assert!(!got.contains_key("ci:b"));
}

#[tokio::test]
async fn all_logs_ended_is_204() {
    let app = spawn_app().await;
    app.write("ci", "a", &["1", "[DONE]"]).await;
    app.write("ci", "b", &["[DONE]"]).await;
    let response = app.http.get(streams_url(&app, &["ci:a@2", "ci:b@1"])).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let url = streams_url(&app, &["ci:a", "ci:b"]);
    let response = app.http.get(&url).header("last-event-id", "2,1").send().await.unwrap();
    assert_eq!(response.status(), 204);
}

fn reader(logs: &[&str]) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = Claims { exp, nbf: None, logs: logs.iter().map(|s| s.to_string()).collect(), write: vec![] };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

#[tokio::test]
async fn one_unreadable_log_refuses_the_whole_request() {
    let app = spawn_app_with(&[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)]).await;
    app.write("deploy", "1", &["secret?", "[DONE]"]).await;
    app.write("deploy", "2", &["secret!", "[DONE]"]).await;
    let url = streams_url(&app, &["deploy:1", "deploy:2"]);
    let response = app.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = app.http.get(&url).bearer_auth(reader(&["deploy:1"])).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(!body.contains("secret"), "nothing streamed: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "forbidden");

    let request = app.http.get(&url).bearer_auth(reader(&["deploy:1", "deploy:2"]));
    let mut client: SseClient = app.get_stream_with(request).await;
    assert_eq!(client.collect_to_end().await.len(), 4, "both logs when both are readable");
}

#[tokio::test]
async fn bad_input_is_a_json_400() {
    let app = spawn_app().await;
    let many: Vec<String> = (0..51).map(|n| format!("ci:{n}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let bad_urls = [
        app.url("/api/v1/streams"),
        app.url("/api/v1/streams?type=ci&id=1"),
        streams_url(&app, &many),
        streams_url(&app, &["nocolon"]),
        streams_url(&app, &[":1"]),
        streams_url(&app, &["ci:"]),
        streams_url(&app, &["ci:@4"]),
        streams_url(&app, &["ci:1@99999999999999999999"]),
        streams_url(&app, &["ci:1", "ci:1@3"]),
        streams_url(&app, &["ci:1\n"]),
    ];
    for url in bad_urls {
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{url}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{url}");
    }
    let url = streams_url(&app, &["ci:1", "ci:2"]);
    for last_id in ["3", "1,2,3", "1,x", "-1,2", "1,,"] {
        let response = app.http.get(&url).header("last-event-id", last_id).send().await.unwrap();
        assert_eq!(response.status(), 400, "{last_id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_parameter", "{last_id}");
    }
    let fifty: Vec<&str> = many[..50].to_vec();
    let response = app.http.get(streams_url(&app, &fifty)).send().await.unwrap();
    assert_eq!(response.status(), 200, "50 logs are allowed");
}

#[tokio::test]
async fn a_client_leaving_ends_every_session_and_shutdown_ends_the_response_cleanly() {
    let mut app = spawn_app().await;
    let logs = ["ci:a", "ci:b", "ci:c"];
    write_range(&app, "a", 1..=1).await;
    let url = streams_url(&app, &logs);
    let mut leaving = app.get_stream(&url).await;
    leaving.next_event().await;
    assert_eq!(app.metric("sse_logs_streams_open"), 1.0, "one stream, however many logs");
    // Each log's session follows the hub once it has read its backlog.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.metric("sse_logs_hub_subscribers") < 3.0 {
        assert!(std::time::Instant::now() < deadline, "a session per log");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(leaving);
    while app.metric("sse_logs_streams_open") > 0.0 || app.metric("sse_logs_hub_subscribers") > 0.0 {
        assert!(std::time::Instant::now() < deadline, "the sessions end when the client goes away");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let mut staying = app.get_stream(&url).await;
    staying.next_event().await;
    app.stop().await;
    // A clean end of the chunked body: the helper panics on a broken connection.
    assert_eq!(staying.next_item().await, Item::End);
}

#[tokio::test]
async fn an_idle_combined_stream_gets_one_retry_and_keep_alives_from_the_combiner() {
    let app = spawn_app_with(&[("SSE__KEEP_ALIVE_SECS", "1")]).await;
    let mut client = app.get_stream(&streams_url(&app, &["ci:quiet1", "ci:quiet2", "ci:quiet3"])).await;
    client.expect_retry().await;
    assert_eq!(client.next_item().await, Item::Comment("keep-alive".into()));
    app.write("ci", "quiet2", &["hello"]).await;
    let event = client.next_event().await;
    assert_eq!((event.event.as_str(), event.id.as_str()), ("line", "0,1,0"));
    // The per-log sessions write no preamble or keep-alive of their own: one of each per interval.
    let raw = String::from_utf8_lossy(&client.raw).into_owned();
    assert_eq!(raw.matches("retry:").count(), 1, "{raw}");
    assert!(raw.matches(": keep-alive").count() <= 2, "{raw}");
}
