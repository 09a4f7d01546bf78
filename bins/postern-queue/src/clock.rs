//! The scheduler's clock: the system's, which tests move forward by hand
//! so that a retry or the batch pace is tested without waiting for it.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// How far this clock is ahead of the system's (tests only).
    ahead: Duration,
}

impl Clock {
    /// Seconds since the epoch: the schedule's time, which survives a
    /// restart in `state/` records.
    pub fn unix(&self) -> u64 {
        postern_config::unix_now() + self.ahead.as_secs()
    }

    /// For the intervals of the loop (the pace, the full scan).
    pub fn instant(&self) -> Instant {
        Instant::now() + self.ahead
    }

    /// How long since `then` (an `instant` of this clock).
    pub fn since(&self, then: Instant) -> Duration {
        self.instant().saturating_duration_since(then)
    }

    #[cfg(test)]
    pub fn advance(&mut self, by: Duration) {
        self.ahead += by;
    }
}
