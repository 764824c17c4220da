//! What a security reviewer tries: every route without or with bad credentials, forged tokens,
//! forward-auth deciders that misbehave, cross-site writes, ambiguous and hostile input, oversized
//! and slow requests, stream exhaustion, and secrets leaking into logs or error bodies.
//!
//! Observed only through HTTP, `/metrics`, the stored collection and the captured process logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::doc;
use bytes::Bytes;
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp::{Filter, Reply};

use crate::helpers::{captured_logs, mongodb_uri, spawn_app_with, sse_logs, TestApp, PATIENCE};

const SECRET: &str = "security-suite-secret-0123456789";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap()
}

/// A valid token reading `logs` and appending to `write` for ten minutes.
fn token(logs: &[&str], write: &[&str]) -> String {
    sign(&json!({"exp": now() + 600, "logs": logs, "write": write}), SECRET)
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token: `header.claims.` with the given header.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()))
}

async fn token_app() -> TestApp {
    spawn_app_with(&[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)]).await
}

async fn forward_app(url: &str) -> TestApp {
    spawn_app_with(&[
        ("AUTH__MODE", "forward"),
        ("AUTH__FORWARD_URL", url),
        ("AUTH__FORWARD_TIMEOUT_MS", "400"),
        ("AUTH__FORWARD_CACHE_SECS", "0"),
    ])
    .await
}

/// Status and error code; a stream that was let in is not read (it would not end).
async fn status_and_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    if response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, "an open stream".into());
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

/// Serves a warp filter on a free port; returns its base URL.
async fn serve<F>(filter: F) -> String
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(filter).incoming(listener).run());
    base
}

