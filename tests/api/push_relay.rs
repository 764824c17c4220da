//! `sse-logs push` when a batch's outcome is truly unknown: a relay between push and the service
//! forwards some POSTs, waits for the service's whole answer (the batch is stored by then), and
//! closes push's connection without passing the answer on. Every line must still be stored once.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::helpers::{assert_same_lines, spawn_app, sse_logs, stored_documents, PATIENCE};

/// One POST that went through the relay.
#[derive(Debug)]
struct Post {
    body: String,
    /// The status line's code the service answered with.
    status: u16,
    /// Whether the answer was withheld (the connection closed instead).
    dropped: bool,
}

/// Whether the relay withholds the answer to the `n`th POST (from 1) carrying `body`.
fn withhold(n: usize, body: &str, done_dropped: &mut bool) -> bool {
    if body.contains("\"done\":true") && !*done_dropped {
        *done_dropped = true;
        return true;
    }
    n == 1 || n == 3
}

/// Listens on a free port; every connection's requests go to `upstream`, one at a time.
async fn start_relay(upstream: u16) -> (u16, mpsc::UnboundedReceiver<Post>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut posts = 0;
        let mut done_dropped = false;
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            // One request per connection (the relay asks for `Connection: close`): handled in
            // turn, so POSTs are numbered in the order push sent them.
            let Some((head, body)) = read_message(&mut client, true).await else { continue };
            let is_post = head.starts_with("POST ");
            let mut service = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
            service.write_all(&close_after(&head)).await.unwrap();
            service.write_all(&body).await.unwrap();
            let (answer_head, answer_body) =
                read_message(&mut service, false).await.expect("the service answers");
            let status = answer_head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            if is_post {
                posts += 1;
                let text = String::from_utf8_lossy(&body).into_owned();
                let dropped = withhold(posts, &text, &mut done_dropped);
                let _ = tx.send(Post { body: text, status, dropped });
                if dropped {
                    // The service has stored the batch and answered; push never hears of it.
                    drop(client);
                    continue;
                }
            }
            let _ = client.write_all(answer_head.as_bytes()).await;
            let _ = client.write_all(&answer_body).await;
        }
    });
    (port, rx)
}

/// The request head with `Connection: close`, so that each connection carries one request.
fn close_after(head: &str) -> Vec<u8> {
    let mut out = String::new();
    for line in head.trim_end().split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}

/// Reads one HTTP/1.1 message: its head (with the blank line) and its body, sized by
/// `Content-Length`, or (an answer without one) read to the end. `None` at a clean EOF.
async fn read_message(stream: &mut TcpStream, request: bool) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0_u8; 8192];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("an ASCII head");
    let mut body = buf.split_off(head_end);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().unwrap())
    });
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "the relay reads sized bodies: {head}");
    match length {
        Some(length) => {
            while body.len() < length {
                let mut chunk = [0_u8; 8192];
                let n = stream.read(&mut chunk).await.ok()?;
                assert!(n > 0, "the body ended early");
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None if request => {}
        None => {
            stream.read_to_end(&mut body).await.ok()?;
        }
    }
    Some((head, body))
}

/// Waits for the POST carrying `line`, noting every POST seen on the way.
async fn wait_for_post(posts: &mut mpsc::UnboundedReceiver<Post>, line: &str, seen: &mut Vec<Post>) {
    let quoted = format!("\"{line}\"");
    loop {
        let post = tokio::time::timeout(PATIENCE, posts.recv()).await.expect("a POST in time").unwrap();
        let found = post.body.contains(&quoted);
        seen.push(post);
        if found {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stores_every_line_once_when_the_answers_to_stored_batches_never_arrive() {
    const PHASES: usize = 4;
    const PER_PHASE: usize = 300;
    let app = spawn_app().await;
    let (relay, mut posts) = start_relay(app.addr.port()).await;
    let server = format!("http://127.0.0.1:{relay}");
    let mut push = sse_logs(&["push", "--type", "relay", "--id", "1", "--server", &server])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    let input: Vec<String> = (1..=PHASES * PER_PHASE).map(|n| format!("line {n}")).collect();

    // A phase's lines go in only once the last one's POST went through the relay, so that push
    // makes several batches and the withheld answers fall on different ones.
    let mut seen = Vec::new();
    for phase in input.chunks(PER_PHASE) {
        let text: String = phase.iter().map(|line| format!("{line}\n")).collect();
        stdin.write_all(text.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        wait_for_post(&mut posts, phase.last().unwrap(), &mut seen).await;
    }
    drop(stdin);
    let output =
        tokio::time::timeout(PATIENCE * 2, push.wait_with_output()).await.expect("push ends").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "push failed: {stderr}");
    while let Ok(post) = posts.try_recv() {
        seen.push(post);
    }

    let withheld: Vec<&Post> = seen.iter().filter(|p| p.dropped).collect();
    assert_eq!(withheld.len(), 3, "three answers withheld: {seen:?}");
    assert!(withheld.iter().all(|p| p.status == 201), "each withheld batch was stored: {withheld:?}");
    assert!(
        withheld.iter().any(|p| p.body.contains("\"done\":true")),
        "the last batch's answer was among them"
    );
    let stored = stored_documents(&app.logs, "relay").await;
    let got: Vec<&str> = stored.iter().map(|d| d.get_str("log").unwrap()).collect();
    let mut want: Vec<&str> = input.iter().map(String::as_str).collect();
    want.push("[DONE]");
    assert_same_lines(&format!("the relayed log (push said: {stderr})"), &got, &want);
}
