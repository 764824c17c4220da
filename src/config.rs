//! Typed settings, loaded in layers by the `config` crate.
//!
//! Later layers win: built-in defaults, `config/default.toml` (optional), the file named by
//! `SSE_LOGS_CONFIG`, then `SSE_LOGS__<SECTION>__<KEY>` environment variables. Every value is
//! checked once at start so that a typo fails loudly, naming the key, instead of at first use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

pub use crate::notify::settings::{NotifySettings, NotifyTiming, WebhookSettings};

/// Everything the service can be told from outside.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[http]`
    pub http: HttpSettings,
    /// `[mongodb]`
    pub mongodb: MongoSettings,
    /// `[sse]`
    pub sse: SseSettings,
    /// `[limits]`
    pub limits: Limits,
    /// `[log]`
    pub log: LogSettings,
    /// `[auth]`
    pub auth: AuthSettings,
    /// `[cors]`
    pub cors: CorsSettings,
    /// `[retention]`
    pub retention: RetentionSettings,
    /// `[index]`
    pub index: IndexSettings,
    /// `[redact]`
    pub redact: RedactSettings,
    /// `[shutdown]`
    pub shutdown: ShutdownSettings,
    /// `[window]`
    pub window: WindowSettings,
    /// `[notify]`
    pub notify: NotifySettings,
}

/// `[window]`: each followed log's recent lines, kept in memory so that viewers coming back
/// (a reconnect storm) resume without reading MongoDB each.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    /// Bytes of one log's recent lines kept (0: no windows).
    pub bytes_per_log: usize,
    /// Bytes of all windows together.
    pub bytes: usize,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self { bytes_per_log: 1 << 20, bytes: 64 << 20 }
    }
}

/// `[shutdown]`: how a stopping process lets its viewers go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Streams end at random moments over this many seconds (0: all at once).
    pub drain_secs: u64,
}

impl ShutdownSettings {
    /// The contract's default spread.
    pub const DEFAULT_DRAIN_SECS: u64 = 2;
}

/// `[redact]`: secrets that never leave the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactSettings {
    /// Regular expressions whose matches become `***` in every line served and appended. In the
    /// environment, `SSE_LOGS__REDACT__PATTERNS` holds one pattern, or several on separate lines.
    pub patterns: Vec<String>,
    /// The patterns compiled, with the patterns they were compiled from: checked at load, used
    /// at start, built once.
    #[serde(skip)]
    compiled: std::sync::OnceLock<(Vec<String>, crate::redact::Redactor)>,
}

impl RedactSettings {
    /// The patterns as a [`Redactor`](crate::redact::Redactor), or the error naming the key.
    pub fn redactor(&self) -> Result<crate::redact::Redactor, SettingsError> {
        if let Some((patterns, redactor)) = self.compiled.get().filter(|(p, _)| *p == self.patterns) {
            debug_assert_eq!(patterns, &self.patterns);
            return Ok(redactor.clone());
        }
        let redactor = crate::redact::Redactor::new(&self.patterns)
            .map_err(|err| SettingsError::Invalid { key: "redact.patterns", message: err.to_string() })?;
        let _ = self.compiled.set((self.patterns.clone(), redactor.clone()));
        Ok(redactor)
    }
}

/// `[retention]`: deleting old logs (off unless `days` is set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Whole logs whose last line is older than this many days are deleted in the background.
    pub days: Option<u64>,
    /// Seconds between two passes of the retention task.
    pub interval_secs: u64,
}

/// `[http]`: where to listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on; port 0 picks a free port (tests use that).
    pub bind: SocketAddr,
    /// Seconds a client has to send a request's headers (slow clients are cut off).
    pub header_read_timeout_secs: u64,
    /// The address people reach the service at, for links in notifications (unset: no links).
    pub public_url: Option<String>,
}

