//! `sse-logs run -- COMMAND` and `push --outcome`, run as the real binary against a real service:
//! the log holds the command's output once and ends with how the command ended, and `run`
//! exits as the command did.

use std::process::{Output, Stdio};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use futures_util::StreamExt;

use crate::helpers::{
    assert_same_lines, drop_database, log_collection, mongodb_uri, spawn_app, sse_logs, stored_documents,
    ServeProcess, TestApp, PATIENCE,
};

/// `sse-logs run` into log `ci/id`, for `command`, to completion.
async fn run(app: &TestApp, id: &str, command: &[&str]) -> Output {
    let server = app.url("");
    let mut args = vec!["run", "--type", "ci", "--id", id, "--server", &server, "--"];
    args.extend_from_slice(command);
    tokio::time::timeout(PATIENCE * 3, sse_logs(&args).output()).await.expect("run finishes").unwrap()
}

/// The log's lines and how it ended, from the snapshot route.
async fn log_of(app: &TestApp, id: &str) -> (Value, Value, Value) {
    let snapshot: Value =
        app.http.get(app.url(&format!("/api/v1/logs/ci/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(snapshot["done"], true, "the log ended: {snapshot}");
    (snapshot["lines"].clone(), snapshot["outcome"].clone(), snapshot["exit_code"].clone())
}

#[tokio::test]
async fn run_ends_the_log_succeeded_on_exit_0_and_failed_with_the_code_otherwise_exiting_the_same() {
    let app = spawn_app().await;
    let ok = run(&app, "ok", &["sh", "-c", "echo out; echo err >&2"]).await;
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(ok.stdout, b"out\nerr\n", "both streams echoed, in the order written");
    assert_eq!(log_of(&app, "ok").await, (json!(["out", "err"]), json!("succeeded"), json!(0)));

    let failed = run(&app, "three", &["sh", "-c", "echo trying; echo broken >&2; exit 3"]).await;
    assert_eq!(failed.status.code(), Some(3));
    assert_eq!(log_of(&app, "three").await, (json!(["trying", "broken"]), json!("failed"), json!(3)));
}

#[tokio::test]
async fn a_command_killed_by_sigkill_is_cancelled_and_run_exits_128_plus_the_signal() {
    let app = spawn_app().await;
    let killed = run(&app, "killed", &["sh", "-c", "echo started; kill -KILL $$"]).await;
    assert_eq!(killed.status.code(), Some(137));
    assert_eq!(log_of(&app, "killed").await, (json!(["started"]), json!("cancelled"), json!(137)));
}

#[tokio::test]
async fn ctrl_c_or_sigterm_to_run_goes_to_the_command_and_the_log_says_cancelled() {
    let app = spawn_app().await;
    let server = app.url("");
    let script = "trap 'echo caught INT; exit 130' INT; trap 'echo caught TERM; exit 143' TERM; \
                  echo ready; while true; do sleep 0.05; done";
    for (signal, name, code) in [("-INT", "INT", 130), ("-TERM", "TERM", 143)] {
        let id = format!("stopped-{name}");
        let args = ["run", "--type", "ci", "--id", &id, "--server", &server, "--", "sh", "-c", script];
        let mut child = sse_logs(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        tokio::time::timeout(PATIENCE, out.read_line(&mut ready))
            .await
            .expect("the command started")
            .unwrap();
        assert_eq!(ready, "ready\n");
        // Only `run` is signalled (not its process group): the command hears it from `run`.
        let pid = child.id().unwrap().to_string();
        let sent = tokio::process::Command::new("kill").args([signal, &pid]).status().await.unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, child.wait()).await.expect("run exits").unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, format!("caught {name}\n"), "the command saw the signal");
        assert_eq!(status.code(), Some(code));
        let caught = json!(["ready", format!("caught {name}")]);
        assert_eq!(log_of(&app, &id).await, (caught, json!("cancelled"), json!(code)));
    }
}

#[tokio::test]
async fn a_command_that_cannot_be_started_is_a_clear_error_and_the_log_ends_failed_127() {
    let app = spawn_app().await;
    let missing = run(&app, "missing", &["/nonexistent/build-step", "--all"]).await;
    assert_eq!(missing.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("cannot run \"/nonexistent/build-step\""), "{stderr}");
    let (lines, outcome, code) = log_of(&app, "missing").await;
    assert_eq!((outcome, code), (json!("failed"), json!(127)));
    assert!(lines[0].as_str().unwrap().contains("cannot run"), "the log says why: {lines}");
}

#[tokio::test]
async fn output_without_a_trailing_newline_and_carriage_return_progress_are_echoed_and_stored_exactly() {
    let app = spawn_app().await;
    let printed =
        run(&app, "progress", &["sh", "-c", r"printf '10%%\r50%%\r100%%\n\nlast, no newline'"]).await;
    assert_eq!(printed.status.code(), Some(0));
    assert_eq!(printed.stdout, b"10%\r50%\r100%\n\nlast, no newline");
    let (lines, outcome, _) = log_of(&app, "progress").await;
    assert_eq!((lines, outcome), (json!(["10%\r50%\r100%", "", "last, no newline"]), json!("succeeded")));
}

#[tokio::test]
async fn push_with_an_outcome_and_an_exit_code_ends_the_log_the_same_way() {
    let app = spawn_app().await;
    let server = app.url("");
    let args = [
        "push",
        "--type",
        "ci",
        "--id",
        "piped",
        "--server",
        &server,
        "--outcome",
        "failed",
        "--exit-code",
        "2",
    ];
    let mut push = sse_logs(&args).stdin(Stdio::piped()).spawn().unwrap();
    push.stdin.take().unwrap().write_all(b"step 1\nstep 2 failed\n").await.unwrap();
    let status = tokio::time::timeout(PATIENCE, push.wait()).await.expect("push finishes").unwrap();
    assert!(status.success());
    assert_eq!(log_of(&app, "piped").await, (json!(["step 1", "step 2 failed"]), json!("failed"), json!(2)));
    let refused =
        sse_logs(&["push", "--type", "ci", "--id", "x", "--outcome", "exploded"]).output().await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "an unknown outcome is a usage error");
}

#[tokio::test]
async fn ctrl_c_once_the_command_has_exited_stops_run_retrying_the_logs_end() {
    let mut app = spawn_app().await;
    let server = app.url("");
    let args = [
        "run",
        "--type",
        "ci",
        "--id",
        "outage",
        "--server",
        &server,
        "--",
        "sh",
        "-c",
        "echo ready; read x",
    ];
    // Opened first: the stop below must come after the "ready" line was stored (else `run`
    // could be retrying that batch, not the log's end, when Ctrl-C comes).
    let mut inserts = app.logs.watch().await.expect("a change stream for the test");
    let mut child =
        sse_logs(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    tokio::time::timeout(PATIENCE, out.read_line(&mut ready)).await.expect("the command started").unwrap();
    tokio::time::timeout(PATIENCE, inserts.next()).await.expect("the first line is stored").unwrap().unwrap();
    app.stop().await;
    // The command ends (its input closes); `run` now retries writing the log's end, in vain.
    drop(child.stdin.take());
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(PATIENCE, errors.next_line()).await.expect("run retries").unwrap();
        if line.expect("run is still running").contains("looking up the last batch failed") {
            break;
        }
    }
    let pid = child.id().unwrap().to_string();
    assert!(tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.unwrap().success());
    let status = tokio::time::timeout(PATIENCE, child.wait()).await.expect("run stops at once").unwrap();
    assert_eq!(status.code(), Some(130));
    let mut said = Vec::new();
    while let Ok(Some(line)) = errors.next_line().await {
        said.push(line);
    }
    assert!(said.iter().any(|l| l.contains("stopped before the log's end was written")), "{said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_lines_of_a_command_are_stored_once_through_a_killed_and_restarted_service() {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let logs = log_collection(&database).await;
    let mut service = ServeProcess::new(mongodb_uri(), database.clone());
    service.start().await;
    service.wait_ready().await;
    let server = format!("http://127.0.0.1:{}", service.port);
    // Opened first, so that the first batch stored is seen.
    let mut inserts = logs.watch().await.expect("a change stream for the test");
    let args = ["run", "--type", "ci", "--id", "big", "--server", &server, "--", "seq", "1", "50000"];
    let run = sse_logs(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // SIGKILL just after a batch was stored, with more in flight: its answer may never arrive.
    tokio::time::timeout(PATIENCE, inserts.next()).await.expect("a batch is stored").unwrap().unwrap();
    service.signal("-KILL").await;
    service.start().await;
    let output = tokio::time::timeout(PATIENCE * 4, run.wait_with_output()).await.expect("run ends").unwrap();
    assert!(output.status.success(), "run failed: {}", String::from_utf8_lossy(&output.stderr));

    let stored = stored_documents(&logs, "ci").await;
    let texts: Vec<&str> = stored.iter().map(|d| d.get_str("log").unwrap()).collect();
    let want: Vec<String> = (1..=50_000).map(|n| n.to_string()).chain(["[DONE]".to_owned()]).collect();
    assert_same_lines("the command's log", &texts, &want);
    let done = stored.last().unwrap();
    assert_eq!(done.get_str("outcome").unwrap(), "succeeded");
    assert_eq!(done.get_i64("exit_code").ok().or(done.get_i32("exit_code").ok().map(i64::from)), Some(0));
    service.signal("-TERM").await;
    drop_database(&database).await;
}
