//! HTTP/2 by prior knowledge (h2c) on the service's one port, end to end: a stream's backlog and
//! live lines, a resume with `Last-Event-ID`, and the end (`[DONE]`, then the response finishes).

use crate::helpers::{spawn_app, SseClient, TestApp, PATIENCE};

fn h2c() -> reqwest::Client {
    reqwest::Client::builder().http2_prior_knowledge().build().unwrap()
}

async fn open(app: &TestApp, client: &reqwest::Client, last_event_id: Option<&str>) -> SseClient {
    let mut request = client.get(app.stream_url("h2", "1", "from=0"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = tokio::time::timeout(PATIENCE, request.send()).await.expect("headers in time").unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "spoken over HTTP/2");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    SseClient::new(response)
}

fn pair(event: &crate::helpers::Event) -> (String, String) {
    (event.id.clone(), event.data.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_stream_sends_backlog_and_live_lines_resumes_from_last_event_id_and_ends_at_done() {
    let app = spawn_app().await;
    let client = h2c();
    app.write("h2", 1_i64, &["line 1", "line 2"]).await;

    let mut first = open(&app, &client, None).await;
    first.expect_retry().await;
    assert_eq!(pair(&first.next_event().await), ("1".into(), "line 1".into()));
    assert_eq!(pair(&first.next_event().await), ("2".into(), "line 2".into()));
    // Written after the backlog was sent: it arrives as a live line.
    app.write("h2", 1_i64, &["line 3"]).await;
    assert_eq!(pair(&first.next_event().await), ("3".into(), "line 3".into()));
    let resume_from = first.last_event_id().to_owned();
    drop(first);

    // On the same HTTP/2 connection, as a browser's EventSource would reconnect.
    app.write("h2", 1_i64, &["line 4"]).await;
    let mut resumed = open(&app, &client, Some(&resume_from)).await;
    resumed.expect_retry().await;
    assert_eq!(pair(&resumed.next_event().await), ("4".into(), "line 4".into()), "resumes after line 3");
    app.write("h2", 1_i64, &["line 5", "[DONE]"]).await;
    let rest: Vec<(String, String)> = resumed.collect_to_end().await.iter().map(pair).collect();
    assert_eq!(rest, [("5".into(), "line 5".into()), ("6".into(), "[DONE]".into())], "ends after [DONE]");

    // At the end already: 204, which stops EventSource.
    let ended =
        client.get(app.stream_url("h2", "1", "from=0")).header("last-event-id", "6").send().await.unwrap();
    assert_eq!((ended.version(), ended.status().as_u16()), (reqwest::Version::HTTP_2, 204));
}
