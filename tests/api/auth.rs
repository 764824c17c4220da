//! Access control: tokens from every source, forward auth against a real HTTP server, CORS,
//! the refusal to serve a public address unprotected, and no secret in the logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use sse_logs::access::Claims;
use sse_logs::Settings;
use warp::Filter;

use crate::helpers::{captured_logs, spawn_app, spawn_app_with, TestApp, PATIENCE};

const SECRET: &str = "a-test-secret-of-some-length";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(logs: &[&str], write: &[&str], exp: u64, nbf: Option<u64>, secret: &str) -> String {
    let claims = Claims {
        exp,
        nbf,
        logs: logs.iter().map(|s| s.to_string()).collect(),
        write: write.iter().map(|s| s.to_string()).collect(),
    };
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn reader(logs: &[&str]) -> String {
    token(logs, &[], now() + 600, None, SECRET)
}

async fn token_app() -> TestApp {
    spawn_app_with(&[("AUTH__MODE", "token"), ("AUTH__SECRET", SECRET)]).await
}

async fn status_and_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn without_credentials_reads_are_401_with_www_authenticate() {
    let app = token_app().await;
    for url in [
        app.stream_url("deploy", "1", ""),
        app.url("/api/v1/logs/deploy/1"),
        app.url("/api/v1/logs/deploy/1?tail=10"),
        app.url("/api/v1/logs/deploy/1/raw?follow=1"),
        app.url("/api/v1/sse/logs/?type=deploy&id=1"),
    ] {
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(status_and_code(response).await, (401, "unauthorized".into()), "{url}");
    }
}

#[tokio::test]
async fn bad_signatures_expired_and_not_yet_valid_tokens_are_401() {
    let app = token_app().await;
    let url = app.url("/api/v1/logs/deploy/1");
    for bad in [
        token(&["*"], &[], now() + 600, None, "another-secret-entirely"),
        token(&["*"], &[], now() - 120, None, SECRET),
        token(&["*"], &[], now() + 600, Some(now() + 300), SECRET),
        "not.a.token".to_owned(),
    ] {
        let response = app.http.get(&url).bearer_auth(&bad).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (401, "unauthorized".into()));
    }
}

#[tokio::test]
async fn a_token_for_another_log_is_403_and_a_wildcard_scope_allows() {
    let app = token_app().await;
    let url = app.url("/api/v1/logs/deploy/1");
    let other = app.http.get(&url).bearer_auth(reader(&["deploy:2", "build:*"])).send().await.unwrap();
    assert_eq!(status_and_code(other).await, (403, "forbidden".into()));
    let wildcard = app.http.get(&url).bearer_auth(reader(&["deploy:*"])).send().await.unwrap();
    assert_eq!(wildcard.status(), 200);
    let exact = app.http.get(&url).bearer_auth(reader(&["deploy:1"])).send().await.unwrap();
    assert_eq!(exact.status(), 200);
}

#[tokio::test]
async fn the_token_is_taken_from_a_cookie_the_authorization_header_or_the_query() {
    let app = token_app().await;
    app.write("deploy", 1_i64, &["secret line", "[DONE]"]).await;
    let token = reader(&["deploy:1"]);
    let requests = [
        app.http
            .get(app.stream_url("deploy", "1", ""))
            .header("cookie", format!("theme=dark; sse_logs_token={token}")),
        app.http.get(app.stream_url("deploy", "1", "")).bearer_auth(&token),
        app.http.get(app.stream_url("deploy", "1", &format!("access_token={token}"))),
    ];
    for request in requests {
        let mut client = app.get_stream_with(request).await;
        assert_eq!(client.next_event().await.data, "secret line");
    }
}

