//! Token mode with MongoDB down: access is decided before any MongoDB work, so a request without
//! a valid token is 401 (never 503) on every route, and only an allowed one gets further: a 503
//! for a snapshot or an append, a stream that waits for MongoDB. The index routes, which name no
//! log, refuse such a request too, whether the list is not built yet or holds no log.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use reqwest::RequestBuilder;
use serde_json::Value;
use sse_logs::access::Claims;

use crate::helpers::{spawn_app_against, TestApp};
use crate::mongo_server::MongoServer;

const SECRET: &str = "a-test-secret-of-some-length";

fn token(secret: &str, exp: u64) -> String {
    let claims = Claims { exp, nbf: None, logs: vec!["*".into()], write: vec!["*".into()] };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Every route that reads or appends a log, as a request still to be given its credentials, and
/// whether it is a stream (which, allowed, waits for MongoDB rather than failing).
fn requests(app: &TestApp) -> Vec<(&'static str, bool, RequestBuilder)> {
    let get = |path: &str| app.http.get(app.url(path));
    vec![
        ("stream", true, get("/api/v1/logs/deploy/1/stream?from=0")),
        ("seed stream", true, get("/api/v1/sse/logs/?type=deploy&id=1&num=0")),
        ("several logs", true, get("/api/v1/streams?log=deploy:1&log=deploy:2")),
        ("raw follow", true, get("/api/v1/logs/deploy/1/raw?follow=1")),
        ("snapshot", false, get("/api/v1/logs/deploy/1")),
        ("tail", false, get("/api/v1/logs/deploy/1?tail=5")),
        ("append", false, app.http.post(app.url("/api/v1/logs/deploy/1")).body("a line\n")),
    ]
}

async fn answer(request: RequestBuilder) -> (u16, bool, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn with_mongodb_down_a_request_without_a_valid_token_is_401_and_a_valid_one_503() {
    // Never started: every MongoDB call fails (after half a second of server selection).
    let mongodb = MongoServer::new();
    let uri = format!("{}/?serverSelectionTimeoutMS=500", mongodb.uri());
    let app = spawn_app_against(&uri, &[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)], false).await;

    let invalid = [
        ("no token", None),
        ("a token signed with another secret", Some(token("another-secret-entirely", now() + 600))),
        ("an expired token", Some(token(SECRET, now() - 120))),
    ];
    for (what, credentials) in &invalid {
        for (route, _, request) in requests(&app) {
            let request = match credentials {
                Some(token) => request.bearer_auth(token),
                None => request,
            };
            assert_eq!(answer(request).await, (401, false, "unauthorized".into()), "{route} with {what}");
        }
    }
    for path in ["/api/v1/logs", "/api/v1/logs/events"] {
        for (what, credentials) in &invalid {
            let mut request = app.http.get(app.url(path));
            if let Some(token) = credentials {
                request = request.bearer_auth(token);
            }
            assert_eq!(answer(request).await, (401, false, "unauthorized".into()), "{path} with {what}");
        }
    }
    // The database really is down: a valid token gets as far as MongoDB and is told so, or (a
    // stream) is answered and waits for it.
    let valid = token(SECRET, now() + 600);
    for (route, stream, request) in requests(&app) {
        let request = request.bearer_auth(&valid);
        if stream {
            assert_eq!(request.send().await.unwrap().status(), 200, "{route} with a valid token");
            continue;
        }
        let (status, retry_after, code) = answer(request).await;
        assert_eq!((status, retry_after), (503, true), "{route} with a valid token: {code}");
    }
}

#[tokio::test]
async fn with_no_log_at_all_the_index_without_a_token_is_401_not_an_empty_list() {
    let app = crate::helpers::spawn_app_with(&[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)]).await;
    for path in ["/api/v1/logs", "/api/v1/logs/events"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"));
        assert_eq!(answer(app.http.get(app.url(path))).await, (401, false, "unauthorized".into()), "{path}");
    }
    let listed =
        app.http.get(app.url("/api/v1/logs")).bearer_auth(token(SECRET, now() + 600)).send().await.unwrap();
    assert_eq!(listed.status(), 200, "with a valid token, the empty list");
}
