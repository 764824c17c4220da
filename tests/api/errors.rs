//! Every bad input gets its status and the contract's JSON error, never a driver message.

use crate::helpers::spawn_app;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn missing_type_or_id_is_a_400() {
    let app = spawn_app().await;
    for query in ["", "?type=deploy", "?id=1", "?type=&id=1", "?type[$ne]=x&id=1"] {
        let response = app.http.get(app.url(&format!("/api/v1/sse/logs/{query}"))).send().await.unwrap();
        assert_error(response, 400, "missing_parameter").await;
    }
}

#[tokio::test]
async fn positions_must_be_non_negative_integers() {
    let app = spawn_app().await;
    for query in ["num=-1", "num=abc", "num=1.5", "num=", "num=99999999999999999999999"] {
        let url = app.url(&format!("/api/v1/sse/logs/?type=a&id=1&{query}"));
        assert_error(app.http.get(url).send().await.unwrap(), 400, "invalid_parameter").await;
    }
    for query in ["from=-3", "from=x", "format=xml"] {
        let url = app.stream_url("a", "1", query);
        assert_error(app.http.get(url).send().await.unwrap(), 400, "invalid_parameter").await;
    }
    for query in ["limit=0", "limit=10001", "from=-1"] {
        let url = app.url(&format!("/api/v1/logs/a/1?{query}"));
        assert_error(app.http.get(url).send().await.unwrap(), 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn a_key_that_takes_one_value_given_twice_is_a_400_never_the_first_or_the_last() {
    let app = spawn_app().await;
    app.write("twice", 1_i64, &["a", "[DONE]"]).await;
    let paths = [
        "/api/v1/logs/twice/1/stream?format=json&format=text",
        "/api/v1/logs/twice/1/stream?from=0&from=1",
        "/api/v1/sse/logs/?type=twice&id=1&num=0&num=1",
        "/api/v1/sse/logs/?type=twice&type=other&id=1",
        "/api/v1/logs/twice/1?limit=5&limit=6",
        "/api/v1/logs/twice/1?times=1&times=0",
        "/api/v1/logs/twice/1/raw?follow=0&follow=1",
        "/api/v1/logs?state=live&state=ended",
        "/api/v1/logs?type=twice&type=other",
        "/api/v1/logs?q=1&q=2",
        "/api/v1/logs/events?type=twice&type=other",
    ];
    for path in paths {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_error(response, 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn a_bad_last_event_id_is_a_400() {
    let app = spawn_app().await;
    for value in ["x", "-1", "1.0"] {
        let request = app.http.get(app.stream_url("a", "1", "")).header("Last-Event-ID", value);
        assert_error(request.send().await.unwrap(), 400, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    assert_error(app.http.get(app.url("/nope")).send().await.unwrap(), 404, "not_found").await;
    assert_error(app.http.get(app.url("/api/v1/logs/a")).send().await.unwrap(), 404, "not_found").await;
    let delete = app.http.delete(app.url("/api/v1/logs/a/1")).send().await.unwrap();
    assert_error(delete, 405, "method_not_allowed").await;
    let post = app.http.post(app.stream_url("a", "1", "")).send().await.unwrap();
    assert_error(post, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn streams_beyond_the_limit_get_503_with_retry_after() {
    let app = spawn_app_with_limit().await;
    let first = app.get_stream(&app.stream_url("a", "1", "")).await;
    let response = app.http.get(app.stream_url("a", "1", "")).send().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "too_many_streams").await;
    drop(first);
}

async fn spawn_app_with_limit() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(&[("LIMITS__MAX_STREAMS", "1")]).await
}
