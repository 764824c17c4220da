//! How a log ended (its outcome and exit code) on every route that describes a log, bad bodies,
//! `[DONE]` documents written by other writers, and idle logs on the index.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{doc, Bson};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, SseClient, TestApp, PATIENCE};

/// The next `event: log` of an index stream naming `ci/id` that satisfies `want`.
async fn index_event(client: &mut SseClient, id: &str, want: impl Fn(&Value) -> bool) -> Value {
    let wait = async {
        loop {
            let event = client.next_event().await;
            let log: Value = serde_json::from_str(&event.data).expect("a JSON object");
            if event.event == "log" && log["type"] == "ci" && log["id"] == id && want(&log) {
                return log;
            }
        }
    };
    tokio::time::timeout(PATIENCE * 3, wait).await.expect("the index stream announced it")
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn post(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let response = app.http.post(app.url(&format!("/api/v1/logs/ci/{id}"))).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The data of the last event of a stream read to its end, and that event's name.
async fn last_event(app: &TestApp, url: &str) -> (String, Value) {
    let events = app.get_stream(url).await.collect_to_end().await;
    let last = events.last().expect("events").clone();
    let data = serde_json::from_str(&last.data).unwrap_or(Value::String(last.data));
    (last.event, data)
}

fn ids(list: &Value) -> Vec<&str> {
    list["logs"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect()
}

/// Each case: the log id, the end appended, and the outcome and exit code every route must say.
fn cases() -> [(&'static str, Value, Value, Value); 4] {
    [
        ("ok", json!({"done": true, "outcome": "succeeded", "exit_code": 0}), json!("succeeded"), json!(0)),
        ("bad", json!({"done": true, "outcome": "failed", "exit_code": 2}), json!("failed"), json!(2)),
        (
            "stop",
            json!({"done": true, "outcome": "cancelled", "exit_code": 130}),
            json!("cancelled"),
            json!(130),
        ),
        ("bare", json!({"done": true}), Value::Null, Value::Null),
    ]
}

#[tokio::test]
async fn every_route_that_describes_a_log_says_how_it_ended_and_the_text_stream_stays_the_seeds() {
    let app = spawn_app().await;
    let mut index = app.get_stream(&app.url("/api/v1/logs/events")).await;
    for (id, end, outcome, code) in cases() {
        assert_eq!(post(&app, id, json!({"lines": ["one"]})).await, (201, json!({"appended": 1, "next": 1})));
        let live = get_json(&app, &format!("/api/v1/logs/ci/{id}")).await;
        assert!(
            live.get("outcome").is_none() && live.get("exit_code").is_none(),
            "not before the end: {live}"
        );
        assert_eq!(post(&app, id, end).await, (201, json!({"appended": 1, "next": 2})));

        let said = |v: &Value| v["outcome"] == outcome && v["exit_code"] == code;
        let done = json!({"n": 2, "outcome": outcome, "exit_code": code});
        for format in ["json", "batch"] {
            let url = app.stream_url("ci", id, &format!("format={format}"));
            assert_eq!(last_event(&app, &url).await, ("done".into(), done.clone()), "format={format}");
        }
        let text = last_event(&app, &app.stream_url("ci", id, "")).await;
        assert_eq!(text, ("message".into(), json!("[DONE]")), "the seed's client sees a bare [DONE]");
        let multi = last_event(&app, &app.url(&format!("/api/v1/streams?log=ci:{id}"))).await;
        let multi_done = json!({"type": "ci", "id": id, "n": 2, "outcome": outcome, "exit_code": code});
        assert_eq!(multi, ("done".into(), multi_done));
        for query in ["", "?tail=1", "?from=1", "?from=2"] {
            let snapshot = get_json(&app, &format!("/api/v1/logs/ci/{id}{query}")).await;
            assert!(snapshot["done"] == true && said(&snapshot), "snapshot{query}: {snapshot}");
            assert!(snapshot.get("outcome").is_some() && snapshot.get("exit_code").is_some());
        }
        let ended = index_event(&mut index, id, |l| l["done"] == true).await;
        assert!(said(&ended) && ended["idle"] == false, "index event: {ended}");
    }
    let listed = get_json(&app, "/api/v1/logs").await;
    for (id, _, outcome, code) in cases() {
        let log = listed["logs"].as_array().unwrap().iter().find(|l| l["id"] == id).expect("listed");
        assert_eq!((&log["outcome"], &log["exit_code"], &log["idle"]), (&outcome, &code, &json!(false)));
    }
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=failed").await), ["bad"]);
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=succeeded").await), ["ok"]);
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=cancelled").await), ["stop"]);
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=ended").await).len(), 4);
    assert!(ids(&get_json(&app, "/api/v1/logs?state=live").await).is_empty());
    let metrics = app.streams.metrics();
    for (outcome, count) in [("succeeded", 1), ("failed", 1), ("cancelled", 1), ("unknown", 1)] {
        let series = format!("sse_logs_logs_ended_total{{outcome=\"{outcome}\"}} {count}");
        assert!(metrics.lines().any(|l| l == series), "{series} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_outcome_without_done_an_unknown_outcome_or_a_non_integer_exit_code_is_400_and_nothing_is_stored()
{
    let app = spawn_app().await;
    for body in [
        json!({"lines": ["x"], "outcome": "failed"}),
        json!({"lines": ["x"], "exit_code": 1}),
        json!({"lines": ["x"], "done": false, "outcome": "succeeded", "exit_code": 0}),
        json!({"lines": ["x", "[DONE]"], "outcome": "failed"}),
        json!({"done": true, "outcome": "exploded"}),
        json!({"done": true, "outcome": "FAILED"}),
        json!({"done": true, "outcome": 1}),
        json!({"done": true, "outcome": "failed", "exit_code": 2.5}),
        json!({"done": true, "outcome": "failed", "exit_code": "2"}),
        json!({"done": true, "exit_code": 9_223_372_036_854_775_808_u64}),
    ] {
        let (status, answer) = post(&app, "refused", body.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_body")), "{body}");
    }
    let stored = app.logs.count_documents(doc! {"id": "refused"}).await.unwrap();
    assert_eq!(stored, 0, "nothing stored");
    // Nulls say nothing, so they are accepted where the fields are.
    let (status, _) = post(&app, "nulls", json!({"lines": ["x"], "outcome": null, "exit_code": null})).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_done_written_by_another_writer_is_read_with_only_the_values_the_contract_knows() {
    let app = spawn_app().await;
    let mut index = app.get_stream(&app.url("/api/v1/logs/events")).await;
    let line = |id: &str| doc! {"type": "ci", "id": id, "log": "one"};
    let cases = [
        ("bare", doc! {}, json!({"n": 2, "outcome": null, "exit_code": null})),
        (
            "garbage",
            doc! {"outcome": "exploded", "exit_code": "2"},
            json!({"n": 2, "outcome": null, "exit_code": null}),
        ),
        (
            "int32",
            doc! {"outcome": "failed", "exit_code": 3_i32},
            json!({"n": 2, "outcome": "failed", "exit_code": 3}),
        ),
    ];
    for (id, extra, done) in &cases {
        let mut end = doc! {"type": "ci", "id": *id, "log": "[DONE]"};
        end.extend(extra.clone());
        app.logs.insert_many([line(id), end]).await.unwrap();
        let url = app.stream_url("ci", id, "format=json");
        assert_eq!(last_event(&app, &url).await, ("done".into(), done.clone()), "{id}");
        let snapshot = get_json(&app, &format!("/api/v1/logs/ci/{id}")).await;
        assert_eq!((&snapshot["outcome"], &snapshot["exit_code"]), (&done["outcome"], &done["exit_code"]));
        let listed = index_event(&mut index, id, |l| l["done"] == true).await;
        assert_eq!((&listed["outcome"], &listed["exit_code"]), (&done["outcome"], &done["exit_code"]));
    }
    // A log whose writer went quiet an hour ago, never ended.
    let old = ObjectId::from_bytes({
        let mut bytes = ObjectId::new().bytes();
        let secs = u32::from_be_bytes(bytes[..4].try_into().unwrap()) - 3600;
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes
    });
    app.logs.insert_one(doc! {"_id": old, "type": "ci", "id": "quiet", "log": "started"}).await.unwrap();
    // Another process started now builds its list from MongoDB: the same outcomes, and the
    // long-silent log is idle from the start.
    let replica = app.spawn_replica().await;
    let listed = get_json(&replica, "/api/v1/logs").await;
    for (id, _, done) in &cases {
        let log = listed["logs"].as_array().unwrap().iter().find(|l| l["id"] == *id).expect("listed");
        assert_eq!((&log["outcome"], &log["exit_code"]), (&done["outcome"], &done["exit_code"]), "{id}");
    }
    assert_eq!(ids(&get_json(&replica, "/api/v1/logs?state=failed").await), ["int32"]);
    assert_eq!(ids(&get_json(&replica, "/api/v1/logs?state=idle").await), ["quiet"]);
}

#[tokio::test]
async fn a_silent_live_log_turns_idle_on_the_index_stream_and_wakes_up_with_its_next_line() {
    let app = spawn_app_with(&[("INDEX__IDLE_AFTER_SECS", "1")]).await;
    let mut index = app.get_stream(&app.url("/api/v1/logs/events?type=ci")).await;
    app.write("ci", Bson::String("sleepy".into()), &["one"]).await;
    let started = index_event(&mut index, "sleepy", |_| true).await;
    assert_eq!(started["idle"], false);
    let idle = index_event(&mut index, "sleepy", |l| l["idle"] == true).await;
    assert_eq!(
        (&idle["done"], &idle["updated"], &idle["lines"]),
        (&json!(false), &started["updated"], &json!(1))
    );
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=idle").await), ["sleepy"]);
    assert_eq!(ids(&get_json(&app, "/api/v1/logs?state=live").await), ["sleepy"], "idle is still live");

    app.write("ci", Bson::String("sleepy".into()), &["two"]).await;
    let awake = index_event(&mut index, "sleepy", |l| l["idle"] == false).await;
    assert_eq!(awake["lines"], 2, "woken by its next line");
    assert!(ids(&get_json(&app, "/api/v1/logs?state=idle").await).is_empty());
    // Ended, it stays ended: the next idle announcement could only come after a second.
    app.write("ci", Bson::String("sleepy".into()), &["[DONE]"]).await;
    index_event(&mut index, "sleepy", |l| l["done"] == true && l["idle"] == false).await;
    let at = tokio::time::Instant::now();
    let mut seen = Vec::new();
    while at.elapsed() < Duration::from_millis(2000) {
        if let Ok(event) = tokio::time::timeout(Duration::from_millis(500), index.next_event()).await {
            seen.push(event.data);
        }
    }
    assert!(seen.is_empty(), "nothing more is announced for an ended log: {seen:?}");
    assert!(ids(&get_json(&app, "/api/v1/logs?state=idle").await).is_empty());
}
