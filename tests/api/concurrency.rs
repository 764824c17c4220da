//! Exactly-once delivery while a writer writes and clients come and go, and fan-out at scale.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use futures_util::StreamExt;
use rand::Rng;

use crate::helpers::{
    assert_gets_every_line_once, mongodb_uri, spawn_app, spawn_app_against, split_retry, PATIENCE,
};

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
                // A build's pace, so that clients keep joining while it writes.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            app.write("load", 1_i64, &["[DONE]"]).await;
        })
    };

    let mut readers = Vec::new();
    let mut joined_at = Vec::new();
    for _ in 0..CLIENTS {
        // Join at a random moment, from a random point of what exists so far.
        let wait = rand::thread_rng().gen_range(0..40);
        for _ in 0..wait {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..5))).await;
        let from = rand::thread_rng().gen_range(0..=written.load(Ordering::SeqCst));
        let client = app.get_stream(&app.stream_url("load", "1", &format!("from={from}"))).await;
        // How far the writer was when this client's stream was open.
        joined_at.push(written.load(Ordering::SeqCst));
        readers.push(tokio::spawn(assert_gets_every_line_once(client, from, TOTAL)));
    }
    writer.await.unwrap();
    let while_writing = joined_at.iter().filter(|&&w| w < TOTAL).count();
    assert!(
        while_writing >= CLIENTS / 2,
        "only {while_writing} of {CLIENTS} clients joined while the writer was writing: {joined_at:?}"
    );
    println!("{while_writing} of {CLIENTS} clients joined while the writer was writing");
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
    let connections = app.metric("sse_logs_mongodb_connections");
    let pool = app.metric("sse_logs_mongodb_pool_size");
    assert!(connections <= pool, "{connections} MongoDB connections for {STREAMS} streams; pool is {pool}");
    assert!(connections >= 1.0, "the driver's connection count is observed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_pool_size_3_live_lines_reach_an_open_viewer_while_a_thousand_streams_read_a_backlog() {
    const BURST: usize = 1000;
    const BACKLOG: usize = 500;
    const LIVE: usize = 20;
    let base = mongodb_uri();
    let uri =
        if base.contains('?') { format!("{base}&maxPoolSize=3") } else { format!("{base}/?maxPoolSize=3") };
    let app = Arc::new(spawn_app_against(&uri, &[], true).await);
    // The query gate follows the URI's pool (it ignored it and allowed 8 before).
    assert_eq!(app.metric("sse_logs_mongodb_pool_size"), 3.0);
    assert_eq!(app.metric("sse_logs_mongodb_query_slots"), 3.0);

    let backlog: Vec<String> =
        (1..=BACKLOG).map(|k| format!("backlog line {k} {}", "x".repeat(60))).collect();
    for chunk in backlog.chunks(250) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("long", 1_i64, &refs).await;
    }
    let mut viewer = app.get_stream(&app.stream_url("live", "1", "")).await;

    // The burst: every stream reads the whole backlog, then says so.
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (first_bytes_tx, mut first_bytes) = tokio::sync::mpsc::channel::<()>(BURST);
    let last_id = format!("id: {BACKLOG}\n");
    let mut burst = Vec::new();
    for _ in 0..BURST {
        let (app, started, finished, tx, last_id) =
            (app.clone(), started.clone(), finished.clone(), first_bytes_tx.clone(), last_id.clone());
        burst.push(tokio::spawn(async move {
            let response = app.http.get(app.stream_url("long", "1", "")).send().await.expect("burst stream");
            assert_eq!(response.status(), 200);
            let mut body = response.bytes_stream();
            let mut tail: Vec<u8> = Vec::new();
            let mut counted = false;
            while let Some(chunk) =
                tokio::time::timeout(PATIENCE, body.next()).await.expect("burst bytes in time")
            {
                let chunk = chunk.expect("burst body");
                if !counted && chunk.windows(6).any(|w| w == b"\nid: 1") {
                    counted = true;
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.try_send(());
                }
                tail.extend_from_slice(&chunk);
                if tail.windows(last_id.len()).any(|w| w == last_id.as_bytes()) {
                    finished.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let keep = tail.len().saturating_sub(last_id.len());
                tail.drain(..keep);
            }
            panic!("a burst stream ended before its backlog");
        }));
    }
    // Write only once backlog reads are under way.
    tokio::time::timeout(PATIENCE, first_bytes.recv()).await.expect("the burst starts reading");

    let mut finished_when_received = Vec::new();
    for k in 1..=LIVE {
        app.write("live", 1_i64, &[&format!("live line {k}")]).await;
        let event = viewer.next_event().await;
        assert_eq!(
            (event.id.as_str(), event.data.as_str()),
            (k.to_string().as_str(), format!("live line {k}").as_str())
        );
        finished_when_received.push(finished.load(Ordering::SeqCst));
    }
    for task in burst {
        tokio::time::timeout(PATIENCE * 3, task).await.expect("burst stream finishes").unwrap();
    }
    assert_eq!(finished.load(Ordering::SeqCst), BURST);
    assert!(
        finished_when_received.iter().all(|&done| done < BURST),
        "live lines waited for the burst: streams done when each line arrived {finished_when_received:?}"
    );
    println!(
        "{LIVE} live lines arrived while {} to {} of {BURST} burst streams had finished their backlog",
        finished_when_received[0],
        finished_when_received[LIVE - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_of_one_log_get_the_same_bytes_with_every_line_once() {
    // A live line's frame is encoded once and shared by every subscriber of its log (per
    // format); each must still get every line once, in order, with its own correct position.
    const STREAMS: usize = 1000;
    const LINES: usize = 60;
    let app = Arc::new(spawn_app().await);
    app.write("same", 7_i64, &["line 1"]).await;
    let mut readers = Vec::new();
    for k in 0..STREAMS {
        let format = if k % 2 == 0 { "" } else { "format=json" };
        let response = app.http.get(app.stream_url("same", "7", format)).send().await.expect("request sent");
        assert_eq!(response.status(), 200);
        readers.push(tokio::spawn(async move { (k % 2, response.bytes().await.expect("the whole stream")) }));
    }
    while app.metric("sse_logs_hub_subscribers") < STREAMS as f64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One line at a time (the shared path), then bursts (several lines per write).
    for k in 2..=LINES / 2 {
        app.write("same", 7_i64, &[&format!("line {k}")]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let rest: Vec<String> = (LINES / 2 + 1..=LINES).map(|k| format!("line {k}")).collect();
    for chunk in rest.chunks(10) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("same", 7_i64, &refs).await;
    }
    app.write("same", 7_i64, &["[DONE]"]).await;
    let mut bodies: [Vec<bytes::Bytes>; 2] = [Vec::new(), Vec::new()];
    for reader in readers {
        let (format, body) =
            tokio::time::timeout(PATIENCE * 3, reader).await.expect("reader finishes").unwrap();
        bodies[format].push(body);
    }
    let mut text = String::new();
    for k in 1..=LINES {
        text.push_str(&format!("id: {k}\ndata: line {k}\n\n"));
    }
    text.push_str(&format!("id: {}\ndata: [DONE]\n\n", LINES + 1));
    // Each connection's first frame, `retry:`, is its own (spread at random); the rest is shared.
    let after_retry = |body: &bytes::Bytes| split_retry(std::str::from_utf8(body).unwrap()).1.to_owned();
    for body in &bodies[0] {
        assert_eq!(after_retry(body), text, "text stream");
    }
    // JSON events carry each line's time: compare the subscribers with each other, and the
    // first with the expected events up to the times.
    for body in &bodies[1] {
        assert_eq!(after_retry(body), after_retry(&bodies[1][0]), "every JSON subscriber got the same bytes");
    }
    let first = after_retry(&bodies[1][0]);
    let events: Vec<&str> = first.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), LINES + 1, "every line once, done: {first}");
    for (k, event) in events[..LINES].iter().enumerate() {
        let n = k + 1;
        assert!(
            event.starts_with(&format!("id: {n}\ndata: {{\"n\":{n},\"line\":\"line {n}\",\"t\":")),
            "{event}"
        );
    }
    assert_eq!(bodies[0].len() + bodies[1].len(), STREAMS);
}

/// Hot spot E: clients that hang up while their backlog reads are queued or in flight used to
/// leave the driver's pool unusable for minutes (every query of the process waited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_leaving_mid_backlog_leave_the_service_answering_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CLIENTS: usize = 1000;
    let app = spawn_app().await;
    let lines: Vec<String> = (1..=5_000).map(|k| format!("line {k} {}", "x".repeat(60))).collect();
    for chunk in lines.chunks(2500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("burst", "long", &refs).await;
    }
    let request = format!("GET /api/v1/logs/burst/long/stream HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        clients.push(socket);
    }
    // Every stream has started (its head arrived); they read nothing more. Once backlog reads
    // are under way, some are in flight and the rest wait for a query slot: all hang up.
    for socket in &mut clients {
        let mut head = [0_u8; 64];
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut head)).await.expect("a head").unwrap();
        assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    }
    while app.metric("sse_logs_backlog_lines_read_total") < 1.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(clients);

    // Broken, this waited 1 to 3 minutes; 20 s is far more than an answer needs.
    let snapshot = tokio::time::timeout(
        Duration::from_secs(20),
        app.http.get(app.url("/api/v1/logs/burst/long?limit=1")).send(),
    )
    .await
    .expect("a snapshot answers soon after the clients left")
    .unwrap();
    assert_eq!(snapshot.status(), 200);
    app.write("burst", "after", &["still served", "[DONE]"]).await;
    let events = tokio::time::timeout(
        Duration::from_secs(20),
        app.get_stream(&app.stream_url("burst", "after", "")).await.collect_to_end(),
    )
    .await
    .expect("a new stream is served soon after the clients left");
    assert_eq!(events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["still served", "[DONE]"]);
}
