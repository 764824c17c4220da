//! Counting each log once as it ends, so that its length can stand in for a count later.
//!
//! The index counts the inserts its change stream tells, but a stream can miss some without
//! saying so (the test server's oplog keeps 100,000 entries and its streams skip what was
//! pruned; MongoDB reports that instead). A length trusted by `?tail=` must be MongoDB's, so
//! when a log ends the task counts it once, in the background; a mismatch is corrected (and
//! announced), logged and counted in `sse_logs_index_lines_missed_total`.

use std::sync::Arc;

use bson::oid::ObjectId;
use tokio::sync::Semaphore;

use super::{Index, State};
use crate::log::LogKey;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::store::Store;

/// Counts run at once (each is one query).
const AT_ONCE: usize = 4;

/// Runs until shutdown: counts each log the index hears ending.
pub(crate) async fn run(index: Index, store: Store, metrics: Arc<Metrics>, shutdown: Shutdown) {
    let taken = index.shared.count_requests.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(mut requests) = taken else { return };
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    loop {
        let request = tokio::select! {
            _ = shutdown.wait() => return,
            request = requests.recv() => request,
        };
        let Some((key, last)) = request else { return };
        let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (index, store, metrics) = (index.clone(), store.clone(), metrics.clone());
        tokio::spawn(async move {
            let counted = store.position_of(&key, last).await;
            drop(slot);
            match counted {
                Ok(lines) => {
                    let unheard = index.counted(&key, last, Some(lines));
                    if unheard > 0 {
                        tracing::info!(log_type = %key.log_type, id = %key.id, unheard, "the index had not heard every line of this log; its length is corrected");
                        metrics.index_lines_unheard.inc_by(unheard);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, log_type = %key.log_type, id = %key.id, "counting an ended log failed; its tail will be counted when asked for");
                    index.counted(&key, last, None);
                }
            }
        });
    }
}

impl Index {
    /// A count of `key` up to `last` is in (`None`: it failed). Returns the lines the index had
    /// not heard of.
    fn counted(&self, key: &LogKey, last: ObjectId, lines: Option<u64>) -> u64 {
        let mut state = self.lock();
        state.counting.remove(key);
        let unheard = lines.map_or(0, |lines| self.correct(&mut state, key, last, lines));
        drop(state);
        self.shared.counted.send_modify(|n| *n += 1);
        unheard
    }

    fn correct(&self, state: &mut State, key: &LogKey, last: ObjectId, lines: u64) -> u64 {
        // A line heard since the count (its `_id` is the new last) is counted by the next end.
        let Some(entry) = state.logs.get_mut(key).filter(|entry| entry.last == last) else { return 0 };
        let unheard = lines.saturating_sub(entry.lines);
        let changed = entry.lines != lines;
        entry.lines = lines;
        entry.counted = Some(last);
        if changed {
            self.announce(state, key);
        }
        unheard
    }
}
