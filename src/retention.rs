//! Retention: whole logs whose last line is older than a cutoff are deleted, by the background
//! task of `retention.days` and by `sse-logs prune`.
//!
//! Work is bounded: the oldest documents are read a page at a time (see `store/prune.rs`), and a
//! log is deleted in one command up to the last `_id` that was checked, so a line appended
//! meanwhile survives. Several replicas may run it at once: deleting twice deletes nothing more.
//! A log followed by a stream of this process is left for a later pass, so nobody watching it
//! here sees it cut in the middle.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use mongodb::error::Result;

use crate::hub::Hub;
use crate::log::LogKey;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::{oid_at, Store};

/// Old documents looked at per page.
const PAGE: i64 = 10_000;

/// A log that was (or, in a dry run, would be) deleted.
#[derive(Debug)]
pub(crate) struct Pruned {
    pub log_type: String,
    pub id: String,
    pub lines: u64,
    // Only the command line's `prune` prints it.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub last_line_at: SystemTime,
}

/// Deletes every log whose last line was made before `cutoff`, except those `keep` names.
pub(crate) async fn prune(
    store: &Store,
    cutoff: SystemTime,
    dry_run: bool,
    keep: impl Fn(&LogKey) -> bool,
) -> Result<Vec<Pruned>> {
    let cutoff_oid = oid_at(cutoff);
    let mut pruned = Vec::new();
    let mut seen = HashSet::new();
    let mut after = None;
    loop {
        let page = store.logs_with_lines_before(cutoff, after, PAGE).await?;
        let Some(next) = page.next else { return Ok(pruned) };
        after = Some(next);
        for log in page.logs {
            // A document without a type or an id belongs to no log: never widen a delete to it.
            let Some(key) = LogKey::of_document(&log) else { continue };
            if !seen.insert(key.clone()) || keep(&key) {
                continue;
            }
            let Some(last) = store.last_id_of(&log).await? else { continue };
            if last >= cutoff_oid {
                continue;
            }
            let lines = if dry_run {
                store.count_upto(&log, last).await?
            } else {
                store.delete_upto(&log, last).await?
            };
            pruned.push(Pruned {
                log_type: key.log_type,
                id: key.id,
                lines,
                last_line_at: SystemTime::from(last.timestamp()),
            });
        }
    }
}

/// The background task of `retention.days`: a pass now, then one every `every`, until shutdown.
pub(crate) async fn run(
    store: Store,
    hub: Hub,
    metrics: std::sync::Arc<Metrics>,
    keep_for: Duration,
    every: Duration,
    shutdown: Shutdown,
) {
    loop {
        let cutoff = SystemTime::now().checked_sub(keep_for).unwrap_or(SystemTime::UNIX_EPOCH);
        let pass = tokio::select! {
            _ = shutdown.wait() => return,
            pass = prune(&store, cutoff, false, |key| hub.is_watched(key)) => pass,
        };
        match pass {
            Ok(pruned) => {
                for log in &pruned {
                    tracing::info!(log_type = %log.log_type, id = %log.id, lines = log.lines, "retention: log deleted");
                }
                metrics.retention_logs_deleted.inc_by(pruned.len() as u64);
                metrics.retention_passes.inc();
            }
            Err(err) => tracing::warn!(error = %err, "retention pass failed; retrying at the next one"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// `30d`, `12h`, `90m` or `45s`.
#[cfg(feature = "cli")]
pub(crate) fn parse_age(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_age;
    use std::time::Duration;

    #[test]
    fn ages_are_a_number_and_a_unit() {
        assert_eq!(parse_age("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Some(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("90m"), Some(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("45s"), Some(Duration::from_secs(45)));
        for bad in ["", "30", "d", "30x", "-1d", "1.5d", "99999999999999999999d"] {
            assert_eq!(parse_age(bad), None, "{bad:?}");
        }
    }
}