async fn assert_healthy(app: &TestApp) {
    let response = tokio::time::timeout(Duration::from_secs(5), app.http.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answers in time")
        .expect("/healthz answers");
    assert_eq!(response.status(), 200, "the service is still healthy");
}

/// The four log routes for `deploy/1`: (name, method, url).
fn log_routes(app: &TestApp) -> Vec<(&'static str, reqwest::Method, String)> {
    use reqwest::Method;
    vec![
        ("seed stream", Method::GET, app.url("/api/v1/sse/logs/?type=deploy&id=1")),
        ("stream", Method::GET, app.stream_url("deploy", "1", "")),
        ("snapshot", Method::GET, app.url("/api/v1/logs/deploy/1")),
        ("append", Method::POST, app.url("/api/v1/logs/deploy/1")),
    ]
}

/// Sends one request per log route with `decorate` applied; returns (route, status, code).
async fn on_every_route(
    app: &TestApp,
    decorate: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Vec<(&'static str, u16, String)> {
    let mut out = Vec::new();
    for (name, method, url) in log_routes(app) {
        let request = decorate(app.http.request(method, &url).body("line"));
        let (status, code) = status_and_code(request.send().await.unwrap()).await;
        out.push((name, status, code));
    }
    out
}

fn assert_all(results: &[(&str, u16, String)], status: u16, code: &str, what: &str) {
    for (route, got, got_code) in results {
        assert_eq!((*got, got_code.as_str()), (status, code), "{what}: {route}");
    }
}

/// A stand-in for the host app's auth endpoint, by cookie: `session=good` may do anything,
/// `session=other` nothing (403), no session 401.
fn decider() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("auth").and(warp::header::optional::<String>("cookie")).map(|cookie: Option<String>| {
        let status = match cookie.as_deref() {
            Some("session=good") => 200,
            Some("session=other") => 403,
            _ => 401,
        };
        warp::reply::with_status("", warp::http::StatusCode::from_u16(status).unwrap()).into_response()
    })
}

// ---------------------------------------------------------------------------------------------
// Credentials on every route

#[tokio::test]
async fn every_log_route_without_credentials_is_401_in_token_and_forward_mode_and_the_viewer_is_public() {
    let token_mode = token_app().await;
    let forward_mode = forward_app(&format!("{}/auth", serve(decider()).await)).await;
    for app in [&token_mode, &forward_mode] {
        assert_all(&on_every_route(app, |r| r).await, 401, "unauthorized", "no credentials");
        let viewer = app.http.get(app.url("/logs/deploy/1")).send().await.unwrap();
        assert_eq!(viewer.status(), 200, "the viewer page is public");
        assert!(viewer.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    // The controls: the same requests with credentials get through.
    let reader_writer = token(&["deploy:1"], &["deploy:1"]);
    let allowed = on_every_route(&token_mode, |r| r.bearer_auth(&reader_writer)).await;
    for (route, status, _) in allowed {
        assert!(status == 200 || status == 201, "{route} with a good token: {status}");
    }
    let other = on_every_route(&forward_mode, |r| r.header("cookie", "session=other")).await;
    assert_all(&other, 403, "forbidden", "forward decider says 403");
    let good = on_every_route(&forward_mode, |r| r.header("cookie", "session=good")).await;
    for (route, status, _) in good {
        assert!(status == 200 || status == 201, "{route} with a good session: {status}");
    }
    assert_eq!(token_mode.logs.count_documents(doc! {}).await.unwrap(), 1, "only the allowed append stored");
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused_on_every_route() {
    let app = token_app().await;
    let everything = json!(["*"]);
    let cases: Vec<(&str, String, u16)> = vec![
        ("a token for another log", token(&["deploy:2", "build:*"], &["deploy:2"]), 403),
        (
            "another key",
            sign(
                &json!({"exp": now() + 600, "logs": everything, "write": everything}),
                "another-key-entirely-000",
            ),
            401,
        ),
        (
            "alg none",
            unsigned(
                &json!({"alg": "none", "typ": "JWT"}),
                &json!({"exp": now() + 600, "logs": everything, "write": everything}),
            ),
            401,
        ),
        (
            "alg None",
            unsigned(
                &json!({"alg": "None", "typ": "JWT"}),
                &json!({"exp": now() + 600, "logs": everything, "write": everything}),
            ),
            401,
        ),
        (
            "HS256 header, no signature",
            unsigned(
                &json!({"alg": "HS256", "typ": "JWT"}),
                &json!({"exp": now() + 600, "logs": everything, "write": everything}),
            ),
            401,
        ),
        (
            "HS512 with the right secret",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS512),
                &json!({"exp": now() + 600, "logs": everything, "write": everything}),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap(),
            401,
        ),
        (
            "expired beyond the 5 s leeway",
            sign(&json!({"exp": now() - 30, "logs": everything, "write": everything}), SECRET),
            401,
        ),
        (
            "not valid before a future time",
            sign(
                &json!({"exp": now() + 600, "nbf": now() + 60, "logs": everything, "write": everything}),
                SECRET,
            ),
            401,
        ),
        ("no exp", sign(&json!({"logs": everything, "write": everything}), SECRET), 401),
        (
            "exp as text",
            sign(&json!({"exp": "9999999999", "logs": everything, "write": everything}), SECRET),
            401,
        ),
    ];
    for (what, bad, status) in &cases {
        let code = if *status == 401 { "unauthorized" } else { "forbidden" };
        assert_all(&on_every_route(&app, |r| r.bearer_auth(bad)).await, *status, code, what);
        let in_cookie = on_every_route(&app, |r| r.header("cookie", format!("sse_logs_token={bad}"))).await;
        assert_all(&in_cookie, *status, code, what);
    }
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 0, "nothing was appended");
}

// ---------------------------------------------------------------------------------------------
// Issue 13, hole 1: forward mode followed redirects

#[tokio::test]
async fn a_login_redirect_from_the_forward_decider_is_503_and_is_not_followed() {
    let login_page_hits = Arc::new(AtomicUsize::new(0));
    let hits = login_page_hits.clone();
    // Django's @login_required: an expired session gets 302 to the login page, which answers 200.
    let auth = warp::path!("auth").map(|| {
        warp::http::Response::builder()
            .status(302)
            .header("location", "/accounts/login/?next=/auth")
            .body("")
            .unwrap()
            .into_response()
    });
    let login = warp::path!("accounts" / "login").map(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        warp::reply::html("<form>log in</form>").into_response()
    });
    let base = serve(auth.or(login).unify()).await;
    let app = forward_app(&format!("{base}/auth")).await;
    app.write("deploy", 1_i64, &["a secret line"]).await;

    let results = on_every_route(&app, |r| r.header("cookie", "sessionid=expired")).await;
    assert_all(&results, 503, "access_unavailable", "a 302 from the decider");
    assert_eq!(login_page_hits.load(Ordering::SeqCst), 0, "the redirect was not followed");
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 1, "nothing was appended");
    for status in [301, 303, 307, 308] {
        let auth = warp::path!("auth").map(move || {
            warp::http::Response::builder()
                .status(status)
                .header("location", "/")
                .body("")
                .unwrap()
                .into_response()
        });
        let app = forward_app(&format!("{}/auth", serve(auth).await)).await;
        let response = app.http.get(app.url("/api/v1/logs/deploy/1")).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (503, "access_unavailable".into()), "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Forward deciders that misbehave

#[tokio::test]
async fn forward_deciders_that_are_slow_broken_huge_or_gone_never_allow_and_never_hurt() {
    let auth = warp::path!("auth").and(warp::header::optional::<String>("cookie")).then(
        |cookie: Option<String>| async move {
            match cookie.as_deref() {
                Some("case=slow") => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    warp::reply().into_response()
                }
                Some("case=500") => {
                    warp::reply::with_status("oops", warp::http::StatusCode::INTERNAL_SERVER_ERROR)
                        .into_response()
                }
                Some("case=huge") => {
                    // 50 MB, made one shared 1 MiB chunk at a time.
                    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
                    let chunks = futures_util::stream::iter(
                        (0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    warp::reply::stream(chunks).into_response()
                }
                _ => warp::reply::with_status("", warp::http::StatusCode::UNAUTHORIZED).into_response(),
            }
        },
    );
    let app = forward_app(&format!("{}/auth", serve(auth).await)).await;
    let snapshot = app.url("/api/v1/logs/deploy/1");
    let get = |case: &str| app.http.get(&snapshot).header("cookie", format!("case={case}")).send();

    let started = Instant::now();
    let slow = get("slow").await.unwrap();
    assert!(slow.headers().contains_key("retry-after"));
    assert_eq!(status_and_code(slow).await, (503, "access_unavailable".into()), "slow decider");
    assert!(started.elapsed() < Duration::from_millis(2500), "the timeout (400 ms) cut the wait");
    assert_eq!(status_and_code(get("500").await.unwrap()).await, (503, "access_unavailable".into()));

    let started = Instant::now();
    let huge = get("huge").await.unwrap();
    assert_eq!(huge.status(), 200, "a 2xx allows; its 50 MB body is not read");
    assert!(started.elapsed() < Duration::from_secs(5), "the body was not waited for");
    assert_healthy(&app).await;

    // A decider that accepts and closes at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let app = forward_app(&format!("http://{addr}/auth")).await;
    let results = on_every_route(&app, |r| r.header("cookie", "session=good")).await;
    assert_all(&results, 503, "access_unavailable", "a decider that resets");
}

// ---------------------------------------------------------------------------------------------
// Issue 13, hole 2: cross-site appends

#[tokio::test]
async fn a_cross_site_simple_post_with_a_valid_cookie_is_refused() {
    let app = token_app().await;
    let cookie = format!("sse_logs_token={}", token(&["x:*"], &["x:*"]));
    let url = app.url("/api/v1/logs/x/1");
    let post = |headers: &[(&str, &str)]| {
        let mut request =
            app.http.post(&url).header("cookie", &cookie).header("content-type", "text/plain").body("pwned");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for headers in [
        &[("origin", "https://evil.example.net")][..],
        &[("origin", "https://evil.example.net"), ("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", &format!("http://{}.evil.example.net", app.addr.ip()))],
        &[("origin", &format!("http://127.0.0.1:{}", app.addr.port() + 1))],
    ] {
        let response = post(headers).await.unwrap();
        assert_eq!(status_and_code(response).await, (403, "cross_origin".into()), "{headers:?}");
    }
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 0, "no cross-site line was stored");

    // The same origin (what the browser sends from a page of this service), and tools.
    let same_origin = format!("http://{}", app.addr);
    for headers in [
        &[("origin", same_origin.as_str())][..],
        &[("origin", same_origin.as_str()), ("sec-fetch-site", "same-origin")],
        &[],
    ] {
        assert_eq!(post(headers).await.unwrap().status(), 201, "{headers:?}");
    }
    // Reads are CORS's business: a cross-site GET is not refused by this rule.
    let read = app.http.get(&url).header("cookie", &cookie).header("origin", "https://evil.example.net");
    assert_eq!(read.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn cross_site_appends_are_refused_in_every_auth_mode_and_allowed_origins_may_append() {
    let none_mode = spawn_app_with(&[]).await;
    let evil = none_mode
        .http
        .post(none_mode.url("/api/v1/logs/x/1"))
        .header("origin", "https://evil.example.net")
        .body("pwned")
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(evil).await, (403, "cross_origin".into()), "auth.mode none");

    let with_cors = spawn_app_with(&[("CORS__ALLOWED_ORIGINS", "https://ci.example.com")]).await;
    let url = with_cors.url("/api/v1/logs/x/1");
    let from = |origin: &str| {
        with_cors
            .http
            .post(&url)
            .header("origin", origin)
            .header("sec-fetch-site", "cross-site")
            .body("l")
            .send()
    };
    assert_eq!(from("https://ci.example.com").await.unwrap().status(), 201);
    assert_eq!(from("https://evil.example.net").await.unwrap().status(), 403);
    assert_eq!(with_cors.logs.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(none_mode.logs.count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn the_embedding_api_takes_allowed_origins_too() {
    let client = mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap();
    let database = client.database(&format!("test_{}", uuid::Uuid::new_v4().simple()));
    let streams = sse_logs::LogStreams::builder(database.collection("sse_logs"))
        .allowed_origins(["https://ci.example.com".to_owned()])
        .build();
    let base = serve(warp::path("logs").and(streams.filter())).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/logs/api/v1/logs/x/1");
    let from = |origin: &str| http.post(&url).header("origin", origin).body("l").send();
    assert_eq!(from("https://ci.example.com").await.unwrap().status(), 201);
    assert_eq!(
        status_and_code(from("https://evil.example.net").await.unwrap()).await,
        (403, "cross_origin".into())
    );
    streams.shutdown();
    database.drop().await.unwrap();
}

#[tokio::test]
async fn sse_logs_push_sends_no_origin_and_still_appends() {
    let app = token_app().await;
    // push reads the end of the log first, so it needs read and write.
    let writer = token(&["deploy:7"], &["deploy:7"]);
    let mut push =
        sse_logs(&["push", "--type", "deploy", "--id", "7", "--server", &app.url(""), "--token", &writer])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(PATIENCE, push.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "push: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(app.logs.count_documents(doc! {"type": "deploy"}).await.unwrap(), 3, "two lines and [DONE]");
}

#[tokio::test]
async fn push_with_a_write_only_token_fails_at_once_saying_why() {
    let app = token_app().await;
    let write_only = token(&[], &["deploy:8"]);
    let output = tokio::time::timeout(
        PATIENCE,
        sse_logs(&[
            "push",
            "--type",
            "deploy",
            "--id",
            "8",
            "--server",
            &app.url(""),
            "--token",
            &write_only,
        ])
        .stdin(std::process::Stdio::null())
        .output(),
    )
    .await
    .expect("push does not retry a refusal for minutes")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs a token that may read the log"), "{stderr}");
    assert_eq!(app.logs.count_documents(doc! {"type": "deploy"}).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Ambiguous credentials and parameters

#[tokio::test]
async fn two_different_tokens_in_one_request_are_401() {
    let app = token_app().await;
    app.write("b", 1_i64, &["b's line"]).await;
    let (for_a, for_b) = (token(&["a:1"], &[]), token(&["b:1"], &[]));
    let url = app.url("/api/v1/logs/b/1");
    let conflicting = [
        app.http.get(&url).bearer_auth(&for_a).header("cookie", format!("sse_logs_token={for_b}")),
        app.http.get(&url).bearer_auth(&for_b).header("cookie", format!("sse_logs_token={for_a}")),
        app.http.get(format!("{url}?access_token={for_b}")).bearer_auth(&for_a),
        app.http.get(&url).header("cookie", format!("sse_logs_token={for_a}; sse_logs_token={for_b}")),
        app.http.get(format!("{url}?access_token={for_a}&access_token={for_b}")),
    ];
    for request in conflicting {
        let response = request.send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].as_str().unwrap().contains("conflicting"), "{body}");
    }
    // The same token twice is no conflict, nor is an empty cookie next to a header.
    let same = app.http.get(&url).bearer_auth(&for_b).header("cookie", format!("sse_logs_token={for_b}"));
    assert_eq!(same.send().await.unwrap().status(), 200);
    let cleared = app.http.get(&url).bearer_auth(&for_b).header("cookie", "sse_logs_token=");
    assert_eq!(cleared.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn duplicated_query_keys_are_400_not_a_silent_pick() {
    let app = spawn_app_with(&[]).await;
    app.write("a", 1_i64, &["a's line", "[DONE]"]).await;
    for query in ["type=a&type=b&id=1", "type=a&id=1&id=2", "type=a&id=1&num=1&num=0", "type=b&id=1&type=a"] {
        let response = app.http.get(app.url(&format!("/api/v1/sse/logs/?{query}"))).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (400, "invalid_parameter".into()), "{query}");
    }
    for url in [app.stream_url("a", "1", "from=0&from=1"), app.url("/api/v1/logs/a/1?limit=1&limit=5")] {
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (400, "invalid_parameter".into()), "{url}");
    }
    let once = app.http.get(app.url("/api/v1/sse/logs/?type=a&id=1&num=0")).send().await.unwrap();
    assert_eq!(once.status(), 200, "the control");
}

// ---------------------------------------------------------------------------------------------
// Hostile names

/// Sends raw bytes, reads the whole answer (the request says `Connection: close`).
async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await.expect("an answer in time");
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn encoded_slashes_and_dots_name_other_logs_and_never_widen_a_scope() {
    let app = token_app().await;
    app.logs
        .insert_many([
            doc! {"type": "b", "id": 1_i64, "log": "b's secret"},
            doc! {"type": "a/b", "id": 1_i64, "log": "a/b's line"},
        ])
        .await
        .unwrap();
    let only_a = token(&["a:*"], &["a:*"]);
    for path in ["/api/v1/logs/a%2Fb/1", "/api/v1/logs/a%2F..%2Fb/1", "/api/v1/logs/..%2Fb/1"] {
        let response = app.http.get(app.url(path)).bearer_auth(&only_a).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (403, "forbidden".into()), "{path}");
    }
    let appended =
        app.http.post(app.url("/api/v1/logs/a%2Fb/1")).bearer_auth(&only_a).body("x").send().await.unwrap();
    assert_eq!(appended.status(), 403);

    // Raw `..` segments are not resolved by the server (the client libraries would).
    for path in ["/api/v1/logs/a/../b/1", "/api/v1/logs/a/%2e%2e/b/1", "/api/v1/sse/logs/../../logs/b/1"] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {only_a}\r\nConnection: close\r\n\r\n",
            app.addr
        );
        let answer = raw_http(app.addr, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 404, "{path}: {answer}");
        assert!(!answer.contains("b's secret"));
    }

    // Inside a scope, such an id is just another log of that type.
    let response =
        app.http.get(app.url("/api/v1/logs/a/..%2Fb%2F1")).bearer_auth(&only_a).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["id"].as_str(), body["lines"].as_array().map(Vec::len)), (Some("../b/1"), Some(0)));
    let seed = app.url("/api/v1/sse/logs/?type=..&id=b");
    assert_eq!(app.http.get(seed).bearer_auth(&only_a).send().await.unwrap().status(), 403);

    // The log named `a/b` is its own log, readable with its own scope.
    let response = app
        .http
        .get(app.url("/api/v1/logs/a%2Fb/1"))
        .bearer_auth(token(&["a/b:1"], &[]))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["lines"], json!(["a/b's line"]));
}

#[tokio::test]
async fn control_characters_in_type_or_id_are_400_on_every_route() {
    let app = spawn_app_with(&[]).await;
    for bad in ["%00", "a%00b", "%0A", "x%0D%0AInjected:%201", "%1B%5B31m", "%7F", "%C2%85"] {
        let urls = [
            (reqwest::Method::GET, app.url(&format!("/api/v1/sse/logs/?type={bad}&id=1"))),
            (reqwest::Method::GET, app.url(&format!("/api/v1/sse/logs/?type=t&id={bad}"))),
            (reqwest::Method::GET, app.stream_url(bad, "1", "")),
            (reqwest::Method::GET, app.url(&format!("/api/v1/logs/t/{bad}"))),
            (reqwest::Method::POST, app.url(&format!("/api/v1/logs/{bad}/1"))),
            (reqwest::Method::POST, app.url(&format!("/api/v1/logs/t/{bad}"))),
        ];
        for (method, url) in urls {
            let response = app.http.request(method, &url).body("x").send().await.unwrap();
            assert_eq!(status_and_code(response).await, (400, "invalid_parameter".into()), "{url}");
        }
    }
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 0);
    let fine = app.http.post(app.url("/api/v1/logs/ci%20job/%C3%A9t%C3%A9")).body("x").send().await.unwrap();
    assert_eq!(fine.status(), 201, "spaces and non-ASCII letters are fine");
}

// ---------------------------------------------------------------------------------------------
// Oversized and slow requests

#[tokio::test]
async fn a_huge_header_or_query_string_gets_an_error_status_and_the_service_lives_on() {
    let app = token_app().await;
    // 60 KiB in Authorization: within limits.max_header_bytes (64 KiB), so the check answers.
    let big = "A".repeat(60 * 1024);
    let response = app.http.get(app.url("/api/v1/logs/deploy/1")).bearer_auth(&big).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 401);
    assert!(!text.contains(&big[..64]), "the header is not echoed");
    let response = app.http.get(app.url("/healthz")).header("x-padding", big.as_str()).send().await.unwrap();
    assert!(response.status().is_success() || response.status().is_client_error());

    // A 100 KiB URI: a request head over limits.max_header_bytes (reqwest would not even send it).
    let request = format!(
        "GET /api/v1/logs/deploy/1?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    assert_eq!(status_of(&raw_http(app.addr, request.as_bytes()).await), 431);

    // 200 headers: over hyper's 100.
    let mut request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", app.addr);
    for n in 0..200 {
        request.push_str(&format!("X-H{n}: v\r\n"));
    }
    request.push_str("\r\n");
    let answer = raw_http(app.addr, request.as_bytes()).await;
    assert_eq!(status_of(&answer), 431, "{answer}");

    // 10 MB of query string: refused as soon as the request head outgrows hyper's buffer.
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = socket.split();
    let writer = async {
        write.write_all(b"GET /api/v1/logs/deploy/1?q=").await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..160 {
            write.write_all(&chunk).await?;
        }
        write.write_all(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await
    };
    let reader = async {
        let mut answer = Vec::new();
        let _ = read.read_to_end(&mut answer).await;
        answer
    };
    let (written, answer) =
        tokio::time::timeout(PATIENCE, async { tokio::join!(writer, reader) }).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = status_of(&answer);
    assert!(
        status == 431 || status == 414 || (answer.is_empty() && written.is_err()),
        "10 MB query: status {status}, write {written:?}"
    );
    assert_healthy(&app).await;
}

#[tokio::test]
async fn slow_loris_clients_do_not_keep_others_out() {
    let app = spawn_app_with(&[]).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut socket = TcpStream::connect(app.addr).await.unwrap();
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(socket);
    }
    for _ in 0..3 {
        for socket in &mut slow {
            socket.write_all(b"a").await.unwrap();
        }
        let started = Instant::now();
        let other = reqwest::Client::new();
        assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(other.get(app.url("/api/v1/logs/deploy/1")).send().await.unwrap().status(), 200);
        assert!(started.elapsed() < Duration::from_secs(1), "others are served while 50 clients dawdle");
        tokio::time::sleep(Duration::from_secs(1)).await; // the slow clients' pace, not a wait for an event
    }
    // The slow requests are still being read: finishing them gets an answer.
    for socket in &mut slow[..3] {
        socket.write_all(b"\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await.unwrap().unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 200);
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off_after_the_header_read_timeout() {
    let app = spawn_app_with(&[("HTTP__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = socket.into_split();
    let dribble = async {
        // One byte every 200 ms for 10 s: far longer than the 1 s allowed.
        for _ in 0..50 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // the client's pace
        }
        panic!("the server kept reading a request's headers for 10 s");
    };
    let closed = async {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf).await;
        buf
    };
    let answer = tokio::select! {
        answer = closed => answer,
        _ = dribble => Vec::new(),
    };
    assert!(started.elapsed() < Duration::from_secs(9), "cut off after {:?}", started.elapsed());
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "the request was never served");
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Exhausting streams

async fn open_streams_gauge(app: &TestApp) -> i64 {
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("sse_logs_streams_open{") || l.starts_with("sse_logs_streams_open "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as i64)
        .sum()
}

#[tokio::test]
async fn the_stream_limit_holds_under_a_flood_and_frees_its_slots() {
    const LIMIT: usize = 200;
    let app = spawn_app_with(&[("LIMITS__MAX_STREAMS", "200"), ("SSE__KEEP_ALIVE_SECS", "1")]).await;
    app.write("deploy", 1_i64, &["first line"]).await;
    let flood = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let responses = futures_util::future::join_all(
        (0..2 * LIMIT).map(|_| flood.get(app.stream_url("deploy", "1", "")).send()),
    )
    .await;
    let (mut open, mut refused) = (Vec::new(), 0);
    for response in responses {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => open.push(response),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(status_and_code(response).await, (503, "too_many_streams".into()));
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((open.len(), refused), (LIMIT, LIMIT));
    assert_eq!(open_streams_gauge(&app).await, LIMIT as i64);

    // Others still get everything that is not a stream.
    let other = reqwest::Client::new();
    assert_eq!(other.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let snapshot: Value =
        other.get(app.url("/api/v1/logs/deploy/1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["lines"], json!(["first line"]));
    let one_more = other.get(app.stream_url("deploy", "1", "")).send().await.unwrap();
    assert_eq!(status_and_code(one_more).await, (503, "too_many_streams".into()));

    // Hanging up frees the slots.
    drop(open);
    drop(flood);
    let deadline = Instant::now() + PATIENCE;
    while open_streams_gauge(&app).await > 0 {
        assert!(Instant::now() < deadline, "the slots were not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = other.get(app.stream_url("deploy", "1", "")).send().await.unwrap();
    assert_eq!(again.status(), 200, "a freed slot is usable");
}

// ---------------------------------------------------------------------------------------------
// Hostile bodies

#[tokio::test]
async fn a_json_body_nested_a_hundred_thousand_deep_is_400() {
    let app = spawn_app_with(&[]).await;
    let body = format!("{{\"lines\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let response = app
        .http
        .post(app.url("/api/v1/logs/deploy/1"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(response).await, (400, "invalid_body".into()));
    assert_healthy(&app).await;
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 0);
}

#[tokio::test]
async fn a_100_mb_streamed_body_is_413_and_is_not_read_to_the_end() {
    let app = spawn_app_with(&[]).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    let body = futures_util::stream::iter(0..100).map(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    });
    let result = app
        .http
        .post(app.url("/api/v1/logs/deploy/1"))
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    match result {
        Ok(response) => assert_eq!(status_and_code(response).await, (413, "body_too_large".into())),
        // The server may close the connection before the client has finished sending.
        Err(err) => panic!("no answer to a large body: {err}"),
    }
    assert!(sent.load(Ordering::SeqCst) < 100, "the body was not read to the end");
    assert_healthy(&app).await;
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn no_token_cookie_secret_or_decider_body_reaches_the_logs_or_an_error_body() {
    let marker = format!("decider-body-marker-{}", uuid::Uuid::new_v4().simple());
    let cookie_value = format!("session-{}", uuid::Uuid::new_v4().simple());
    let mut secrets: Vec<String> = vec![SECRET.to_owned(), marker.clone(), cookie_value.clone()];
    let mut bodies = Vec::new();

    // Token mode: good, expired, foreign, forged and conflicting tokens in every place.
    let app = token_app().await;
    let unique = format!("scope{}", uuid::Uuid::new_v4().simple());
    let good = token(&[&format!("{unique}:1")], &[]);
    let expired = sign(&json!({"exp": now() - 120, "logs": [&unique]}), SECRET);
    let foreign = sign(&json!({"exp": now() + 600, "logs": ["*"], "n": &unique}), "another-key-entirely-000");
    let forged = unsigned(&json!({"alg": "none"}), &json!({"exp": now() + 600, "logs": ["*"], "n": &unique}));
    secrets.extend([good.clone(), expired.clone(), foreign.clone(), forged.clone()]);
    for t in [&good, &expired, &foreign, &forged] {
        for (_, method, url) in log_routes(&app) {
            let sep = if url.contains('?') { '&' } else { '?' };
            let requests = [
                app.http.request(method.clone(), format!("{url}{sep}access_token={t}")),
                app.http.request(method.clone(), &url).bearer_auth(t),
                app.http.request(method.clone(), &url).header("cookie", format!("sse_logs_token={t}")),
                app.http
                    .request(method.clone(), &url)
                    .bearer_auth(&good)
                    .header("cookie", format!("sse_logs_token={t}")),
            ];
            for request in requests {
                let response = request.body("x").send().await.unwrap();
                if !response.status().is_success() {
                    bodies.push(response.text().await.unwrap());
                }
            }
        }
    }

    // Forward mode: the decider gets the cookie and answers bodies (and a Location) with a marker.
    let answer_marker = marker.clone();
    let auth = warp::path!("auth").and(warp::query::<HashMap<String, String>>()).map(
        move |query: HashMap<String, String>| {
            let status = match query.get("id").map(String::as_str) {
                Some("200") => 200,
                Some("302") => 302,
                Some("401") => 401,
                Some("403") => 403,
                _ => 500,
            };
            warp::http::Response::builder()
                .status(status)
                .header("location", format!("/login?{answer_marker}"))
                .header("x-debug", answer_marker.clone())
                .body(format!("{answer_marker} {answer_marker}"))
                .unwrap()
                .into_response()
        },
    );
    let forward = forward_app(&format!("{}/auth", serve(auth).await)).await;
    for id in ["200", "302", "401", "403", "500"] {
        for (method, url) in [
            (reqwest::Method::GET, forward.url(&format!("/api/v1/logs/deploy/{id}"))),
            (reqwest::Method::GET, forward.url(&format!("/api/v1/sse/logs/?type=deploy&id={id}"))),
            (reqwest::Method::POST, forward.url(&format!("/api/v1/logs/deploy/{id}"))),
        ] {
            let response = forward
                .http
                .request(method, &url)
                .header("cookie", format!("sessionid={cookie_value}"))
                .header("authorization", format!("Bearer {good}"))
                .body("x")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let headers = format!("{:?}", response.headers());
            assert!(!headers.contains(&marker), "a decider header reached the client");
            if status.is_success() {
                drop(response);
            } else {
                bodies.push(response.text().await.unwrap());
            }
        }
    }

    let logs = captured_logs();
    assert!(logs.contains("DEBUG"), "log capture works at debug level");
    assert!(bodies.len() > 40, "error bodies were collected: {}", bodies.len());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs: {secret:.24}...");
        for body in &bodies {
            assert!(!body.contains(secret.as_str()), "a secret reached a client: {body}");
        }
    }
}
