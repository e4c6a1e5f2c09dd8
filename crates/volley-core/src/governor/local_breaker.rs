//! This worker's breaker of one host: every phase change and the fail-fast rule, in one
//! place. The gate asks it for a [`Decision`] before a call and tells it each call's result;
//! a phase another worker announced is adopted as it is.
//!
//! **Whose settings.** A host's breaker is shared by every job that calls the host (the API
//! is one, whoever calls it), but each job keeps its own `[breaker]` settings: every method
//! takes the settings of the job whose call it is about. A call is counted, and the host's
//! recent calls (of every job) judged, with the caller's `window`, `min_calls` and
//! `failure_percent`; the breaker it opens cools down for the caller's `cooldown`; a probe's
//! answer ramps for the prober's `ramp`; and a record waits up to its own job's `max_wait`.
//! A job with `enabled = false` is neither counted nor held. So no job's settings depend on
//! which job happened to call the host first, and a breaker announced by the fleet (a stored
//! state read at start, before any call) needs no settings at all: none are made up for it.

use super::breaker::BreakerPhase;
use crate::BreakerSpec;
use std::collections::VecDeque;
use std::time::Duration;

/// Whether a call may go now, from the breaker's side (pauses are the gate's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go: the breaker is closed, or the call is one of the ramp's share.
    Go,
    /// Go: the ramp has just ended here and the breaker is closed again (worth a log line).
    RampDone,
    /// The cool-down is over: the call may be the probe, if it wins the claim on the open
    /// period that ends at `period` (its `until_ms`, one probe per period).
    Probe {
        /// The `until_ms` of the open period the probe tests.
        period: u64,
    },
    /// Not now; ask again at `until_ms` (or when the breaker changes).
    Wait(u64),
    /// The host has been down longer than the job's `breaker.max_wait`, and its last probe
    /// failed (the cool-down after it is running): the record fails at once.
    FailFast {
        /// When the breaker opened.
        since_ms: u64,
        /// How long it has been open.
        open_for: Duration,
    },
}

