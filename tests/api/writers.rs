//! Appends next to other writers: another process's driver writing the same log in turn, or
//! another log as fast as it can, and two `serve` processes appending to one log at once.
//! Every append and every other write succeeds, and every line is stored exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bson::oid::ObjectId;
use bson::{doc, Document};
use serde_json::Value;

use crate::helpers::{
    drop_database, log_collection, mongodb_uri, spawn_app, sse_logs, stored_documents, ServeProcess, PATIENCE,
};

/// ObjectIds as a driver in another process makes them: that process's own random bytes (here
/// the largest there are, so a fresh id of the service never sorts after its lines within the
/// same second), then a counter going up by one for every id, whatever the log.
struct OtherProcess {
    counter: u32,
}

impl OtherProcess {
    fn new() -> Self {
        Self { counter: rand::random::<u32>() & 0x00ff_ffff }
    }

    fn next_id(&mut self) -> ObjectId {
        self.counter = (self.counter + 1) & 0x00ff_ffff;
        let seconds = u32::from_be_bytes(ObjectId::new().bytes()[..4].try_into().unwrap());
        let mut bytes = [0xff_u8; 12];
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        bytes[9..].copy_from_slice(&self.counter.to_be_bytes()[1..]);
        ObjectId::from_bytes(bytes)
    }
}

async fn stored_texts(logs: &mongodb::Collection<Document>, log_type: &str) -> Vec<(String, Option<i64>)> {
    stored_documents(logs, log_type)
        .await
        .iter()
        .map(|d| (d.get_str("log").unwrap().to_owned(), d.get_i64("n").ok()))
        .collect()
}

fn position_of(texts: &[(String, Option<i64>)], text: &str) -> usize {
    let found: Vec<usize> =
        texts.iter().enumerate().filter(|(_, (t, _))| t == text).map(|(i, _)| i).collect();
    assert_eq!(found.len(), 1, "{text:?} is stored once: {texts:?}");
    found[0]
}

