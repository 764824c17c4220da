//! The library API as an embedding app uses it: `examples/embed_in_warp.rs`, served for real.

#[allow(dead_code)]
#[path = "../../examples/embed_in_warp.rs"]
mod example;

use mongodb::Client;
use sse_logs::LogStreams;

use crate::helpers::{mongodb_uri, SseClient, PATIENCE};

struct Embedded {
    base: String,
    streams: LogStreams,
    database: mongodb::Database,
}

async fn serve_example() -> Embedded {
    let client = Client::with_uri_str(mongodb_uri()).await.unwrap();
    let database = client.database(&format!("test_{}", uuid::Uuid::new_v4().simple()));
    let streams =
        LogStreams::builder(database.collection("sse_logs")).access(example::platform_team_only).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(example::app(&streams)).incoming(listener).run());
    let deadline = std::time::Instant::now() + PATIENCE;
    while !streams.is_live() {
        assert!(std::time::Instant::now() < deadline, "the embedded hub did not start");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Embedded { base, streams, database }
}

#[tokio::test]
async fn the_example_app_serves_its_own_route_and_streams_logs_under_its_prefix() {
    let app = serve_example().await;
    let http = reqwest::Client::new();
    let hello = http.get(format!("{}/hello", app.base)).send().await.unwrap();
    assert_eq!(hello.text().await.unwrap(), "hello from the host app");

    let logs = app.database.collection::<bson::Document>("sse_logs");
    logs.insert_many([
        bson::doc! {"type": "deploy", "id": 1_i64, "log": "embedded"},
        bson::doc! {"type": "deploy", "id": 1_i64, "log": "[DONE]"},
    ])
    .await
    .unwrap();
    let url = format!("{}/logs/api/v1/logs/deploy/1/stream", app.base);
    let response = http.get(&url).header("x-team", "platform").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let data: Vec<String> =
        SseClient::new(response).collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["embedded", "[DONE]"]);

    app.streams.shutdown();
    app.database.drop().await.unwrap();
}

#[tokio::test]
async fn the_host_access_rule_is_applied_before_anything_else() {
    let app = serve_example().await;
    let http = reqwest::Client::new();
    let url = format!("{}/logs/api/v1/logs/deploy/1/stream", app.base);

    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let other_team = http.get(&url).header("x-team", "web").send().await.unwrap();
    assert_eq!(other_team.status(), 403);
    let append = http
        .post(format!("{}/logs/api/v1/logs/deploy/1", app.base))
        .header("x-team", "platform")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(append.status(), 403);
    let unknown = http.get(format!("{}/elsewhere", app.base)).send().await.unwrap();
    assert_eq!(unknown.status(), 404, "paths outside the mount fall through to the host");

    app.streams.shutdown();
    app.database.drop().await.unwrap();
}