/// `[mongodb]`: where the logs are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    /// Connection string; a replica set or sharded cluster (change streams need one).
    pub uri: String,
    /// Database of the log collection.
    pub database: String,
    /// The log collection: one document `{type, id, log}` per line.
    pub collection: String,
    /// Apply pending migrations when `serve` starts, so a fresh deployment just works.
    pub migrate_on_start: bool,
    /// Seconds the change stream may stay silent before readiness reports it stalled.
    pub change_stream_stall_secs: u64,
}

impl MongoSettings {
    /// The default of `change_stream_stall_secs`: an idle change stream answers about every second.
    pub const DEFAULT_STALL_SECS: u64 = 30;
}

/// `[sse]`: stream timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseSettings {
    /// Seconds between `: keep-alive` comments on an idle stream.
    pub keep_alive_secs: u64,
    /// The `retry:` sent first: how long EventSource waits before reconnecting.
    pub retry_ms: u64,
}

/// `[limits]`: what one process accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most streams open at once; more get 503.
    pub max_streams: usize,
    /// Largest append body; larger ones get 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
}

/// `[index]`: the in-memory list of logs behind `GET /api/v1/logs` and the index page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSettings {
    /// Days of lines read at start to build the list (by `_id` time); 0 lists only logs seen live.
    pub window_days: u64,
    /// Most logs kept; beyond it the least recently updated are forgotten.
    pub max_logs: usize,
    /// A live log with no line for this long is listed as idle (its writer may have died).
    pub idle_after_secs: u64,
}

/// `[log]`: the process's own logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
}

/// `[auth]`: who may read and append.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// `none`, `token` or `forward`. Unset means `none` on a loopback address and a refusal to
    /// start anywhere else.
    pub mode: Option<AuthMode>,
    /// `token`: the HS256 shared secret.
    pub secret: Option<String>,
    /// `token`: a PEM public key file, for RS256 or ES256 tokens.
    pub public_key_file: Option<String>,
    /// `token`: HS256, RS256 or ES256.
    pub algorithm: TokenAlgorithm,
    /// `token`: the cookie a browser sends the token in.
    pub cookie: String,
    /// `forward`: the URL asked for each new stream or append (like nginx `auth_request`).
    pub forward_url: Option<String>,
    /// `forward`: how long to wait for its answer.
    pub forward_timeout_ms: u64,
    /// `forward`: how long an answer is reused for the same credentials and log.
    pub forward_cache_secs: u64,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key_file", &self.public_key_file)
            .field("algorithm", &self.algorithm)
            .field("cookie", &self.cookie)
            .field("forward_url", &self.forward_url)
            .finish_non_exhaustive()
    }
}

/// The access control modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may read and append.
    None,
    /// Signed tokens (JWT) from a cookie, `Authorization: Bearer` or `access_token`.
    Token,
    /// Ask another service, with the request's `Cookie` and `Authorization`.
    Forward,
}

/// How tokens are signed in `token` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TokenAlgorithm {
    /// HMAC with SHA-256 and the shared `auth.secret`.
    HS256,
    /// RSA with SHA-256; `auth.public_key_file` holds the RSA public key.
    RS256,
    /// ECDSA P-256 with SHA-256; `auth.public_key_file` holds the EC public key.
    ES256,
}

/// `[cors]`: which other origins may use the API from a browser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins (`https://ci.example.com`); empty means same-origin only.
    pub allowed_origins: Vec<String>,
}

/// How the process logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the settings could not be loaded; the message always names the offending key or file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file or value could not be read.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value was read but makes no sense.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, e.g. `http.bind`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Default for SseSettings {
    fn default() -> Self {
        Self { keep_alive_secs: 15, retry_ms: 2000 }
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        Self { window_days: 7, max_logs: 100_000, idle_after_secs: 600 }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_streams: 10_000, max_body_bytes: 1_048_576, max_header_bytes: 65_536 }
    }
}

