//! `sse-logs push` through faults: the service killed (SIGKILL) just after a batch was stored,
//! stopped (SIGTERM), and MongoDB restarted, while two pushes write two logs. Every line must be
//! stored exactly once, in order, with one `[DONE]`.

use std::process::Stdio;

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::change_stream::event::ChangeStreamEvent;
use mongodb::change_stream::ChangeStream;
use mongodb::{Client, Collection};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

use crate::helpers::{assert_same_lines, sse_logs, ServeProcess, PATIENCE};
use crate::mongo_server::MongoServer;

const LINES: usize = 30_000;
const PHASES: usize = 5;

fn input(log: usize) -> Vec<String> {
    (1..=LINES).map(|n| format!("log {log} line {n} {}", "·".repeat(n % 50))).collect()
}

/// Writes lines to a push's input; false when the push has already exited.
async fn feed(stdin: &mut ChildStdin, lines: &[String]) -> bool {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    stdin.write_all(&bytes).await.is_ok() && stdin.flush().await.is_ok()
}

/// Waits for the next batch a push stores: the moment to break something.
async fn next_insert(inserts: &mut ChangeStream<ChangeStreamEvent<Document>>) {
    tokio::time::timeout(PATIENCE, inserts.try_next()).await.expect("a batch is stored").unwrap();
}

async fn stored(logs: &Collection<Document>, id: usize) -> Vec<String> {
    let cursor = logs.find(doc! { "type": "faults", "id": id as i64 }).sort(doc! { "_id": 1 }).await.unwrap();
    let documents: Vec<Document> = cursor.try_collect().await.unwrap();
    documents.iter().map(|d| d.get_str("log").unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pushes_store_every_line_once_through_a_killed_stopped_service_and_a_mongodb_restart() {
    let mut mongodb = MongoServer::new();
    mongodb.start();
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let logs = Client::with_uri_str(mongodb.uri()).await.unwrap().database(&database).collection("sse_logs");
    let mut service = ServeProcess::new(mongodb.uri(), database.clone());
    service.start().await;
    let server = format!("http://127.0.0.1:{}", service.port);

    let inputs = [input(1), input(2)];
    let mut pushes = Vec::new();
    for log in [1, 2] {
        let mut push = sse_logs(&["push", "--type", "faults", "--id", &log.to_string(), "--server", &server])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = push.stdin.take().unwrap();
        pushes.push((push, stdin));
    }

    let phase = LINES / PHASES;
    for k in 0..PHASES {
        // Opened before the lines go in, so the first batch they make is seen.
        let mut inserts = logs.watch().await.expect("a change stream for the test");
        for (log, (_, stdin)) in pushes.iter_mut().enumerate() {
            if !feed(stdin, &inputs[log][k * phase..(k + 1) * phase]).await {
                break;
            }
        }
        match k {
            // SIGKILL twice, each just after a batch was stored: its answer may never arrive.
            0 | 1 => {
                next_insert(&mut inserts).await;
                service.signal("-KILL").await;
                service.start().await;
            }
            2 => {
                next_insert(&mut inserts).await;
                service.signal("-TERM").await;
                service.start().await;
            }
            3 => {
                next_insert(&mut inserts).await;
                mongodb.stop();
                mongodb.start();
            }
            _ => {}
        }
    }
    for (push, stdin) in pushes {
        drop(stdin);
        let output =
            tokio::time::timeout(PATIENCE * 4, push.wait_with_output()).await.expect("push ends").unwrap();
        assert!(output.status.success(), "push failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    for (log, expected) in inputs.iter().enumerate() {
        let got = stored(&logs, log + 1).await;
        let mut want = expected.clone();
        want.push("[DONE]".to_owned());
        assert_same_lines(&format!("log {}", log + 1), &got, &want);
    }
    service.signal("-TERM").await;
}
