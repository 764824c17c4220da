//! Webhooks: a real HTTP receiver on a socket of the test's own is told, once per (webhook, log,
//! event), how a log ended, that it matched or went idle, with the contract's body and
//! signature, by one replica or two, and after a restart for what happened while it was down.
//! Retries, dead receivers and dead claimers are in `notify_faults.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Document};
use hmac::{Hmac, KeyInit, Mac};
use mongodb::Collection;
use serde_json::Value;
use sha2::Sha256;
use sse_logs::config::{NotifyTiming, WebhookSettings};
use sse_logs::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::helpers::{spawn_app_adjusted, TestApp, PATIENCE};

/// One request a receiver read.
#[derive(Debug)]
pub struct Request {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A webhook receiver: answers request `n` (from 0) with `answer(n)`, or never for `None`.
pub struct Receiver {
    pub url: String,
    requests: mpsc::UnboundedReceiver<Request>,
    /// Requests read and not answered yet.
    pub waiting: Arc<AtomicUsize>,
}

pub async fn receiver(answer: impl Fn(usize) -> Option<u16> + Send + Sync + 'static) -> Receiver {
    receiver_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), answer)
}

pub fn receiver_on(
    listener: TcpListener,
    answer: impl Fn(usize) -> Option<u16> + Send + Sync + 'static,
) -> Receiver {
    let url = format!("http://{}/hook?token=t0k", listener.local_addr().unwrap());
    let (tx, requests) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    let (answer, count, pending) = (Arc::new(answer), Arc::new(AtomicUsize::new(0)), waiting.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (tx, answer, count, pending) = (tx.clone(), answer.clone(), count.clone(), pending.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else { return };
                let status = answer(count.fetch_add(1, Ordering::SeqCst));
                pending.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(request);
                let Some(status) = status else {
                    // Never answers; the socket stays open until the client gives up.
                    let _ = socket.read(&mut [0u8; 1]).await;
                    return;
                };
                pending.fetch_sub(1, Ordering::SeqCst);
                let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
            });
        }
    });
    Receiver { url, requests, waiting }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let headers: HashMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Some(Request { headers, body: bytes[end + 4..end + 4 + length].to_vec() });
            }
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
}

impl Receiver {
    pub async fn next(&mut self) -> Request {
        tokio::time::timeout(PATIENCE, self.requests.recv())
            .await
            .expect("a webhook request in time")
            .unwrap()
    }

    /// The requests read so far, without waiting.
    pub fn drain(&mut self) -> Vec<Request> {
        std::iter::from_fn(|| self.requests.try_recv().ok()).collect()
    }
}

pub fn hook(url: &str, on: &[&str]) -> WebhookSettings {
    WebhookSettings {
        url: url.to_owned(),
        on: on.iter().map(|s| s.to_string()).collect(),
        types: None,
        pattern: None,
        secret: None,
    }
}

/// The schedule at 20 ms a second, pending deliveries looked for every 50 ms; the lease stays
/// 30 s, longer than an attempt may take (10 s), as it must.
pub fn fast() -> NotifyTiming {
    NotifyTiming {
        second: Duration::from_millis(20),
        scan_every: Duration::from_millis(50),
        ..NotifyTiming::default()
    }
}

pub fn with_hooks(hooks: Vec<WebhookSettings>) -> impl Fn(&mut Settings) {
    move |s: &mut Settings| {
        s.notify.webhooks = hooks.clone();
        s.notify.timing = fast();
        s.http.public_url = Some("https://logs.example.com".into());
    }
}

/// Writes lines straight into MongoDB, then a `[DONE]` saying how the log ended.
pub async fn write_ended(app: &TestApp, id: &str, lines: &[&str], outcome: &str, code: i32) {
    if !lines.is_empty() {
        app.write("ci", id, lines).await;
    }
    let done = doc! { "type": "ci", "id": id, "log": "[DONE]", "outcome": outcome, "exit_code": code };
    app.logs.insert_one(done).await.unwrap();
}

pub fn claims(app: &TestApp) -> Collection<Document> {
    app.logs.client().database(&app.database).collection("sse_logs_notifications")
}

