//! The index: the list of logs (`GET /api/v1/logs`), its live stream (`GET /api/v1/logs/events`)
//! and the index page, fed by the one change stream, built at start from MongoDB.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;
use bson::{doc, Document};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use sse_logs::access::Claims;

use crate::helpers::{spawn_app, spawn_app_with, SseClient, TestApp};

/// The next `event: log` object of an index stream.
async fn next_log(client: &mut SseClient) -> Value {
    loop {
        let event = client.next_event().await;
        if event.event == "log" {
            return serde_json::from_str(&event.data).expect("a JSON object");
        }
    }
}

/// Reads log events until one names `type`/`id` and satisfies `want`.
pub(crate) async fn wait_for(
    client: &mut SseClient,
    log_type: &str,
    id: &str,
    want: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let log = next_log(client).await;
        if log["type"] == log_type && log["id"] == id && want(&log) {
            return log;
        }
    }
}

pub(crate) async fn list(app: &TestApp, query: &str) -> Value {
    let response = app.http.get(app.url(&format!("/api/v1/logs?{query}"))).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /api/v1/logs?{query}");
    response.json().await.unwrap()
}

pub(crate) fn names(list: &Value) -> Vec<String> {
    let logs = list["logs"].as_array().expect("logs is an array");
    logs.iter().map(|l| format!("{}/{}", l["type"].as_str().unwrap(), l["id"].as_str().unwrap())).collect()
}

