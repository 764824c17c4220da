//! The exact bytes a webhook is sent, and their signature.
//!
//! Built once per (webhook, log, event) and stored with its claim, so every attempt (from any
//! replica) sends the same bytes and a receiver can check the signature against them.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use sha2::Sha256;

use super::rules::Event;
use crate::log::{Ending, LogKey};
use crate::redact::Redactor;

/// What happened to a log, as one notification tells it.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The `on` entry that fired.
    pub event: Event,
    /// The log.
    pub key: LogKey,
    /// How it ended (unknown parts, or a log that has not ended, are `null`).
    pub ending: Ending,
    /// Positions so far, `[DONE]` included.
    pub lines: u64,
    /// For `match`: the position and text of the first matching line.
    pub line: Option<(u64, String)>,
}

/// The JSON body, redacted as every served line is; `public_url` is `http.public_url`.
pub fn body(notice: &Notice, public_url: Option<&str>, redactor: &Redactor) -> Vec<u8> {
    let key = &notice.key;
    let url = public_url.map(|base| {
        let part = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut url =
            format!("{}/logs/{}/{}", base.trim_end_matches('/'), part(&key.log_type), part(&key.id));
        if let Some((n, _)) = &notice.line {
            url.push_str(&format!("#L{n}"));
        }
        url
    });
    let line = notice.line.as_ref().map(|(n, text)| (*n, redactor.apply(text).into_owned()));
    let what = match (notice.event, notice.ending.outcome) {
        (Event::Idle, _) => "went idle".to_owned(),
        (Event::Match, _) => format!("matched at line {}", line.as_ref().map_or(0, |(n, _)| *n)),
        (_, Some(outcome)) => match notice.ending.exit_code {
            Some(code) => format!("{} (exit code {code})", outcome.as_str()),
            None => outcome.as_str().to_owned(),
        },
        (_, None) => "ended".to_owned(),
    };
    let mut text = format!("Log {}/{} {what}", key.log_type, key.id);
    if let Some((_, matched)) = &line {
        text.push_str(&format!(": {}", one_line(matched)));
    }
    if let Some(url) = &url {
        text.push_str(&format!(" {url}"));
    }
    let body = json!({
        "event": notice.event.as_str(),
        "type": key.log_type,
        "id": key.id,
        "outcome": notice.ending.outcome.map(|o| o.as_str()),
        "exit_code": notice.ending.exit_code,
        "lines": notice.lines,
        "url": url,
        "line": line.as_ref().map(|(n, text)| json!({ "n": n, "text": text })),
        "text": redactor.apply(&one_line(&text)),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The `X-Sse-Logs-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body's bytes.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn one_line(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Outcome;

    fn notice(event: Event, line: Option<(u64, &str)>) -> Notice {
        Notice {
            event,
            key: LogKey::new("deploy", "a b/1"),
            ending: Ending { outcome: Some(Outcome::Failed), exit_code: Some(101) },
            lines: 7,
            line: line.map(|(n, t)| (n, t.to_owned())),
        }
    }

    #[test]
    fn the_body_has_the_contract_fields_and_a_percent_encoded_link() {
        let bytes =
            body(&notice(Event::Failed, None), Some("https://logs.example.com/"), &Redactor::default());
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["event"], "failed");
        assert_eq!((v["type"].as_str(), v["id"].as_str()), (Some("deploy"), Some("a b/1")));
        assert_eq!(
            (v["outcome"].as_str(), v["exit_code"].as_i64(), v["lines"].as_u64()),
            (Some("failed"), Some(101), Some(7))
        );
        assert_eq!(v["url"], "https://logs.example.com/logs/deploy/a%20b%2F1");
        assert!(v["line"].is_null());
        assert_eq!(
            v["text"],
            "Log deploy/a b/1 failed (exit code 101) https://logs.example.com/logs/deploy/a%20b%2F1"
        );
        let unset = body(&notice(Event::Failed, None), None, &Redactor::default());
        assert!(serde_json::from_slice::<serde_json::Value>(&unset).unwrap()["url"].is_null());
    }

    #[test]
    fn a_matched_line_is_redacted_everywhere_in_the_body() {
        let redactor = Redactor::new(&["ghp_[a-z]+"]).unwrap();
        let bytes = body(
            &notice(Event::Match, Some((3, "token ghp_secretvalue\nleaked"))),
            Some("http://x"),
            &redactor,
        );
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("ghp_secretvalue"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["line"]["n"], 3);
        assert_eq!(v["line"]["text"], "token ***\nleaked");
        assert!(v["url"].as_str().unwrap().ends_with("#L3"));
        assert!(!v["text"].as_str().unwrap().contains('\n'));
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_exact_bytes() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_ne!(signature(b"other", b"what do ya want for nothing?"), sig);
    }
}