/// One labelled series of the app's metrics, e.g. `sse_logs_notify_claims_total{result="won"}`.
pub fn series(app: &TestApp, name: &str) -> f64 {
    let text = app.streams.metrics();
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Waits until `check` holds (each look is a MongoDB read or a metric, never a fixed sleep).
pub async fn until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn verifies(secret: &[u8], request: &Request) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(&request.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    request.headers.get("x-sse-logs-signature") == Some(&format!("sha256={expected}"))
}

#[tokio::test]
async fn a_failed_log_sends_failed_and_ended_once_each_with_the_contract_body_signed() {
    let mut receiver = receiver(|_| Some(204)).await;
    let mut rule = hook(&receiver.url, &["failed", "ended", "succeeded"]);
    rule.secret = Some("s3cret".into());
    let app = spawn_app_adjusted(&with_hooks(vec![rule])).await;
    write_ended(&app, "a b/1", &["building", "tests failed"], "failed", 2).await;
    let mut bodies = [receiver.next().await, receiver.next().await];
    bodies.sort_by_key(|r| r.json()["event"].as_str().unwrap().to_owned());
    let (ended, failed) = (bodies[0].json(), bodies[1].json());
    assert_eq!((ended["event"].as_str(), failed["event"].as_str()), (Some("ended"), Some("failed")));
    assert_eq!(failed["type"], "ci");
    assert_eq!(failed["id"], "a b/1");
    assert_eq!((failed["outcome"].as_str(), failed["exit_code"].as_i64()), (Some("failed"), Some(2)));
    assert_eq!(failed["lines"], 3, "two lines and the [DONE]");
    assert_eq!(failed["url"], "https://logs.example.com/logs/ci/a%20b%2F1");
    assert!(failed["line"].is_null());
    let text = failed["text"].as_str().unwrap();
    assert!(text.contains("ci/a b/1") && text.contains("failed (exit code 2)"), "{text}");
    assert!(bodies.iter().all(|r| verifies(b"s3cret", r)), "the signature verifies with the secret");
    assert!(!bodies.iter().any(|r| verifies(b"another", r)), "and not with another");
    let claims = claims(&app);
    until("both deliveries are recorded", || async {
        claims.count_documents(doc! { "state": "delivered" }).await.unwrap() == 2
    })
    .await;
    assert_eq!(claims.count_documents(doc! {}).await.unwrap(), 2, "nothing for succeeded");
    assert!(receiver.drain().is_empty(), "one request per event");
}

#[tokio::test]
async fn with_two_replicas_each_event_is_claimed_by_one_and_delivered_once() {
    let mut receiver = receiver(|_| Some(200)).await;
    let settings = with_hooks(vec![hook(&receiver.url, &["failed", "ended"])]);
    let app = spawn_app_adjusted(&settings).await;
    let replica = app.spawn_replica_adjusted(&settings).await;
    for n in 0..5 {
        write_ended(&app, &format!("r{n}"), &["x"], "failed", 1).await;
    }
    let tried = |app: &TestApp| {
        series(app, "sse_logs_notify_claims_total{result=\"won\"}")
            + series(app, "sse_logs_notify_claims_total{result=\"taken\"}")
    };
    // A replica that started after a line may see it twice (its change stream and its catch-up
    // read): it tries that claim twice, and the second try is refused like any other.
    until("each replica tried to claim each of the 10 events", || async {
        tried(&app) >= 10.0 && tried(&replica) >= 10.0
    })
    .await;
    let won = |app: &TestApp| series(app, "sse_logs_notify_claims_total{result=\"won\"}");
    assert_eq!(won(&app) + won(&replica), 10.0, "one claim won per event");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10 {
        let body = receiver.next().await.json();
        assert!(seen.insert((body["id"].to_string(), body["event"].to_string())), "twice: {body}");
    }
    let claims = claims(&app);
    until("every delivery is recorded", || async {
        claims.count_documents(doc! { "state": "delivered", "attempts": 1 }).await.unwrap() == 10
    })
    .await;
    assert!(receiver.drain().is_empty(), "no second delivery of any event");
}

#[tokio::test]
async fn match_fires_once_on_a_log_with_1000_matching_lines_and_its_body_is_redacted() {
    let mut receiver = receiver(|_| Some(200)).await;
    let mut rule = hook(&receiver.url, &["match", "ended"]);
    rule.pattern = Some("ERROR".into());
    let app = spawn_app_adjusted(&|s: &mut Settings| {
        with_hooks(vec![rule.clone()])(s);
        s.redact.patterns = vec!["ghp_[A-Za-z0-9]+".into()];
    })
    .await;
    app.write("ci", "m", &["starting"]).await;
    let lines: Vec<String> = (1..=1000).map(|n| format!("ERROR {n} token ghp_Secret{n}")).collect();
    app.write("ci", "m", &lines.iter().map(String::as_str).collect::<Vec<_>>()).await;
    write_ended(&app, "m", &[], "succeeded", 0).await;
    let mut bodies = [receiver.next().await, receiver.next().await];
    bodies.sort_by_key(|r| r.json()["event"].as_str().unwrap().to_owned());
    let matched = bodies[1].json();
    assert_eq!(matched["event"], "match");
    assert_eq!(matched["line"]["n"], 2, "the first matching line, after `starting`");
    assert_eq!(matched["line"]["text"], "ERROR 1 token ***");
    assert!(matched["url"].as_str().unwrap().ends_with("/logs/ci/m#L2"), "{matched}");
    assert!(bodies.iter().all(|r| !String::from_utf8_lossy(&r.body).contains("ghp_")), "redacted");
    let claims = claims(&app);
    until("both deliveries are recorded", || async {
        claims.count_documents(doc! { "state": "delivered" }).await.unwrap() == 2
    })
    .await;
    assert_eq!(series(&app, "sse_logs_notify_claims_total{result=\"taken\"}"), 0.0, "one claim tried");
    assert!(receiver.drain().is_empty(), "match fired once");
}

#[tokio::test]
async fn a_live_log_that_goes_silent_fires_idle_once() {
    let mut receiver = receiver(|_| Some(200)).await;
    let app = spawn_app_adjusted(&|s: &mut Settings| {
        with_hooks(vec![hook(&receiver.url, &["idle"])])(s);
        s.index.idle_after_secs = 1;
    })
    .await;
    app.write("ci", "quiet", &["waiting for a runner"]).await;
    let idle = receiver.next().await.json();
    assert_eq!((idle["event"].as_str(), idle["id"].as_str()), (Some("idle"), Some("quiet")));
    assert!(idle["outcome"].is_null() && idle["exit_code"].is_null());
    app.write("ci", "quiet", &["woke up"]).await;
    until("the second idle was tried and refused", || async {
        series(&app, "sse_logs_notify_claims_total{result=\"taken\"}") == 1.0
    })
    .await;
    assert!(receiver.drain().is_empty(), "idle fires once per log");
}

#[tokio::test]
async fn a_log_that_ended_while_the_service_was_down_is_notified_at_the_next_start() {
    let mut receiver = receiver(|_| Some(200)).await;
    let settings = with_hooks(vec![hook(&receiver.url, &["ended"])]);
    let before = crate::helpers::spawn_app().await;
    // Ended ten seconds before the first start with webhooks (by its `_id`s' time).
    let ago = |n: u8| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 10;
        let mut bytes = [n; 12];
        bytes[..4].copy_from_slice(&(secs as u32).to_be_bytes());
        bson::oid::ObjectId::from_bytes(bytes)
    };
    before.logs.insert_one(doc! { "_id": ago(1), "type": "ci", "id": "before", "log": "x" }).await.unwrap();
    let done = doc! { "_id": ago(2), "type": "ci", "id": "before", "log": "[DONE]", "outcome": "succeeded" };
    before.logs.insert_one(done).await.unwrap();
    let mut app = before.spawn_replica_adjusted(&settings).await;
    let checkpoints =
        app.logs.client().database(&app.database).collection::<Document>("sse_logs_notify_checkpoints");
    until("the first start wrote its checkpoint", || async {
        checkpoints.count_documents(doc! {}).await.unwrap() == 1
    })
    .await;
    app.stop().await;
    write_ended(&app, "while-down", &["x"], "failed", 1).await;
    let again = before.spawn_replica_adjusted(&settings).await;
    let body = receiver.next().await.json();
    assert_eq!((body["id"].as_str(), body["outcome"].as_str()), (Some("while-down"), Some("failed")));
    // Claims are made in `_id` order: had the log ended before the first start been read, its
    // claim would exist by now.
    assert_eq!(claims(&again).count_documents(doc! {}).await.unwrap(), 1, "only the one ended while down");
}
