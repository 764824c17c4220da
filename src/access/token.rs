//! `auth.mode = "token"`: signed JWTs (HS256 with a shared secret, RS256/ES256 with a public key).
//!
//! EventSource cannot set headers, so the token may come in a cookie (same origin), the
//! `access_token` query parameter (cross-origin EventSource), or `Authorization: Bearer` (tools).
//! Claims: `exp` (required), `nbf` (optional), `logs` (what may be read) and `write` (what may be
//! appended), each a list of `type:id`, `type:*` or `*`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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

    /// Every non-empty token the request carries: `Authorization: Bearer`, each cookie named
    /// `auth.cookie`, each `access_token` query parameter.
    fn tokens<'a>(&self, headers: &'a HeaderMap, query: &'a [(String, String)]) -> Vec<&'a str> {
        let bearer = headers
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let cookies = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == self.cookie).then_some(value)
            });
        let query = query.iter().filter(|(k, _)| k == "access_token").map(|(_, v)| v.as_str());
        bearer.chain(cookies).chain(query).map(str::trim).filter(|t| !t.is_empty()).collect()
    }

    /// The one token of the request. Several different ones (say a header for one log and a
    /// cookie for another) are refused rather than one picked: which one a request meant is
    /// exactly what an attacker who can plant one of them would like to choose.
    fn token<'a>(&self, headers: &'a HeaderMap, query: &'a [(String, String)]) -> Result<&'a str, Access> {
        let tokens = self.tokens(headers, query);
        match tokens.split_first() {
            None => Err(Access::Unauthorized(
                "a token is required (cookie, Authorization: Bearer or access_token)".into(),
            )),
            Some((first, rest)) if rest.iter().all(|t| t == first) => Ok(*first),
            Some(_) => Err(Access::Unauthorized(
                "conflicting credentials: the request carries more than one different token".into(),
            )),
        }
    }

    /// The claims of the request's one valid token, or the 401 to answer.
    fn claims(&self, headers: &HeaderMap, query: &[(String, String)]) -> Result<Claims, Access> {
        let token = self.token(headers, query)?;
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            // The reason (expired, bad signature, ...) helps the holder; the token itself is never echoed.
            .map_err(|err| Access::Unauthorized(format!("the token is not valid: {err}")))
    }

    fn decide(&self, request: &AccessRequest<'_>) -> Access {
        let claims = match self.claims(request.headers, request.query) {
            Ok(claims) => claims,
            Err(refusal) => return refusal,
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

    fn refuse_credentials(&self, headers: &HeaderMap, query: &[(String, String)]) -> Option<Access> {
        self.claims(headers, query).err()
    }
}

/// Signs a token with an HS256 secret (what `sse-logs token` prints).
#[cfg(feature = "cli")]
pub(crate) fn mint(secret: &str, logs: Vec<String>, write: Vec<String>, ttl_secs: u64) -> String {
    use jsonwebtoken::{EncodingKey, Header};
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = Claims { exp: now + ttl_secs, nbf: None, logs, write };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}
