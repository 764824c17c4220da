//! `notify.webhooks` checked once at start, and which rules fire for a log's end or line.
//!
//! A bad rule fails at start naming its key (`notify.webhooks.on`, `.match`, `.url`), so a typo
//! is found by whoever deploys it, not by nobody ever being told.

use std::collections::HashSet;

use regex::Regex;

use super::settings::{NotifySettings, WebhookSettings};
use crate::log::{Ending, LogKey, Outcome};

/// What fires a webhook: the words of `on`, each sent as the body's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Succeeded,
    Failed,
    Cancelled,
    Ended,
    Idle,
    Match,
}

impl Event {
    const ALL: [Event; 6] =
        [Event::Succeeded, Event::Failed, Event::Cancelled, Event::Ended, Event::Idle, Event::Match];

    /// The word in `on` and in the body's `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Succeeded => "succeeded",
            Event::Failed => "failed",
            Event::Cancelled => "cancelled",
            Event::Ended => "ended",
            Event::Idle => "idle",
            Event::Match => "match",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == word)
    }
}

/// One checked webhook rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where the body is POSTed.
    pub url: String,
    /// What the claims call this webhook: a digest of its URL, so that reordering the rules
    /// keeps its deliveries' keys and no token in the URL is stored in MongoDB.
    pub id: String,
    /// The `on` entries, without repeats, in the order given.
    pub events: Vec<Event>,
    types: Option<HashSet<String>>,
    pattern: Option<Regex>,
    /// The HMAC key, when bodies are signed.
    pub secret: Option<Vec<u8>>,
}

/// Every rule, in the order configured (a rule's index is part of its deliveries' key).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// A bad rule: the key at fault and why.
pub type RuleError = (&'static str, String);

impl Rules {
    /// Checks and compiles every rule.
    pub fn new(settings: &NotifySettings) -> Result<Self, RuleError> {
        let rules = settings.webhooks.iter().enumerate().map(|(n, hook)| Rule::new(n, hook));
        Ok(Self { rules: rules.collect::<Result<_, _>>()? })
    }

    /// All rules; a rule's position is its index.
    pub fn all(&self) -> &[Rule] {
        &self.rules
    }

    /// The (rule index, event) pairs a log's end fires.
    pub fn on_end(&self, key: &LogKey, ending: Ending) -> Vec<(usize, Event)> {
        let specific = match ending.outcome {
            Some(Outcome::Succeeded) => Some(Event::Succeeded),
            Some(Outcome::Failed) => Some(Event::Failed),
            Some(Outcome::Cancelled) => Some(Event::Cancelled),
            None => None,
        };
        self.fired(key, |event| event == Event::Ended || Some(event) == specific)
    }

    /// The (rule index, event) pairs a log going idle fires.
    pub fn on_idle(&self, key: &LogKey) -> Vec<(usize, Event)> {
        self.fired(key, |event| event == Event::Idle)
    }

    /// The indexes of the `match` rules a line of this log matches.
    #[cfg(test)]
    pub fn on_line(&self, key: &LogKey, text: &str) -> Vec<usize> {
        self.on_line_unless(key, text, |_| false)
    }

    /// As [`Rules::on_line`], without trying the rules `fired` says have fired for this log
    /// already (their pattern is not even run).
    pub fn on_line_unless(&self, key: &LogKey, text: &str, fired: impl Fn(usize) -> bool) -> Vec<usize> {
        let hits = |rule: &Rule| rule.pattern.as_ref().is_some_and(|re| re.is_match(text));
        self.fired(key, |event| event == Event::Match)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|&n| !fired(n) && hits(&self.rules[n]))
            .collect()
    }

    /// The rule a claim names by its webhook id.
    pub fn by_id(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.id == id)
    }

    /// The log types lines must have to fire a `match` (`None`: any type may).
    pub fn match_types(&self) -> Option<Vec<String>> {
        let mut types = Vec::new();
        for rule in self.rules.iter().filter(|r| r.events.contains(&Event::Match)) {
            types.extend(rule.types.as_ref()?.iter().cloned());
        }
        Some(types)
    }

    /// Whether any rule fires on `match`.
    pub fn any_match(&self) -> bool {
        self.rules.iter().any(|r| r.events.contains(&Event::Match))
    }

    /// Whether any rule could fire for lines of this type (so unwatched logs cost nothing).
    pub fn watches_lines(&self, log_type: &str) -> bool {
        self.rules.iter().any(|r| r.events.contains(&Event::Match) && r.takes(log_type))
    }

    fn fired(&self, key: &LogKey, wanted: impl Fn(Event) -> bool) -> Vec<(usize, Event)> {
        let mut fired = Vec::new();
        for (n, rule) in self.rules.iter().enumerate().filter(|(_, r)| r.takes(&key.log_type)) {
            fired.extend(rule.events.iter().copied().filter(|&e| wanted(e)).map(|e| (n, e)));
        }
        fired
    }
}

