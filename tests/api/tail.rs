//! `?tail=K` from what the index knows: an ended log's last positions without counting it when
//! asked (it was counted once as it ended), and the count whenever that length may be wrong;
//! and requests for the same answer about an ended log sharing one read.

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_against, spawn_app_counting, spawn_app_with, SseClient, TestApp};
use crate::index::wait_for;
use crate::mongo_server::MongoServer;

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn index_events(app: &TestApp) -> SseClient {
    app.get_stream(&app.url("/api/v1/logs/events")).await
}

/// Waits until the index lists `ci/{id}` with `lines` positions.
async fn listed(events: &mut SseClient, id: &str, lines: u64) {
    wait_for(events, "ci", id, |log| log["lines"] == lines).await;
}

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("line {n}")).collect()
}

async fn write(app: &TestApp, id: impl Into<Bson>, lines: &[String]) {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    app.write("ci", id, &refs).await;
}

/// Writes lines 1..=`total` of `ci/{id}` (`chunk` a batch) and `[DONE]`, then waits until the
/// index lists the log at its full length.
async fn write_ended(app: &TestApp, events: &mut SseClient, id: &str, total: u32, chunk: usize) {
    for lines in numbered(1..=total).chunks(chunk) {
        write(app, id, lines).await;
    }
    app.write("ci", id, &["[DONE]"]).await;
    listed(events, id, u64::from(total) + 1).await;
}

/// `sse_logs_tail_reads_total{how}`.
fn tails_by(app: &TestApp, how: &str) -> f64 {
    let series = format!("sse_logs_tail_reads_total{{how=\"{how}\"}} ");
    let metrics = app.streams.metrics();
    let value = metrics.lines().find_map(|line| line.strip_prefix(&series)).expect("the series is exported");
    value.parse().unwrap()
}

#[tokio::test]
async fn the_tail_of_an_ended_log_takes_its_position_from_the_index() {
    let app = spawn_app().await;
    let mut events = index_events(&app).await;
    write_ended(&app, &mut events, "long", 3000, 1000).await;

    let tail = get_json(&app, "/api/v1/logs/ci/long?tail=100").await;
    assert_eq!((tails_by(&app, "index"), tails_by(&app, "count")), (1.0, 0.0));
    assert_eq!(
        (tail["from"].clone(), tail["next"].clone(), tail["done"].clone()),
        (2901.into(), 3001.into(), true.into())
    );
    let expected: Vec<Value> = numbered(2902..=3000).into_iter().map(Value::from).collect();
    assert_eq!(tail["lines"].as_array().unwrap(), &expected);
    // The same as the page after its `from`, read by skipping.
    let page = get_json(&app, "/api/v1/logs/ci/long?from=2901&limit=100").await;
    assert_eq!(page["lines"], tail["lines"]);
    // A tail longer than the log is all of it, from 0.
    let all = get_json(&app, "/api/v1/logs/ci/long?tail=5000").await;
    assert_eq!((all["from"].clone(), all["lines"].as_array().unwrap().len()), (0.into(), 3000));
    assert_eq!((tails_by(&app, "index"), tails_by(&app, "count")), (2.0, 0.0));
}

#[tokio::test]
async fn a_live_log_and_a_log_rewritten_behind_the_index_are_counted() {
    let app = spawn_app().await;
    let mut events = index_events(&app).await;
    write(&app, "live", &numbered(1..=10)).await;
    listed(&mut events, "live", 10).await;
    let tail = get_json(&app, "/api/v1/logs/ci/live?tail=2").await;
    assert_eq!((tail["from"].clone(), tail["lines"].clone()), (8.into(), json!(["line 9", "line 10"])));
    assert_eq!(
        (tails_by(&app, "index"), tails_by(&app, "count")),
        (0.0, 1.0),
        "a live log's length is as heard"
    );

    write(&app, "again", &numbered(1..=10)).await;
    app.write("ci", "again", &["[DONE]"]).await;
    listed(&mut events, "again", 11).await;
    assert_eq!(get_json(&app, "/api/v1/logs/ci/again?tail=1").await["from"], 10);
    assert_eq!(tails_by(&app, "index"), 1.0);
    // Deleted without the index hearing it (it follows inserts), then written again: it lists
    // 14 lines, from the old first one.
    app.logs.delete_many(doc! { "type": "ci", "id": "again" }).await.unwrap();
    write(&app, "again", &["new 1".into(), "new 2".into(), "new 3".into()]).await;
    listed(&mut events, "again", 14).await;
    let tail = get_json(&app, "/api/v1/logs/ci/again?tail=2").await;
    assert_eq!((tail["from"].clone(), tail["lines"].clone()), (1.into(), json!(["new 2", "new 3"])));
    assert_eq!((tails_by(&app, "index"), tails_by(&app, "count")), (1.0, 2.0));
}

