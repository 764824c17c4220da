//! A small HTTP client of the service's own API, for `push` and `tail`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::backoff::Backoff;
use crate::log::{Ending, LogKey};

/// How long `push` keeps retrying one batch through an outage before it gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum AppendError {
    Finished,
    Refused(String),
}

/// One page of the snapshot route.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Where the page starts (the positions before it).
    #[serde(default)]
    pub from: u64,
    pub lines: Vec<String>,
    /// Each line's time in ms since the epoch (asked for with `times=1`).
    #[serde(default)]
    pub times: Vec<u64>,
    pub next: u64,
    pub done: bool,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Appended {
    next: u64,
}

/// What a request came back with, when it came back.
enum Outcome<T> {
    Done(T),
    /// The server said no; retrying will not help.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer, or 503: the request may or may not have taken effect.
    Unsure(String),
}

impl<T> Outcome<T> {
    /// The answer, or why there is none (refused or unsure alike).
    fn into_result(self) -> Result<T, String> {
        match self {
            Outcome::Done(value) => Ok(value),
            Outcome::Refused { message, .. } | Outcome::Unsure(message) => Err(message),
        }
    }
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Positions the log had after our last acknowledged append.
    next: Option<u64>,
}

impl ApiClient {
    pub fn new(server: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.trim_end_matches('/').to_owned(),
            token,
            next: None,
        }
    }

    pub fn log_url(&self, key: &LogKey, suffix: &str) -> String {
        let segment = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!("{}/api/v1/logs/{}/{}{suffix}", self.base, segment(&key.log_type), segment(&key.id))
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.authorize(self.http.get(url))
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: for<'de> Deserialize<'de>>(&self, request: reqwest::RequestBuilder) -> Outcome<T> {
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) => return Outcome::Unsure(err.to_string()),
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return match response.json().await {
                Ok(body) => Outcome::Done(body),
                Err(err) => Outcome::Unsure(err.to_string()),
            };
        }
        let (code, message) = match response.json::<ErrorBody>().await {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => (String::new(), format!("HTTP {status}")),
        };
        if status == 503 || status >= 500 {
            Outcome::Unsure(message)
        } else {
            Outcome::Refused { status, code, message }
        }
    }

    /// One page of the log from position `from`.
    pub async fn page(&self, key: &LogKey, from: u64, limit: u64) -> Result<Page, String> {
        self.read_page(key, from, limit).await.into_result()
    }

    async fn read_page(&self, key: &LogKey, from: u64, limit: u64) -> Outcome<Page> {
        let url = format!("{}?from={from}&limit={limit}&times=1", self.log_url(key, ""));
        self.send(self.get(&url)).await
    }

    /// The last `k` positions of the log (at most 10,000).
    pub async fn tail(&self, key: &LogKey, k: u64) -> Result<Page, String> {
        let url = format!("{}?tail={k}&times=1", self.log_url(key, ""));
        self.send(self.get(&url)).await.into_result()
    }

    /// Learns how many positions the log has; fails if it has ended.
    pub async fn find_end(&mut self, key: &LogKey) -> Result<(), AppendError> {
        let started = Instant::now();
        let mut backoff = retry_backoff();
        let mut from = 0;
        loop {
            match self.read_page(key, from, 10_000).await {
                Outcome::Done(page) if page.done => return Err(AppendError::Finished),
                Outcome::Done(page) if page.next == from => {
                    self.next = Some(from);
                    return Ok(());
                }
                Outcome::Done(page) => from = page.next,
                // Without reading the log, a batch of unknown fate could not be looked up.
                Outcome::Refused { status, message, .. } => {
                    return Err(AppendError::Refused(format!(
                        "cannot read the log to find where it ends ({status}: {message}); \
                         push needs a token that may read the log as well as append to it"
                    )))
                }
                Outcome::Unsure(message) => {
                    wait(&mut backoff, started, &message).await.map_err(AppendError::Refused)?
                }
            }
        }
    }

    /// Appends lines (and `[DONE]`), retrying through outages; a batch that may have been written
    /// is looked up (until a look-up succeeds) before anything is sent again, and only what is
    /// missing is resent.
    pub async fn append_exactly_once(
        &mut self,
        key: &LogKey,
        mut lines: Vec<String>,
        end: Option<Ending>,
    ) -> Result<u64, AppendError> {
        let done = end.is_some();
        let ending = end.unwrap_or_default();
        let started = Instant::now();
        let mut backoff = retry_backoff();
        let url = self.log_url(key, "");
        loop {
            let request = self.authorize(self.http.post(&url)).json(&json!({
                "lines": lines,
                "done": done,
                "outcome": ending.outcome,
                "exit_code": ending.exit_code,
            }));
            let failure = match self.send::<Appended>(request).await {
                Outcome::Done(appended) => {
                    self.next = Some(appended.next);
                    return Ok(appended.next);
                }
                Outcome::Refused { code, .. } if code == "log_finished" => return Err(AppendError::Finished),
                Outcome::Refused { status, message, .. } => {
                    return Err(AppendError::Refused(format!(
                        "the server refused the lines ({status}): {message}"
                    )))
                }
                Outcome::Unsure(message) => message,
            };
            // The batch may or may not have been written. Nothing is sent again until a look-up
            // has said which of its lines are stored: a resend while the look-up fails (the
            // service still down) could write them twice.
            let Some(known) = self.next else {
                return Err(AppendError::Refused("the log's position is unknown".into()));
            };
            let page = loop {
                wait(&mut backoff, started, &failure).await.map_err(AppendError::Refused)?;
                match self.page(key, known, lines.len() as u64 + 1).await {
                    Ok(page) => break page,
                    Err(message) => eprintln!("sse-logs: looking up the last batch failed: {message}"),
                }
            };
            if !lines.starts_with(&page.lines) {
                return Err(AppendError::Refused(format!(
                    "the log holds lines after position {known} that this push did not send (another writer?); \
                     stopping rather than risk writing a line twice"
                )));
            }
            let written = page.lines.len();
            if written == lines.len() && (page.done || !done) {
                self.next = Some(page.next);
                return Ok(page.next);
            }
            lines.drain(..written);
            self.next = Some(known + written as u64);
            backoff.reset();
        }
    }
}

/// The pacing of every retry of `push` and `tail`.
pub fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Sleeps before a retry, or gives up when retrying has gone on too long.
pub async fn wait(backoff: &mut Backoff, started: Instant, reason: &str) -> Result<(), String> {
    if started.elapsed() > GIVE_UP_AFTER {
        return Err(format!("giving up after {:?}: {reason}", GIVE_UP_AFTER));
    }
    let delay = backoff.next_delay();
    eprintln!("sse-logs: {reason}; retrying in {delay:?}");
    tokio::time::sleep(delay).await;
    Ok(())
}