#[tokio::test]
async fn appending_needs_a_write_scope() {
    let app = token_app().await;
    let url = app.url("/api/v1/logs/deploy/1");
    let read_only = app.http.post(&url).bearer_auth(reader(&["*"])).body("x").send().await.unwrap();
    assert_eq!(status_and_code(read_only).await, (403, "forbidden".into()));
    let anonymous = app.http.post(&url).body("x").send().await.unwrap();
    assert_eq!(status_and_code(anonymous).await, (401, "unauthorized".into()));
    let writer = token(&[], &["deploy:1"], now() + 600, None, SECRET);
    let allowed = app.http.post(&url).bearer_auth(writer).body("x").send().await.unwrap();
    assert_eq!(allowed.status(), 201);
}

#[tokio::test]
async fn no_token_or_secret_appears_in_the_process_logs() {
    let app = token_app().await;
    let good = reader(&["deploy:1"]);
    let expired = token(&["*"], &[], now() - 120, None, SECRET);
    for t in [&good, &expired] {
        let _ =
            app.http.get(app.stream_url("deploy", "1", &format!("access_token={t}"))).send().await.unwrap();
        let _ = app.http.get(app.url("/api/v1/logs/deploy/1")).bearer_auth(t).send().await.unwrap();
        let _ = app
            .http
            .get(app.url("/api/v1/logs/deploy/1"))
            .header("cookie", format!("sse_logs_token={t}"))
            .send()
            .await
            .unwrap();
    }
    let logs = captured_logs();
    assert!(!logs.is_empty(), "log capture works");
    for secret in [good.as_str(), expired.as_str(), SECRET] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// A stand-in for the host app's auth endpoint: session=good may read, session=other may not.
async fn spawn_auth_service(calls: Arc<AtomicUsize>) -> String {
    let route = warp::path!("auth")
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::query::<HashMap<String, String>>())
        .then(move |cookie: Option<String>, query: HashMap<String, String>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let status = match (cookie.as_deref(), query.get("action").map(String::as_str)) {
                    (Some("session=slow"), _) => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        200
                    }
                    (Some("session=good"), Some("read")) => 200,
                    (Some("session=good"), _) | (Some("session=other"), _) => 403,
                    (Some("session=broken"), _) => 500,
                    _ => 401,
                };
                warp::reply::with_status("", warp::http::StatusCode::from_u16(status).unwrap())
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    url
}

#[tokio::test]
async fn forward_auth_allows_denies_and_never_allows_on_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let url = spawn_auth_service(calls.clone()).await;
    let app = spawn_app_with(&[
        ("AUTH__MODE", "forward"),
        ("AUTH__FORWARD_URL", &url),
        ("AUTH__FORWARD_TIMEOUT_MS", "300"),
        ("AUTH__FORWARD_CACHE_SECS", "30"),
    ])
    .await;
    let snapshot = app.url("/api/v1/logs/deploy/1");
    let get = |cookie: &str| app.http.get(&snapshot).header("cookie", cookie.to_owned()).send();

    assert_eq!(get("session=good").await.unwrap().status(), 200);
    assert_eq!(get("session=good").await.unwrap().status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second answer came from the cache");
    assert_eq!(status_and_code(get("session=other").await.unwrap()).await, (403, "forbidden".into()));
    assert_eq!(status_and_code(get("nothing=here").await.unwrap()).await, (401, "unauthorized".into()));
    assert_eq!(status_and_code(get("session=slow").await.unwrap()).await, (503, "access_unavailable".into()));
    assert_eq!(
        status_and_code(get("session=broken").await.unwrap()).await,
        (503, "access_unavailable".into())
    );
    let append = app.http.post(&snapshot).header("cookie", "session=good").body("x").send().await.unwrap();
    assert_eq!(append.status(), 403, "appending asks with action=write");
}

#[tokio::test]
async fn forward_auth_with_the_auth_service_down_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}/auth");
    let app = spawn_app_with(&[("AUTH__MODE", "forward"), ("AUTH__FORWARD_URL", &url)]).await;
    let response = app
        .http
        .get(app.stream_url("deploy", "1", ""))
        .header("cookie", "session=good")
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(status_and_code(response).await, (503, "access_unavailable".into()));
}

