//! `limits.max_streams` counts connections: a stream of several logs takes one slot however many
//! logs it follows, so with two slots it and a single-log stream both open, and a third is 503.

use serde_json::Value;

use crate::helpers::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_three_logs_takes_one_slot_of_max_streams() {
    let app = spawn_app_with(&[("LIMITS__MAX_STREAMS", "2")]).await;
    let mut several = app.get_stream(&app.url("/api/v1/streams?log=s:1&log=s:2&log=s:3")).await;
    several.expect_retry().await; // the stream of three logs is open
    let mut single = app.get_stream(&app.stream_url("s", "4", "")).await;
    single.expect_retry().await; // and so is a single-log stream beside it

    for url in [app.stream_url("s", "5", ""), app.url("/api/v1/streams?log=s:5&log=s:6")] {
        let third = app.http.get(&url).send().await.unwrap();
        assert_eq!(third.status(), 503, "{url}: both slots are taken");
        assert!(third.headers().contains_key("retry-after"), "{url}");
        let body: Value = third.json().await.unwrap();
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    }

    // Both open streams still work: lines reach each of them.
    app.write("s", 2_i64, &["to the three"]).await;
    app.write("s", 4_i64, &["to the one"]).await;
    let line: Value = serde_json::from_str(&several.next_event().await.data).unwrap();
    assert_eq!(line["line"], "to the three");
    assert_eq!(single.next_event().await.data, "to the one");
}
