//! The SSE stream: backlog, live, `[DONE]`, resume and framing, read as a browser would.

use crate::helpers::{spawn_app, spawn_app_with, split_retry, take_data, Item};

#[tokio::test]
async fn backlog_then_live_lines_arrive_and_done_closes_the_response() {
    let app = spawn_app().await;
    app.write("deploy", 42_i64, &["one", "two"]).await;
    let mut client = app.get_stream(&app.url("/api/v1/sse/logs/?type=deploy&id=42&num=0")).await;

    client.expect_retry().await;
    assert_eq!(take_data(&mut client, 2).await, ["one", "two"]);
    app.write("deploy", 42_i64, &["three"]).await;
    assert_eq!(take_data(&mut client, 1).await, ["three"]);
    app.write("deploy", 42_i64, &["[DONE]"]).await;
    let done = client.next_event().await;
    assert_eq!((done.id.as_str(), done.data.as_str()), ("4", "[DONE]"));
    assert_eq!(client.next_item().await, Item::End, "the response ends after [DONE]");
}

#[tokio::test]
async fn the_stream_has_the_headers_that_make_proxies_pass_it_through() {
    let app = spawn_app().await;
    app.write("deploy", 1_i64, &["x", "[DONE]"]).await;
    let request = app.http.get(app.stream_url("deploy", "1", "")).header("accept-encoding", "gzip, br");
    let client = app.get_stream_with(request).await;
    let headers = &client.response_headers;
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none(), "never compressed");
}

#[tokio::test]
async fn event_ids_are_line_numbers_counted_from_one() {
    let app = spawn_app().await;
    app.write("ci", 7_i64, &["a", "b", "c", "[DONE]"]).await;
    let mut client = app.get_stream(&app.stream_url("ci", "7", "from=1")).await;
    let events = client.collect_to_end().await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["2", "3", "4"]);
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn tricky_lines_reach_the_browser_exactly() {
    let app = spawn_app().await;
    let lines = [
        "  two leading spaces",
        "",
        "unicode: 部署完成 ✓ é",
        "id: 5",
        "data: x",
        ": comment",
        "event: done",
        "multi\nline",
        "crlf\r\nline",
        "bare\rcr",
        "trailing space ",
    ];
    let mut all: Vec<&str> = lines.to_vec();
    all.push("[DONE]");
    app.write("t", "tricky", &all).await;

    // Text format: what EventSource hands to onmessage (line ends become \n, as the spec says).
    let mut text = app.get_stream(&app.stream_url("t", "tricky", "")).await;
    let events = text.collect_to_end().await;
    let expected: Vec<String> = lines.iter().map(|l| l.replace("\r\n", "\n").replace('\r', "\n")).collect();
    let got: Vec<String> = events[..lines.len()].iter().map(|e| e.data.clone()).collect();
    assert_eq!(got, expected);
    assert!(events[..lines.len()].iter().all(|e| e.event == "message"));

    // JSON format: byte-exact, carriage returns included.
    let mut json = app.get_stream(&app.stream_url("t", "tricky", "format=json")).await;
    let events = json.collect_to_end().await;
    for (k, (event, line)) in events.iter().zip(lines.iter()).enumerate() {
        let value: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(value["n"], k as u64 + 1);
        assert_eq!(value["line"], *line);
        assert_eq!(event.id, (k + 1).to_string());
    }
    let end = events.last().unwrap();
    assert_eq!(end.event, "done");
    // A bare [DONE] written by another writer: how the log ended is unknown.
    assert_eq!(end.data, format!("{{\"n\":{},\"outcome\":null,\"exit_code\":null}}", lines.len() + 1));
}

#[tokio::test]
async fn last_event_id_resumes_after_that_line_and_overrides_from() {
    let app = spawn_app().await;
    app.write("deploy", 9_i64, &["1", "2", "3", "4", "[DONE]"]).await;
    let request = app.http.get(app.stream_url("deploy", "9", "from=0")).header("Last-Event-ID", "2");
    let mut client = app.get_stream_with(request).await;
    let data: Vec<String> = client.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["3", "4", "[DONE]"]);
}

#[tokio::test]
async fn a_client_at_or_past_done_gets_204_so_eventsource_stops() {
    let app = spawn_app().await;
    app.write("deploy", 3_i64, &["a", "[DONE]"]).await;
    for url in [
        app.stream_url("deploy", "3", "from=2"),
        app.stream_url("deploy", "3", "from=10"),
        app.url("/api/v1/sse/logs/?type=deploy&id=3&num=2"),
    ] {
        let response = app.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 204, "{url}");
    }
    let response =
        app.http.get(app.stream_url("deploy", "3", "")).header("Last-Event-ID", "2").send().await.unwrap();
    assert_eq!(response.status(), 204);
    // One line short of the end still streams the [DONE] event.
    let mut client = app.get_stream(&app.stream_url("deploy", "3", "from=1")).await;
    assert_eq!(client.next_event().await.data, "[DONE]");
}

