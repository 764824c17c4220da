//! Redaction: secrets matched by `redact.patterns` never leave the service.
//!
//! Applied where lines come out of MongoDB (every backlog cursor, page, tail and change event, so
//! every route and format is covered, including lines other processes wrote straight into the
//! collection) and to every line appended through the service (so they never reach storage).
//! The patterns are joined into one regular expression: one pass per line however many there are.

use std::borrow::Cow;

use regex::Regex;

use crate::log::DONE;

/// What a match is replaced by.
pub const MASK: &str = "***";

/// A set of patterns whose matches are replaced by `***`; empty means nothing is touched.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    joined: Option<Regex>,
}

/// A pattern that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("pattern {pattern:?} is not a valid regular expression: {reason}")]
pub struct InvalidPattern {
    /// The pattern as given.
    pub pattern: String,
    /// What the regex parser said.
    pub reason: String,
}

impl Redactor {
    /// Compiles `patterns` (Rust `regex` syntax); each is checked on its own so that an error
    /// names the pattern at fault.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, InvalidPattern> {
        let patterns: Vec<&str> = patterns.iter().map(AsRef::as_ref).filter(|p| !p.is_empty()).collect();
        for pattern in &patterns {
            Regex::new(pattern)
                .map_err(|e| InvalidPattern { pattern: (*pattern).to_owned(), reason: e.to_string() })?;
        }
        if patterns.is_empty() {
            return Ok(Self::default());
        }
        let joined = patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
        let joined = Regex::new(&joined)
            .map_err(|e| InvalidPattern { pattern: joined.clone(), reason: e.to_string() })?;
        Ok(Self { joined: Some(joined) })
    }

    /// Whether any pattern is set.
    pub fn is_active(&self) -> bool {
        self.joined.is_some()
    }

    /// The line with every match replaced. `[DONE]` is never touched: it ends the log.
    pub fn apply<'a>(&self, line: &'a str) -> Cow<'a, str> {
        match &self.joined {
            Some(regex) if line != DONE => regex.replace_all(line, MASK),
            _ => Cow::Borrowed(line),
        }
    }

    /// [`Redactor::apply`] in place, allocating only when something matched.
    pub(crate) fn apply_owned(&self, line: &mut String) {
        if let Cow::Owned(masked) = self.apply(line) {
            *line = masked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_of_every_pattern_become_stars_and_the_rest_stays() {
        let redactor = Redactor::new(&["ghp_[A-Za-z0-9]{36}", "AKIA[0-9A-Z]{16}"]).unwrap();
        let token = format!("ghp_{}", "a".repeat(36));
        let line = format!("push with {token} and AKIAABCDEFGHIJKLMNOP, done");
        assert_eq!(redactor.apply(&line), "push with *** and ***, done");
        assert!(matches!(redactor.apply("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn done_is_never_redacted_and_no_patterns_touch_nothing() {
        let redactor = Redactor::new(&["DONE", "\\["]).unwrap();
        assert_eq!(redactor.apply("[DONE]"), "[DONE]");
        assert_eq!(redactor.apply("[DONE] again"), "******] again");
        assert!(!Redactor::new::<&str>(&[]).unwrap().is_active());
        assert_eq!(Redactor::default().apply("ghp_x"), "ghp_x");
    }

    #[test]
    fn an_invalid_pattern_is_named() {
        let err = Redactor::new(&["ok", "(unclosed"]).unwrap_err();
        assert_eq!(err.pattern, "(unclosed");
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }
}
