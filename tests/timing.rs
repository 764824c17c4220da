//! Timing-sensitive tests, in a test binary of their own so that cargo runs them alone, not
//! beside the load of the main suite.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "api/mongo_proxy.rs"]
mod mongo_proxy;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use helpers::{spawn_app, sse_logs};

#[tokio::test]
async fn each_line_of_a_slow_producer_is_visible_within_200_ms() {
    let app = spawn_app().await;
    let mut viewer = app.get_stream(&app.stream_url("deploy", "7", "")).await;
    let mut push = sse_logs(&["push", "--type", "deploy", "--id", "7", "--server", &app.url("")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    let mut worst = Duration::ZERO;
    for n in 1..=20 {
        let written = Instant::now();
        stdin.write_all(format!("step {n}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        assert_eq!(viewer.next_event().await.data, format!("step {n}"));
        worst = worst.max(written.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stdin);
    assert!(push.wait().await.unwrap().success());
    assert_eq!(viewer.next_event().await.data, "[DONE]");
    assert!(worst <= Duration::from_millis(200), "slowest line took {worst:?}");
}
