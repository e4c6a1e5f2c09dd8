//! When a failed attempt is tried again, and after how long. What an attempt was is judged
//! once, by [`AttemptClass::of`]; the policy only looks its kind and status up in the job's
//! `retry.on_status` / `retry.on_errors`.

use crate::{AttemptClass, Backoff, ErrorKind, RetrySpec};
use std::time::{Duration, SystemTime};

/// The retry policy of a job, from its `[retry]` section.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per record, the first included.
    pub max_attempts: u32,
    /// First backoff delay.
    pub base_delay: Duration,
    /// Cap on any delay, including one asked for by `Retry-After`.
    pub max_delay: Duration,
    /// Retried status codes.
    pub on_status: Vec<u16>,
    /// Retried transport failures.
    pub on_errors: Vec<ErrorKind>,
}

impl From<&RetrySpec> for RetryPolicy {
    fn from(spec: &RetrySpec) -> Self {
        Self {
            max_attempts: spec.max_attempts,
            base_delay: spec.base_delay.get(),
            max_delay: spec.max_delay.get(),
            on_status: spec.on_status.clone(),
            on_errors: spec
                .on_errors
                .iter()
                .filter_map(|e| ErrorKind::parse(e))
                .collect(),
        }
    }
}

impl RetryPolicy {
    /// Whether a failure of this kind (and status) is worth another attempt.
    pub fn is_retryable(&self, kind: ErrorKind, status: Option<u16>) -> bool {
        match kind {
            ErrorKind::Status => status.is_some_and(|s| self.on_status.contains(&s)),
            other => self.on_errors.contains(&other),
        }
    }

    /// Whether a classified attempt is worth another one: never a success.
    pub fn retries(&self, attempt: AttemptClass) -> bool {
        match attempt {
            AttemptClass::Success => false,
            AttemptClass::Failed { kind, status, .. } => self.is_retryable(kind, status),
        }
    }

    /// The backoff between attempts: doubling from `base_delay` up to `max_delay`, with full
    /// jitter (uniform in `[0, ceiling]`), so a fleet that failed together does not retry
    /// together.
    fn backoff(&self) -> Backoff {
        Backoff::doubling(self.base_delay, self.max_delay).with_jitter_above(Duration::ZERO)
    }

    /// Failures before attempt `next_attempt` (2 for the first retry), as [`Backoff`] counts
    /// them. The policy has always stopped doubling after 30 (a bare `Backoff` goes to 31);
    /// that only shows past 30 retries under a `max_delay` above `base_delay × 2^30`.
    fn failures_before(next_attempt: u32) -> u32 {
        next_attempt.saturating_sub(2).min(30)
    }

    /// The exponential ceiling before attempt `next_attempt` (2 for the first retry):
    /// `base × 2^(n-2)`, capped at `max_delay`.
    pub fn ceiling(&self, next_attempt: u32) -> Duration {
        self.backoff().ceiling(Self::failures_before(next_attempt))
    }

    /// The delay before attempt `next_attempt`: full jitter, uniform in `[0, ceiling]`, so a
    /// fleet that failed together does not retry together. A `Retry-After` the API sent wins
    /// over the computed value, capped at `max_delay`.
    pub fn delay(&self, next_attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_delay);
        }
        self.backoff().delay(Self::failures_before(next_attempt))
    }
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (relative to `now`). Garbage
/// yields `None`, and the computed backoff applies.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordError;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            on_status: vec![429, 503],
            on_errors: vec![ErrorKind::Timeout, ErrorKind::Connect],
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(400));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(2));
        assert_eq!(p.ceiling(60), Duration::from_secs(2));
        for _ in 0..100 {
            assert!(p.delay(3, None) <= Duration::from_millis(400));
        }
    }

    #[test]
    fn ceilings_are_those_of_a_doubling_backoff_from_the_first_retry() {
        let p = policy();
        let backoff = Backoff::doubling(p.base_delay, p.max_delay);
        for next_attempt in 2..40 {
            assert_eq!(
                p.ceiling(next_attempt),
                backoff.ceiling(next_attempt - 2),
                "attempt {next_attempt}"
            );
        }
        assert_eq!(
            p.ceiling(0),
            p.ceiling(2),
            "no retry before the first is shorter"
        );
        // Past 30 doublings the ceiling stops growing, even under a huge cap.
        let long = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(1 << 40),
            ..policy()
        };
        assert_eq!(long.ceiling(32), Duration::from_millis(1 << 30));
        assert_eq!(long.ceiling(60), Duration::from_millis(1 << 30));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(86_400))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_listed_statuses_and_transport_errors_retry() {
        let p = policy();
        assert!(p.is_retryable(ErrorKind::Status, Some(503)));
        assert!(!p.is_retryable(ErrorKind::Status, Some(404)));
        assert!(p.is_retryable(ErrorKind::Timeout, None));
        assert!(!p.is_retryable(ErrorKind::Template, None));
        assert!(!p.is_retryable(ErrorKind::BodyTooLarge, None));
        assert!(
            !p.is_retryable(ErrorKind::Dns, None),
            "only the listed transport errors"
        );
        let down = |status| RecordError {
            kind: ErrorKind::Status,
            message: format!("HTTP {status}"),
        };
        assert!(p.retries(AttemptClass::of(Some(503), Some(&down(503)))));
        assert!(!p.retries(AttemptClass::of(Some(404), Some(&down(404)))));
        assert!(!p.retries(AttemptClass::of(Some(200), None)));
    }
}
