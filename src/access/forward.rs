//! `auth.mode = "forward"`: another service decides, like nginx `auth_request`.
//!
//! For each new stream, snapshot or append, `auth.forward_url` is asked with the request's
//! `Cookie` and `Authorization` headers and `?type=&id=&action=read|write`. 2xx allows, 401 and
//! 403 are passed through, anything else or no answer in time is 503: never allowed on error.
//! Redirects are not followed (a login page's 200 is no yes), as nginx `auth_request` does not:
//! a 3xx is 503 too. The decider's body is never read.
//! Answers are reused for `auth.forward_cache_secs` for the same credentials and log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::{Access, AccessCheck, AccessRequest, Action, Decision};

/// Cached answers kept at most; the cache is emptied when it grows past this.
const CACHE_LIMIT: usize = 10_000;

pub(crate) struct ForwardCheck {
    http: reqwest::Client,
    url: String,
    cache_for: Duration,
    cache: Mutex<HashMap<CacheKey, (Access, Instant)>>,
}

#[derive(Hash, PartialEq, Eq)]
struct CacheKey {
    cookie: Option<String>,
    authorization: Option<String>,
    log_type: String,
    id: String,
    write: bool,
}

impl ForwardCheck {
    pub fn new(url: String, timeout: Duration, cache_for: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client builds");
        Self { http, url, cache_for, cache: Mutex::new(HashMap::new()) }
    }

    async fn ask(&self, request: &AccessRequest<'_>) -> Access {
        let header = |name| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let key = CacheKey {
            cookie: header("cookie"),
            authorization: header("authorization"),
            log_type: request.key.log_type.clone(),
            id: request.key.id.clone(),
            write: request.action == Action::Write,
        };
        if let Some((access, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if at.elapsed() < self.cache_for {
                return access.clone();
            }
        }
        let action = if key.write { "write" } else { "read" };
        let mut call = self.http.get(&self.url).query(&[("type", &key.log_type), ("id", &key.id)]);
        call = call.query(&[("action", action)]);
        for (name, value) in [("cookie", &key.cookie), ("authorization", &key.authorization)] {
            if let Some(value) = value {
                call = call.header(name, value);
            }
        }
        let access = match call.send().await {
            Ok(answer) if answer.status().is_redirection() => {
                tracing::warn!(status = %answer.status(), "the auth service redirected (a login page?); not followed");
                return Access::Unavailable("the auth service is unavailable".into());
            }
            Ok(answer) if answer.status().is_success() => Access::Allow,
            Ok(answer) if answer.status() == 401 => Access::Unauthorized("please log in".into()),
            Ok(answer) if answer.status() == 403 => Access::Forbidden("you may not see this log".into()),
            Ok(answer) => {
                tracing::warn!(status = %answer.status(), "the auth service answered neither yes nor no");
                return Access::Unavailable("the auth service is unavailable".into());
            }
            Err(err) => {
                tracing::warn!(timeout = err.is_timeout(), "the auth service did not answer");
                return Access::Unavailable("the auth service is unavailable".into());
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (access.clone(), Instant::now()));
        access
    }
}

impl AccessCheck for ForwardCheck {
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> Decision<'a> {
        Box::pin(self.ask(request))
    }
}
