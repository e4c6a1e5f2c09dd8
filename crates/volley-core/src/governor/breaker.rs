use crate::BreakerSpec;
use std::collections::VecDeque;

/// Where a host's circuit breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum BreakerPhase {
    /// Calls flow.
    Closed,
    /// No calls until `until_ms`; then one probe.
    Open {
        /// When the breaker first opened (a failed probe keeps it): records fail fast
        /// once it has been open longer than `breaker.max_wait`.
        #[serde(default)]
        since_ms: u64,
        /// End of the cool-down (ms since the epoch).
        until_ms: u64,
    },
    /// The probe answered: traffic grows from nothing to all between `since_ms` and
    /// `since_ms + ramp_ms`.
    Ramping {
        /// Start of the ramp.
        since_ms: u64,
        /// Its length.
        ramp_ms: u64,
    },
}

impl BreakerPhase {
    /// Whether two phases are the same state (a failed probe reopens the breaker with a new
    /// cool-down: the same state, not a change worth a log line).
    pub fn same_state(&self, other: &BreakerPhase) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// A short text for `volley status`.
    pub fn describe(&self, now_ms: u64) -> String {
        match self {
            BreakerPhase::Closed => "closed".into(),
            BreakerPhase::Open { until_ms, .. } if *until_ms > now_ms => {
                format!(
                    "open (probe in {:.1}s)",
                    (*until_ms - now_ms) as f64 / 1000.0
                )
            }
            BreakerPhase::Open { .. } => "open (probing)".into(),
            BreakerPhase::Ramping { since_ms, ramp_ms } => {
                let done = now_ms.saturating_sub(*since_ms) as f64 / (*ramp_ms).max(1) as f64;
                if done >= 1.0 {
                    "closed".into()
                } else {
                    format!("ramping ({:.0}% of traffic)", done * 100.0)
                }
            }
        }
    }
}

/// A host's breaker as the fleet state keeps it (a Redis hash value): the phase's fields
/// and, while open, the last error. A value kept before the cause was (the phase alone)
/// still reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredBreaker {
    /// The phase.
    #[serde(flatten)]
    pub phase: BreakerPhase,
    /// The last failure, while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// This worker's view of one host: recent calls in one-second buckets, the phase, and the
/// last failure.
pub(crate) struct LocalBreaker {
    pub(crate) spec: BreakerSpec,
    pub(crate) phase: BreakerPhase,
    /// (second, calls, failures), oldest first.
    window: VecDeque<(u64, u32, u32)>,
    /// The last failure that counted against the host (`connect: … Connection refused`),
    /// seen here or announced by another worker: the breaker's log line and the records it
    /// fails name it, so an open breaker never hides why it opened. Empty until one.
    pub(crate) cause: String,
}

impl LocalBreaker {
    pub(crate) fn new(spec: BreakerSpec) -> Self {
        Self {
            spec,
            phase: BreakerPhase::Closed,
            window: VecDeque::new(),
            cause: String::new(),
        }
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

    /// Records a call; returns the phase to announce when this call opens the breaker.
    pub(crate) fn observe(&mut self, failed: bool, now_ms: u64) -> Option<BreakerPhase> {
        if !self.spec.enabled || matches!(self.phase, BreakerPhase::Open { .. }) {
            return None;
        }
        let second = now_ms / 1000;
        let window_secs = self.spec.window.get().as_secs().max(1);
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
        let tripped = calls >= self.spec.min_calls.max(1)
            && f64::from(failures) * 100.0 / f64::from(calls) >= self.spec.failure_percent;
        if !tripped {
            return None;
        }
        self.window.clear();
        let cooldown = u64::try_from(self.spec.cooldown.get().as_millis()).unwrap_or(u64::MAX);
        let phase = BreakerPhase::Open {
            since_ms: now_ms,
            until_ms: now_ms.saturating_add(cooldown),
        };
        self.phase = phase;
        Some(phase)
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
mod tests {
    use super::*;
    use crate::SpecDuration;
    use std::time::Duration;

    fn spec() -> BreakerSpec {
        BreakerSpec {
            enabled: true,
            failure_percent: 50.0,
            min_calls: 10,
            window: SpecDuration(Duration::from_secs(10)),
            cooldown: SpecDuration(Duration::from_secs(5)),
            ramp: SpecDuration(Duration::from_secs(10)),
            max_wait: SpecDuration(Duration::from_secs(60)),
        }
    }

    #[test]
    fn opens_when_most_recent_calls_fail_and_not_before_min_calls() {
        let mut b = LocalBreaker::new(spec());
        for i in 0..9 {
            assert_eq!(b.observe(true, 1_000 + i), None, "fewer than min_calls");
        }
        assert_eq!(
            b.observe(true, 1_010),
            Some(BreakerPhase::Open {
                since_ms: 1_010,
                until_ms: 6_010
            })
        );
        assert_eq!(b.observe(true, 1_020), None, "already open");
    }

    #[test]
    fn stays_closed_below_the_threshold_and_forgets_old_calls() {
        let mut b = LocalBreaker::new(spec());
        for i in 0..40 {
            assert_eq!(
                b.observe(i % 3 == 0, 1_000 + i * 10),
                None,
                "a third failing stays closed"
            );
        }
        let mut b = LocalBreaker::new(spec());
        for i in 0..9 {
            b.observe(true, 1_000 + i);
        }
        // Ten seconds later the old failures have left the window.
        assert_eq!(b.observe(true, 12_000), None);
    }

    #[test]
    fn remembers_the_last_failure_in_one_buffer() {
        let mut b = LocalBreaker::new(spec());
        assert_eq!(b.cause(), None);
        b.note_failure(&"connect: tcp connect error: Connection refused (os error 111)");
        b.note_failure(&"status: HTTP 503 Service Unavailable");
        assert_eq!(b.cause(), Some("status: HTTP 503 Service Unavailable"));
    }

    #[test]
    fn the_stored_form_keeps_the_cause_and_reads_a_bare_phase() {
        let open = StoredBreaker {
            phase: BreakerPhase::Open {
                since_ms: 1,
                until_ms: 2,
            },
            cause: Some("status: HTTP 500 Internal Server Error".into()),
        };
        let text = serde_json::to_string(&open).unwrap();
        assert_eq!(serde_json::from_str::<StoredBreaker>(&text).unwrap(), open);
        let bare: StoredBreaker = serde_json::from_str(r#"{"phase":"closed"}"#).unwrap();
        assert_eq!((bare.phase, bare.cause), (BreakerPhase::Closed, None));
        // A worker of the previous version reads the new form as its phase.
        assert_eq!(
            serde_json::from_str::<BreakerPhase>(&text).unwrap(),
            open.phase
        );
    }

    #[test]
    fn describes_its_phase() {
        assert_eq!(
            BreakerPhase::Open {
                since_ms: 0,
                until_ms: 3_000
            }
            .describe(1_000),
            "open (probe in 2.0s)"
        );
        assert_eq!(
            BreakerPhase::Ramping {
                since_ms: 0,
                ramp_ms: 10_000
            }
            .describe(2_500),
            "ramping (25% of traffic)"
        );
        assert_eq!(
            BreakerPhase::Ramping {
                since_ms: 0,
                ramp_ms: 10_000
            }
            .describe(20_000),
            "closed"
        );
    }
}
