//! `GET /api/v1/logs/{type}/{id}`: pages of a log as JSON.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

async fn snapshot(app: &crate::helpers::TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_snapshot_pages_through_the_log_and_says_when_it_is_complete() {
    let app = spawn_app().await;
    app.write("deploy", 5_i64, &["a", "", " c\r", "[DONE]"]).await;

    let first = snapshot(&app, "/api/v1/logs/deploy/5?limit=2").await;
    assert_eq!(
        first,
        json!({"type": "deploy", "id": "5", "from": 0, "lines": ["a", ""], "next": 2, "done": false})
    );
    let second = snapshot(&app, "/api/v1/logs/deploy/5?from=2&limit=2").await;
    assert_eq!(second["lines"], json!([" c\r"]));
    assert_eq!(second["next"], 4, "[DONE] counts as a position");
    assert_eq!(second["done"], true);
    let past = snapshot(&app, "/api/v1/logs/deploy/5?from=4").await;
    assert_eq!(past["lines"], json!([]));
    assert_eq!(past["done"], true, "a client at the end has the whole log");
}

#[tokio::test]
async fn a_snapshot_of_an_unfinished_log_is_not_done() {
    let app = spawn_app().await;
    app.write("deploy", "x", &["1", "2"]).await;
    let page = snapshot(&app, "/api/v1/logs/deploy/x").await;
    assert_eq!(page["lines"], json!(["1", "2"]));
    assert_eq!(page["next"], 2);
    assert_eq!(page["done"], false);
    let empty = snapshot(&app, "/api/v1/logs/deploy/never").await;
    assert_eq!(empty["lines"], json!([]));
    assert_eq!(empty["next"], 0);
    assert_eq!(empty["done"], false);
}
