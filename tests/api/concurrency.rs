//! Exactly-once delivery while a writer writes and clients come and go, and fan-out at scale.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use rand::Rng;

use crate::helpers::{assert_gets_every_line_once, spawn_app, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_joining_at_random_moments_get_every_line_exactly_once() {
    const TOTAL: usize = 3000;
    const CLIENTS: usize = 40;
    let app = Arc::new(spawn_app().await);
    let written = Arc::new(AtomicUsize::new(0));

    let writer = {
        let (app, written) = (app.clone(), written.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while n < TOTAL {
                let batch = rand::thread_rng().gen_range(1..=50).min(TOTAL - n);
                let lines: Vec<String> = (n + 1..=n + batch).map(|k| format!("line {k}")).collect();
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                app.write("load", 1_i64, &refs).await;
                n += batch;
                written.store(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            app.write("load", 1_i64, &["[DONE]"]).await;
        })
    };

    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        // Join at a random moment, from a random point of what exists so far.
        let wait = rand::thread_rng().gen_range(0..40);
        for _ in 0..wait {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..5))).await;
        let from = rand::thread_rng().gen_range(0..=written.load(Ordering::SeqCst));
        let client = app.get_stream(&app.stream_url("load", "1", &format!("from={from}"))).await;
        readers.push(tokio::spawn(assert_gets_every_line_once(client, from, TOTAL)));
    }
    writer.await.unwrap();
    for reader in readers {
        tokio::time::timeout(PATIENCE * 3, reader).await.expect("reader finishes").unwrap();
    }
    assert_eq!(app.logs.count_documents(doc! {}).await.unwrap() as usize, TOTAL + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_on_one_log_all_get_every_line_within_the_connection_pool() {
    const STREAMS: usize = 1000;
    const LINES: usize = 200;
    let app = Arc::new(spawn_app().await);
    app.write("fan", 1_i64, &["line 1"]).await;

    let mut readers = Vec::new();
    for _ in 0..STREAMS {
        let client = app.get_stream(&app.stream_url("fan", "1", "")).await;
        readers.push(tokio::spawn(assert_gets_every_line_once(client, 0, LINES)));
    }
    let lines: Vec<String> = (2..=LINES).map(|k| format!("line {k}")).collect();
    for chunk in lines.chunks(20) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("fan", 1_i64, &refs).await;
    }
    app.write("fan", 1_i64, &["[DONE]"]).await;
    for reader in readers {
        tokio::time::timeout(PATIENCE * 3, reader).await.expect("reader finishes").unwrap();
    }
    let metrics = &app.state.metrics;
    let connections = metrics.mongodb_connections.get();
    let pool = metrics.mongodb_pool_size.get();
    assert!(connections <= pool, "{connections} MongoDB connections for {STREAMS} streams; pool is {pool}");
    assert!(connections >= 1, "the driver's connection count is observed");
}
