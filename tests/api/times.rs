//! Line times: appends through the service store `ts` (milliseconds); other writers' lines take
//! their ObjectId's time. The JSON stream's `t`, the snapshot's `times`, `tail --timestamps` and
//! the stream of several logs all say the same time for the same line, backlog or live.

use std::time::{SystemTime, UNIX_EPOCH};

use bson::doc;
use serde_json::Value;

use crate::helpers::{spawn_app, sse_logs, stored_documents};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn every_route_gives_a_line_the_same_time_stored_or_taken_from_its_object_id() {
    let app = spawn_app().await;
    let before = now_ms();
    let appended =
        app.http.post(app.url("/api/v1/logs/t/1")).body("through the service\n").send().await.unwrap();
    assert_eq!(appended.status(), 201);
    let after = now_ms();
    app.write("t", 1_i64, &["straight into MongoDB", "[DONE]"]).await;

    let stored = stored_documents(&app.logs, "t").await;
    let ts = stored[0].get_datetime("ts").expect("appends store ts").timestamp_millis() as u64;
    assert!((before..=after).contains(&ts), "ts {ts} within the request {before}..{after}");
    assert!(stored[1].get("ts").is_none());
    let oid_ms = stored[1].get_object_id("_id").unwrap().timestamp().timestamp_millis() as u64;

    let snapshot: Value =
        app.http.get(app.url("/api/v1/logs/t/1?times=1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["times"], serde_json::json!([ts, oid_ms]));
    let plain: Value = app.http.get(app.url("/api/v1/logs/t/1")).send().await.unwrap().json().await.unwrap();
    assert!(plain.get("times").is_none(), "times only when asked for");
    let bad = app.http.get(app.url("/api/v1/logs/t/1?times=yes")).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    let events = app.get_stream(&app.stream_url("t", "1", "format=json")).await.collect_to_end().await;
    let t: Vec<u64> = events[..2]
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["t"].as_u64().expect("t in every json line"))
        .collect();
    assert_eq!(t, [ts, oid_ms]);

    let events =
        app.get_stream(&app.stream_url("t", "1", "format=batch&times=1")).await.collect_to_end().await;
    let batch: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(batch["lines"], serde_json::json!(["through the service", "straight into MongoDB"]));
    assert_eq!(batch["times"], serde_json::json!([ts, oid_ms]), "batch times parallel to its lines");
    let events = app.get_stream(&app.stream_url("t", "1", "format=batch")).await.collect_to_end().await;
    let batch: Value = serde_json::from_str(&events[0].data).unwrap();
    assert!(batch.get("times").is_none(), "batch times only when asked for");
    for query in ["times=1", "format=text&times=1", "format=batch&times=2"] {
        let refused = app.http.get(app.stream_url("t", "1", query)).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{query}");
    }

    let stamp = |ms: u64| bson::DateTime::from_millis(ms as i64).try_to_rfc3339_string().unwrap();
    let want = format!("{} through the service\n{} straight into MongoDB\n", stamp(ts), stamp(oid_ms));
    for extra in [&["--timestamps"][..], &["--timestamps", "--no-follow"], &["--timestamps", "-n", "2"]] {
        let mut args = vec!["tail", "--type", "t", "--id", "1", "--server"];
        let server = app.url("");
        args.push(&server);
        args.extend_from_slice(extra);
        let output = sse_logs(&args).output().await.unwrap();
        assert!(output.status.success(), "{extra:?}");
        assert_eq!(String::from_utf8(output.stdout).unwrap(), want, "tail {extra:?}");
    }
}

/// `t` of a `format=json` line or an `event: line` of several logs.
fn t_of(event: &crate::helpers::Event) -> u64 {
    serde_json::from_str::<Value>(&event.data).unwrap()["t"].as_u64().expect("t on every line")
}

/// The times the lines of `log_type` should carry, in `_id` order: `ts` if stored, else the
/// ObjectId's second.
async fn stored_times(app: &crate::helpers::TestApp, log_type: &str) -> Vec<u64> {
    stored_documents(&app.logs, log_type)
        .await
        .iter()
        .map(|d| match d.get_datetime("ts") {
            Ok(ts) => ts.timestamp_millis() as u64,
            Err(_) => d.get_object_id("_id").unwrap().timestamp().timestamp_millis() as u64,
        })
        .collect()
}

async fn stored_has_ts(app: &crate::helpers::TestApp) -> bool {
    app.logs.count_documents(doc! { "type": "live", "ts": { "$exists": true } }).await.unwrap() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_lines_carry_their_stored_time_on_the_json_stream_and_the_stream_of_several_logs() {
    let app = spawn_app().await;
    app.write("live", 1_i64, &["before"]).await;
    let mut json = app.get_stream(&app.stream_url("live", "1", "format=json")).await;
    let mut multi = app.get_stream(&app.url("/api/v1/streams?log=live:1")).await;
    // Their one backlog line is out: the next lines are inserted after both went live.
    json.next_event().await;
    assert_eq!(multi.next_event().await.event, "line");
    let backlog_read = app.metric("sse_logs_backlog_lines_read_total");

    let appended = app
        .http
        .post(app.url("/api/v1/logs/live/1"))
        .json(&serde_json::json!({ "lines": ["appended with ts"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), 201);
    app.write("live", 1_i64, &["inserted without ts", "[DONE]"]).await;
    let want = stored_times(&app, "live").await;
    assert_eq!(want.len(), 4);
    assert!(stored_has_ts(&app).await, "the append stored ts");
    assert_eq!(want[2] % 1000, 0, "a driver's line has its ObjectId's whole second");

    let events = json.collect_to_end().await;
    let got: Vec<u64> = events.iter().filter(|e| e.event == "message").map(t_of).collect();
    assert_eq!(got, want[1..3], "json stream: the stored ts, then the ObjectId's second");
    let events = multi.collect_to_end().await;
    let got: Vec<u64> = events.iter().filter(|e| e.event == "line").map(t_of).collect();
    assert_eq!(got, want[1..3], "several logs' stream: the same times");
    assert_eq!(app.metric("sse_logs_backlog_lines_read_total"), backlog_read, "both lines came live");
}
