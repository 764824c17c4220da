//! What a log and a line are: the `(type, id)` key, one stored line, the `[DONE]` marker and
//! how a log ended (its outcome).
//!
//! The store and the SSE framing both speak these words, so they live below both.
//!
//! Existing writers store `id` as an integer (the seed's Django reader used `int(id)`) or as a
//! string (its Sanic reader). A request's id is text; it matches the string itself and, when the
//! text is canonical decimal (`42`, `-7`, not `007` or `+7`), the same value as an integer.

use std::time::SystemTime;

use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use serde::{Deserialize, Serialize};

/// The text of the document that ends a log.
pub const DONE: &str = "[DONE]";

/// How the work a log records ended, as its `[DONE]` document says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    /// Every outcome, in the order metrics and docs list them.
    pub const ALL: [Outcome; 3] = [Outcome::Succeeded, Outcome::Failed, Outcome::Cancelled];

    /// The word stored in MongoDB and sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome a word names; `None` for any other text.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == word)
    }
}

/// What a `[DONE]` document says about the end: both parts optional, because the seed's
/// writers end a log with a bare `[DONE]` (an unknown outcome, sent as `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ending {
    pub outcome: Option<Outcome>,
    pub exit_code: Option<i64>,
}

impl Ending {
    /// Reads the ending of a stored `[DONE]` document. Values any writer may have stored are
    /// checked here too: an outcome that is not one of the three words, or an exit code that is
    /// not an integer, reads as unknown, so no client is ever sent a value the contract lacks.
    pub fn of_document(document: &Document) -> Self {
        let outcome = document.get_str("outcome").ok().and_then(Outcome::parse);
        let exit_code = match document.get("exit_code") {
            Some(Bson::Int32(n)) => Some(i64::from(*n)),
            Some(Bson::Int64(n)) => Some(*n),
            _ => None,
        };
        Self { outcome, exit_code }
    }

    /// The fields a `[DONE]` document written by this service adds (none when unknown).
    pub fn to_fields(self) -> Document {
        let mut fields = Document::new();
        if let Some(outcome) = self.outcome {
            fields.insert("outcome", outcome.as_str());
        }
        if let Some(code) = self.exit_code {
            fields.insert("exit_code", code);
        }
        fields
    }
}

/// The identity of one log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogKey {
    /// The `type` field, e.g. `deploy`.
    pub log_type: String,
    /// The `id` as the request gave it (text).
    pub id: String,
}

impl LogKey {
    /// A key from its two parts.
    pub fn new(log_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self { log_type: log_type.into(), id: id.into() }
    }

    /// The id as an integer when its text is canonical decimal that fits in 64 bits.
    pub fn int_id(&self) -> Option<i64> {
        canonical_int(&self.id)
    }

    /// The MongoDB filter selecting this log's documents. Values only: user text is always a
    /// BSON string, never parsed as a document, so it cannot become an operator. (Plain values,
    /// not `$eq`: some servers plan `{$eq: v}` as a scan, every server plans `v` on the index.)
    pub fn filter(&self) -> Document {
        match self.int_id() {
            Some(n) => doc! {
                "type": self.log_type.clone(),
                "id": { "$in": [Bson::Int64(n), Bson::String(self.id.clone())] },
            },
            None => doc! { "type": self.log_type.clone(), "id": self.id.clone() },
        }
    }

    /// The same selection as [`LogKey::filter`], one equality filter per stored form of the id:
    /// a range on `_id` next to an `$in` is not planned on the index by every server (the test
    /// server then reads the whole type), next to a plain value it always is.
    pub fn exact_filters(&self) -> Vec<Document> {
        match self.int_id() {
            Some(n) => vec![
                doc! { "type": self.log_type.clone(), "id": Bson::Int64(n) },
                doc! { "type": self.log_type.clone(), "id": self.id.clone() },
            ],
            None => vec![self.filter()],
        }
    }

    /// The value a write through this service stores as `id`.
    pub fn stored_id(&self) -> Bson {
        match self.int_id() {
            Some(n) => Bson::Int64(n),
            None => Bson::String(self.id.clone()),
        }
    }

    /// The key a stored document belongs to, or `None` when its `type` or `id` could never be
    /// asked for (wrong BSON types). Integers map to their canonical text, so that a subscriber
    /// for `42` hears both `42` and `"42"`, and one for `007` only `"007"`.
    pub fn of_document(document: &Document) -> Option<Self> {
        let log_type = document.get_str("type").ok()?;
        let id = match document.get("id")? {
            Bson::String(s) => s.clone(),
            Bson::Int32(n) => n.to_string(),
            Bson::Int64(n) => n.to_string(),
            // MongoDB compares numbers by value, so the filter above matches 42.0 too.
            Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => (*f as i64).to_string(),
            _ => return None,
        };
        Some(Self::new(log_type, id))
    }
}

