//! Shutdown ends every stream cleanly, so EventSource resumes on another replica.

use std::time::{Duration, Instant};

use bson::doc;

use crate::helpers::{
    drop_database, mongodb_uri, spawn_app, take_data, Item, ServeProcess, SseClient, PATIENCE,
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
        let logs = mongodb::Client::with_uri_str(mongodb_uri())
            .await
            .unwrap()
            .database(&database)
            .collection::<bson::Document>("sse_logs");
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
