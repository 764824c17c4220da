//! Test harness: `spawn_app()` runs the service on port 0 with a database of its own, dropped
//! when the test ends; `SseClient` reads a stream the way the HTML spec says a browser does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::mongo_proxy::MongoProxy;
use bson::{doc, Bson, Document};
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use mongodb::{Client, Collection};
use sse_logs::{Application, LogStreams, Settings, Shutdown};

/// Longest any single wait in a test may take before the test fails (instead of hanging).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub logs: Collection<Document>,
    pub streams: LogStreams,
    pub database: String,
    uri: String,
    shutdown: Shutdown,
    server: Option<tokio::task::JoinHandle<()>>,
    owns_database: bool,
}

pub fn mongodb_uri() -> String {
    std::env::var("SSE_LOGS_TEST_MONGODB_URI").expect(
        "SSE_LOGS_TEST_MONGODB_URI is not set: run the tests with scripts/test.sh, which starts a MongoDB-compatible server",
    )
}

/// Everything the service logged (at debug level) in this test process.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app with extra `SSE_LOGS__...` settings, e.g. `("SSE__KEEP_ALIVE_SECS", "1")`.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_against(&mongodb_uri(), overrides, true).await
}

/// Spawns the app against a MongoDB of the test's own; `wait_live: false` when it is down.
pub async fn spawn_app_against(uri: &str, overrides: &[(&str, &str)], wait_live: bool) -> TestApp {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    spawn_on(uri.to_owned(), database, overrides, true, wait_live, &|_| {}).await
}

/// Spawns the app with settings no environment variable reaches (webhooks, test-only timing).
pub async fn spawn_app_adjusted(adjust: &dyn Fn(&mut Settings)) -> TestApp {
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    spawn_on(mongodb_uri(), database, &[], true, true, adjust).await
}

/// Spawns the app with its MongoDB traffic going through a proxy that counts commands by name
/// (tests/api/mongo_proxy.rs). The test's own writes (`app.logs`) go to MongoDB directly, so
/// the proxy counts what the service asks for and nothing else.
pub async fn spawn_app_counting(overrides: &[(&str, &str)]) -> (TestApp, MongoProxy) {
    let direct = mongodb_uri();
    let proxy = MongoProxy::start(&direct).await;
    let database = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut app = spawn_on(proxy.uri(), database, overrides, true, true, &|_| {}).await;
    let client = Client::with_uri_str(&direct).await.expect("test client");
    app.logs = client.database(&app.database).collection("sse_logs");
    app.uri = direct;
    (app, proxy)
}

async fn spawn_on(
    uri: String,
    database: String,
    overrides: &[(&str, &str)],
    owns_database: bool,
    wait_live: bool,
    adjust: &dyn Fn(&mut Settings),
) -> TestApp {
    let mut env: HashMap<String, String> = HashMap::from([
        ("SSE_LOGS__MONGODB__URI".into(), uri.clone()),
        ("SSE_LOGS__MONGODB__DATABASE".into(), database.clone()),
        ("SSE_LOGS__HTTP__BIND".into(), "127.0.0.1:0".into()),
        // Streams end at once when a test stops its app; the spread has a test of its own.
        ("SSE_LOGS__SHUTDOWN__DRAIN_SECS".into(), "0".into()),
    ]);
    for (key, value) in overrides {
        env.insert(format!("SSE_LOGS__{key}"), (*value).to_owned());
    }
    log_buffer();
    let mut settings = Settings::load_from(env).expect("test settings are valid");
    adjust(&mut settings);
    let shutdown = Shutdown::new();
    let app = Application::build(settings, shutdown.clone()).await.expect("the app builds");
    let addr = app.addr();
    let streams = app.streams().clone();
    let server = tokio::spawn(app.run_until_stopped());
    let client = Client::with_uri_str(&uri).await.expect("test client");
    let logs = client.database(&database).collection("sse_logs");
    // The change stream must be running before a test writes, or its first lines could be
    // read by neither the hub nor (for a stream opened earlier) the backlog.
    if wait_live {
        wait_until_live(&streams, true).await;
    }
    TestApp {
        addr,
        http: reqwest::Client::new(),
        logs,
        streams,
        database,
        uri,
        shutdown,
        server: Some(server),
        owns_database,
    }
}

