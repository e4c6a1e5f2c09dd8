//! The process's Prometheus metrics: one set per process ([`global`]), recorded where the
//! work happens (a request's figures in the HTTP processor's `admit`/`settle`, a chunk's in
//! the worker's chunk `settle`, waits in the governor) and encoded by whoever serves them:
//! `volley-worker`'s `/metrics`. The embedded `volley run` drives the same code and so
//! records too, but serves nothing.
//!
//! One process-wide set rather than one per worker: the processor, the governor and the
//! worker would otherwise all have to carry a handle, and a process runs one worker.
//!
//! Labels are bounded: outcome, error kind, status class, wait reason, and the breaker's host
//! (hosts are few). No job, record or worker id: per-job figures live in Redis and in
//! `volley status`. The hot path touches only pre-resolved series (an atomic add each).

mod histogram;

use crate::ErrorKind;
use crate::governor::BreakerPhase;
use histogram::DurationHistogram;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The `Content-Type` of [`Metrics::encode`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request-latency buckets: a fast API to a slow one.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds (seconds) of the chunk-commit buckets: one Redis round trip, or retries.
const COMMIT_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// What a record waited for without holding a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// A rate limit's token (the job's or the host's).
    RateLimit,
    /// A pause: the host's (a `Retry-After`) or the job's (`volley pause`).
    Pause,
    /// The host's breaker (open, or its probe out).
    Breaker,
}

impl WaitReason {
    const ALL: [WaitReason; 3] = [
        WaitReason::RateLimit,
        WaitReason::Pause,
        WaitReason::Breaker,
    ];

    fn as_str(self) -> &'static str {
        match self {
            WaitReason::RateLimit => "rate_limit",
            WaitReason::Pause => "pause",
            WaitReason::Breaker => "breaker",
        }
    }
}

/// The class of an HTTP answer, `none` when there was none (timeout, connection failure).
fn status_class(status: Option<u16>) -> usize {
    match status {
        Some(200..=299) => 0,
        Some(300..=399) => 1,
        Some(400..=499) => 2,
        Some(500..=599) => 3,
        // 1xx never ends an exchange; anything else is not HTTP.
        _ => 4,
    }
}

const STATUS_CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "none"];

/// The names of a breaker's states, as the `state` label says them.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "ramping"];

type Labels = [(&'static str, &'static str); 2];

