//! A change stream that stays open and answers nothing (here: MongoDB paused with SIGSTOP, as a
//! replica set that lost its majority would behave) shows in `/metrics` and turns `/readyz` 503
//! after `mongodb.change_stream_stall_secs`; it recovers when MongoDB answers again.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app_against, TestApp, PATIENCE};
use crate::mongo_server::MongoServer;

async fn readyz(app: &TestApp) -> (u16, String) {
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `/readyz` until it answers `status` (bounded by PATIENCE).
async fn until_readyz(app: &TestApp, status: u16) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (now, body) = readyz(app).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {now}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_mongodb_turns_readyz_503_after_the_stall_bound_and_ready_again_when_it_resumes() {
    let mut mongodb = MongoServer::new();
    mongodb.start();
    let app = spawn_app_against(&mongodb.uri(), &[("MONGODB__CHANGE_STREAM_STALL_SECS", "5")], true).await;
    assert_eq!(readyz(&app).await.0, 200);
    assert!(app.metric("sse_logs_change_stream_idle_seconds") < 5.0, "an idle stream answers every second");
    let deadline = Instant::now() + PATIENCE;
    while app.metric("sse_logs_change_stream_resumable") != 1.0 {
        assert!(Instant::now() < deadline, "the hub never held a resume token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The silence counts from the change stream's last answer, which came before the pause. The
    // clock starts before the metric is read (not after the pause, which takes a `kill` process:
    // under load its milliseconds made a correct 503 look early once).
    let sampled = Instant::now();
    let silent_before = Duration::from_secs_f64(app.metric("sse_logs_change_stream_idle_seconds"));
    mongodb.signal("-STOP");
    let body = until_readyz(&app, 503).await;
    let idle = app.metric("sse_logs_change_stream_idle_seconds");
    mongodb.signal("-CONT");
    assert!(sampled.elapsed() + silent_before >= Duration::from_secs(5), "not before the bound");
    assert!(body.contains("change_stream_stall_secs"), "{body}");
    assert!(idle >= 5.0, "idle {idle} s when readiness failed");

    until_readyz(&app, 200).await;
    assert!(app.metric("sse_logs_change_stream_idle_seconds") < 5.0);
    // Lines still flow after the pause.
    let mut client = app.get_stream(&app.stream_url("after", "1", "")).await;
    app.write("after", 1_i64, &["still here"]).await;
    assert_eq!(client.next_event().await.data, "still here");
}