/// Appends `body`; the log's length after it, or what the service answered instead of 201.
async fn try_append(http: &reqwest::Client, url: &str, body: String) -> Result<u64, String> {
    let response = http.post(url).header("content-type", "text/plain").body(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    if status != 201 {
        return Err(format!("{status} {text}"));
    }
    Ok(serde_json::from_str::<Value>(&text).unwrap()["next"].as_u64().unwrap())
}

async fn append(http: &reqwest::Client, url: &str, body: String) -> u64 {
    try_append(http, url, body).await.unwrap_or_else(|answer| panic!("append answered {answer}"))
}

#[tokio::test]
async fn appends_and_another_processs_driver_taking_turns_on_one_log_all_succeed_once_each() {
    let app = spawn_app().await;
    let mut other = OtherProcess::new();
    let url = app.url("/api/v1/logs/turns/1");
    for round in 0..40 {
        let line =
            doc! { "_id": other.next_id(), "type": "turns", "id": 1_i64, "log": format!("driver {round}") };
        // The service must never have taken the id the other process makes next.
        app.logs.insert_one(line).await.expect("the other writer's insert succeeds");
        let next = append(&app.http, &url, format!("api {round}\n")).await;
        let stored = app.logs.count_documents(doc! { "type": "turns" }).await.unwrap();
        assert_eq!(next, stored, "an append answers the log's length");
    }
    let texts = stored_texts(&app.logs, "turns").await;
    assert_eq!(texts.len(), 80);
    for round in 0..40 {
        let api = position_of(&texts, &format!("api {round}"));
        // An appended line comes after every line written before it. (A driver line written
        // after it in the same second may sort before it: its id is the other process's.)
        assert!(api > position_of(&texts, &format!("driver {round}")), "{texts:?}");
        if round > 0 {
            assert!(api > position_of(&texts, &format!("api {}", round - 1)), "{texts:?}");
            let driver = position_of(&texts, &format!("driver {round}"));
            assert!(driver > position_of(&texts, &format!("driver {}", round - 1)), "{texts:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_succeed_while_another_process_writes_another_log_as_fast_as_it_can() {
    let app = spawn_app().await;
    let other = Arc::new(Mutex::new(OtherProcess::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn({
        let (logs, other, stop) = (app.logs.clone(), other.clone(), stop.clone());
        async move {
            let mut written = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let id = other.lock().unwrap().next_id();
                let line =
                    doc! { "_id": id, "type": "flood", "id": 2_i64, "log": format!("flood {written}") };
                logs.insert_one(line).await.expect("the flooding writer's insert succeeds");
                written += 1;
            }
            written
        }
    });
    let url = app.url("/api/v1/logs/busy/1");
    for round in 0..30 {
        // The other process also writes the appended log, so its last line has that process's id.
        let id = other.lock().unwrap().next_id();
        let line = doc! { "_id": id, "type": "busy", "id": 1_i64, "log": format!("driver {round}") };
        app.logs.insert_one(line).await.expect("the other writer's insert succeeds");
        append(&app.http, &url, format!("api {round}\n")).await;
    }
    stop.store(true, Ordering::Relaxed);
    let flooded = tokio::time::timeout(PATIENCE, flood).await.expect("the flood stops").unwrap();
    assert!(flooded > 0, "the other log was written meanwhile");
    let texts = stored_texts(&app.logs, "busy").await;
    assert_eq!(texts.len(), 60);
    for round in 0..30 {
        position_of(&texts, &format!("api {round}"));
        position_of(&texts, &format!("driver {round}"));
    }
    assert_eq!(app.logs.count_documents(doc! { "type": "flood" }).await.unwrap(), flooded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_appending_to_one_log_at_once_both_succeed_and_store_each_line_once() {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let migrated = sse_logs(&["migrate"])
        .env("SSE_LOGS__MONGODB__URI", mongodb_uri())
        .env("SSE_LOGS__MONGODB__DATABASE", &database)
        .output()
        .await
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let mut replicas = [
        ServeProcess::new(mongodb_uri(), database.clone()),
        ServeProcess::new(mongodb_uri(), database.clone()),
    ];
    for replica in &mut replicas {
        replica.start().await;
        replica.wait_ready().await;
    }
    let http = reqwest::Client::new();
    let write = |replica: usize| {
        let (http, url) = (http.clone(), replicas[replica].url("/api/v1/logs/both/7"));
        async move {
            let mut answered = Vec::new();
            for batch in 0..40 {
                let body: String = (0..3).map(|line| format!("r{replica} b{batch} l{line}\n")).collect();
                answered.push(try_append(&http, &url, body).await?);
            }
            Ok::<_, String>(answered)
        }
    };
    let (first, second) = tokio::time::timeout(PATIENCE, async { tokio::join!(write(0), write(1)) })
        .await
        .expect("every append is answered");
    let (first, second) = match (first, second) {
        (Ok(first), Ok(second)) => (first, second),
        failed => panic!("{failed:?}\n{}\n{}", replicas[0].log(), replicas[1].log()),
    };
    let logs = log_collection(&database).await;
    let texts = stored_texts(&logs, "both").await;
    assert_eq!(texts.len(), 240, "{texts:?}");
    // Positions stored with the lines are the lines' places in `_id` order: each exactly once.
    let positions: Vec<Option<i64>> = texts.iter().map(|(_, n)| *n).collect();
    assert_eq!(positions, (1..=240).map(Some).collect::<Vec<_>>());
    for replica in 0..2 {
        let mine: Vec<usize> = (0..40)
            .flat_map(|batch| (0..3).map(move |line| format!("r{replica} b{batch} l{line}")))
            .map(|text| position_of(&texts, &text))
            .collect();
        assert!(mine.windows(2).all(|pair| pair[0] < pair[1]), "each replica's lines keep their order");
    }
    assert_eq!(first.iter().chain(&second).max(), Some(&240));
    for replica in &mut replicas {
        assert!(replica.signal("-TERM").await.success());
    }
    drop_database(&database).await;
}