/// This worker's view of one host: recent calls in one-second buckets, the phase, and the
/// last failure.
pub(crate) struct LocalBreaker {
    phase: BreakerPhase,
    /// (second, calls, failures), oldest first.
    window: VecDeque<(u64, u32, u32)>,
    /// The last failure that counted against the host (`connect: … Connection refused`),
    /// seen here or announced by another worker: the breaker's log line and the records it
    /// fails name it, so an open breaker never hides why it opened. Empty until one.
    cause: String,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LocalBreaker {
    /// A closed breaker that has seen no call.
    pub(crate) fn new() -> Self {
        Self {
            phase: BreakerPhase::Closed,
            window: VecDeque::new(),
            cause: String::new(),
        }
    }

    pub(crate) fn phase(&self) -> BreakerPhase {
        self.phase
    }

    /// Remembers a failure's text, reusing the buffer (a flood of failures allocates once).
    pub(crate) fn note_failure(&mut self, error: &dyn std::fmt::Display) {
        use std::fmt::Write as _;
        self.cause.clear();
        // Writing into a String cannot fail.
        let _ = write!(self.cause, "{error}");
    }

    /// The last failure, if one was seen.
    pub(crate) fn cause(&self) -> Option<&str> {
        Some(self.cause.as_str()).filter(|c| !c.is_empty())
    }

    /// Whether a call of a job with these settings must wait now: checked again once a
    /// record has its slot, since the breaker may have opened while it waited for one.
    pub(crate) fn holds(&self, spec: &BreakerSpec) -> bool {
        spec.enabled && matches!(self.phase, BreakerPhase::Open { .. })
    }

    /// Decides whether a call may go at `now`. `roll` (uniform in [0, 1)) is drawn only
    /// while ramping: the call goes if it falls within the ramp's share of traffic.
    pub(crate) fn decide(
        &mut self,
        spec: &BreakerSpec,
        now: u64,
        roll: impl FnOnce() -> f64,
    ) -> Decision {
        if !spec.enabled {
            return Decision::Go;
        }
        match self.phase {
            BreakerPhase::Closed => Decision::Go,
            BreakerPhase::Open { since_ms, until_ms } if until_ms > now => {
                let open_for = Duration::from_millis(now.saturating_sub(since_ms));
                if open_for > spec.max_wait.get() {
                    Decision::FailFast { since_ms, open_for }
                } else {
                    Decision::Wait(until_ms)
                }
            }
            // A probe is due, or out (here or on another worker): never fail fast now. Past
            // `max_wait` the host is known down only when its last probe failed (which
            // reopens the breaker, above); a breaker left open with no traffic after an
            // outage (a redrive later) is tried again by one probe while the other records
            // wait for its answer.
            BreakerPhase::Open { until_ms, .. } => Decision::Probe { period: until_ms },
            BreakerPhase::Ramping { since_ms, ramp_ms } => {
                let share = now.saturating_sub(since_ms) as f64 / ramp_ms.max(1) as f64;
                if share >= 1.0 {
                    self.adopt(BreakerPhase::Closed);
                    Decision::RampDone
                } else if roll() < share.max(0.05) {
                    Decision::Go
                } else {
                    Decision::Wait(now + 100)
                }
            }
        }
    }

    /// Counts an ordinary call (not a probe); returns the phase to announce when this call
    /// opens the breaker: at least `min_calls` calls in the window, `failure_percent` of
    /// them failed.
    pub(crate) fn on_call(
        &mut self,
        spec: &BreakerSpec,
        failed: bool,
        now: u64,
    ) -> Option<BreakerPhase> {
        if !spec.enabled || matches!(self.phase, BreakerPhase::Open { .. }) {
            return None;
        }
        let second = now / 1000;
        let window_secs = spec.window.get().as_secs().max(1);
        while self
            .window
            .front()
            .is_some_and(|(s, _, _)| s + window_secs <= second)
        {
            self.window.pop_front();
        }
        match self.window.back_mut() {
            Some((s, calls, failures)) if *s == second => {
                *calls += 1;
                *failures += u32::from(failed);
            }
            _ => self.window.push_back((second, 1, u32::from(failed))),
        }
        let (calls, failures) = self
            .window
            .iter()
            .fold((0u32, 0u32), |(c, f), (_, bc, bf)| (c + bc, f + bf));
        let tripped = calls >= spec.min_calls.max(1)
            && f64::from(failures) * 100.0 / f64::from(calls) >= spec.failure_percent;
        if !tripped {
            return None;
        }
        self.window.clear();
        let phase = BreakerPhase::Open {
            since_ms: now,
            until_ms: now.saturating_add(millis(spec.cooldown.get())),
        };
        self.phase = phase;
        Some(phase)
    }

    /// Settles this worker's probe; returns the phase to announce: open for another
    /// cool-down when it failed (keeping when the outage began, which `max_wait` counts
    /// from), else a ramp.
    pub(crate) fn on_probe_result(
        &mut self,
        spec: &BreakerSpec,
        failed: bool,
        now: u64,
    ) -> BreakerPhase {
        let phase = if failed {
            let since_ms = match self.phase {
                BreakerPhase::Open { since_ms, .. } => since_ms,
                _ => now,
            };
            BreakerPhase::Open {
                since_ms,
                until_ms: now.saturating_add(millis(spec.cooldown.get())),
            }
        } else {
            BreakerPhase::Ramping {
                since_ms: now,
                ramp_ms: millis(spec.ramp.get()),
            }
        };
        self.adopt(phase);
        phase
    }

    /// Adopts a phase announced by any worker.
    pub(crate) fn adopt(&mut self, phase: BreakerPhase) {
        if phase == BreakerPhase::Closed || matches!(phase, BreakerPhase::Ramping { .. }) {
            self.window.clear();
        }
        self.phase = phase;
    }
}

#[cfg(test)]
mod tests;
