//! A MongoDB-compatible server of a test's own, for the cases that stop and restart it.
//!
//! Started from `SSE_LOGS_TEST_MONGODB_BIN` (set by scripts/test.sh) as a separate process, on a
//! fixed port and storage path so that a restart brings the same data back at the same address.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MongoServer {
    pub port: u16,
    bin: String,
    dir: PathBuf,
    child: Option<Child>,
    /// More `secantusd-rs` options (ignored by the PyPI build).
    extra: Vec<String>,
}

impl MongoServer {
    /// A server on a free port, not started yet.
    pub fn new() -> Self {
        let bin = std::env::var("SSE_LOGS_TEST_MONGODB_BIN")
            .expect("SSE_LOGS_TEST_MONGODB_BIN is not set: run the tests with scripts/test.sh");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sse-logs-test-{}", uuid::Uuid::new_v4().simple()));
        Self { port, bin, dir, child: None, extra: Vec::new() }
    }

    /// A server started with more options, e.g. a smaller oplog.
    pub fn with_args(args: &[&str]) -> Self {
        let mut server = Self::new();
        server.extra = args.iter().map(|arg| (*arg).to_owned()).collect();
        server
    }

    /// Whether the options of [`MongoServer::with_args`] are used (`secantusd-rs`, not the PyPI build).
    pub fn takes_args(&self) -> bool {
        self.bin.ends_with("secantusd-rs")
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&mut self) {
        let mut command = Command::new(&self.bin);
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.join("data"))
            .args(["--cache-size", "256M"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.bin.ends_with("secantusd-rs") {
            command.args(["--log-file-max", "16MB", "--log-level", "WARNING"]).args(&self.extra);
        }
        self.child = Some(command.spawn().expect("the test MongoDB server starts"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the test MongoDB server did not listen on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it the way a restart does (SIGTERM), so that acknowledged writes are on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Sends it a signal without waiting (`-STOP` pauses it, `-CONT` resumes it).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP relay in front of a server that a test can cut (open connections dropped, new ones
/// closed at once) and restore: a network partition between the service and MongoDB while the
/// test itself still writes to MongoDB directly.
pub struct Relay {
    pub port: u16,
    open: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, state) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !*state.borrow() {
                    continue; // dropped: the client sees the connection closed
                }
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Self { port, open, task }
    }

    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
