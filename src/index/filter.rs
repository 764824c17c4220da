//! Which logs a list request or an index stream wants: by type, by state (live, ended, idle, or
//! ended with an outcome) and by a text in the id.

use super::Summary;
use crate::log::Outcome;

/// Which logs a request wants by their state (`state=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum StateFilter {
    #[default]
    All,
    /// Not ended (idle ones included: they may still go on).
    Live,
    Ended,
    /// Live with no line for `index.idle_after_secs`.
    Idle,
    /// Ended with this outcome.
    Outcome(Outcome),
}

/// Where a log stands, as far as a filter cares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Status {
    pub done: bool,
    pub outcome: Option<Outcome>,
    pub idle: bool,
}

/// Which logs a request wants, besides the cursor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub log_type: Option<String>,
    pub state: StateFilter,
    /// Lower-case text the id must contain (case-insensitive).
    pub q: Option<String>,
}

impl Filter {
    pub fn matches(&self, log_type: &str, id: &str, status: Status) -> bool {
        let state = match self.state {
            StateFilter::All => true,
            StateFilter::Live => !status.done,
            StateFilter::Ended => status.done,
            StateFilter::Idle => !status.done && status.idle,
            StateFilter::Outcome(outcome) => status.done && status.outcome == Some(outcome),
        };
        state
            && self.log_type.as_deref().is_none_or(|t| t == log_type)
            && self.q.as_deref().is_none_or(|q| id.to_lowercase().contains(q))
    }
}

impl Summary {
    /// Where the log stands, for a filter.
    pub fn status(&self) -> Status {
        Status { done: self.done, outcome: self.ending.outcome, idle: self.idle }
    }
}