/// Every default, written once; the embedding API's builder starts from the same values.
fn defaults(builder: Builder) -> Result<Builder, config::ConfigError> {
    let (sse, limits, index) = (SseSettings::default(), Limits::default(), IndexSettings::default());
    let window = WindowSettings::default();
    builder
        .set_default("http.bind", "127.0.0.1:8080")?
        .set_default("http.header_read_timeout_secs", 10)?
        .set_default("mongodb.uri", "mongodb://127.0.0.1:27017")?
        .set_default("mongodb.database", "popop")?
        .set_default("mongodb.collection", "sse_logs")?
        .set_default("mongodb.migrate_on_start", true)?
        .set_default("mongodb.change_stream_stall_secs", MongoSettings::DEFAULT_STALL_SECS)?
        .set_default("sse.keep_alive_secs", sse.keep_alive_secs)?
        .set_default("sse.retry_ms", sse.retry_ms)?
        .set_default("limits.max_streams", u64::try_from(limits.max_streams).unwrap_or(u64::MAX))?
        .set_default("limits.max_body_bytes", limits.max_body_bytes)?
        .set_default("limits.max_header_bytes", u64::try_from(limits.max_header_bytes).unwrap_or(u64::MAX))?
        .set_default("log.format", "text")?
        .set_default("auth.algorithm", "HS256")?
        .set_default("auth.cookie", "sse_logs_token")?
        .set_default("auth.forward_timeout_ms", 2000)?
        .set_default("auth.forward_cache_secs", 5)?
        .set_default("retention.interval_secs", 3600)?
        .set_default("redact.patterns", Vec::<String>::new())?
        .set_default("cors.allowed_origins", Vec::<String>::new())?
        .set_default("shutdown.drain_secs", ShutdownSettings::DEFAULT_DRAIN_SECS)?
        .set_default("index.window_days", index.window_days)?
        .set_default("index.max_logs", u64::try_from(index.max_logs).unwrap_or(u64::MAX))?
        .set_default("index.idle_after_secs", index.idle_after_secs)?
        .set_default("window.bytes_per_log", u64::try_from(window.bytes_per_log).unwrap_or(u64::MAX))?
        .set_default("window.bytes", u64::try_from(window.bytes).unwrap_or(u64::MAX))?
        .set_default("notify.webhooks", Vec::<String>::new())?
        .set_default("notify.retry_secs", 3600)
}

type Builder = config::builder::ConfigBuilder<config::builder::DefaultState>;

