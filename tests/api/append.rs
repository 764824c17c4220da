//! `POST /api/v1/logs/{type}/{id}`: appending lines through the service.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_counting, spawn_app_with, stored_documents, take_data, TestApp};

/// Appends `body` as text to log `log` (`type/id`).
async fn post_text(app: &TestApp, log: &str, body: &'static str) -> reqwest::Response {
    let url = app.url(&format!("/api/v1/logs/{log}"));
    app.http.post(url).header("content-type", "text/plain").body(body).send().await.unwrap()
}

/// The `next` of an append's 201 answer.
async fn next_of(response: reqwest::Response) -> u64 {
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["next"].as_u64().unwrap()
}

#[tokio::test]
async fn a_text_body_appends_one_line_per_newline_and_a_stream_sees_them() {
    let app = spawn_app().await;
    let mut client = app.get_stream(&app.stream_url("deploy", "77", "format=json")).await;
    let response = app
        .http
        .post(app.url("/api/v1/logs/deploy/77"))
        .header("content-type", "text/plain")
        .body("first\r\n  second\n\nfourth\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"appended": 4, "next": 4}));
    let mut got = Vec::new();
    for _ in 0..4 {
        let event = client.next_event().await;
        got.push(serde_json::from_str::<Value>(&event.data).unwrap()["line"].clone());
    }
    assert_eq!(got, [json!("first\r"), json!("  second"), json!(""), json!("fourth")]);
    // Stored with an integer id, as the seed's Django writer expects.
    let stored = app.logs.find_one(bson::doc! {"log": "first\r"}).await.unwrap().unwrap();
    assert_eq!(stored.get_i64("id").unwrap(), 77);
}

#[tokio::test]
async fn a_json_body_can_end_the_log_and_later_appends_conflict() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/logs/ci/run-1");
    let response =
        app.http.post(&url).json(&json!({"lines": ["a", "b"], "done": true})).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"appended": 3, "next": 3}));
    let again = app.http.post(&url).body("late").send().await.unwrap();
    assert_eq!(again.status(), 409);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "log_finished");
}

#[tokio::test]
async fn bad_bodies_get_400_and_oversized_ones_413() {
    let app = spawn_app_with(&[("LIMITS__MAX_BODY_BYTES", "16")]).await;
    let url = app.url("/api/v1/logs/ci/2");
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (app.http.post(&url).body(""), 400),
        (app.http.post(&url).header("content-type", "application/json").body("{not json"), 400),
        (app.http.post(&url).json(&json!({"lines": []})), 400),
        (app.http.post(&url).json(&json!({"lines": [1, 2]})), 400),
        (app.http.post(&url).body("[DONE]\nafter"), 400),
        (app.http.post(&url).body("x".repeat(17)), 413),
    ];
    for (request, status) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert_eq!(app.logs.count_documents(bson::doc! {}).await.unwrap(), 0, "nothing was written");
}

#[tokio::test]
async fn positions_stay_exact_when_appends_and_other_writers_take_turns() {
    let app = spawn_app().await;
    let app = &app;
    let append = |body: &'static str| async move { next_of(post_text(app, "mix/1", body).await).await };
    assert_eq!(append("a\nb\nc\n").await, 3);
    // Another writer's lines carry no stored position: the next append counts, and from then on
    // the log's positions are counted, not stored (that writer may put lines before ours).
    app.write("mix", 1_i64, &["d", "e"]).await;
    assert_eq!(append("f\n").await, 6);
    assert_eq!(append("g\n[DONE]\n").await, 8);
    let stored: Vec<bson::Document> = futures_util::TryStreamExt::try_collect(
        app.logs.find(bson::doc! { "type": "mix" }).sort(bson::doc! { "_id": 1 }).await.unwrap(),
    )
    .await
    .unwrap();
    let positions: Vec<Option<i64>> = stored.iter().map(|d| d.get_i64("n").ok()).collect();
    assert_eq!(positions, [Some(1), Some(2), Some(3), None, None, None, None, None]);
    // The counted position of [DONE] answers "has the client everything?".
    let done = app.http.get(app.stream_url("mix", "1", "from=8")).send().await.unwrap();
    assert_eq!(done.status(), 204);
    let not_yet = app.get_stream(&app.stream_url("mix", "1", "from=7")).await.collect_to_end().await;
    assert_eq!(not_yet.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["[DONE]"]);
}

