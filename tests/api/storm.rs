//! Reconnect storms (issue 26) at test scale: a thousand viewers of one live log come back at
//! once, each with its `Last-Event-ID`, and MongoDB must see work per log, not per viewer.
//! Reads are counted by a proxy between the service and MongoDB (tests/api/mongo_proxy.rs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{assert_gets_every_line_once, spawn_app_counting, take_data, PATIENCE};

const BEFORE: usize = 2000;
const VIEWERS: usize = 1000;
/// Each viewer resumes from one of the last this many lines.
const RECENT: usize = 100;
const DURING: usize = 100;
/// The target: at most a handful of reads for the whole storm (2,000 viewers: 10).
const MOST_QUERIES: u64 = 10;

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|n| format!("line {n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_viewers_resuming_at_once_get_every_line_once_for_a_handful_of_mongodb_reads() {
    let (app, proxy) = spawn_app_counting(&[]).await;
    let app = Arc::new(app);
    // A viewer that follows the log while it is written, so the hub has seen every line go by,
    // as it had before a rolling deploy sent the others back.
    let mut watcher = app.get_stream(&app.stream_url("storm", "1", "")).await;
    for chunk in lines(1, BEFORE).chunks(200) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("storm", 1_i64, &refs).await;
    }
    let seen = take_data(&mut watcher, BEFORE).await;
    assert_eq!(seen.last().map(String::as_str), Some("line 2000"), "the watcher is at the live edge");
    let watcher = tokio::spawn(assert_gets_every_line_once(watcher, BEFORE, BEFORE + DURING));

    let before = proxy.counts();
    let (go_tx, go) = tokio::sync::watch::channel(false);
    let mut viewers = Vec::with_capacity(VIEWERS);
    for k in 0..VIEWERS {
        let (app, mut go) = (app.clone(), go.clone());
        let from = BEFORE - RECENT + 1 + k % RECENT;
        viewers.push(tokio::spawn(async move {
            go.wait_for(|go| *go).await.unwrap();
            let url = app.stream_url("storm", "1", "");
            let client =
                app.get_stream_with(app.http.get(url).header("Last-Event-ID", from.to_string())).await;
            assert_gets_every_line_once(client, from, BEFORE + DURING).await;
        }));
    }
    drop(go);
    let started = Instant::now();
    go_tx.send_replace(true);
    // The writer goes on while they come back: ten lines at a time, then [DONE].
    for chunk in lines(BEFORE + 1, BEFORE + DURING).chunks(10) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("storm", 1_i64, &refs).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.write("storm", 1_i64, &["[DONE]"]).await;
    // Every viewer is awaited (a failed one has said why) before the counts are read, so that
    // they are printed even when the storm is not survived.
    let mut failed = 0;
    for viewer in viewers {
        if !matches!(tokio::time::timeout(PATIENCE * 3, viewer).await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let took = started.elapsed();

    let after = proxy.counts();
    let storm: BTreeMap<&str, u64> = after
        .iter()
        .map(|(name, n)| (name.as_str(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let queries: u64 = ["find", "aggregate", "getMore"].iter().filter_map(|name| storm.get(name)).sum();
    println!(
        "storm of {VIEWERS} viewers: {} got every line once, {failed} failed, in {:.2} s; MongoDB commands: \
         {storm:?}; queries (find + aggregate + getMore): {queries}",
        VIEWERS - failed,
        took.as_secs_f64()
    );
    assert_eq!(failed, 0, "{failed} of {VIEWERS} viewers did not get every line once (see above)");
    watcher.await.unwrap();
    assert!(
        queries <= MOST_QUERIES,
        "{queries} query commands for {VIEWERS} resuming viewers (at most {MOST_QUERIES} wanted): {storm:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_coming_back_from_before_the_window_share_one_read_of_the_lines_before_it() {
    // 3,000 lines: a window starts with the last 1,000, so these viewers, 1,300 to 1,600 lines
    // back, are before it; the first of them reads the lines before it once for all.
    const WRITTEN: usize = 3000;
    const BACK: usize = 300;
    let (app, proxy) = spawn_app_counting(&[]).await;
    let app = Arc::new(app);
    // Followed while written, so the hub has seen every line go by (as in the storm above).
    let mut watcher = app.get_stream(&app.stream_url("behind", "1", "")).await;
    for chunk in lines(1, WRITTEN).chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("behind", 1_i64, &refs).await;
    }
    assert_eq!(take_data(&mut watcher, WRITTEN).await.last().map(String::as_str), Some("line 3000"));
    let before = proxy.counts();
    let resumes = app.metric("sse_logs_window_resumes_total");
    let (go_tx, go) = tokio::sync::watch::channel(false);
    let viewers: Vec<_> = (0..BACK)
        .map(|k| {
            let (app, mut go) = (app.clone(), go.clone());
            let from = 1400 + k;
            tokio::spawn(async move {
                go.wait_for(|go| *go).await.unwrap();
                let request =
                    app.http.get(app.stream_url("behind", "1", "")).header("Last-Event-ID", from.to_string());
                assert_gets_every_line_once(app.get_stream_with(request).await, from, WRITTEN + 20).await;
            })
        })
        .collect();
    drop(go);
    let started = Instant::now();
    go_tx.send_replace(true);
    for chunk in lines(WRITTEN + 1, WRITTEN + 20).chunks(5) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        app.write("behind", 1_i64, &refs).await;
    }
    app.write("behind", 1_i64, &["[DONE]"]).await;
    for viewer in viewers {
        tokio::time::timeout(PATIENCE * 3, viewer).await.expect("in time").expect("every line once");
    }
    let after = proxy.counts();
    let queries: u64 = ["find", "aggregate", "getMore"]
        .iter()
        .map(|name| after.get(*name).copied().unwrap_or(0) - before.get(*name).copied().unwrap_or(0))
        .sum();
    println!(
        "{BACK} viewers from before the window: every line once in {:.2} s, {queries} query commands",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(app.metric("sse_logs_window_resumes_total") - resumes, BACK as f64, "all from memory");
    // The window's read (3 to 6), the read before it (1 to 3), and a margin: a handful, where a
    // read per viewer made 2,108 without the reach.
    assert!(queries <= 15, "{queries} query commands for {BACK} viewers: {after:?} (before: {before:?})");
    drop(watcher);
}