#[tokio::test]
async fn cors_answers_preflights_for_allowed_origins_and_refuses_others() {
    let app =
        spawn_app_with(&[("CORS__ALLOWED_ORIGINS", "https://ci.example.com,https://other.example.com")])
            .await;
    let url = app.url("/api/v1/logs/deploy/1");
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://ci.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://ci.example.com");
    assert_eq!(preflight.headers()["access-control-allow-credentials"], "true");

    let allowed = app.http.get(&url).header("origin", "https://ci.example.com").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://ci.example.com");
    let refused = app.http.get(&url).header("origin", "https://evil.example.com").send().await.unwrap();
    assert_eq!(status_and_code(refused).await, (403, "forbidden".into()));
}

#[tokio::test]
async fn with_cors_origins_set_the_services_own_pages_may_still_post_and_unknown_paths_stay_404() {
    let app = spawn_app_with(&[("CORS__ALLOWED_ORIGINS", "https://ci.example.com")]).await;
    let own = format!("http://{}", app.addr);
    let posted = app
        .http
        .post(app.url("/api/v1/logs/deploy/2"))
        .header("origin", &own)
        .header("content-type", "text/plain")
        .body("from the service's own page\n")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201, "a browser sends Origin on a same-origin POST");
    let missing = app.http.get(app.url("/nope")).header("origin", &own).send().await.unwrap();
    assert_eq!(status_and_code(missing).await, (404, "not_found".into()));
    let evil =
        app.http.get(app.url("/nope")).header("origin", "https://evil.example.com").send().await.unwrap();
    assert_eq!(status_and_code(evil).await, (403, "forbidden".into()));
}

#[test]
fn a_public_address_without_an_explicit_auth_mode_refuses_to_start() {
    let env = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let err = Settings::load_from(env(&[("SSE_LOGS__HTTP__BIND", "0.0.0.0:8080")])).unwrap_err();
    assert!(err.to_string().contains("auth.mode"), "{err}");
    Settings::load_from(env(&[("SSE_LOGS__HTTP__BIND", "0.0.0.0:8080"), ("SSE_LOGS__AUTH__MODE", "none")]))
        .expect("an explicit none is allowed");
    let err = Settings::load_from(env(&[("SSE_LOGS__AUTH__MODE", "token")])).unwrap_err();
    assert!(err.to_string().contains("auth.secret"), "{err}");
    let err = Settings::load_from(env(&[("SSE_LOGS__CORS__ALLOWED_ORIGINS", "*")])).unwrap_err();
    assert!(err.to_string().contains("cors.allowed_origins"), "{err}");
}

/// Runs `openssl` with `args`, failing the test if it fails.
fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A fresh key pair for `algorithm` in `dir`: (PKCS#8 private key PEM, public key file).
fn key_pair(dir: &Path, algorithm: Algorithm, name: &str) -> (Vec<u8>, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    match algorithm {
        Algorithm::RS256 => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &path(&private),
        ]),
        Algorithm::ES256 => {
            let raw = dir.join(format!("{name}.ec"));
            openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &path(&raw)]);
            openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &path(&raw), "-out", &path(&private)]);
        }
        other => panic!("no key pair for {other:?}"),
    }
    openssl(&["pkey", "-in", &path(&private), "-pubout", "-out", &path(&public)]);
    (std::fs::read(&private).unwrap(), public)
}