impl Rule {
    fn new(n: usize, hook: &WebhookSettings) -> Result<Self, RuleError> {
        let bad = |key, why: String| Err((key, format!("webhook #{}: {why}", n + 1)));
        if !hook.url.starts_with("http://") && !hook.url.starts_with("https://") {
            return bad("notify.webhooks.url", "expected an http:// or https:// URL".into());
        }
        let mut events = Vec::new();
        for word in &hook.on {
            match Event::parse(word) {
                Some(event) if !events.contains(&event) => events.push(event),
                Some(_) => {}
                None => {
                    return bad(
                        "notify.webhooks.on",
                        format!("{word:?} is not one of succeeded, failed, cancelled, ended, idle, match"),
                    )
                }
            }
        }
        if events.is_empty() {
            return bad("notify.webhooks.on", "names nothing to be told about".into());
        }
        let pattern = match (&hook.pattern, events.contains(&Event::Match)) {
            (None, true) => {
                return bad("notify.webhooks.match", "on = [\"match\"] needs a match pattern".into())
            }
            (Some(p), _) => match Regex::new(p) {
                Ok(re) => Some(re),
                Err(e) => {
                    return bad(
                        "notify.webhooks.match",
                        format!("{p:?} is not a valid regular expression: {e}"),
                    )
                }
            },
            (None, false) => None,
        };
        Ok(Self {
            url: hook.url.clone(),
            id: webhook_id(&hook.url),
            events,
            types: hook.types.as_ref().map(|t| t.iter().cloned().collect()),
            pattern,
            secret: hook.secret.as_ref().map(|s| s.as_bytes().to_vec()),
        })
    }

    fn takes(&self, log_type: &str) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(log_type))
    }
}

fn webhook_id(url: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(url.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(on, types, match)` of each rule.
    type Hook<'a> = (&'a [&'a str], Option<&'a [&'a str]>, Option<&'a str>);

    fn rules(hooks: &[Hook<'_>]) -> Rules {
        let webhooks = hooks
            .iter()
            .map(|(on, types, pattern)| WebhookSettings {
                url: "https://hooks.example.com/x".into(),
                on: on.iter().map(|s| s.to_string()).collect(),
                types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
                pattern: pattern.map(str::to_owned),
                secret: None,
            })
            .collect();
        Rules::new(&NotifySettings { webhooks, retry_secs: 3600, timing: Default::default() }).unwrap()
    }

    #[test]
    fn a_failed_log_fires_failed_and_ended_on_a_rule_naming_both_but_not_succeeded() {
        let r = rules(&[(&["failed", "ended"], None, None), (&["succeeded"], None, None)]);
        let failed = Ending { outcome: Some(Outcome::Failed), exit_code: Some(1) };
        assert_eq!(r.on_end(&LogKey::new("ci", "1"), failed), [(0, Event::Failed), (0, Event::Ended)]);
        let unknown = Ending::default();
        assert_eq!(r.on_end(&LogKey::new("ci", "1"), unknown), [(0, Event::Ended)]);
    }

    #[test]
    fn types_limit_a_rule_and_match_needs_a_matching_line() {
        let r = rules(&[(&["match", "idle"], Some(&["deploy"]), Some("panick(ed)?"))]);
        assert_eq!(r.on_line(&LogKey::new("deploy", "1"), "thread main panicked"), [0]);
        assert!(r.on_line(&LogKey::new("deploy", "1"), "all good").is_empty());
        assert!(r.on_line(&LogKey::new("build", "1"), "panicked").is_empty());
        assert_eq!(r.on_idle(&LogKey::new("deploy", "1")), [(0, Event::Idle)]);
        assert!(r.watches_lines("deploy") && !r.watches_lines("build"));
    }
}
