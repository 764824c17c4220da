//! The index over its life: 503 `not_ready` while it is not built, rebuilt from MongoDB when the
//! change stream has to start afresh, and a `next` cursor that any replica can continue.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_against, TestApp};
use crate::index::{list, names, wait_for};
use crate::mongo_server::MongoServer;

#[tokio::test]
async fn while_the_index_is_not_built_the_list_is_503_not_ready_with_retry_after() {
    // Never started: the change stream never runs, so the list is never built.
    let mongodb = MongoServer::new();
    let app =
        spawn_app_against(&format!("{}/?serverSelectionTimeoutMS=500", mongodb.uri()), &[], false).await;
    let (listed, events) = tokio::join!(
        app.http.get(app.url("/api/v1/logs")).send(),
        app.http.get(app.url("/api/v1/logs/events")).send(),
    );
    for (response, route) in [(listed.unwrap(), "list"), (events.unwrap(), "events")] {
        assert_eq!(response.status(), 503, "{route}");
        assert!(response.headers().contains_key("retry-after"), "{route}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_ready", "{route}: {body}");
        assert!(body["error"]["message"].is_string(), "{route}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_change_stream_starts_afresh_the_list_is_rebuilt_from_mongodb() {
    let app = spawn_app().await;
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    app.write("gone", 1_i64, &["a line"]).await;
    app.write("gone", 2_i64, &["a line"]).await;
    wait_for(&mut events, "gone", "2", |_| true).await;
    assert_eq!(names(&list(&app, "").await), ["gone/2", "gone/1"]);

    // Dropping the collection invalidates the change stream: the hub cannot resume it and starts
    // a fresh one, which has not seen what happened before it, so the list is read again.
    app.logs.drop().await.unwrap();
    app.write("after", 1_i64, &["a line"]).await;
    wait_for(&mut events, "after", "1", |_| true).await;
    assert_eq!(names(&list(&app, "").await), ["after/1"], "the dropped logs are no longer listed");
    assert!(app.metric("sse_logs_change_stream_starts_total") >= 2.0, "a fresh change stream was opened");
}

/// Waits until `app`'s index has announced `r/3`, the last of the logs written.
async fn listed_everything(app: &TestApp) {
    let mut events = app.get_stream(&app.url("/api/v1/logs/events")).await;
    wait_for(&mut events, "r", "3", |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_cursor_from_one_replica_pages_on_another() {
    let first = spawn_app().await;
    let second = first.spawn_replica().await;
    for id in 1..=3_i64 {
        first.write("r", id, &["a line"]).await;
    }
    listed_everything(&first).await;
    listed_everything(&second).await;

    let page = list(&first, "limit=1").await;
    assert_eq!(names(&page), ["r/3"]);
    let cursor = page["next"].as_str().expect("a next cursor").to_owned();
    let page = list(&second, &format!("limit=1&before={cursor}")).await;
    assert_eq!(names(&page), ["r/2"], "the other replica continues after r/3");
    let cursor = page["next"].as_str().expect("a next cursor").to_owned();
    let page = list(&first, &format!("limit=1&before={cursor}")).await;
    assert_eq!(names(&page), ["r/1"], "and back: the first replica continues the second's cursor");
    assert_eq!(page["next"], Value::Null);
}