fn signed(algorithm: Algorithm, private_pem: &[u8], logs: &[&str]) -> String {
    let claims = Claims {
        exp: now() + 600,
        nbf: None,
        logs: logs.iter().map(|s| s.to_string()).collect(),
        write: vec![],
    };
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(private_pem).unwrap(),
        _ => EncodingKey::from_ec_pem(private_pem).unwrap(),
    };
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_the_public_key_file_and_no_other_key_passes() {
    let dir = std::env::temp_dir().join(format!("sse-logs-keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    for (algorithm, name) in [(Algorithm::RS256, "RS256"), (Algorithm::ES256, "ES256")] {
        let (private, public) = key_pair(&dir, algorithm, &format!("{name}-a"));
        let (other_private, _) = key_pair(&dir, algorithm, &format!("{name}-b"));
        let public_file = public.to_str().unwrap().to_owned();
        let app = spawn_app_with(&[
            ("AUTH__MODE", "token"),
            ("AUTH__ALGORITHM", name),
            ("AUTH__PUBLIC_KEY_FILE", &public_file),
        ])
        .await;
        app.write("deploy", 1_i64, &["signed line", "[DONE]"]).await;
        let url = app.url("/api/v1/logs/deploy/1");

        let good = signed(algorithm, &private, &["deploy:1"]);
        let page = app.http.get(&url).bearer_auth(&good).send().await.unwrap();
        assert_eq!(page.status(), 200, "{name}: a token signed with the configured key pair");
        let page: Value = page.json().await.unwrap();
        assert_eq!(page["lines"], serde_json::json!(["signed line"]), "{name}");
        let mut stream =
            app.get_stream_with(app.http.get(app.stream_url("deploy", "1", "")).bearer_auth(&good)).await;
        assert_eq!(stream.next_event().await.data, "signed line", "{name}: streams too");

        let other_key = signed(algorithm, &other_private, &["deploy:1"]);
        let response = app.http.get(&url).bearer_auth(&other_key).send().await.unwrap();
        assert_eq!(status_and_code(response).await, (401, "unauthorized".into()), "{name}: another key pair");
        // The public key used as an HMAC secret (algorithm confusion) is no way in either.
        let confused = token(&["*"], &[], now() + 600, None, &std::fs::read_to_string(&public).unwrap());
        let response = app.http.get(&url).bearer_auth(&confused).send().await.unwrap();
        assert_eq!(
            status_and_code(response).await,
            (401, "unauthorized".into()),
            "{name}: HS256 with the public key"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_keeps_its_open_stream_flowing_but_its_reconnect_is_refused() {
    // The service accepts tokens up to 5 s past `exp` (clock leeway).
    const LEEWAY: u64 = 5;
    let app = token_app().await;
    let exp = now() + 1;
    let short = token(&["deploy:1"], &[], exp, None, SECRET);
    app.write("deploy", 1_i64, &["line 1"]).await;
    let mut client =
        app.get_stream_with(app.http.get(app.stream_url("deploy", "1", "")).bearer_auth(&short)).await;
    assert_eq!(client.next_event().await.data, "line 1");

    // Waiting for the clock is the event here: until the token is past its expiry and the leeway.
    let deadline = Instant::now() + PATIENCE;
    while now() <= exp + LEEWAY {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snapshot = app.http.get(app.url("/api/v1/logs/deploy/1")).bearer_auth(&short).send().await.unwrap();
    assert_eq!(status_and_code(snapshot).await, (401, "unauthorized".into()), "the token has expired");

    app.write("deploy", 1_i64, &["line 2", "line 3"]).await;
    assert_eq!(client.next_event().await.data, "line 2", "the open stream still flows");
    assert_eq!(client.next_event().await.data, "line 3");

    let reconnect = app
        .http
        .get(app.stream_url("deploy", "1", ""))
        .bearer_auth(&short)
        .header("Last-Event-ID", client.last_event_id())
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_code(reconnect).await, (401, "unauthorized".into()), "the reconnect is refused");
    // A renewed token resumes where the stream was.
    let renewed = reader(&["deploy:1"]);
    app.write("deploy", 1_i64, &["[DONE]"]).await;
    let mut resumed = app
        .get_stream_with(
            app.http
                .get(app.stream_url("deploy", "1", ""))
                .bearer_auth(&renewed)
                .header("Last-Event-ID", client.last_event_id()),
        )
        .await;
    let rest: Vec<String> = resumed.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(rest, ["[DONE]"]);
}

/// What the auth service was asked: its query and the credentials it received.
#[derive(Debug, Clone, PartialEq)]
struct AuthCall {
    query: HashMap<String, String>,
    cookie: Option<String>,
    authorization: Option<String>,
}

/// An auth service that allows everything and records every call.
async fn spawn_recording_auth_service() -> (String, Arc<Mutex<Vec<AuthCall>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let route = warp::path!("auth")
        .and(warp::header::optional::<String>("cookie"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<HashMap<String, String>>())
        .map(move |cookie, authorization, query| {
            recorded.lock().unwrap().push(AuthCall { query, cookie, authorization });
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, calls)
}

fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn forward_auth_receives_the_clients_credentials_and_the_log_and_action_asked_for() {
    let (url, calls) = spawn_recording_auth_service().await;
    let app = spawn_app_with(&[("AUTH__MODE", "forward"), ("AUTH__FORWARD_URL", &url)]).await;
    let read = app
        .http
        .get(app.url("/api/v1/logs/deploy/1"))
        .header("cookie", "session=abc")
        .header("authorization", "Bearer reader-token")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let write = app
        .http
        .post(app.url("/api/v1/logs/build/7"))
        .header("authorization", "Bearer writer-token")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 201);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            AuthCall {
                query: query(&[("type", "deploy"), ("id", "1"), ("action", "read")]),
                cookie: Some("session=abc".into()),
                authorization: Some("Bearer reader-token".into()),
            },
            AuthCall {
                query: query(&[("type", "build"), ("id", "7"), ("action", "write")]),
                cookie: None,
                authorization: Some("Bearer writer-token".into()),
            },
        ]
    );
}

#[tokio::test]
async fn forward_auth_answers_are_cached_per_log_and_credentials_and_expire() {
    let (url, calls) = spawn_recording_auth_service().await;
    let app = spawn_app_with(&[
        ("AUTH__MODE", "forward"),
        ("AUTH__FORWARD_URL", &url),
        ("AUTH__FORWARD_CACHE_SECS", "1"),
    ])
    .await;
    let get = |id: &str, cookie: &str| {
        app.http.get(app.url(&format!("/api/v1/logs/deploy/{id}"))).header("cookie", cookie.to_owned()).send()
    };
    let count = || calls.lock().unwrap().len();

    let first_asked = Instant::now();
    assert_eq!(get("1", "session=a").await.unwrap().status(), 200);
    assert_eq!(get("1", "session=a").await.unwrap().status(), 200);
    assert_eq!(count(), 1, "the same log and credentials within the second: one call");
    assert_eq!(get("2", "session=a").await.unwrap().status(), 200);
    assert_eq!(count(), 2, "another log: another call");
    assert_eq!(get("1", "session=b").await.unwrap().status(), 200);
    assert_eq!(count(), 3, "other credentials: another call");
    assert!(first_asked.elapsed() < Duration::from_secs(1), "the cache was asked within its second");

    // Waiting for the clock is the event: the cached answer is older than the cache period.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(first_asked.elapsed())).await;
    assert_eq!(get("1", "session=a").await.unwrap().status(), 200);
    assert_eq!(count(), 4, "after expiry: asked again");
}

#[tokio::test]
async fn by_default_another_origin_gets_no_cors_headers_and_its_preflight_no_allow_origin() {
    let app = spawn_app().await;
    app.write("deploy", 1_i64, &["line"]).await;
    let evil = "https://evil.example.com";
    for url in [app.url("/api/v1/logs/deploy/1"), app.stream_url("deploy", "1", "")] {
        let response = app.http.get(&url).header("origin", evil).send().await.unwrap();
        for header in ["access-control-allow-origin", "access-control-allow-credentials"] {
            assert!(!response.headers().contains_key(header), "{url}: {header} sent to {evil}");
        }
    }
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/logs/deploy/1"))
        .header("origin", evil)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert!(!preflight.status().is_success(), "preflight answered {}", preflight.status());
    assert!(!preflight.headers().contains_key("access-control-allow-origin"), "{:?}", preflight.headers());
    // The same origin (no Origin header) is served.
    let same = app.http.get(app.url("/api/v1/logs/deploy/1")).send().await.unwrap();
    assert_eq!(same.status(), 200);
}
