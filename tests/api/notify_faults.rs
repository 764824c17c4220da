//! Webhooks that fail: a receiver answering 500, one not listening yet, one never answering, and
//! a claimer that died holding its lease. The schedule runs at 20 ms a second (`fast()`).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::helpers::{spawn_app, spawn_app_adjusted, take_data, ServeProcess};
use crate::notify::{claims, hook, receiver, receiver_on, series, until, with_hooks, write_ended};

#[tokio::test]
async fn a_receiver_answering_500_twice_then_200_gets_three_attempts_and_one_delivery_recorded() {
    let mut receiver = receiver(|n| Some(if n < 2 { 500 } else { 200 })).await;
    let app = spawn_app_adjusted(&with_hooks(vec![hook(&receiver.url, &["failed"])])).await;
    write_ended(&app, "flaky", &["x"], "failed", 1).await;
    let attempts = [receiver.next().await, receiver.next().await, receiver.next().await];
    assert!(attempts.iter().all(|a| a.body == attempts[0].body), "every attempt sends the same bytes");
    let claims = claims(&app);
    until("the delivery is recorded", || async {
        claims.count_documents(doc! { "state": "delivered" }).await.unwrap() == 1
    })
    .await;
    let claim = claims.find_one(doc! {}).await.unwrap().unwrap();
    assert_eq!(claim.get_i64("attempts").unwrap(), 3, "{claim}");
    assert_eq!(claim.get_i32("last_status").unwrap(), 200, "{claim}");
    let result = |r: &str| series(&app, &format!("sse_logs_notify_deliveries_total{{result=\"{r}\"}}"));
    assert_eq!((result("retried"), result("delivered"), result("gave_up")), (2.0, 1.0, 0.0));
    assert!(receiver.drain().is_empty(), "nothing after the 200");
}

