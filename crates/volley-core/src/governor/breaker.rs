//! A host's circuit breaker as it travels: its [`BreakerPhase`] and the [`StoredBreaker`]
//! the fleet state keeps. The rules that move it are in `local_breaker.rs`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
