//! The `[notify]` settings as written in the config file: the webhook rules (checked and
//! compiled by `rules.rs`), the retry time, and the schedule's clock that only tests change.
//! Here rather than in `config.rs`, so that the notifier never imports the settings loader.

use serde::Deserialize;

/// `[notify]`: webhooks told how logs ended (config file only; checked by `crate::notify`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// The rules, each `{url, on, types, match, secret}`.
    pub webhooks: Vec<WebhookSettings>,
    /// How long a delivery that gets no 2xx answer keeps being retried.
    pub retry_secs: u64,
    /// Test-only: the schedule's clock (never read from a file or the environment).
    #[doc(hidden)]
    #[serde(skip)]
    pub timing: NotifyTiming,
}

/// How fast the notification schedule runs. The contract's timing is the default; tests shorten
/// it so that a retry schedule or an expired lease does not take minutes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyTiming {
    /// What one second of the retry schedule (and of `notify.retry_secs`) lasts.
    pub second: std::time::Duration,
    /// How long a claimer holds a delivery before another process may take it up.
    pub lease: std::time::Duration,
    /// How often pending deliveries are looked for in MongoDB.
    pub scan_every: std::time::Duration,
    /// How far before the last line seen a catch-up read starts (writers' clocks differ).
    pub catch_up_margin: std::time::Duration,
}

impl Default for NotifyTiming {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            second: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            scan_every: Duration::from_secs(1),
            catch_up_margin: Duration::from_secs(60),
        }
    }
}

/// One `notify.webhooks` entry, as written; `crate::notify::rules` checks and compiles it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where the JSON body is POSTed (http or https).
    pub url: String,
    /// What fires it: `succeeded`, `failed`, `cancelled`, `ended`, `idle`, `match`.
    pub on: Vec<String>,
    /// Only logs of these types (all when unset).
    pub types: Option<Vec<String>>,
    /// The regular expression `match` looks for.
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// Signs each body (HMAC-SHA256) when set.
    pub secret: Option<String>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the secret nor the URL (chat webhook URLs carry their own token) is printed.
        f.debug_struct("WebhookSettings")
            .field("on", &self.on)
            .field("types", &self.types)
            .field("match", &self.pattern)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}