/// Waits until the hub's change stream is (or is no longer) running.
pub async fn wait_until_live(streams: &LogStreams, live: bool) {
    tokio::time::timeout(PATIENCE, streams.wait_live(live))
        .await
        .unwrap_or_else(|_| panic!("the hub did not become live={live}"));
}

impl TestApp {
    /// A figure of the app's metrics, summed over its label sets (e.g. every route).
    pub fn metric(&self, name: &str) -> f64 {
        metric_in(&self.streams.metrics(), name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn stream_url(&self, log_type: &str, id: &str, query: &str) -> String {
        self.url(&format!("/api/v1/logs/{log_type}/{id}/stream?{query}"))
    }

    /// Writes lines straight into MongoDB, as the build processes do, with an integer id.
    pub async fn write(&self, log_type: &str, id: impl Into<Bson>, lines: &[&str]) {
        let id = id.into();
        let documents: Vec<Document> =
            lines.iter().map(|line| doc! { "type": log_type, "id": id.clone(), "log": *line }).collect();
        self.logs.insert_many(documents).await.expect("insert lines");
    }

    pub async fn get_stream(&self, url: &str) -> SseClient {
        self.get_stream_with(self.http.get(url)).await
    }

    pub async fn get_stream_with(&self, request: reqwest::RequestBuilder) -> SseClient {
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("response headers in time")
            .expect("request sent");
        assert_eq!(response.status(), 200, "stream status");
        SseClient::new(response)
    }

    /// A second instance of the service on the same database, as another replica would be.
    pub async fn spawn_replica(&self) -> TestApp {
        spawn_on(self.uri.clone(), self.database.clone(), &[], false, true, &|_| {}).await
    }

    /// Another replica on the same database, with settings of its own.
    pub async fn spawn_replica_adjusted(&self, adjust: &dyn Fn(&mut Settings)) -> TestApp {
        spawn_on(self.uri.clone(), self.database.clone(), &[], false, true, adjust).await
    }

    /// Another instance on the same database listening where this one did (after it stopped).
    pub async fn restart_in_place(&self) -> TestApp {
        let bind = self.addr.to_string();
        spawn_on(self.uri.clone(), self.database.clone(), &[("HTTP__BIND", &bind)], false, true, &|_| {})
            .await
    }

    /// Stops the server and waits for it, as SIGTERM would.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(PATIENCE, server).await.expect("server stops").expect("server task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if !self.owns_database {
            return;
        }
        // The test's runtime may be gone; drop the database from a runtime of our own.
        let (uri, database) = (self.uri.clone(), self.database.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                // The server may be gone already (fault tests): do not wait long for it.
                let Ok(mut options) = mongodb::options::ClientOptions::parse(&uri).await else { return };
                options.server_selection_timeout = Some(Duration::from_secs(2));
                if let Ok(client) = Client::with_options(options) {
                    let _ = client.database(&database).drop().await;
                }
            });
        })
        .join();
    }
}

/// The `sse-logs` binary of this build, for the command-line tests.
pub fn sse_logs(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-logs"));
    command.args(args).env_remove("SSE_LOGS_SERVER").env_remove("SSE_LOGS_TOKEN").kill_on_drop(true);
    command
}

/// The `serve` binary on a fixed port, so that a restart comes back at the same address.
pub struct ServeProcess {
    pub port: u16,
    uri: String,
    database: String,
    child: Option<tokio::process::Child>,
    /// Where the process's log (its standard error, at info level) goes, across restarts.
    log_file: std::path::PathBuf,
    /// More environment for the process (e.g. `SSE_LOGS_CONFIG`).
    pub env: Vec<(String, String)>,
}

