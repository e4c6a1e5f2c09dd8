//! A job's throughput over time, kept by the chunk commit: records finished per second for
//! the recent past (the rates and the ETA of `volley status`) and per minute over the job's
//! life (for charts). Both are bounded per job: a ring of [`RECENT_SECS`] seconds, and
//! [`MINUTES_KEPT`] minutes counted from the job's registration, the last of which also
//! holds everything finished later.

use std::collections::BTreeMap;

/// Seconds in the per-second ring: enough for the one-minute rate with room for commits
/// that arrive late or from a worker whose clock is a little off.
pub const RECENT_SECS: u64 = 120;
/// Minutes in the per-minute series: 7 days, at most ~10,000 small fields per job.
pub const MINUTES_KEPT: u64 = 7 * 24 * 60;

/// Records finished in one second or one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Finished {
    /// Records that got an outcome (ok or failed).
    pub done: u64,
    /// Of those, failed.
    pub failed: u64,
}

impl Finished {
    /// Adds another count.
    pub fn add(&mut self, other: Finished) {
        self.done += other.done;
        self.failed += other.failed;
    }
}

/// The per-second counts of the last [`RECENT_SECS`] seconds, by Unix second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentSeconds {
    /// Unix second → records finished in it.
    pub seconds: BTreeMap<u64, Finished>,
}

impl RecentSeconds {
    /// Counts a commit at `now_ms` into the ring, dropping seconds that fell out of it. A
    /// commit older than the ring (a worker's clock far behind) is left out of it.
    pub fn record(&mut self, now_ms: u64, finished: Finished) {
        let sec = now_ms / 1000;
        let newest = self.seconds.keys().next_back().copied().unwrap_or(sec);
        if sec + RECENT_SECS <= newest {
            return;
        }
        self.seconds.entry(sec).or_default().add(finished);
        let oldest_kept = sec.max(newest).saturating_sub(RECENT_SECS - 1);
        self.seconds.retain(|s, _| *s >= oldest_kept);
    }

    /// Records per second over the `window_secs` complete seconds before `now_ms` (the
    /// running second is partial and left out). A job that began committing within the
    /// window is measured over the seconds since its first commit, so a young job's rate is
    /// not diluted by seconds before it started.
    pub fn rate(&self, now_ms: u64, window_secs: u64, first_commit_ms: Option<u64>) -> f64 {
        let now_sec = now_ms / 1000;
        let from = now_sec.saturating_sub(window_secs);
        let done: u64 = self.seconds.range(from..now_sec).map(|(_, f)| f.done).sum();
        let began = first_commit_ms.map_or(from, |ms| (ms / 1000).max(from));
        let span = now_sec.saturating_sub(began).max(1);
        done as f64 / span as f64
    }
}

/// The minute bucket of a commit at `now_ms` for a job registered at `created_ms`.
pub fn minute_of(created_ms: u64, now_ms: u64) -> u64 {
    (now_ms.saturating_sub(created_ms) / 60_000).min(MINUTES_KEPT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(n: u64) -> Finished {
        Finished { done: n, failed: 0 }
    }

    #[test]
    fn the_ring_keeps_only_the_recent_seconds() {
        let mut ring = RecentSeconds::default();
        ring.record(1_000_000, done(5));
        ring.record(1_000_500, done(5));
        assert_eq!(ring.seconds.get(&1_000), Some(&done(10)));
        ring.record((1_000 + RECENT_SECS) * 1000, done(1));
        assert!(!ring.seconds.contains_key(&1_000), "{ring:?}");
        // A commit from before the ring's window is not counted into it.
        ring.record(900_000, done(7));
        assert!(!ring.seconds.contains_key(&900), "{ring:?}");
        assert!(ring.seconds.len() as u64 <= RECENT_SECS);
    }

    #[test]
    fn a_rate_counts_complete_seconds_since_the_first_commit() {
        let mut ring = RecentSeconds::default();
        for s in 100..110 {
            ring.record(s * 1000, done(20));
        }
        // The running second (110) is left out; ten seconds of 20 records.
        ring.record(110_000, done(500));
        let rate = ring.rate(110_400, 10, Some(100_000));
        assert!((rate - 20.0).abs() < 1e-9, "{rate}");
        // Over a minute, only the ten seconds since the first commit count.
        let rate = ring.rate(110_400, 60, Some(100_000));
        assert!((rate - 20.0).abs() < 1e-9, "{rate}");
        // Nothing finished recently: zero.
        assert_eq!(ring.rate(200_000, 10, Some(100_000)), 0.0);
    }

    #[test]
    fn minutes_are_counted_from_registration_and_capped() {
        assert_eq!(minute_of(60_000, 60_000), 0);
        assert_eq!(minute_of(60_000, 179_999), 1);
        assert_eq!(minute_of(0, u64::MAX / 2), MINUTES_KEPT - 1);
        assert_eq!(minute_of(10_000, 0), 0, "a clock behind registration");
    }
}