#[tokio::test]
async fn another_writers_line_sorting_before_a_trusted_last_line_makes_the_next_append_count() {
    let app = spawn_app().await;
    let app = &app;
    let append = |body: &'static str| async move { next_of(post_text(app, "early/1", body).await).await };
    // Three appends: the last line is checked for other writers once, then trusted.
    assert_eq!(append("a\n").await, 1);
    assert_eq!(append("b\n").await, 2);
    assert_eq!(append("c\n").await, 3);
    let mut viewer = app.get_stream(&app.stream_url("early", "1", "")).await;
    assert_eq!(take_data(&mut viewer, 3).await, ["a", "b", "c"]);
    // Another process's driver writes a line in the same second that sorts before "c".
    let stored = stored_documents(&app.logs, "early").await;
    let mut bytes = stored.last().unwrap().get_object_id("_id").unwrap().bytes();
    bytes[4..].fill(0);
    let early = bson::oid::ObjectId::from_bytes(bytes);
    app.logs.insert_one(bson::doc! { "_id": early, "type": "early", "id": 1_i64, "log": "x" }).await.unwrap();
    // Once the service has heard it (its viewer got it), the next append counts four lines before.
    assert_eq!(take_data(&mut viewer, 1).await, ["x"]);
    assert_eq!(append("d\n").await, 5);
    let stored = stored_documents(&app.logs, "early").await;
    let d = stored.last().unwrap();
    assert_eq!(d.get_str("log").unwrap(), "d");
    assert!(d.get("n").is_none(), "a log another process writes stores no positions: {d}");
}

#[tokio::test]
async fn an_append_after_another_replicas_lines_costs_what_any_append_costs() {
    // Two replicas appending to one log take turns winning; a loser's retry must cost what the
    // winner's append costs, or a steady writer starves it (seen in CI: 16 lost races, a 503).
    let (app, proxy) = spawn_app_counting(&[]).await;
    let app = &app;
    let finds_of = |body: &'static str, next: u64| {
        let proxy = &proxy;
        async move {
            let before = proxy.count("find");
            assert_eq!(next_of(post_text(app, "turns/1", body).await).await, next);
            proxy.count("find") - before
        }
    };
    finds_of("a\n", 1).await;
    finds_of("b\n", 2).await;
    // "b" was checked for other writers' lines: "c" looks up only what came after it.
    let trusted = finds_of("c\n", 3).await;
    let mut viewer = app.get_stream(&app.stream_url("turns", "1", "")).await;
    assert_eq!(take_data(&mut viewer, 3).await, ["a", "b", "c"]);
    // Another replica appends two lines, with positions, after "c".
    let stored = stored_documents(&app.logs, "turns").await;
    let mut bytes = stored.last().unwrap().get_object_id("_id").unwrap().bytes();
    bytes[4..].fill(0xff);
    for (n, text) in [(4_i64, "x"), (5, "y")] {
        bytes[11] = u8::try_from(n).unwrap();
        let oid = bson::oid::ObjectId::from_bytes(bytes);
        app.logs
            .insert_one(bson::doc! { "_id": oid, "type": "turns", "id": 1_i64, "log": text, "n": n })
            .await
            .unwrap();
    }
    assert_eq!(take_data(&mut viewer, 2).await, ["x", "y"], "the service heard them");
    let after_others = finds_of("d\n", 6).await;
    assert_eq!(after_others, trusted, "no look-back for positioned lines: {:?}", proxy.counts());
    let stored = stored_documents(&app.logs, "turns").await;
    let texts: Vec<&str> = stored.iter().map(|d| d.get_str("log").unwrap()).collect();
    assert_eq!(texts, ["a", "b", "c", "x", "y", "d"]);
}

#[tokio::test]
async fn the_remembered_last_line_never_hides_another_writers_end_or_a_deleted_log() {
    let app = spawn_app().await;
    let append = |body: &'static str| post_text(&app, "seen/1", body);
    let next = next_of;
    assert_eq!(next(append("a\nb\n").await).await, 2);
    // The service remembers line 2 as the last; another process ends the log behind its back.
    app.write("seen", 1_i64, &["c", "[DONE]"]).await;
    assert_eq!(append("too late\n").await.status(), 409);
    let done = app.http.get(app.stream_url("seen", "1", "from=4")).send().await.unwrap();
    assert_eq!(done.status(), 204, "the reconnect check sees the other writer's [DONE]");

    // The whole log is deleted (as retention does); the same id starts again from line 1.
    app.logs.delete_many(bson::doc! { "type": "seen" }).await.unwrap();
    assert_eq!(next(append("again\n").await).await, 1);
    let snapshot: serde_json::Value =
        app.http.get(app.url("/api/v1/logs/seen/1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["lines"], serde_json::json!(["again"]));
    assert_eq!(snapshot["next"], 1);
}