impl ServeProcess {
    pub fn new(uri: String, database: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log_file =
            std::env::temp_dir().join(format!("sse-logs-serve-{}.log", uuid::Uuid::new_v4().simple()));
        Self { port, uri, database, child: None, log_file, env: Vec::new() }
    }

    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .expect("the service's log file");
        let child = sse_logs(&["serve"])
            .env("SSE_LOGS__HTTP__BIND", format!("127.0.0.1:{}", self.port))
            .env("SSE_LOGS__MONGODB__URI", &self.uri)
            .env("SSE_LOGS__MONGODB__DATABASE", &self.database)
            // `TEST_SERVE_LOG=sse_logs=debug` shows more in a failing test's process logs.
            .env("RUST_LOG", std::env::var("TEST_SERVE_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().cloned())
            .stderr(log)
            .spawn()
            .expect("the service starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the service did not listen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Waits until `/readyz` answers 200 (the change stream is running).
    pub async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(response) = reqwest::get(self.url("/readyz")).await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(std::time::Instant::now() < deadline, "the service did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its `/metrics`, scraped.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics")).await.expect("metrics").text().await.expect("metrics text")
    }

    /// The process id of the running service.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(tokio::process::Child::id).expect("running")
    }

    /// Everything the service logged (standard error, info level) since the first start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Sends `signal` (`-KILL`, `-TERM`, `-INT`) and waits for the process to exit.
    pub async fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().unwrap().to_string();
        let _ = tokio::process::Command::new("kill").args([signal, &pid]).status().await;
        tokio::time::timeout(PATIENCE, child.wait()).await.expect("the service exits").unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log_file);
    }
}

/// Splits a stream's body into its first `retry:` value and the rest, checking that the value is
/// `sse.retry_ms` (2000 ms) plus a random extra of at most as much again.
pub fn split_retry(body: &str) -> (u64, &str) {
    let (first, rest) = body.split_once("\n\n").expect("a first frame");
    let ms: u64 = first.strip_prefix("retry: ").and_then(|ms| ms.parse().ok()).expect("retry: <ms> first");
    assert!((2000..=4000).contains(&ms), "retry: {ms} is not 2000 plus up to 2000");
    (ms, rest)
}

/// Fails unless `got` is exactly `want`, naming the counts and the first position where they
/// differ (a log of 50,000 lines is too long to print whole). `what` says whose lines they are.
pub fn assert_same_lines<G: AsRef<str> + std::fmt::Debug, W: AsRef<str> + std::fmt::Debug>(
    what: &str,
    got: &[G],
    want: &[W],
) {
    let differ = |(g, w): (&G, &W)| g.as_ref() != w.as_ref();
    if got.len() == want.len() && !got.iter().zip(want).any(differ) {
        return;
    }
    let first = got.iter().zip(want).position(differ).unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} documents stored for {} expected; first difference at position {}: {:?} vs {:?}",
        got.len(),
        want.len(),
        first + 1,
        got.get(first),
        want.get(first)
    );
}

/// Every document of a log type, in `_id` order (the order lines are served in).
pub async fn stored_documents(logs: &Collection<Document>, log_type: &str) -> Vec<Document> {
    let cursor = logs.find(doc! { "type": log_type }).sort(doc! { "_id": 1 }).await.expect("find");
    futures_util::TryStreamExt::try_collect(cursor).await.expect("read the documents")
}

/// The log collection of a test database made outside `spawn_app` (tests that run the binary).
pub async fn log_collection(database: &str) -> Collection<Document> {
    Client::with_uri_str(mongodb_uri()).await.expect("test client").database(database).collection("sse_logs")
}

/// Drops a test database made outside `spawn_app` (for tests that run the binary).
pub async fn drop_database(database: &str) {
    let client = Client::with_uri_str(mongodb_uri()).await.expect("test client");
    client.database(database).drop().await.expect("drop the test database");
}

/// The resident memory of another process, from `/proc/<pid>/statm` (Linux).
pub fn resident_memory_of(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("/proc/<pid>/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm pages");
    pages * 4096
}

/// A figure of a Prometheus text, summed over its label sets.
pub fn metric_in(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// One dispatched event, as EventSource would hand it to `onmessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub data: String,
}

/// What the parser saw next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    Comment(String),
    Retry(u64),
    End,
}

