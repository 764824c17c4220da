//! The systems under test: sse-logs, the seed's Sanic view and Nchan, plus MongoDB's counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};

use crate::procs::{self, Child};

/// sse-logs, the release binary, started with `serve` (`env`: more settings, e.g. redaction).
#[derive(Debug)]
pub struct SseLogs {
    pub addr: SocketAddr,
    pub child: Child,
}

impl SseLogs {
    pub async fn start(
        bin: &Path,
        uri: &str,
        database: &str,
        log: &Path,
        http: &reqwest::Client,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let port = procs::free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .env("SSE_LOGS__MONGODB__URI", uri)
            .env("SSE_LOGS__MONGODB__DATABASE", database)
            .env("SSE_LOGS__HTTP__BIND", addr.to_string())
            .env("SSE_LOGS__LIMITS__MAX_STREAMS", "50000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied());
        let mut child = Child::spawn("sse-logs", &mut command, log)?;
        procs::wait_listening(addr, &mut child, Duration::from_secs(20)).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("http://{addr}/readyz")).send().await;
            if matches!(ready, Ok(ref r) if r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err("sse-logs did not become ready (GET /readyz) within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The index of logs is built at start by reading every log: that read must not overlap
        // a measurement. The list answers 503 until it is done.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let list = http.get(format!("http://{addr}/api/v1/logs?limit=1")).send().await;
            if matches!(list, Ok(ref r) if r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err("sse-logs did not build its index of logs (GET /api/v1/logs) within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { addr, child })
    }

    /// One value from `GET /metrics`: the sum over its label sets.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = http.get(format!("http://{}/metrics", self.addr)).send().await.ok()?.text().await.ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            .filter_map(|rest| rest.rsplit(' ').next()?.trim().parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Polls a metric until `done` holds for it, for at most `limit`.
    pub async fn wait_metric(
        &self,
        http: &reqwest::Client,
        name: &str,
        limit: Duration,
        done: impl Fn(f64) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.metric(http, name).await;
            if last.is_some_and(&done) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("{name} stayed at {last:?} for {limit:?}"))
    }
}

/// The seed's Sanic view (bench/peers/seed_sanic.py) in a Python virtualenv.
#[derive(Debug)]
pub struct Seed {
    pub addr: SocketAddr,
    pub child: Child,
}

impl Seed {
    pub async fn start(python: &Path, script: &Path, uri: &str, log: &Path) -> Result<Self, String> {
        let port = procs::free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(python);
        command
            .arg(script)
            .env("SEED_MONGODB_URI", uri)
            .env("SEED_HOST", "127.0.0.1")
            .env("SEED_PORT", port.to_string())
            .env("PYTHONUNBUFFERED", "1");
        let mut child = Child::spawn("seed (Sanic)", &mut command, log)?;
        procs::wait_listening(addr, &mut child, Duration::from_secs(30)).await?;
        Ok(Self { addr, child })
    }
}

/// nginx with the Nchan module, configured from bench/peers/nchan.conf.
#[derive(Debug)]
pub struct Nchan {
    pub addr: SocketAddr,
    pub child: Child,
}

impl Nchan {
    pub async fn start(nginx: &Path, template: &Path, module: &Path, dir: &Path) -> Result<Self, String> {
        let port = procs::free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(template).map_err(|e| format!("{}: {e}", template.display()))?;
        let conf = text
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@MODULE@", &module.display().to_string());
        let conf_path: PathBuf = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let mut command = Command::new(nginx);
        command.arg("-p").arg(dir).arg("-e").arg(dir.join("error.log")).arg("-c").arg(&conf_path);
        let mut child = Child::spawn("nginx (Nchan)", &mut command, &dir.join("stdout.log"))?;
        procs::wait_listening(addr, &mut child, Duration::from_secs(10)).await?;
        Ok(Self { addr, child })
    }

    pub async fn publish(
        &self,
        http: &reqwest::Client,
        channel: &str,
        message: String,
    ) -> Result<(), String> {
        let response = http
            .post(format!("http://{}/pub/{channel}", self.addr))
            .body(message)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("Nchan publish answered {}", response.status()))
        }
    }
}

/// MongoDB's command counters (`serverStatus` `metrics.commands`), by command name.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub by_name: BTreeMap<String, u64>,
}

impl Counters {
    pub async fn read(client: &mongodb::Client) -> Result<Self, String> {
        let status = client
            .database("admin")
            .run_command(doc! { "serverStatus": 1 })
            .await
            .map_err(|e| format!("serverStatus: {e}"))?;
        let commands = status
            .get_document("metrics")
            .and_then(|m| m.get_document("commands"))
            .map_err(|_| "serverStatus has no metrics.commands".to_owned())?;
        let mut by_name = BTreeMap::new();
        for (name, value) in commands {
            if let Bson::Document(d) = value {
                by_name.insert(name.clone(), total(d));
            }
        }
        Ok(Self { by_name })
    }

    /// Commands run since `earlier`, leaving out this tool's own `serverStatus` probes.
    pub fn since(&self, earlier: &Self) -> Self {
        let by_name = self
            .by_name
            .iter()
            .filter(|(name, _)| name.as_str() != "serverStatus")
            .map(|(name, now)| (name.clone(), now.saturating_sub(*earlier.by_name.get(name).unwrap_or(&0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        Self { by_name }
    }

    pub fn count(&self, name: &str) -> u64 {
        self.by_name.get(name).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.by_name.values().sum()
    }

    /// `find 12, getMore 3` per `per` seconds (counts when `per` is 1), largest first.
    pub fn breakdown(&self, per: f64) -> String {
        let mut items: Vec<_> = self.by_name.iter().collect();
        items.sort_by(|a, b| b.1.cmp(a.1));
        let parts: Vec<String> =
            items.iter().take(4).map(|(name, n)| format!("{name} {}", figure(**n as f64 / per))).collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

fn total(d: &Document) -> u64 {
    match d.get("total") {
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(f)) => *f as u64,
        _ => 0,
    }
}

/// A figure with about three significant digits: `1.26`, `12.1`, `438`.
pub fn figure(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}