/// Every metric of the process. Read through [`global`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    finished: Family<Labels, Counter>,
    records_ok: Counter,
    /// Indexed by `ErrorKind as usize` (see `ErrorKind::ALL`).
    records_failed: Vec<Counter>,
    http_requests: [Counter; 5],
    retries: Counter,
    in_flight: Gauge,
    concurrency_limit: Gauge,
    request_duration: DurationHistogram,
    chunks_committed: Counter,
    chunks_redelivered: Counter,
    chunks_dead_lettered: Counter,
    commit_duration: DurationHistogram,
    waits: [Counter<f64, AtomicU64>; 3],
    breaker_state: Family<Vec<(&'static str, String)>, Gauge>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("volley");
        let finished = Family::<Labels, Counter>::default();
        registry.register(
            "records_finished",
            "Records given their final outcome and committed, by outcome and error kind (none for ok)",
            finished.clone(),
        );
        let series = |outcome, kind| {
            finished.get_or_create_owned(&[("outcome", outcome), ("error_kind", kind)])
        };
        let records_ok = series("ok", "none");
        let records_cancelled = series("cancelled", "none");
        // A cancelled record is no failure: its kind's slot counts it under `cancelled`.
        let records_failed = ErrorKind::ALL
            .iter()
            .map(|kind| match kind {
                ErrorKind::Cancelled => records_cancelled.clone(),
                kind => series("failed", kind.as_str()),
            })
            .collect();
        let requests = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests sent, by status class of the answer (none: no answer)",
            requests.clone(),
        );
        let http_requests =
            STATUS_CLASSES.map(|class| requests.get_or_create_owned(&[("status_class", class)]));
        let waited =
            Family::<[(&'static str, &'static str); 1], Counter<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "wait",
            "Time records waited before sending, without holding a slot, by reason",
            Unit::Seconds,
            waited.clone(),
        );
        let waits = WaitReason::ALL.map(|r| waited.get_or_create_owned(&[("reason", r.as_str())]));
        let metrics = Self {
            records_ok,
            records_failed,
            http_requests,
            waits,
            finished,
            retries: Counter::default(),
            in_flight: Gauge::default(),
            concurrency_limit: Gauge::default(),
            request_duration: DurationHistogram::new(REQUEST_BUCKETS),
            chunks_committed: Counter::default(),
            chunks_redelivered: Counter::default(),
            chunks_dead_lettered: Counter::default(),
            commit_duration: DurationHistogram::new(COMMIT_BUCKETS),
            breaker_state: Family::default(),
            registry,
        };
        metrics.register_rest()
    }

    fn register_rest(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "retries",
            "Attempts beyond a record's first",
            self.retries.clone(),
        );
        r.register(
            "requests_in_flight",
            "HTTP requests in flight now",
            self.in_flight.clone(),
        );
        r.register(
            "concurrency_limit",
            "Requests this worker may have in flight at once (--concurrency)",
            self.concurrency_limit.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time of one HTTP exchange, request sent to body read",
            Unit::Seconds,
            self.request_duration.clone(),
        );
        r.register(
            "chunks_committed",
            "Chunks committed to the store by this process",
            self.chunks_committed.clone(),
        );
        r.register(
            "chunks_redelivered",
            "Chunk deliveries the broker marked as redelivered",
            self.chunks_redelivered.clone(),
        );
        r.register(
            "chunks_dead_lettered",
            "Chunk messages sent to the dead-letter queue",
            self.chunks_dead_lettered.clone(),
        );
        r.register_with_unit(
            "chunk_commit_duration",
            "Time to commit a chunk's outcomes, retries included",
            Unit::Seconds,
            self.commit_duration.clone(),
        );
        r.register(
            "breaker_state",
            "1 for the phase each host's circuit breaker is in on this worker, 0 for the others",
            self.breaker_state.clone(),
        );
        r.register(
            "build",
            "The running build",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        self
    }

    /// Counts a committed record by its outcome.
    pub fn record_finished(&self, error: Option<ErrorKind>) {
        match error {
            None => self.records_ok.inc(),
            Some(kind) => match self.records_failed.get(kind as usize) {
                Some(counter) => counter.inc(),
                // A kind missing from `ErrorKind::ALL` still counts, on the slow path.
                None => self
                    .finished
                    .get_or_create(&[("outcome", "failed"), ("error_kind", kind.as_str())])
                    .inc(),
            },
        };
    }

    /// Counts one HTTP exchange (`None`: no answer) and how long it took.
    pub(crate) fn http_request(&self, status: Option<u16>, took: Duration) {
        if let Some(counter) = self.http_requests.get(status_class(status)) {
            counter.inc();
        }
        self.request_duration.observe(took);
    }

    /// Counts an attempt beyond a record's first.
    pub(crate) fn retry(&self) {
        self.retries.inc();
    }

    /// Counts a request in flight until the guard drops.
    pub(crate) fn in_flight(&'static self) -> InFlight {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Adds time a record waited for `reason`.
    pub(crate) fn waited(&self, reason: WaitReason, took: Duration) {
        if let Some(counter) = self.waits.get(reason as usize) {
            counter.inc_by(took.as_secs_f64());
        }
    }

    /// Sets the worker's concurrency limit.
    pub fn set_concurrency_limit(&self, limit: usize) {
        self.concurrency_limit
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// Counts a chunk committed, and how long its commit took.
    pub fn chunk_committed(&self, took: Duration) {
        self.chunks_committed.inc();
        self.commit_duration.observe(took);
    }

    /// Counts a delivery the broker marked as redelivered.
    pub fn chunk_redelivered(&self) {
        self.chunks_redelivered.inc();
    }

    /// Counts a chunk message sent to the dead-letter queue.
    pub fn chunk_dead_lettered(&self) {
        self.chunks_dead_lettered.inc();
    }

    /// Sets each host's breaker gauge from its phase now (read before each scrape).
    pub fn set_breakers(
        &self,
        phases: impl IntoIterator<Item = (String, BreakerPhase)>,
        now_ms: u64,
    ) {
        for (host, phase) in phases {
            let current = match phase {
                BreakerPhase::Closed => "closed",
                BreakerPhase::Open { .. } => "open",
                BreakerPhase::Ramping { since_ms, ramp_ms }
                    if now_ms >= since_ms.saturating_add(ramp_ms) =>
                {
                    "closed"
                }
                BreakerPhase::Ramping { .. } => "ramping",
            };
            for state in BREAKER_STATES {
                self.breaker_state
                    .get_or_create(&vec![("host", host.clone()), ("state", state.to_string())])
                    .set(i64::from(state == current));
            }
        }
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// A request in flight, counted until dropped.
#[must_use = "the request counts as in flight until the guard drops"]
pub(crate) struct InFlight(&'static Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_index_their_counters() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind}");
        }
    }

    #[test]
    fn names_carry_units_and_counters_end_in_total() {
        let metrics = Metrics::new();
        metrics.record_finished(Some(ErrorKind::Status));
        metrics.http_request(None, Duration::from_millis(20));
        metrics.waited(WaitReason::Pause, Duration::from_millis(1500));
        let text = metrics.encode();
        for line in [
            "volley_records_finished_total{outcome=\"failed\",error_kind=\"status\"} 1",
            "volley_records_finished_total{outcome=\"ok\",error_kind=\"none\"} 0",
            "volley_http_requests_total{status_class=\"none\"} 1",
            "volley_wait_seconds_total{reason=\"pause\"} 1.5",
            "volley_request_duration_seconds_count 1",
            "volley_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
