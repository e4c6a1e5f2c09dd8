//! Adaptive concurrency (`concurrency.adaptive = true`): AIMD on each worker's in-flight
//! limit for a job, between 1 and `per_worker`.
//!
//! - Slow start: from 4 requests, the limit grows by one per success (doubling every round
//!   trip) until the first sign of congestion.
//! - Additive increase: afterwards it grows by one per round trip's worth of successes.
//! - Multiplicative decrease: a 429 or 503, a timeout, or a latency above 2.5 times the
//!   lowest seen cuts the limit to 3/4, at most once per round trip (so one burst of errors
//!   is one cut).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

struct Aimd {
    /// The ceiling: `per_worker`, or what `volley limit --concurrency` set.
    max: usize,
    limit: f64,
    in_flight: usize,
    slow_start: bool,
    min_latency: Option<Duration>,
    last_cut: Option<Instant>,
}

/// A concurrency limit that moves with what the API shows.
pub(crate) struct AdaptiveLimit {
    state: Mutex<Aimd>,
    freed: Notify,
}

/// A slot of an [`AdaptiveLimit`], released on drop.
pub(crate) struct AdaptivePermit(Arc<AdaptiveLimit>);

impl Drop for AdaptivePermit {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.freed.notify_one();
    }
}

impl AdaptiveLimit {
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            state: Mutex::new(Aimd {
                max,
                limit: 4.0_f64.min(max as f64),
                in_flight: 0,
                slow_start: true,
                min_latency: None,
                last_cut: None,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aimd> {
        // Arithmetic only under the lock: a poisoned lock still holds usable numbers.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit as usize
    }

    /// Moves the ceiling (`volley limit --concurrency`): a lower one takes effect at once
    /// for new requests, a higher one is grown into as the API keeps up.
    pub(crate) fn set_max(&self, max: usize) {
        let mut s = self.lock();
        s.max = max.max(1);
        s.limit = s.limit.min(s.max as f64);
        drop(s);
        self.freed.notify_waiters();
    }

    pub(crate) async fn acquire(self: &Arc<Self>) -> AdaptivePermit {
        loop {
            let freed = self.freed.notified();
            {
                let mut s = self.lock();
                if s.in_flight < (s.limit as usize).max(1) {
                    s.in_flight += 1;
                    return AdaptivePermit(self.clone());
                }
            }
            freed.await;
        }
    }

    /// Feeds one finished request; `succeeded` when it got the answer it asked for. Only
    /// successes set the lowest latency: a 429 or a 500 answered at once says nothing about
    /// how fast the API serves, and taking its 1 ms for the floor would call every real
    /// answer congestion and hold the limit at 1 for good.
    pub(crate) fn record(&self, latency: Duration, congested: bool, succeeded: bool) {
        let mut s = self.lock();
        if succeeded && s.min_latency.is_none_or(|floor| latency < floor) {
            s.min_latency = Some(latency);
        }
        let floor = s.min_latency.unwrap_or(latency);
        let slow = latency > floor.mul_f64(2.5) && latency > Duration::from_millis(5);
        if congested || slow {
            let round_trip = floor.max(Duration::from_millis(20));
            if s.last_cut.is_none_or(|t| t.elapsed() >= round_trip) {
                s.limit = (s.limit * 0.75).max(1.0);
                s.slow_start = false;
                s.last_cut = Some(Instant::now());
            }
            return;
        }
        let step = if s.slow_start { 1.0 } else { 1.0 / s.limit };
        s.limit = (s.limit + step).min(s.max as f64);
        drop(s);
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_max_while_all_is_well_and_cuts_on_congestion() {
        let limit = AdaptiveLimit::new(100);
        for _ in 0..200 {
            limit.record(Duration::from_millis(10), false, true);
        }
        assert_eq!(limit.limit(), 100);
        limit.record(Duration::from_millis(10), true, false);
        assert_eq!(limit.limit(), 75);
        limit.record(Duration::from_millis(10), true, false);
        assert_eq!(limit.limit(), 75, "one cut per round trip");
        std::thread::sleep(Duration::from_millis(25));
        limit.record(Duration::from_millis(200), false, true);
        assert_eq!(
            limit.limit(),
            56,
            "latency far above the floor is congestion too"
        );
        for _ in 0..56 {
            limit.record(Duration::from_millis(10), false, true);
        }
        assert_eq!(limit.limit(), 57, "additive increase after the first cut");
    }

    #[test]
    fn fast_refusals_do_not_lower_the_latency_floor() {
        let limit = AdaptiveLimit::new(64);
        limit.record(Duration::from_millis(50), false, true);
        // A 429 answered in 1 ms: a cut, but not a new floor.
        limit.record(Duration::from_millis(1), true, false);
        let after_cut = limit.limit();
        for _ in 0..20 {
            limit.record(Duration::from_millis(50), false, true);
        }
        assert!(
            limit.limit() > after_cut,
            "50 ms answers after a 1 ms refusal are not congestion: {} <= {after_cut}",
            limit.limit()
        );
    }

    #[test]
    fn a_new_ceiling_caps_the_limit_and_lets_it_grow_again() {
        let limit = AdaptiveLimit::new(100);
        for _ in 0..200 {
            limit.record(Duration::from_millis(10), false, true);
        }
        limit.set_max(10);
        assert_eq!(limit.limit(), 10);
        limit.set_max(20);
        for _ in 0..200 {
            limit.record(Duration::from_millis(10), false, true);
        }
        assert_eq!(limit.limit(), 20);
    }

    #[tokio::test]
    async fn never_admits_more_than_the_limit() {
        let limit = Arc::new(AdaptiveLimit::new(10));
        let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| limit.acquire())).await;
        let fifth = tokio::time::timeout(Duration::from_millis(50), limit.acquire()).await;
        assert!(fifth.is_err(), "starts at 4");
        drop(held);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), limit.acquire())
                .await
                .is_ok()
        );
    }
}
