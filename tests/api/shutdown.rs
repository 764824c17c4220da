//! Shutdown ends every stream cleanly, so EventSource resumes on another replica.

use std::time::{Duration, Instant};

use bson::doc;

use crate::helpers::{
    drop_database, log_collection, mongodb_uri, spawn_app, spawn_app_with, take_data, Item, ServeProcess,
    SseClient, PATIENCE,
};

#[tokio::test]
async fn shutdown_finishes_open_streams_and_a_replica_continues_from_last_event_id() {
    let mut app = spawn_app().await;
    app.write("deploy", 1_i64, &["a", "b"]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut client = app.get_stream(&app.stream_url("deploy", "1", "")).await;
        assert_eq!(take_data(&mut client, 2).await, ["a", "b"]);
        clients.push(client);
    }

    let started = Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    for client in &mut clients {
        // A clean end of the chunked body: the helper panics on a broken connection.
        assert_eq!(client.next_item().await, Item::End);
    }

    let replica = app.spawn_replica().await;
    app.write("deploy", 1_i64, &["c", "[DONE]"]).await;
    for client in &clients {
        let request = replica
            .http
            .get(replica.stream_url("deploy", "1", ""))
            .header("Last-Event-ID", client.last_event_id());
        let mut resumed = replica.get_stream_with(request).await;
        let rest: Vec<String> = resumed.collect_to_end().await.into_iter().map(|e| e.data).collect();
        assert_eq!(rest, ["c", "[DONE]"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_end_every_open_stream_cleanly_and_the_binary_exits_zero_without_cutting_any() {
    for signal in ["-TERM", "-INT"] {
        let database = format!("test_{}", uuid::Uuid::new_v4().simple());
        let logs = log_collection(&database).await;
        let mut service = ServeProcess::new(mongodb_uri(), database.clone());
        service.start().await;
        service.wait_ready().await;
        logs.insert_many([
            doc! { "type": "deploy", "id": 1_i64, "log": "a" },
            doc! { "type": "deploy", "id": 1_i64, "log": "b" },
        ])
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let mut clients = Vec::new();
        for _ in 0..20 {
            let response =
                tokio::time::timeout(PATIENCE, http.get(service.url("/api/v1/logs/deploy/1/stream")).send())
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(response.status(), 200);
            let mut client = SseClient::new(response);
            assert_eq!(take_data(&mut client, 2).await, ["a", "b"]);
            clients.push(client);
        }

        let started = Instant::now();
        let status = service.signal(signal).await;
        let took = started.elapsed();
        assert!(status.success(), "{signal}: exit status {status}");
        for client in &mut clients {
            // A clean end of the chunked body: SseClient panics on a broken connection.
            assert_eq!(client.next_item().await, Item::End, "{signal}");
        }
        let log = service.log();
        assert!(log.contains("stopped"), "{signal}: the server returned by itself: {log}");
        assert!(
            !log.contains("connections still open at the end of the grace period"),
            "{signal}: shutdown had to cut connections: {log}"
        );
        assert!(took < Duration::from_secs(4), "{signal}: well within the grace period, took {took:?}");
        drop_database(&database).await;
    }
}

/// One `serve` with a stream mid-backlog (its cursor open), one following live and the index
/// stream, stopped by SIGTERM: its exit status and everything it wrote to standard error.
async fn one_exit(database: &str) -> (std::process::ExitStatus, String) {
    let mut service = ServeProcess::new(mongodb_uri(), database.to_owned());
    service.start().await;
    service.wait_ready().await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for path in ["/api/v1/logs/big/1/stream", "/api/v1/logs/live/1/stream", "/api/v1/logs/events"] {
        let response =
            tokio::time::timeout(PATIENCE, http.get(service.url(path)).send()).await.unwrap().unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let mut client = SseClient::new(response);
        // The first event: the backlog read (or the index) is under way, not waiting to start.
        if path != "/api/v1/logs/live/1/stream" {
            client.next_event().await;
        }
        open.push(client);
    }
    let status = service.signal("-TERM").await;
    (status, service.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_exits_under_open_cursors_are_all_clean() {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let logs = log_collection(&database).await;
    let lines: Vec<bson::Document> =
        (0..20_000).map(|n| doc! { "type": "big", "id": 1_i64, "log": format!("line {n}") }).collect();
    logs.insert_many(lines).await.unwrap();
    logs.insert_one(doc! { "type": "live", "id": 1_i64, "log": "started" }).await.unwrap();
    // Four at a time, five rounds: twenty exits in the time of five.
    for _ in 0..5 {
        let exits = futures_util::future::join_all((0..4).map(|_| one_exit(&database))).await;
        for (status, log) in exits {
            assert!(status.success(), "exit status {status}: {log}");
            assert!(!log.contains("panicked"), "a panic on the way out: {log}");
        }
    }
    drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_streams_end_spread_over_the_drain_time_each_cleanly() {
    let mut app = spawn_app_with(&[("SHUTDOWN__DRAIN_SECS", "2")]).await;
    app.write("drain", 1_i64, &["first"]).await;
    let mut ends = Vec::new();
    for _ in 0..30 {
        let mut client = app.get_stream(&app.stream_url("drain", "1", "")).await;
        assert_eq!(take_data(&mut client, 1).await, ["first"]);
        ends.push(tokio::spawn(async move {
            // A clean end of the chunked body: SseClient panics on a broken connection.
            assert_eq!(client.next_item().await, Item::End);
            Instant::now()
        }));
    }
    let triggered = Instant::now();
    app.stop().await;
    let mut at = Vec::new();
    for end in ends {
        at.push(end.await.expect("every stream ends cleanly").duration_since(triggered));
    }
    at.sort();
    let (first, last) = (at[0], at[at.len() - 1]);
    // Thirty ends drawn over two seconds: a wall (all in one instant) is what this rules out.
    assert!(last - first > Duration::from_millis(500), "ends not spread: {at:?}");
    assert!(last < Duration::from_secs(3), "the last stream ended late: {at:?}");
}
