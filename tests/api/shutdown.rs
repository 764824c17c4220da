//! Shutdown ends every stream cleanly, so EventSource resumes on another replica.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app, take_data, Item};

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
