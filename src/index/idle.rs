//! Idle logs: live, but silent for `index.idle_after_secs` (the writer may have died).
//!
//! The live logs that are not idle yet are kept ordered by their last update, so each look
//! (every quarter second, with the growth announcements) touches only the logs turning idle now,
//! however many logs the index holds. A log turns idle once and is announced then; its next
//! line wakes it up, announced at once too (`Index::apply`).

use std::time::{Duration, SystemTime};

use super::{Index, State};

impl Index {
    /// Whether a log last updated at `updated` has been silent long enough by `now`. A time in
    /// the future (another clock) is not silence.
    pub(super) fn silent_long_enough(&self, updated: SystemTime, now: SystemTime) -> bool {
        let idle_after = Duration::from_secs(self.shared.settings.idle_after_secs);
        now.duration_since(updated).is_ok_and(|silent| silent >= idle_after)
    }

    /// Marks and announces the live logs that have been silent long enough by `now`.
    pub(super) fn mark_idle(&self, state: &mut State, now: SystemTime) {
        while let Some((updated, key)) = state.quiet.first().cloned() {
            if !self.silent_long_enough(updated, now) {
                return;
            }
            state.quiet.pop_first();
            let Some(entry) = state.logs.get_mut(&key) else { continue };
            if entry.done || entry.idle || entry.updated != updated {
                continue;
            }
            entry.idle = true;
            self.announce(state, &key);
            self.shared.notify.idle(&key);
        }
    }
}