impl Settings {
    /// Loads settings from the real process environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_from(std::env::vars().collect())
    }

    /// Loads settings from the given environment; tests pass their own map.
    pub fn load_from(mut env: HashMap<String, String>) -> Result<Self, SettingsError> {
        let mut builder = defaults(config::Config::builder())?;
        // A regular expression may hold a comma, so these are one per line, not comma-separated.
        let redact = env.remove("SSE_LOGS__REDACT__PATTERNS");
        builder = builder.add_source(config::File::with_name("config/default").required(false));
        if let Some(path) = env.get("SSE_LOGS_CONFIG") {
            builder = builder.add_source(config::File::with_name(path).required(true));
        }
        let env_source = config::Environment::with_prefix("SSE_LOGS")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("cors.allowed_origins")
            .try_parsing(true)
            .source(Some(env.into_iter().collect()));
        let mut builder = builder.add_source(env_source);
        if let Some(patterns) = redact {
            let patterns: Vec<String> =
                patterns.lines().filter(|p| !p.is_empty()).map(str::to_owned).collect();
            builder = builder.set_override("redact.patterns", patterns)?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, message: &str| Err(SettingsError::Invalid { key, message: message.to_owned() });
        if !self.mongodb.uri.starts_with("mongodb://") && !self.mongodb.uri.starts_with("mongodb+srv://") {
            return invalid("mongodb.uri", "expected a mongodb:// or mongodb+srv:// URI");
        }
        if self.mongodb.database.is_empty() {
            return invalid("mongodb.database", "must not be empty");
        }
        if self.mongodb.collection.is_empty() {
            return invalid("mongodb.collection", "must not be empty");
        }
        if self.sse.keep_alive_secs == 0 {
            return invalid("sse.keep_alive_secs", "must be at least 1");
        }
        if self.limits.max_streams == 0 {
            return invalid("limits.max_streams", "must be at least 1");
        }
        if self.mongodb.change_stream_stall_secs == 0 {
            return invalid("mongodb.change_stream_stall_secs", "must be at least 1");
        }
        if self.http.header_read_timeout_secs == 0 {
            return invalid("http.header_read_timeout_secs", "must be at least 1");
        }
        self.redact.redactor()?;
        if self.retention.days == Some(0) {
            return invalid("retention.days", "must be at least 1 (or unset to keep logs forever)");
        }
        if self.retention.interval_secs == 0 {
            return invalid("retention.interval_secs", "must be at least 1");
        }
        // The process exits within 5 s of the signal, streams ended and connections closed.
        if self.shutdown.drain_secs > 4 {
            return invalid("shutdown.drain_secs", "must be at most 4 (the process exits within 5 s)");
        }
        if self.limits.max_body_bytes == 0 {
            return invalid("limits.max_body_bytes", "must be at least 1");
        }
        // The HTTP/1.1 streaming path takes a request head of up to 8 KiB without hyper.
        if self.limits.max_header_bytes < 8192 {
            return invalid("limits.max_header_bytes", "must be at least 8192");
        }
        if self.index.max_logs == 0 {
            return invalid("index.max_logs", "must be at least 1");
        }
        if self.index.idle_after_secs == 0 {
            return invalid("index.idle_after_secs", "must be at least 1");
        }
        if self.window.bytes_per_log > self.window.bytes {
            return invalid("window.bytes_per_log", "must be at most window.bytes");
        }
        if self.index.window_days > 36_500 {
            return invalid("index.window_days", "must be at most 36500");
        }
        if let Some(url) = &self.http.public_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return invalid("http.public_url", "expected an http:// or https:// URL");
            }
        }
        if let Err((key, message)) = crate::notify::rules::Rules::new(&self.notify) {
            return Err(SettingsError::Invalid { key, message });
        }
        self.validate_auth()
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let invalid = |key, message: &str| Err(SettingsError::Invalid { key, message: message.to_owned() });
        let auth = &self.auth;
        match auth.mode {
            None if !self.http.bind.ip().is_loopback() => invalid(
                "auth.mode",
                "is not set and http.bind is not a loopback address; set auth.mode to token or forward, \
                 or to none to serve every log to anyone who can reach it",
            ),
            Some(AuthMode::Token) if auth.secret.is_none() && auth.public_key_file.is_none() => invalid(
                "auth.secret",
                "token mode needs auth.secret (HS256) or auth.public_key_file (RS256/ES256)",
            ),
            Some(AuthMode::Token)
                if auth.algorithm == TokenAlgorithm::HS256
                    && auth.secret.as_deref().is_none_or(|s| s.len() < 16) =>
            {
                invalid("auth.secret", "must be at least 16 characters for HS256")
            }
            Some(AuthMode::Forward)
                if !auth.forward_url.as_deref().is_some_and(|u| u.starts_with("http")) =>
            {
                invalid("auth.forward_url", "forward mode needs an http:// or https:// URL")
            }
            _ => Ok(()),
        }?;
        if let Some(origin) =
            self.cors.allowed_origins.iter().find(|o| o.as_str() == "*" || !o.contains("://"))
        {
            return Err(SettingsError::Invalid {
                key: "cors.allowed_origins",
                message: format!("{origin:?} is not an exact origin like https://ci.example.com"),
            });
        }
        Ok(())
    }
}

