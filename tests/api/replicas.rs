//! Scale-out as the README promises it: two `serve` replicas behind a stock nginx `upstream`, one
//! MongoDB. While 50 EventSource-style clients follow a log being written, one replica is stopped
//! (SIGTERM) and restarted, later the other is stopped: every client ends with every line
//! exactly once, in order, having reconnected with `Last-Event-ID` to the replica left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use tokio::sync::watch;

use crate::helpers::{mongodb_uri, Item, ServeProcess, SseClient, PATIENCE};
use crate::nginx::Nginx;

const CLIENTS: usize = 50;
const LINES: usize = 3000;

/// Follows `url` as EventSource does: on the end of a response before `[DONE]`, reconnects with
/// `Last-Event-ID`; a refused connection or a 502 is retried after a short pause.
async fn follow(url: String, reconnects: Arc<AtomicUsize>) -> Vec<(String, String)> {
    let http = reqwest::Client::new();
    let mut events: Vec<(String, String)> = Vec::new();
    loop {
        let mut request = http.get(&url);
        if let Some((id, _)) = events.last() {
            request = request.header("Last-Event-ID", id);
        }
        match request.send().await {
            Ok(response) if response.status() == 200 => {
                let mut stream = SseClient::new(response);
                loop {
                    match stream.next_item().await {
                        Item::Event(event) => {
                            let done = event.data == "[DONE]";
                            events.push((event.id, event.data));
                            if done {
                                return events;
                            }
                        }
                        Item::End => break,
                        _ => {}
                    }
                }
            }
            Ok(response) if response.status() == 204 => return events,
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await, // EventSource's retry pace
        }
        reconnects.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_get_every_line_once_while_each_of_two_replicas_behind_nginx_is_stopped() {
    let uri = mongodb_uri();
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let logs = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&database)
        .collection::<bson::Document>("sse_logs");
    let (mut a, mut b) = (ServeProcess::new(uri.clone(), database.clone()), ServeProcess::new(uri, database));
    a.start().await;
    b.start().await;
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let nginx = Nginx::start(&[addr(a.port), addr(b.port)]);
    let url = format!("http://127.0.0.1:{}/api/v1/logs/rep/1/stream", nginx.port);

    let reconnects = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> =
        (0..CLIENTS).map(|_| tokio::spawn(follow(url.clone(), reconnects.clone()))).collect();
    let (progress, mut written) = watch::channel(0_usize);
    let writer = {
        let logs = logs.clone();
        tokio::spawn(async move {
            for start in (1..=LINES).step_by(10) {
                let batch: Vec<_> = (start..start + 10)
                    .map(|n| doc! { "type": "rep", "id": 1_i64, "log": format!("line {n}") })
                    .collect();
                logs.insert_many(batch).await.unwrap();
                progress.send_replace(start + 9);
                tokio::time::sleep(Duration::from_millis(10)).await; // a build's pace
            }
            logs.insert_one(doc! { "type": "rep", "id": 1_i64, "log": "[DONE]" }).await.unwrap();
        })
    };

    written.wait_for(|n| *n >= LINES / 4).await.unwrap();
    assert!(a.signal("-TERM").await.success(), "replica A exits 0");
    a.start().await;
    written.wait_for(|n| *n >= LINES * 3 / 5).await.unwrap();
    assert!(b.signal("-TERM").await.success(), "replica B exits 0");
    writer.await.unwrap();

    for client in clients {
        let events = tokio::time::timeout(PATIENCE * 2, client).await.expect("client finishes").unwrap();
        let want: Vec<(String, String)> = (1..=LINES)
            .map(|n| (n.to_string(), format!("line {n}")))
            .chain([((LINES + 1).to_string(), "[DONE]".to_owned())])
            .collect();
        if events != want {
            let at =
                events.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(events.len().min(want.len()));
            panic!(
                "{} events for {} due; first difference at {at}: {:?} vs {:?}",
                events.len(),
                want.len(),
                events.get(at),
                want.get(at)
            );
        }
    }
    let reconnects = reconnects.load(Ordering::SeqCst);
    assert!(reconnects >= CLIENTS / 2, "the stops moved clients between replicas ({reconnects} reconnects)");
    println!(
        "{CLIENTS} clients, {LINES} lines, {reconnects} reconnects through nginx, no line lost or repeated"
    );
    a.signal("-TERM").await;
    logs.drop().await.unwrap();
}