/// One stored line: its `_id` (for de-duplication and catch-up) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub oid: ObjectId,
    pub text: String,
    /// When MongoDB committed it, for lines that came from the change stream.
    pub inserted_at: Option<SystemTime>,
    /// The `ts` an append through the service stored (millisecond precision).
    pub ts: Option<SystemTime>,
    /// For `[DONE]`: how the log ended (unknown for every other line).
    pub ending: Ending,
}

impl LogLine {
    pub fn is_done(&self) -> bool {
        self.text == DONE
    }

    /// When it was written, in ms since the epoch: the `ts` stored with it by an append through
    /// the service, else its ObjectId's time (whole seconds) for lines other writers inserted.
    /// The same line has the same time whichever route or moment it is read by.
    pub fn time_ms(&self) -> u64 {
        let at = self.ts.unwrap_or_else(|| self.oid.timestamp().into());
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads a stored document; `None` for one without an ObjectId `_id`, which cannot be
    /// ordered or de-duplicated and so is not served (logged here).
    pub fn from_document(document: &Document) -> Option<Self> {
        let Ok(oid) = document.get_object_id("_id") else {
            tracing::warn!(id = ?document.get("_id"), "skipping a log document whose _id is not an ObjectId");
            return None;
        };
        let text = match document.get("log") {
            Some(Bson::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let ts = match document.get("ts") {
            Some(Bson::DateTime(at)) => Some(at.to_system_time()),
            _ => None,
        };
        let ending = if text == DONE { Ending::of_document(document) } else { Ending::default() };
        Some(Self { oid, text, inserted_at: None, ts, ending })
    }
}

fn canonical_int(text: &str) -> Option<i64> {
    let n: i64 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_decimal_text_is_an_integer_id() {
        for (text, expected) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("007", None),
            ("+7", None),
            ("-0", None),
            ("9223372036854775808", None),
            ("4 2", None),
            ("", None),
            ("abc", None),
        ] {
            assert_eq!(LogKey::new("t", text).int_id(), expected, "{text:?}");
        }
    }

    #[test]
    fn an_integer_id_matches_the_number_and_the_text() {
        let filter = LogKey::new("deploy", "42").filter();
        assert_eq!(filter, doc! { "type": "deploy", "id": { "$in": [42_i64, "42"] } });
    }

    #[test]
    fn operator_looking_text_stays_a_plain_value() {
        let filter = LogKey::new("{\"$ne\": 1}", "$gt").filter();
        assert_eq!(filter, doc! { "type": "{\"$ne\": 1}", "id": "$gt" });
        // A string is matched as a string: the value "$gt" is no operator.
        assert_eq!(filter.get("id"), Some(&Bson::String("$gt".into())));
    }

    #[test]
    fn an_ending_is_read_only_from_values_the_contract_knows() {
        let ending = |d: Document| Ending::of_document(&d);
        let failed = Ending { outcome: Some(Outcome::Failed), exit_code: Some(2) };
        assert_eq!(ending(doc! {"outcome": "failed", "exit_code": 2_i32}), failed);
        assert_eq!(ending(doc! {"outcome": "failed", "exit_code": 2_i64}), failed);
        assert_eq!(ending(doc! {}), Ending::default());
        assert_eq!(ending(doc! {"outcome": "exploded", "exit_code": 2.5}), Ending::default());
        assert_eq!(ending(doc! {"outcome": "FAILED", "exit_code": "2"}), Ending::default());
        assert_eq!(ending(doc! {"outcome": 1}).outcome, None);
        assert_eq!(Ending::of_document(&failed.to_fields()), failed);
    }

    #[test]
    fn documents_map_to_the_key_a_request_would_use() {
        let key = |d: Document| LogKey::of_document(&d);
        assert_eq!(key(doc! {"type": "a", "id": 42_i64}), Some(LogKey::new("a", "42")));
        assert_eq!(key(doc! {"type": "a", "id": 42_i32}), Some(LogKey::new("a", "42")));
        assert_eq!(key(doc! {"type": "a", "id": "42"}), Some(LogKey::new("a", "42")));
        assert_eq!(key(doc! {"type": "a", "id": "007"}), Some(LogKey::new("a", "007")));
        assert_eq!(key(doc! {"type": "a", "id": 42.0}), Some(LogKey::new("a", "42")));
        assert_eq!(key(doc! {"type": "a", "id": 4.5}), None);
        assert_eq!(key(doc! {"type": 1, "id": 1}), None);
        assert_eq!(key(doc! {"id": 1}), None);
    }
}
