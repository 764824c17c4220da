//! Retention at scale and in company: more than one page (10,000) of old documents pruned in one
//! run, two prunes running at once, and documents that belong to no log left alone.

use bson::{doc, Bson, Document};

use crate::helpers::{spawn_app_with, sse_logs, TestApp};
use crate::retention::{count, oid_days_ago, prune};

/// Inserts `lines` documents of one log, all made `days` ago, in batches.
async fn write_many_old(app: &TestApp, log_type: &str, id: i64, days: u64, lines: usize) {
    let documents: Vec<Document> = (0..lines)
        .map(|n| doc! { "_id": oid_days_ago(days, n as u8), "type": log_type, "id": id, "log": format!("line {n}") })
        .collect();
    for batch in documents.chunks(5_000) {
        app.logs.insert_many(batch.to_vec()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_prune_deletes_more_than_ten_thousand_old_documents_across_pages() {
    let app = spawn_app_with(&[]).await;
    // 25,000 old documents, three pages: logs 1 and 2 interleaved over the first ones, log 3 (the
    // newest) only in the last, so a prune that stopped after one page would leave it.
    for (id, days, lines) in [(1, 41, 12_000), (2, 41, 12_000), (3, 35, 1_000)] {
        write_many_old(&app, "bulk", id, days, lines).await;
    }
    write_many_old(&app, "kept", 1, 10, 500).await;

    let report = prune(&app, &["--older-than", "30d"]).await;
    assert!(report.contains("deleted bulk/1: 12000 lines"), "{report}");
    assert!(report.contains("deleted bulk/2: 12000 lines"), "{report}");
    assert!(report.contains("deleted bulk/3: 1000 lines"), "{report}");
    assert!(report.contains("deleted 3 logs"), "{report}");
    assert_eq!(count(&app, doc! { "type": "bulk" }).await, 0, "nothing old is left");
    assert_eq!(count(&app, doc! { "type": "kept" }).await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prunes_at_once_both_finish_without_error_and_leave_nothing_old() {
    let app = spawn_app_with(&[]).await;
    for id in 1..=40 {
        write_many_old(&app, "twice", id, 40, 300).await;
    }
    write_many_old(&app, "kept", 1, 10, 10).await;

    let run = || {
        sse_logs(&["prune", "--older-than", "30d"])
            .env("SSE_LOGS__MONGODB__URI", crate::helpers::mongodb_uri())
            .env("SSE_LOGS__MONGODB__DATABASE", &app.database)
            .output()
    };
    let (first, second) = tokio::join!(run(), run());
    for output in [first.unwrap(), second.unwrap()] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "a prune failed: {stderr}");
        assert!(!stderr.to_lowercase().contains("error"), "{stderr}");
    }
    assert_eq!(count(&app, doc! { "type": "twice" }).await, 0, "nothing old is left");
    assert_eq!(count(&app, doc! { "type": "kept" }).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_without_a_usable_type_or_id_do_not_break_a_prune_and_are_left_alone() {
    let app = spawn_app_with(&[]).await;
    // More than a page of them, older than the log behind them: the first page holds no log at
    // all. `id: [1, 2]` is the sly one: an equality on `id` 1 matches it.
    let strays: Vec<Document> = (0..10_500_u32)
        .map(|n| {
            let mut stray = doc! { "_id": oid_days_ago(50, n as u8), "log": "stray" };
            match n % 6 {
                0 => {}
                1 => drop(stray.insert("type", "t")),
                2 => drop(stray.insert("id", 1_i64)),
                3 => drop(stray.insert("type", "t").and(stray.insert("id", Bson::Null))),
                4 => drop(stray.insert("type", 7_i32).and(stray.insert("id", 1_i64))),
                _ => drop(stray.insert("type", "t").and(stray.insert("id", vec![1_i64, 2]))),
            }
            stray
        })
        .collect();
    for batch in strays.chunks(5_000) {
        app.logs.insert_many(batch.to_vec()).await.unwrap();
    }
    write_many_old(&app, "t", 1, 40, 20).await;

    let report = prune(&app, &["--older-than", "30d"]).await;
    assert!(report.contains("deleted t/1: 20 lines"), "{report}");
    assert!(report.contains("deleted 1 logs"), "{report}");
    assert_eq!(count(&app, doc! { "log": "stray" }).await, 10_500, "no stray document is deleted");
    assert_eq!(count(&app, doc! { "type": "t", "id": 1_i64, "log": { "$ne": "stray" } }).await, 0);
}