fn rfc3339_secs(text: &Value) -> u64 {
    let parsed = bson::DateTime::parse_rfc3339_str(text.as_str().expect("a time string")).expect("RFC 3339");
    assert!(text.as_str().unwrap().ends_with('Z'), "UTC: {text}");
    u64::try_from(parsed.timestamp_millis() / 1000).unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An ObjectId made `ago` in the past (unique by its counter bytes).
fn oid_ago(ago: Duration, n: u32) -> ObjectId {
    let secs = u32::try_from(now_secs() - ago.as_secs()).unwrap();
    let mut bytes = [0_u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

#[tokio::test]
async fn logs_written_by_another_process_appear_live_and_in_the_list() {
    let app = spawn_app().await;
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    events.expect_retry().await;

    app.write("deploy", 7_i64, &["one"]).await;
    let started = wait_for(&mut events, "deploy", "7", |_| true).await;
    assert_eq!((started["lines"].as_u64(), started["done"].as_bool()), (Some(1), Some(false)));
    let began = rfc3339_secs(&started["started"]);
    assert!(now_secs().abs_diff(began) <= 5, "started is the first line's time");

    // Growth is announced within about a second, however many lines arrive.
    let at = Instant::now();
    for k in 0..5 {
        app.write("deploy", 7_i64, &[&format!("more {k}")]).await;
    }
    wait_for(&mut events, "deploy", "7", |l| l["lines"] == 6).await;
    assert!(at.elapsed() < Duration::from_secs(3), "growth took {:?}", at.elapsed());

    app.write("deploy", 7_i64, &["[DONE]"]).await;
    let ended = wait_for(&mut events, "deploy", "7", |l| l["done"] == true).await;
    assert_eq!(ended["lines"], 7);

    let listed = list(&app, "").await;
    assert_eq!(names(&listed), ["deploy/7"]);
    assert_eq!(listed["logs"][0]["lines"], 7);
    assert_eq!(listed["logs"][0]["done"], true);
    assert!(rfc3339_secs(&listed["logs"][0]["updated"]) >= began);
    assert_eq!(listed["next"], Value::Null);
}

/// Writes one line to each of `ids` in order, and waits until the index stream announced them.
async fn write_logs(app: &TestApp, log_type: &str, ids: &[&str]) {
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    for id in ids {
        app.write(log_type, *id, &["a line"]).await;
        wait_for(&mut events, log_type, id, |_| true).await;
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_most_recently_updated_first() {
    let app = spawn_app().await;
    write_logs(&app, "ci", &["a", "b", "c", "d", "e"]).await;
    let first = list(&app, "limit=2").await;
    assert_eq!(names(&first), ["ci/e", "ci/d"]);
    let cursor = first["next"].as_str().expect("a next cursor");
    let second = list(&app, &format!("limit=2&before={cursor}")).await;
    assert_eq!(names(&second), ["ci/c", "ci/b"]);
    let third = list(&app, &format!("limit=2&before={}", second["next"].as_str().unwrap())).await;
    assert_eq!(names(&third), ["ci/a"]);
    assert_eq!(third["next"], Value::Null);

    // A log that grows moves to the top.
    let mut events = app.get_stream(&app.url("/api/v1/logs/events?type=ci&limit=1")).await;
    assert_eq!(wait_for(&mut events, "ci", "e", |_| true).await["lines"], 1, "the first list, at most limit");
    app.write("ci", "b", &["again"]).await;
    wait_for(&mut events, "ci", "b", |l| l["lines"] == 2).await;
    assert_eq!(names(&list(&app, "limit=2").await), ["ci/b", "ci/e"]);
}

#[tokio::test]
async fn state_type_and_text_filters() {
    let app = spawn_app().await;
    write_logs(&app, "deploy", &["web-1", "api-2"]).await;
    write_logs(&app, "build", &["web-3"]).await;
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    app.write("deploy", "api-2", &["[DONE]"]).await;
    wait_for(&mut events, "deploy", "api-2", |l| l["done"] == true).await;

    assert_eq!(names(&list(&app, "state=live").await), ["build/web-3", "deploy/web-1"]);
    assert_eq!(names(&list(&app, "state=ended").await), ["deploy/api-2"]);
    assert_eq!(names(&list(&app, "state=all&type=deploy").await), ["deploy/api-2", "deploy/web-1"]);
    assert_eq!(names(&list(&app, "q=WEB").await), ["build/web-3", "deploy/web-1"]);
    assert_eq!(names(&list(&app, "q=web&type=deploy").await), ["deploy/web-1"]);
    let empty = list(&app, "type=nothing").await;
    assert_eq!(empty, serde_json::json!({"logs": [], "next": null}));
}

#[tokio::test]
async fn bad_parameters_are_400_with_the_contract_body() {
    let app = spawn_app().await;
    write_logs(&app, "ci", &["x", "y"]).await;
    let issued = list(&app, "limit=1").await["next"].as_str().expect("a cursor").to_owned();
    assert_eq!(names(&list(&app, &format!("before={issued}")).await), ["ci/x"]);
    // One character changed: not a cursor this service issued.
    let flip = |c: char| if c == '0' { '1' } else { '0' };
    let tampered: String =
        issued.chars().enumerate().map(|(k, c)| if k == 3 { flip(c) } else { c }).collect();
    for query in [
        "state=running".to_owned(),
        "limit=0".to_owned(),
        "limit=501".to_owned(),
        "limit=-1".to_owned(),
        "limit=ten".to_owned(),
        "before=not-a-cursor".to_owned(),
        format!("before={tampered}"),
        format!("before={}", &issued[..issued.len() - 2]),
    ] {
        for route in ["/api/v1/logs", "/api/v1/logs/events"] {
            let url = format!("{route}?{query}");
            let response = app.http.get(app.url(&url)).send().await.unwrap();
            assert_eq!(response.status(), 400, "{url}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_parameter", "{url}");
        }
    }
    assert_eq!(list(&app, "limit=500").await["logs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn at_start_the_list_is_built_from_mongodb_with_logs_that_began_before_the_window() {
    let app = spawn_app().await;
    let doc =
        |id: &str, oid: ObjectId, log: &str| doc! { "_id": oid, "type": "deploy", "id": id, "log": log };
    let days = |d: u64| Duration::from_secs(d * 86_400);
    let documents: Vec<Document> = vec![
        // Began 10 days ago, still writing: listed with every line and its real start.
        doc("long", oid_ago(days(10), 1), "old 1"),
        doc("long", oid_ago(days(9), 2), "old 2"),
        doc("long", oid_ago(Duration::from_secs(60), 3), "recent"),
        // Entirely older than the window (7 days): not listed.
        doc("ancient", oid_ago(days(20), 4), "x"),
        doc("ancient", oid_ago(days(20), 5), "[DONE]"),
        doc("done", oid_ago(Duration::from_secs(30), 6), "y"),
        doc("done", oid_ago(Duration::from_secs(20), 7), "[DONE]"),
    ];
    app.logs.insert_many(documents).await.unwrap();
    app.write("deploy", 5_i64, &["int id"]).await;
    app.logs.insert_one(doc! { "type": "deploy", "id": "5", "log": "string id" }).await.unwrap();

    let replica = app.spawn_replica().await;
    let listed = list(&replica, "").await;
    assert_eq!(names(&listed), ["deploy/5", "deploy/done", "deploy/long"]);
    let logs = listed["logs"].as_array().unwrap();
    assert_eq!((logs[0]["lines"].as_u64(), logs[0]["done"].as_bool()), (Some(2), Some(false)));
    assert_eq!((logs[1]["lines"].as_u64(), logs[1]["done"].as_bool()), (Some(2), Some(true)));
    assert_eq!(logs[2]["lines"], 3);
    assert!(now_secs() - rfc3339_secs(&logs[2]["started"]) >= 10 * 86_400 - 5);
    assert!(now_secs() - rfc3339_secs(&logs[2]["updated"]) < 120);
}

#[tokio::test]
async fn memory_is_bounded_by_max_logs_forgetting_the_oldest() {
    let app = spawn_app_with(&[("INDEX__MAX_LOGS", "3")]).await;
    write_logs(&app, "ci", &["1", "2", "3", "4", "5"]).await;
    assert_eq!(names(&list(&app, "").await), ["ci/5", "ci/4", "ci/3"]);
}

const SECRET: &str = "a-test-secret-of-some-length";

fn reader(logs: &[&str]) -> String {
    let claims = Claims {
        exp: now_secs() + 600,
        nbf: None,
        logs: logs.iter().map(|s| s.to_string()).collect(),
        write: Vec::new(),
    };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

#[tokio::test]
async fn in_token_mode_only_readable_logs_are_listed_and_streamed() {
    let app = spawn_app_with(&[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)]).await;
    let everything = reader(&["*"]);
    let url = app.url("/api/v1/logs/events");
    let mut all = app.get_stream_with(app.http.get(&url).bearer_auth(&everything)).await;
    for (log_type, id) in [("deploy", "1"), ("deploy", "2"), ("build", "9")] {
        app.write(log_type, id, &["x"]).await;
        wait_for(&mut all, log_type, id, |_| true).await;
    }
    let some = reader(&["deploy:1", "build:*"]);
    let response = app.http.get(app.url("/api/v1/logs")).bearer_auth(&some).send().await.unwrap();
    let listed: Value = response.json().await.unwrap();
    assert_eq!(names(&listed), ["build/9", "deploy/1"]);
    // Paging counts only what the caller may see.
    let response = app.http.get(app.url("/api/v1/logs?limit=1")).bearer_auth(&some).send().await.unwrap();
    let page: Value = response.json().await.unwrap();
    assert_eq!(names(&page), ["build/9"]);
    let before = page["next"].as_str().unwrap();
    let next_url = app.url(&format!("/api/v1/logs?limit=1&before={before}"));
    let page: Value = app.http.get(next_url).bearer_auth(&some).send().await.unwrap().json().await.unwrap();
    assert_eq!((names(&page), page["next"].clone()), (vec!["deploy/1".to_owned()], Value::Null));

    let anonymous = app.http.get(app.url("/api/v1/logs")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);

    let mut mine = app.get_stream_with(app.http.get(&url).bearer_auth(&some)).await;
    let first: Vec<String> = [next_log(&mut mine).await, next_log(&mut mine).await]
        .iter()
        .map(|l| format!("{}/{}", l["type"].as_str().unwrap(), l["id"].as_str().unwrap()))
        .collect();
    assert_eq!(first, ["deploy/1", "build/9"], "the first list comes oldest first");
    app.write("deploy", "2", &["[DONE]"]).await;
    app.write("deploy", "1", &["[DONE]"]).await;
    let next = next_log(&mut mine).await;
    assert_eq!(
        (next["id"].as_str(), next["done"].as_bool()),
        (Some("1"), Some(true)),
        "deploy/2 is not shown"
    );
}

#[tokio::test]
async fn an_index_stream_ends_cleanly_at_shutdown() {
    let mut app = spawn_app().await;
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    events.expect_retry().await;
    app.stop().await;
    assert_eq!(events.collect_to_end().await, []);
}

#[tokio::test]
async fn the_index_page_is_served_at_the_root() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(response.text().await.unwrap().contains("api/v1/logs/events"));
}