#[tokio::test]
async fn integer_and_string_ids_are_the_same_log_when_the_text_is_canonical() {
    let app = spawn_app().await;
    app.write("deploy", 42_i64, &["int"]).await;
    app.write("deploy", "42", &["string"]).await;
    app.write("deploy", 42_i32, &["int32"]).await;
    app.write("deploy", "042", &["padded"]).await;
    let mut canonical = app.get_stream(&app.stream_url("deploy", "42", "")).await;
    assert_eq!(take_data(&mut canonical, 3).await, ["int", "string", "int32"]);
    let mut padded = app.get_stream(&app.stream_url("deploy", "042", "")).await;
    assert_eq!(take_data(&mut padded, 1).await, ["padded"]);

    // Live lines follow the same rule.
    app.write("deploy", "042", &["[DONE]"]).await;
    app.write("deploy", 42_i64, &["live int", "[DONE]"]).await;
    let rest: Vec<String> = canonical.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(rest, ["live int", "[DONE]"]);
    let rest: Vec<String> = padded.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(rest, ["[DONE]"]);
}

#[tokio::test]
async fn a_log_with_no_lines_yet_waits_and_then_streams() {
    let app = spawn_app().await;
    let mut client = app.get_stream(&app.stream_url("build", "new", "")).await;
    client.expect_retry().await;
    app.write("build", "new", &["first", "[DONE]"]).await;
    let data: Vec<String> = client.collect_to_end().await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["first", "[DONE]"]);
}

#[tokio::test]
async fn a_position_past_the_end_waits_until_the_log_gets_there() {
    let app = spawn_app().await;
    app.write("build", 5_i64, &["1", "2"]).await;
    let mut client = app.get_stream(&app.stream_url("build", "5", "from=4")).await;
    app.write("build", 5_i64, &["3", "4", "5", "[DONE]"]).await;
    let events = client.collect_to_end().await;
    let got: Vec<(String, String)> = events.into_iter().map(|e| (e.id, e.data)).collect();
    assert_eq!(got, [("5".into(), "5".into()), ("6".into(), "[DONE]".into())]);
}

#[tokio::test]
async fn an_idle_stream_sends_keep_alive_comments() {
    let app = spawn_app_with(&[("SSE__KEEP_ALIVE_SECS", "1")]).await;
    let mut client = app.get_stream(&app.stream_url("idle", "1", "")).await;
    client.expect_retry().await;
    assert_eq!(client.next_item().await, Item::Comment("keep-alive".into()));
    assert_eq!(client.next_item().await, Item::Comment("keep-alive".into()));
    app.write("idle", 1_i64, &["finally"]).await;
    assert_eq!(client.next_event().await.data, "finally");
}

#[tokio::test]
async fn the_seed_route_works_with_and_without_its_trailing_slash() {
    let app = spawn_app().await;
    app.write("k8s", 11_i64, &["line", "[DONE]"]).await;
    for path in ["/api/v1/sse/logs/?type=k8s&id=11", "/api/v1/sse/logs?type=k8s&id=11&num=0"] {
        let mut client = app.get_stream(&app.url(path)).await;
        let data: Vec<String> = client.collect_to_end().await.into_iter().map(|e| e.data).collect();
        assert_eq!(data, ["line", "[DONE]"], "{path}");
    }
}

#[tokio::test]
async fn the_raw_bytes_follow_the_contract() {
    let app = spawn_app().await;
    app.write("raw", 1_i64, &[" x\ry", "[DONE]"]).await;
    let mut client = app.get_stream(&app.stream_url("raw", "1", "")).await;
    client.collect_to_end().await;
    let raw = String::from_utf8(client.raw.clone()).unwrap();
    assert_eq!(split_retry(&raw).1, "id: 1\ndata:  x\ndata: y\n\nid: 2\ndata: [DONE]\n\n");
}

#[tokio::test]
async fn each_connection_gets_its_own_retry_between_once_and_twice_the_setting() {
    let app = spawn_app().await;
    app.write("spread", 1_i64, &["[DONE]"]).await;
    let mut delays = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut client = app.get_stream(&app.stream_url("spread", "1", "")).await;
        client.collect_to_end().await;
        delays.insert(split_retry(&String::from_utf8(client.raw.clone()).unwrap()).0);
    }
    // Twenty draws from 2,001 values: all equal only if nothing is drawn.
    assert!(delays.len() > 1, "every connection was told the same retry: {delays:?}");
}

#[tokio::test]
async fn path_segments_are_percent_decoded() {
    let app = spawn_app().await;
    app.write("ci job", "a/b", &["spaced", "[DONE]"]).await;
    let mut client = app.get_stream(&app.stream_url("ci%20job", "a%2Fb", "")).await;
    assert_eq!(client.next_event().await.data, "spaced");
}
