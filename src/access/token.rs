//! `auth.mode = "token"`: signed JWTs (HS256 with a shared secret, RS256/ES256 with a public key).
//!
//! EventSource cannot set headers, so the token may come in a cookie (same origin), the
//! `access_token` query parameter (cross-origin EventSource), or `Authorization: Bearer` (tools).
//! Claims: `exp` (required), `nbf` (optional), `logs` (what may be read) and `write` (what may be
//! appended), each a list of `type:id`, `type:*` or `*`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use warp::http::HeaderMap;

use super::scope_covers;
use crate::access::{Access, AccessCheck, AccessRequest, Action, Decision};
use crate::config::{AuthSettings, SettingsError, TokenAlgorithm};

/// What a token grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Logs the holder may read.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Logs the holder may append to.
    #[serde(default)]
    pub write: Vec<String>,
}

pub(crate) struct TokenCheck {
    key: DecodingKey,
    validation: Validation,
    cookie: String,
}

impl TokenCheck {
    pub fn new(auth: &AuthSettings) -> Result<Self, SettingsError> {
        let invalid = |key, message: String| SettingsError::Invalid { key, message };
        let algorithm = match auth.algorithm {
            TokenAlgorithm::HS256 => Algorithm::HS256,
            TokenAlgorithm::RS256 => Algorithm::RS256,
            TokenAlgorithm::ES256 => Algorithm::ES256,
        };
        let key = match (algorithm, &auth.secret, &auth.public_key_file) {
            (Algorithm::HS256, Some(secret), _) => DecodingKey::from_secret(secret.as_bytes()),
            (Algorithm::RS256 | Algorithm::ES256, _, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid("auth.public_key_file", format!("{path}: {e}")))?;
                let key = if algorithm == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                };
                key.map_err(|e| invalid("auth.public_key_file", format!("{path}: {e}")))?
            }
            _ => return Err(invalid("auth.secret", format!("no key for {:?}", auth.algorithm))),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self { key, validation, cookie: auth.cookie.clone() })
    }

    fn token<'a>(&self, headers: &'a HeaderMap, request: &'a AccessRequest<'a>) -> Option<&'a str> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let cookie = || {
            headers
                .get_all("cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    (name == self.cookie).then_some(value)
                })
        };
        bearer.or_else(cookie).or_else(|| request.query_param("access_token")).map(str::trim)
    }

    fn decide(&self, request: &AccessRequest<'_>) -> Access {
        let Some(token) = self.token(request.headers, request) else {
            return Access::Unauthorized(
                "a token is required (cookie, Authorization: Bearer or access_token)".into(),
            );
        };
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            // The reason (expired, bad signature, ...) helps the holder; the token itself is never echoed.
            Err(err) => return Access::Unauthorized(format!("the token is not valid: {err}")),
        };
        let scope = match request.action {
            Action::Read => &claims.logs,
            Action::Write => &claims.write,
        };
        let (log_type, id) = (&request.key.log_type, &request.key.id);
        if scope.iter().any(|entry| scope_covers(entry, log_type, id)) {
            Access::Allow
        } else {
            let verb = if request.action == Action::Read { "read" } else { "append to" };
            Access::Forbidden(format!("the token does not allow to {verb} {log_type}/{id}"))
        }
    }
}

impl AccessCheck for TokenCheck {
    fn check<'a>(&'a self, request: &'a AccessRequest<'a>) -> Decision<'a> {
        Box::pin(std::future::ready(self.decide(request)))
    }
}

/// Signs a token with an HS256 secret (what `sse-logs token` prints).
pub(crate) fn mint(secret: &str, logs: Vec<String>, write: Vec<String>, ttl_secs: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = Claims { exp: now + ttl_secs, nbf: None, logs, write };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}