#[tokio::test]
async fn a_log_listed_again_after_being_forgotten_is_counted_as_it_ends() {
    // A list of one log: writing another forgets the first, and its next lines list it anew
    // as two lines long, though it has more.
    let app = spawn_app_with(&[("INDEX__MAX_LOGS", "1")]).await;
    let mut events = index_events(&app).await;
    write(&app, "old", &numbered(1..=20)).await;
    listed(&mut events, "old", 20).await;
    write(&app, "other", &numbered(1..=1)).await;
    listed(&mut events, "other", 1).await;
    write(&app, "old", &numbered(21..=22)).await;
    listed(&mut events, "old", 2).await;
    let tail = get_json(&app, "/api/v1/logs/ci/old?tail=2").await;
    assert_eq!((tail["from"].clone(), tail["lines"].clone()), (20.into(), json!(["line 21", "line 22"])));
    assert_eq!(tails_by(&app, "count"), 1.0);
    // Its end is counted: the list says 23 lines, and the tail needs no count.
    app.write("ci", "old", &["[DONE]"]).await;
    listed(&mut events, "old", 23).await;
    assert_eq!(app.metric("sse_logs_index_lines_unheard_total"), 20.0);
    let tail = get_json(&app, "/api/v1/logs/ci/old?tail=2").await;
    assert_eq!((tail["from"].clone(), tail["lines"].clone()), (21.into(), json!(["line 22"])));
    assert_eq!((tails_by(&app, "index"), tails_by(&app, "count")), (1.0, 1.0));
}

#[tokio::test]
async fn an_id_stored_as_a_number_and_as_text_is_one_log_for_the_tail_too() {
    let app = spawn_app().await;
    let mut events = index_events(&app).await;
    let mut documents: Vec<Document> = Vec::new();
    for n in 1..=51_u32 {
        let id = if n.is_multiple_of(2) { Bson::Int64(7) } else { Bson::String("7".into()) };
        let text = if n == 51 { "[DONE]".to_owned() } else { format!("line {n}") };
        documents.push(doc! { "_id": ObjectId::new(), "type": "ci", "id": id, "log": text });
    }
    app.logs.insert_many(documents).await.unwrap();
    listed(&mut events, "7", 51).await;

    let tail = get_json(&app, "/api/v1/logs/ci/7?tail=4").await;
    assert_eq!(
        (tail["from"].clone(), tail["lines"].clone()),
        (47.into(), json!(["line 48", "line 49", "line 50"]))
    );
    assert_eq!(tails_by(&app, "index"), 1.0);
}

#[tokio::test]
async fn lines_the_change_stream_never_told_do_not_shift_the_tail() {
    // The test server's oplog keeps so few entries that its change stream skips most of a burst
    // without an error (MongoDB would report the history as lost).
    let mut server = MongoServer::with_args(&["--oplog-max-entries", "500"]);
    server.start();
    let app = spawn_app_against(&server.uri(), &[], true).await;
    let mut events = index_events(&app).await;
    // Once ended, the log is counted and listed at its true length.
    write_ended(&app, &mut events, "burst", 20_000, 5000).await;

    let tail = get_json(&app, "/api/v1/logs/ci/burst?tail=3").await;
    assert_eq!(
        (tail["from"].clone(), tail["lines"].clone()),
        (19_998.into(), json!(["line 19999", "line 20000"]))
    );
    assert_eq!(tails_by(&app, "index"), 1.0);
    if server.takes_args() {
        assert!(app.metric("sse_logs_index_lines_unheard_total") > 0.0, "the stream skipped lines");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_opening_an_ended_log_at_once_share_its_reads() {
    let (app, proxy) = spawn_app_counting(&[]).await;
    let mut events = index_events(&app).await;
    write_ended(&app, &mut events, "shared", 20_000, 5000).await;
    // Once counted (a tail waits for the count), every tail is the same read.
    let first = get_json(&app, "/api/v1/logs/ci/shared?tail=10000").await;
    for path in ["/api/v1/logs/ci/shared?tail=10000", "/api/v1/logs/ci/shared?from=0&limit=10000"] {
        let finds = proxy.count("find");
        let answers = futures_util::future::join_all((0..200).map(|_| get_json(&app, path))).await;
        let reads = proxy.count("find") - finds;
        assert!(answers.windows(2).all(|pair| pair[0] == pair[1]), "one answer for all");
        assert!(reads < 50, "{path}: 200 requests made {reads} reads");
        if path.contains("tail") {
            assert_eq!(answers[0], first);
        } else {
            assert_eq!(answers[0]["lines"][9999], "line 10000");
        }
    }
}
