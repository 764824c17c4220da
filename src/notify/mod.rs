//! Notifications: telling webhooks how a log ended, that it went idle, or that it matched.
//!
//! `rules` turns `notify.webhooks` into checked rules and says which fire for a log's end or
//! line; `body` builds the exact bytes sent and their signature; `deliver` makes one attempt
//! and says when the next is due. Claiming each (webhook, log,
//! event) in MongoDB and delivering it come on top of these.

/// The collection of delivery claims (the contract names it; it does not follow the logs').
pub const NOTIFICATIONS: &str = "sse_logs_notifications";

mod body;
mod deliver;
mod rules;

pub use body::{body, signature, Notice};
pub use deliver::{attempt, client, next_retry, Answer, ATTEMPT_TIMEOUT, SIGNATURE_HEADER};
pub use rules::{Event, Rule, Rules};
