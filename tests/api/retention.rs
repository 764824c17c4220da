//! Retention: `sse-logs prune` and the `retention.days` task delete whole logs whose last line is
//! older than the cutoff, and nothing else. Old lines are written with ObjectIds made in the past.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};

use crate::helpers::{spawn_app_with, sse_logs, TestApp, PATIENCE};

/// An ObjectId made `days` ago (plus `n` to keep them apart and in order).
pub(crate) fn oid_days_ago(days: u64, n: u8) -> ObjectId {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let secs = u32::try_from(now - days * 86_400).unwrap();
    let mut bytes = [0_u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..11].copy_from_slice(&rand::random::<[u8; 7]>());
    bytes[11] = n;
    ObjectId::from_bytes(bytes)
}

async fn write_old(app: &TestApp, log_type: &str, id: impl Into<Bson>, days: u64, lines: &[&str]) {
    let id = id.into();
    let documents: Vec<Document> = lines
        .iter()
        .enumerate()
        .map(|(n, line)| doc! { "_id": oid_days_ago(days, n as u8), "type": log_type, "id": id.clone(), "log": *line })
        .collect();
    app.logs.insert_many(documents).await.unwrap();
}

pub(crate) async fn count(app: &TestApp, filter: Document) -> u64 {
    app.logs.count_documents(filter).await.unwrap()
}

pub(crate) async fn prune(app: &TestApp, args: &[&str]) -> String {
    let mut all = vec!["prune"];
    all.extend_from_slice(args);
    let output = sse_logs(&all)
        .env("SSE_LOGS__MONGODB__URI", crate::helpers::mongodb_uri())
        .env("SSE_LOGS__MONGODB__DATABASE", &app.database)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "prune failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn prune_deletes_only_whole_logs_whose_last_line_is_older_and_dry_run_deletes_nothing() {
    let app = spawn_app_with(&[]).await;
    write_old(&app, "old", 1_i64, 40, &["a", "b", "c", "[DONE]"]).await;
    write_old(&app, "old", "abc", 35, &["a", "b"]).await;
    write_old(&app, "active", 1_i64, 40, &["a", "b"]).await;
    app.write("active", 1_i64, &["written today"]).await;
    app.write("new", 1_i64, &["a", "b"]).await;
    write_old(&app, "recent", 1_i64, 20, &["a"]).await;
    // Belongs to no log (no type): never deleted, however old.
    app.logs.insert_one(doc! { "_id": oid_days_ago(40, 0), "id": 1_i64, "log": "stray" }).await.unwrap();
    let total = count(&app, doc! {}).await;

    let dry = prune(&app, &["--older-than", "30d", "--dry-run"]).await;
    assert!(dry.contains("would delete old/1: 4 lines"), "{dry}");
    assert!(dry.contains("would delete old/abc: 2 lines"), "{dry}");
    assert!(dry.contains("would delete 2 logs whose last line is older than 30d"), "{dry}");
    assert!(!dry.contains("active") && !dry.contains("new/") && !dry.contains("recent"), "{dry}");
    assert_eq!(count(&app, doc! {}).await, total, "a dry run deletes nothing");

    let real = prune(&app, &["--older-than", "30d"]).await;
    assert!(real.contains("deleted old/1: 4 lines") && real.contains("deleted old/abc: 2 lines"), "{real}");
    assert_eq!(count(&app, doc! { "type": "old" }).await, 0);
    assert_eq!(count(&app, doc! { "type": "active" }).await, 3, "a log still written to is kept whole");
    assert_eq!(count(&app, doc! { "type": "new" }).await, 2);
    assert_eq!(count(&app, doc! { "type": "recent" }).await, 1);
    assert_eq!(count(&app, doc! { "log": "stray" }).await, 1);

    let again = prune(&app, &["--older-than", "30d"]).await;
    assert!(again.contains("deleted 0 logs"), "a second run finds nothing: {again}");
}

#[tokio::test]
async fn prune_refuses_an_age_it_cannot_read() {
    let output = sse_logs(&["prune", "--older-than", "30 days"]).output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an age like 30d"));
}

/// Waits until the retention task has run `passes` more full passes.
async fn passes(app: &TestApp, passes: f64) {
    let target = app.metric("sse_logs_retention_passes_total") + passes;
    let deadline = Instant::now() + PATIENCE;
    while app.metric("sse_logs_retention_passes_total") < target {
        assert!(Instant::now() < deadline, "the retention task did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_task_deletes_old_logs_but_not_one_being_viewed() {
    let app = spawn_app_with(&[("RETENTION__DAYS", "30"), ("RETENTION__INTERVAL_SECS", "1")]).await;
    let mut viewer = app.get_stream(&app.stream_url("old", "7", "")).await;
    // Never ended (an abandoned build): its stream stays open, subscribed.
    write_old(&app, "old", 7_i64, 40, &["seven 1", "seven 2"]).await;
    write_old(&app, "old", 8_i64, 40, &["eight 1", "[DONE]"]).await;
    // The viewer is subscribed and reading: it has its first line.
    assert_eq!(viewer.next_event().await.data, "seven 1");

    passes(&app, 2.0).await;
    assert_eq!(count(&app, doc! { "type": "old", "id": 8_i64 }).await, 0, "the unwatched old log is deleted");
    assert_eq!(count(&app, doc! { "type": "old", "id": 7_i64 }).await, 2, "the watched one is whole");
    assert!(app.metric("sse_logs_retention_logs_deleted_total") >= 1.0);
    assert_eq!(viewer.next_event().await.data, "seven 2");
    drop(viewer);

    let deadline = Instant::now() + PATIENCE;
    while app.metric("sse_logs_hub_subscribers") > 0.0 {
        assert!(Instant::now() < deadline, "the viewer's subscription was not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    passes(&app, 2.0).await;
    assert_eq!(count(&app, doc! { "type": "old", "id": 7_i64 }).await, 0, "once nobody watches, it goes too");
}
