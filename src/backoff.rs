//! Capped exponential backoff, the one retry pacing used everywhere something reconnects, and
//! the random spread that keeps processes retrying together from retrying in step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// A random duration from zero up to `max`: std's hasher keys are random per instance, which is
/// all the randomness spreading retries needs.
pub(crate) fn jitter(max: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

/// Waits that double from `min` up to `max`; `reset` after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }

    /// The wait to use now; the following one is twice as long (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Starts over from the shortest wait.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_its_bound_and_varies() {
        let max = Duration::from_millis(10);
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| jitter(max)).collect();
        assert!(spread.iter().all(|wait| *wait <= max));
        assert!(spread.len() > 1, "{spread:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