impl SseSettings {
    /// `keep_alive_secs` as a duration.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::load_from(env(&[])).unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.mongodb.uri, "mongodb://127.0.0.1:27017");
        assert_eq!(s.mongodb.database, "popop");
        assert_eq!(s.mongodb.collection, "sse_logs");
        assert_eq!(s.sse.keep_alive_secs, 15);
        assert_eq!(s.sse.retry_ms, 2000);
        assert_eq!(s.limits.max_streams, 10000);
        assert_eq!(s.limits.max_body_bytes, 1_048_576);
        assert_eq!(s.limits.max_header_bytes, 65_536);
        assert_eq!(s.shutdown.drain_secs, 2);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.index.window_days, 7);
        assert_eq!(s.index.idle_after_secs, 600);
        assert_eq!(s.index.max_logs, 100_000);
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = Settings::load_from(env(&[
            ("SSE_LOGS__SSE__KEEP_ALIVE_SECS", "3"),
            ("SSE_LOGS__MONGODB__DATABASE", "other"),
            ("SSE_LOGS__LOG__FORMAT", "json"),
        ]))
        .unwrap();
        assert_eq!(s.sse.keep_alive_secs, 3);
        assert_eq!(s.mongodb.database, "other");
        assert_eq!(s.log.format, LogFormat::Json);
    }

    #[test]
    fn an_unknown_key_fails_naming_it_whether_a_key_or_a_section_and_from_a_file_too() {
        let key = Settings::load_from(env(&[("SSE_LOGS__LIMITS__MAX_STREAM", "3")])).unwrap_err().to_string();
        assert!(key.contains("max_stream") && key.contains("limits"), "{key}");
        let section = Settings::load_from(env(&[("SSE_LOGS__HTTTP__BIND", "x")])).unwrap_err().to_string();
        assert!(section.contains("htttp"), "{section}");
        let file = std::env::temp_dir().join(format!("sse-logs-typo-{}.toml", std::process::id()));
        std::fs::write(&file, "[sse]\nkeep_alive_sec = 5\n").unwrap();
        let path = file.to_str().unwrap().to_owned();
        let from_file = Settings::load_from(env(&[("SSE_LOGS_CONFIG", &path)])).unwrap_err().to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(from_file.contains("keep_alive_sec"), "{from_file}");
        // Variables outside the `SSE_LOGS__` prefix (the CLI's own) are not settings.
        assert!(Settings::load_from(env(&[("SSE_LOGS_SERVER", "http://x"), ("SSE_LOGS_TOKEN", "t")])).is_ok());
    }

    #[test]
    fn a_drain_longer_than_the_exit_bound_names_its_key() {
        let err =
            Settings::load_from(env(&[("SSE_LOGS__SHUTDOWN__DRAIN_SECS", "5")])).unwrap_err().to_string();
        assert!(err.contains("shutdown.drain_secs"), "{err}");
    }

    #[test]
    fn windows_default_to_a_mebibyte_per_log_and_a_per_log_bound_over_the_total_names_its_key() {
        let s = Settings::load_from(env(&[])).unwrap();
        assert_eq!((s.window.bytes_per_log, s.window.bytes), (1 << 20, 64 << 20));
        let err = Settings::load_from(env(&[("SSE_LOGS__WINDOW__BYTES_PER_LOG", "70000000")])).unwrap_err();
        assert!(err.to_string().contains("window.bytes_per_log"), "{err}");
    }

    #[test]
    fn a_bad_number_names_its_key() {
        let err = Settings::load_from(env(&[("SSE_LOGS__SSE__RETRY_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("sse.retry_ms"), "{err}");
    }

    #[test]
    fn a_bad_address_names_its_key() {
        let err = Settings::load_from(env(&[("SSE_LOGS__HTTP__BIND", "localhost")])).unwrap_err();
        assert!(err.to_string().contains("http.bind"), "{err}");
    }

    #[test]
    fn redact_patterns_come_one_per_line_and_a_bad_one_names_the_key_and_the_pattern() {
        let s =
            Settings::load_from(env(&[("SSE_LOGS__REDACT__PATTERNS", "ghp_[a-z]{3,5}\nAKIA[0-9A-Z]{16}\n")]))
                .unwrap();
        assert_eq!(s.redact.patterns, ["ghp_[a-z]{3,5}", "AKIA[0-9A-Z]{16}"]);
        let err = Settings::load_from(env(&[("SSE_LOGS__REDACT__PATTERNS", "ok\n(unclosed")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("redact.patterns") && text.contains("(unclosed"), "{text}");
    }

    #[test]
    fn an_unknown_token_algorithm_names_its_key() {
        let err = Settings::load_from(env(&[("SSE_LOGS__AUTH__ALGORITHM", "HS512")])).unwrap_err();
        assert!(err.to_string().contains("auth.algorithm"), "{err}");
    }

    #[test]
    fn the_idle_time_is_a_setting_and_a_typo_in_its_section_names_the_key() {
        let s = Settings::load_from(env(&[("SSE_LOGS__INDEX__IDLE_AFTER_SECS", "2")])).unwrap();
        assert_eq!(s.index.idle_after_secs, 2);
        let err = Settings::load_from(env(&[("SSE_LOGS__INDEX__IDLE_AFTR_SECS", "2")])).unwrap_err();
        assert!(err.to_string().contains("idle_aftr_secs"), "{err}");
        let err = Settings::load_from(env(&[("SSE_LOGS__INDEX__IDLE_AFTER_SECS", "0")])).unwrap_err();
        assert!(err.to_string().contains("index.idle_after_secs"), "{err}");
    }

    fn from_file(name: &str, toml: &str) -> Result<Settings, SettingsError> {
        let file = std::env::temp_dir().join(format!("sse-logs-{name}-{}.toml", std::process::id()));
        std::fs::write(&file, toml).unwrap();
        let result = Settings::load_from(env(&[("SSE_LOGS_CONFIG", file.to_str().unwrap())]));
        std::fs::remove_file(&file).unwrap();
        result
    }

    #[test]
    fn webhooks_are_read_from_a_file_with_their_defaults() {
        let s = from_file(
            "hooks",
            "[http]\npublic_url = \"https://logs.example.com/\"\n[[notify.webhooks]]\n\
             url = \"https://hooks.example.com/a\"\non = [\"failed\", \"match\"]\nmatch = \"panicked\"\n\
             types = [\"deploy\"]\nsecret = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(s.notify.retry_secs, 3600);
        assert_eq!(s.notify.webhooks.len(), 1);
        assert_eq!(s.notify.webhooks[0].pattern.as_deref(), Some("panicked"));
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(Settings::load_from(env(&[])).unwrap().http.public_url, None);
    }

    #[test]
    fn bad_webhook_rules_fail_at_start_naming_the_key() {
        let hook = |body: &str| from_file("badhook", &format!("[[notify.webhooks]]\n{body}\n"));
        let cases = [
            ("url = \"https://h.example\"\non = [\"finished\"]", "notify.webhooks.on"),
            ("url = \"https://h.example\"\non = [\"match\"]", "notify.webhooks.match"),
            ("url = \"https://h.example\"\non = [\"match\"]\nmatch = \"(open\"", "notify.webhooks.match"),
            ("url = \"ftp://h.example\"\non = [\"failed\"]", "notify.webhooks.url"),
            ("url = \"https://h.example\"\non = [\"failed\"]\nsecrett = \"x\"", "secrett"),
        ];
        for (body, key) in cases {
            let err = hook(body).unwrap_err().to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
        let err = from_file("badurl", "[http]\npublic_url = \"logs.example.com\"\n").unwrap_err().to_string();
        assert!(err.contains("http.public_url"), "{err}");
    }

    #[test]
    fn a_missing_config_file_named_explicitly_is_an_error() {
        let err = Settings::load_from(env(&[("SSE_LOGS_CONFIG", "/nonexistent/sse-logs.toml")])).unwrap_err();
        assert!(err.to_string().contains("sse-logs"), "{err}");
    }
}
