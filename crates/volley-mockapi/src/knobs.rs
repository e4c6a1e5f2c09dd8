use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// The query knobs of the user routes (`GET /users/{id}`, `POST /users`). All are optional;
/// without any, a route answers 200 with the user's JSON at once.
///
/// | knob | effect |
/// |---|---|
/// | `delay_ms=N` | wait N ms before answering |
/// | `jitter_ms=N` | wait a further random 0..=N ms |
/// | `fail_pct=P` | fail P percent of requests at random (with `status`, default 500) |
/// | `status=S` | the status of a failure; alone, every request fails with it |
/// | `retry_after=V` | a failure carries `Retry-After: V` (sent verbatim) |
/// | `retry_after_date=SECS` | a failure carries `Retry-After` as an HTTP-date at least SECS seconds ahead |
/// | `fail_first=N` | the first N requests for an id fail (with `status`, default 503), later ones succeed |
/// | `body_bytes=N` | a success is a JSON body of exactly N bytes (`{"id":..,"pad":"xxx.."}`) |
/// | `endless=true` | a success is a chunked 200 whose body never ends (64 KiB pieces) |
/// | `echo_headers=true` | a response (a success, or a failure's error body) carries the request's headers (`"headers": {name: value}`), as APIs that echo requests do |
/// | `capacity=N` | at most N requests (of those carrying the same `capacity`) are served at once; the rest queue, so latency grows with load (the delay starts when a request is served) |
/// | `overload_above=N` | a request arriving while more than N user-route requests are in flight (itself included) is answered 429 at once (with `retry_after` if given) |
///
/// `fail_first` counts per id (the path id, or the `id` field of a POST body) even without
/// `track_ids`; the count is cleared by `POST /stats/reset`. It combines with `fail_pct`: a
/// request past its first N may still fail by chance. While an outage is switched on
/// (`POST /admin/outage`), the knobs are ignored and every user route answers the outage's
/// status.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Knobs {
    pub(crate) delay_ms: Option<u64>,
    pub(crate) jitter_ms: Option<u64>,
    pub(crate) fail_pct: Option<f64>,
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<String>,
    pub(crate) retry_after_date: Option<u64>,
    pub(crate) fail_first: Option<u64>,
    pub(crate) body_bytes: Option<usize>,
    #[serde(default)]
    pub(crate) endless: bool,
    #[serde(default)]
    pub(crate) echo_headers: bool,
    pub(crate) capacity: Option<u32>,
    pub(crate) overload_above: Option<u64>,
}

impl Knobs {
    pub(crate) fn delay(&self) -> Duration {
        let base = self.delay_ms.unwrap_or(0);
        let jitter = self.jitter_ms.map_or(0, |j| fastrand::u64(0..=j));
        Duration::from_millis(base.saturating_add(jitter))
    }

    /// Whether this request fails: among the first `fail_first` for its id (`nth` is its
    /// 1-based number, counted only when `fail_first` is given), by chance with `fail_pct`,
    /// or always when only `status` is given.
    pub(crate) fn fails(&self, nth: Option<u64>) -> bool {
        if let (Some(first), Some(nth)) = (self.fail_first, nth)
            && nth <= first
        {
            return true;
        }
        match (self.fail_pct, self.status, self.fail_first) {
            (Some(pct), _, _) => fastrand::f64() * 100.0 < pct,
            (None, Some(_), None) => true,
            _ => false,
        }
    }

    /// The status of a failure: `status`, else 503 with `fail_first`, else 500.
    pub(crate) fn failure_status(&self) -> u16 {
        self.status
            .unwrap_or(if self.fail_first.is_some() { 503 } else { 500 })
    }

    /// The `Retry-After` value of a failure: `retry_after` verbatim, else `retry_after_date`
    /// as an IMF-fixdate. The date is rounded up to the next whole second so the client waits
    /// at least SECS seconds (HTTP dates have no fractions).
    pub(crate) fn retry_after_value(&self, now: SystemTime) -> Option<String> {
        if let Some(v) = &self.retry_after {
            return Some(v.clone());
        }
        let secs = self.retry_after_date?;
        let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        let whole = since_epoch
            .as_secs()
            .saturating_add(u64::from(since_epoch.subsec_nanos() > 0))
            .saturating_add(secs);
        let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(whole))?;
        Some(httpdate::fmt_http_date(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_first_fails_the_first_n_only() {
        let k = Knobs {
            fail_first: Some(2),
            ..Knobs::default()
        };
        assert!(k.fails(Some(1)) && k.fails(Some(2)));
        assert!(!k.fails(Some(3)));
        assert_eq!(k.failure_status(), 503);
        let zero = Knobs {
            fail_first: Some(0),
            status: Some(429),
            ..Knobs::default()
        };
        assert!(!zero.fails(Some(1)), "fail_first=0 with status never fails");
    }

    #[test]
    fn status_alone_always_fails_with_it() {
        let k = Knobs {
            status: Some(429),
            ..Knobs::default()
        };
        assert!(k.fails(None));
        assert_eq!(k.failure_status(), 429);
        assert!(!Knobs::default().fails(None));
    }

    #[test]
    fn retry_after_date_is_an_imf_fixdate_rounded_up() {
        let k = Knobs {
            retry_after_date: Some(2),
            ..Knobs::default()
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_445_412_480_300);
        assert_eq!(
            k.retry_after_value(now).as_deref(),
            Some("Wed, 21 Oct 2015 07:28:03 GMT")
        );
        let verbatim = Knobs {
            retry_after: Some("7".into()),
            retry_after_date: Some(2),
            ..Knobs::default()
        };
        assert_eq!(verbatim.retry_after_value(now).as_deref(), Some("7"));
    }
}