/// A spec-following SSE parser over a real response body.
pub struct SseClient {
    pub response_headers: reqwest::header::HeaderMap,
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: BytesMut,
    last_id: String,
    pub raw: Vec<u8>,
    ended: bool,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response_headers: response.headers().clone(),
            body: response.bytes_stream().boxed(),
            buf: BytesMut::new(),
            last_id: String::new(),
            raw: Vec::new(),
            ended: false,
        }
    }

    /// The `id` of the last event received: what EventSource sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
                // A CR at the very end may be the first half of CRLF: wait for more.
                if self.buf[at] == b'\r' && at + 1 == self.buf.len() && !self.ended {
                } else {
                    let line = self.buf.split_to(at).to_vec();
                    let crlf = self.buf[0] == b'\r' && self.buf.get(1) == Some(&b'\n');
                    self.buf.advance(if crlf { 2 } else { 1 });
                    return Some(String::from_utf8(line).expect("UTF-8 stream"));
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout(PATIENCE, self.body.next()).await.expect("stream bytes in time") {
                Some(Ok(chunk)) => {
                    self.raw.extend_from_slice(&chunk);
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(err)) => panic!("stream broke: {err}"),
                None => self.ended = true,
            }
        }
    }

    /// The next event, comment, retry field or end of the response.
    pub async fn next_item(&mut self) -> Item {
        let (mut data, mut event, mut saw_data) = (String::new(), String::new(), false);
        loop {
            let Some(line) = self.next_line().await else { return Item::End };
            if line.is_empty() {
                if saw_data {
                    if data.ends_with('\n') {
                        data.pop();
                    }
                    let event = if event.is_empty() { "message".to_owned() } else { event };
                    return Item::Event(Event { id: self.last_id.clone(), event, data });
                }
                event.clear();
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                return Item::Comment(comment.trim_start().to_owned());
            }
            let (field, value) = match line.find(':') {
                Some(at) => {
                    let value = &line[at + 1..];
                    (&line[..at], value.strip_prefix(' ').unwrap_or(value))
                }
                None => (line.as_str(), ""),
            };
            match field {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                    saw_data = true;
                }
                "event" => event = value.to_owned(),
                "id" => self.last_id = value.to_owned(),
                "retry" => return Item::Retry(value.parse().expect("numeric retry")),
                _ => {}
            }
        }
    }

    /// The next event, skipping comments and retry fields; panics at the end of the response.
    /// Reads the first item, `retry:`, checking it is `sse.retry_ms` (2000) plus up to as much.
    pub async fn expect_retry(&mut self) -> u64 {
        match self.next_item().await {
            Item::Retry(ms) if (2000..=4000).contains(&ms) => ms,
            other => panic!("expected retry: 2000 plus up to 2000, got {other:?}"),
        }
    }

    pub async fn next_event(&mut self) -> Event {
        loop {
            match self.next_item().await {
                Item::Event(event) => return event,
                Item::End => panic!("the stream ended; expected an event"),
                _ => {}
            }
        }
    }

    /// Reads events until the response ends; returns them all.
    pub async fn collect_to_end(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.next_item().await {
                Item::Event(event) => events.push(event),
                Item::End => return events,
                _ => {}
            }
        }
    }
}

/// Reads `n` events and returns their data.
pub async fn take_data(client: &mut SseClient, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(client.next_event().await.data);
    }
    out
}

/// Reads a stream to its end and checks it holds lines `from+1..=total` once each, in order,
/// then `[DONE]`.
pub async fn assert_gets_every_line_once(mut client: SseClient, from: usize, total: usize) {
    let events = client.collect_to_end().await;
    let expected = (from + 1..=total).map(|n| format!("line {n}")).chain(["[DONE]".to_owned()]);
    if let Some((at, (event, want))) =
        events.iter().zip(expected).enumerate().find(|(_, (e, w))| e.data != *w)
    {
        let around: Vec<(&str, &str)> = events[at.saturating_sub(3)..(at + 4).min(events.len())]
            .iter()
            .map(|e| (e.id.as_str(), e.data.as_str()))
            .collect();
        panic!(
            "client from {from}: event {at} is {:?} where {want:?} was due; around it: {around:?}",
            event.data
        );
    }
    assert_eq!(events.len(), total - from + 1, "client from {from}: wrong number of events");
    for (k, event) in events[..total - from].iter().enumerate() {
        let n = from + k + 1;
        assert_eq!(event.id, n.to_string(), "client from {from}");
        assert_eq!(event.data, format!("line {n}"), "client from {from}");
    }
    assert_eq!(events.last().unwrap().data, "[DONE]");
}
