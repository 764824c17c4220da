//! The access modes of the `serve` binary (`auth.mode`), each an [`AccessCheck`].
//!
//! - `none`: everyone may read and append (refused on a non-loopback address unless explicit).
//! - `token`: a signed JWT naming the logs its holder may read and append.
//! - `forward`: another service decides, from the request's `Cookie` and `Authorization`.

mod forward;
mod token;

use std::time::Duration;

pub use token::{mint, Claims};

use crate::access::{AccessCheck, AllowAll};
use crate::config::{AuthMode, AuthSettings, SettingsError};

/// The check `auth` describes; fails (naming the key) when a key file cannot be read.
pub fn from_settings(auth: &AuthSettings) -> Result<Box<dyn AccessCheck>, SettingsError> {
    Ok(match auth.mode.unwrap_or(AuthMode::None) {
        AuthMode::None => Box::new(AllowAll),
        AuthMode::Token => Box::new(token::TokenCheck::new(auth)?),
        AuthMode::Forward => Box::new(forward::ForwardCheck::new(
            auth.forward_url.clone().unwrap_or_default(),
            Duration::from_millis(auth.forward_timeout_ms),
            Duration::from_secs(auth.forward_cache_secs),
        )),
    })
}

/// Does a scope entry (`deploy:42`, `deploy:*`, `*`) cover the log `log_type`/`id`?
fn scope_covers(entry: &str, log_type: &str, id: &str) -> bool {
    if entry == "*" {
        return true;
    }
    match entry.split_once(':') {
        Some((t, i)) => t == log_type && (i == "*" || i == id),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::scope_covers;

    #[test]
    fn scopes_name_one_log_every_log_of_a_type_or_everything() {
        assert!(scope_covers("deploy:42", "deploy", "42"));
        assert!(!scope_covers("deploy:42", "deploy", "420"));
        assert!(!scope_covers("deploy:42", "build", "42"));
        assert!(scope_covers("build:*", "build", "anything"));
        assert!(!scope_covers("build:*", "deploy", "1"));
        assert!(scope_covers("*", "x", "y"));
        assert!(!scope_covers("deploy", "deploy", "1"));
        assert!(scope_covers("ci:a:b", "ci", "a:b"));
    }
}
