//! `sse-logs migrate` against a real database: the indexes once, each recorded once, idempotent,
//! and safe when two replicas start at once.

use bson::{doc, Document};
use futures_util::TryStreamExt;
use mongodb::{Database, IndexModel};

use crate::helpers::{drop_database, mongodb_uri, sse_logs, ServeProcess, PATIENCE};

fn test_database() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

async fn database(name: &str) -> Database {
    mongodb::Client::with_uri_str(mongodb_uri()).await.unwrap().database(name)
}

/// Runs `sse-logs migrate` on `database`; returns its standard output, asserting it exited 0.
async fn migrate(database: &str) -> String {
    let output = tokio::time::timeout(
        PATIENCE,
        sse_logs(&["migrate"])
            .env("SSE_LOGS__MONGODB__URI", mongodb_uri())
            .env("SSE_LOGS__MONGODB__DATABASE", database)
            .output(),
    )
    .await
    .expect("migrate finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "migrate failed: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

async fn indexes(db: &Database) -> Vec<IndexModel> {
    db.collection::<Document>("sse_logs").list_indexes().await.unwrap().try_collect().await.unwrap()
}

/// How many indexes have exactly the keys `{type: 1, id: 1, _id: 1}`.
fn log_indexes(indexes: &[IndexModel]) -> usize {
    indexes
        .iter()
        .filter(|index| {
            let keys: Vec<(&str, Option<i64>)> = index
                .keys
                .iter()
                .map(|(k, v)| {
                    (k.as_str(), v.as_i32().map(i64::from).or(v.as_i64()).or(v.as_f64().map(|f| f as i64)))
                })
                .collect();
            keys == [("type", Some(1)), ("id", Some(1)), ("_id", Some(1))]
        })
        .count()
}

async fn records(db: &Database) -> Vec<Document> {
    db.collection::<Document>("sse_logs_migrations").find(doc! {}).await.unwrap().try_collect().await.unwrap()
}

#[tokio::test]
async fn migrate_creates_the_log_index_once_records_it_and_a_second_run_changes_nothing() {
    let name = test_database();
    let db = database(&name).await;

    let first = migrate(&name).await;
    assert!(first.contains("applied 0001_log_index"), "{first}");
    let indexes_after_first = indexes(&db).await;
    assert_eq!(log_indexes(&indexes_after_first), 1, "{indexes_after_first:?}");
    assert!(first.contains("applied 0002_log_positions"), "{first}");
    let positions = indexes_after_first
        .iter()
        .find(|index| index.keys.keys().collect::<Vec<_>>() == ["type", "id", "n"])
        .expect("the position index");
    let options = positions.options.as_ref().unwrap();
    assert_eq!(options.unique, Some(true), "a position is unique within its log");
    assert!(options.partial_filter_expression.is_some(), "lines without a position are not indexed");
    let records_after_first = records(&db).await;
    let names: Vec<&str> = records_after_first.iter().map(|r| r.get_str("_id").unwrap()).collect();
    assert_eq!(names, ["0001_log_index", "0002_log_positions", "0003_notifications"]);
    let claims: Vec<_> = db
        .collection::<Document>("sse_logs_notifications")
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let claim = claims
        .iter()
        .find(|index| index.keys.keys().collect::<Vec<_>>() == ["webhook", "type", "id", "event"])
        .expect("the notification claim index");
    assert_eq!(claim.options.as_ref().unwrap().unique, Some(true), "one claim per (webhook, log, event)");
    assert!(
        records_after_first.iter().all(|r| r.get_datetime("applied_at").is_ok()),
        "{records_after_first:?}"
    );

    let second = migrate(&name).await;
    assert!(second.contains("nothing to apply"), "{second}");
    let indexes_after_second = indexes(&db).await;
    assert_eq!(
        format!("{indexes_after_second:?}"),
        format!("{indexes_after_first:?}"),
        "the second run changed the indexes"
    );
    assert_eq!(records(&db).await, records_after_first, "the second run changed the records");
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_migrating_on_start_and_a_concurrent_migrate_both_succeed_with_one_index_and_one_record() {
    let name = test_database();
    let db = database(&name).await;
    // Two replicas starting at once: `serve` (migrate_on_start is the default) and `migrate`.
    let mut service = ServeProcess::new(mongodb_uri(), name.clone());
    let (_, stdout) = tokio::join!(service.start(), migrate(&name));
    // Either may apply any of the migrations first (`serve` may have applied some already).
    assert!(stdout.contains("applied 000") || stdout.contains("nothing to apply"), "{stdout}");
    service.wait_ready().await;
    // The service logs when its own migration pass has finished (applied or found applied).
    let deadline = std::time::Instant::now() + PATIENCE;
    while !service.log().contains("migrations up to date") {
        assert!(std::time::Instant::now() < deadline, "serve never finished migrating: {}", service.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        !service.log().contains("migrations not applied yet"),
        "serve's migration failed: {}",
        service.log()
    );

    let indexes = indexes(&db).await;
    assert_eq!(log_indexes(&indexes), 1, "{indexes:?}");
    let records = records(&db).await;
    assert_eq!(records.len(), 3, "one record per migration: {records:?}");
    assert!(service.signal("-TERM").await.success());
    drop_database(&name).await;
}