#[tokio::test]
async fn a_receiver_down_for_the_first_minute_of_backoff_gets_the_delivery_when_it_comes_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/hook?token=t0k");
    let app = spawn_app_adjusted(&with_hooks(vec![hook(&url, &["failed"])])).await;
    write_ended(&app, "down", &["x"], "failed", 1).await;
    let claims = claims(&app);
    // Attempts at 0, 4, 12, 28 and 60 s: five in the first minute, each refused a connection.
    until("five attempts found nobody listening", || async {
        let claim = claims.find_one(doc! {}).await.unwrap();
        claim.is_some_and(|c| {
            c.get_i64("attempts").unwrap_or(0) >= 5 && c.get("last_status") == Some(&Bson::Null)
        })
    })
    .await;
    let mut receiver = receiver_on(TcpListener::bind(addr).await.unwrap(), |_| Some(200));
    assert_eq!(receiver.next().await.json()["id"], "down");
    until("the delivery is recorded", || async {
        claims.count_documents(doc! { "state": "delivered", "attempts": { "$gte": 6 } }).await.unwrap() == 1
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_delays_neither_other_webhooks_nor_lines() {
    let silent = receiver(|_| None).await;
    let mut healthy = receiver(|_| Some(200)).await;
    let hooks = vec![hook(&silent.url, &["ended"]), hook(&healthy.url, &["ended"])];
    let app = spawn_app_adjusted(&with_hooks(hooks)).await;
    let mut viewer = app.get_stream(&app.stream_url("ci", "still-running", "")).await;
    let started = std::time::Instant::now();
    for n in 0..10 {
        write_ended(&app, &format!("e{n}"), &["x"], "succeeded", 0).await;
    }
    for _ in 0..10 {
        healthy.next().await;
    }
    app.write("ci", "still-running", &["one", "two"]).await;
    assert_eq!(take_data(&mut viewer, 2).await, ["one", "two"]);
    let index = app.http.get(app.url("/api/v1/logs")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    // All of it before the first unanswered attempt could even time out (10 s).
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let waiting = silent.waiting.load(Ordering::SeqCst);
    assert!((1..=4).contains(&waiting), "at most 4 attempts hang on one webhook: {waiting}");
}

#[tokio::test]
async fn a_delivery_whose_claimer_died_is_taken_up_after_its_lease_and_sent_once() {
    let mut receiver = receiver(|_| Some(200)).await;
    let app = spawn_app_adjusted(&with_hooks(vec![hook(&receiver.url, &["failed"])])).await;
    // Another process claimed this end, then died before its attempt: its lease runs 1.5 s more.
    let webhook: String =
        Sha256::digest(receiver.url.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    let stored = br#"{"event":"failed","type":"ci","id":"orphan"}"#.to_vec();
    let now = SystemTime::now();
    let lease_until = now + Duration::from_millis(1500);
    claims(&app)
        .insert_one(doc! {
            "webhook": webhook, "type": "ci", "id": "orphan", "event": "failed", "state": "pending",
            "body": Binary { subtype: BinarySubtype::Generic, bytes: stored.clone() },
            "attempts": 0, "created_at": DateTime::from_system_time(now),
            "next_at": DateTime::from_system_time(now), "lease_until": DateTime::from_system_time(lease_until),
            "owner": "a process that died", "last_status": Bson::Null,
        })
        .await
        .unwrap();
    write_ended(&app, "orphan", &["x"], "failed", 1).await;
    until("the live process saw the end already claimed", || async {
        series(&app, "sse_logs_notify_claims_total{result=\"taken\"}") == 1.0
    })
    .await;
    let request = receiver.next().await;
    assert!(SystemTime::now() >= lease_until, "not taken while the lease ran");
    assert_eq!(request.body, stored, "the claimer's bytes, as stored");
    let claims = claims(&app);
    until("the delivery is recorded", || async {
        claims.count_documents(doc! { "state": "delivered" }).await.unwrap() == 1
    })
    .await;
    let claim = claims.find_one(doc! {}).await.unwrap().unwrap();
    assert_ne!(claim.get_str("owner").unwrap(), "a process that died");
    assert_eq!(claims.count_documents(doc! {}).await.unwrap(), 1);
    assert!(receiver.drain().is_empty(), "sent once");
}

#[tokio::test]
async fn a_service_sigkilled_mid_delivery_is_replaced_by_a_replica_that_delivers_the_same_bytes_once() {
    // The first attempt is never answered: the service is killed while it waits for it.
    let mut receiver = receiver(|n| if n == 0 { None } else { Some(200) }).await;
    let app = spawn_app().await;
    let config = std::env::temp_dir().join(format!("sse-logs-notify-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&config, format!("[[notify.webhooks]]\nurl = \"{}\"\non = [\"failed\"]\n", receiver.url))
        .unwrap();
    let mut serve = ServeProcess::new(crate::helpers::mongodb_uri(), app.database.clone());
    serve.env.push(("SSE_LOGS_CONFIG".into(), config.to_str().unwrap().into()));
    serve.start().await;
    serve.wait_ready().await;
    write_ended(&app, "killed", &["x"], "failed", 1).await;
    let first = receiver.next().await;
    serve.signal("-KILL").await;
    std::fs::remove_file(&config).unwrap();
    let claims = claims(&app);
    let claim = claims.find_one(doc! {}).await.unwrap().expect("claimed before the attempt");
    let lease_until = claim.get_datetime("lease_until").unwrap().to_system_time();
    let replica = app.spawn_replica_adjusted(&with_hooks(vec![hook(&receiver.url, &["failed"])])).await;
    let second = receiver.next().await;
    assert!(SystemTime::now() >= lease_until, "taken up only once the dead process's lease ran out");
    assert_eq!(second.body, first.body, "the bytes stored with the claim");
    until("the delivery is recorded", || async {
        claims.count_documents(doc! { "state": "delivered" }).await.unwrap() == 1
    })
    .await;
    assert_eq!(claims.count_documents(doc! {}).await.unwrap(), 1);
    assert_eq!(
        series(&replica, "sse_logs_notify_claims_total{result=\"won\"}"),
        0.0,
        "it did not claim again"
    );
    assert!(receiver.drain().is_empty(), "delivered once");
}
