//! How long to wait before trying an unavailable service again. Every retry loop outside
//! the record path names its [`Backoff`] as a constant beside it, so the delays of a loop
//! are read in one line; the record path's own delays come from the job's `[retry]`
//! section ([`crate::RetryPolicy`]).

use std::time::Duration;

/// The delay before each try after a failure: growing from `first` up to `cap`, and
/// optionally jittered so that a fleet that failed together does not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    growth: Growth,
    cap: Duration,
    /// With jitter, the delay is this floor plus a uniform share of the ceiling.
    jitter_floor: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Growth {
    /// `first × 2^failures`.
    Doubling,
    /// `first × (failures + 1)`: a slower climb, for waits where the other side is
    /// expected back soon and a long sleep costs more than a few extra tries.
    Linear,
}

impl Backoff {
    /// `first`, doubling after each failure, never above `cap`.
    pub const fn doubling(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            growth: Growth::Doubling,
            cap,
            jitter_floor: None,
        }
    }

    /// `step`, growing by `step` after each failure, never above `cap`.
    pub const fn linear(step: Duration, cap: Duration) -> Self {
        Self {
            first: step,
            growth: Growth::Linear,
            cap,
            jitter_floor: None,
        }
    }

    /// Full jitter above a floor: each delay is `floor` plus a uniform share of
    /// [`Backoff::ceiling`].
    pub const fn with_jitter_above(self, floor: Duration) -> Self {
        Self {
            jitter_floor: Some(floor),
            ..self
        }
    }

    /// The unjittered delay after `failures` failures (0 for the first retry).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let grown = match self.growth {
            Growth::Doubling => self.first.saturating_mul(1 << failures.min(31)),
            Growth::Linear => self.first.saturating_mul(failures.saturating_add(1)),
        };
        grown.min(self.cap)
    }

    /// The delay to wait after `failures` failures (0 for the first retry).
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        match self.jitter_floor {
            Some(floor) => floor + ceiling.mul_f64(fastrand::f64()),
            None => ceiling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ceilings(backoff: Backoff, n: u32) -> Vec<u128> {
        (0..n).map(|i| backoff.ceiling(i).as_millis()).collect()
    }

    #[test]
    fn doubling_stops_at_the_cap_and_stays_there() {
        let backoff = Backoff::doubling(MS * 100, Duration::from_secs(5));
        assert_eq!(
            ceilings(backoff, 8),
            [100, 200, 400, 800, 1600, 3200, 5000, 5000]
        );
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn linear_grows_by_one_step_per_failure_up_to_the_cap() {
        let backoff = Backoff::linear(MS * 100, Duration::from_secs(1));
        assert_eq!(
            ceilings(backoff, 12),
            [
                100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000, 1000
            ]
        );
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_between_the_floor_and_the_floor_plus_the_ceiling() {
        let backoff =
            Backoff::doubling(MS * 200, Duration::from_secs(10)).with_jitter_above(MS * 100);
        for failures in [0, 3, 6, 40] {
            let ceiling = backoff.ceiling(failures);
            for _ in 0..200 {
                let delay = backoff.delay(failures);
                assert!(
                    delay >= MS * 100 && delay <= MS * 100 + ceiling,
                    "{delay:?}"
                );
            }
        }
    }

    #[test]
    fn without_jitter_the_delay_is_the_ceiling() {
        let backoff = Backoff::doubling(MS * 200, Duration::from_secs(5));
        assert_eq!(backoff.delay(2), MS * 800);
    }
}
