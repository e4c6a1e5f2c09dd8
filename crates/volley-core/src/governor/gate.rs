//! The gate of every request: waits out a host's pause, asks its breaker (a
//! [`LocalBreaker`], which owns the breaker's rules) for a decision, claims the probe, takes
//! rate-limit tokens, and learns from each attempt's [`AttemptClass`]. It announces what
//! changed to the fleet and adopts what the fleet announces.

use super::breaker::BreakerPhase;
use super::dispenser::Dispenser;
use super::fleet::{FleetEvent, FleetState, HostLimit};
use super::local_breaker::{Decision, LocalBreaker};
use crate::metrics::{self, WaitReason};
use crate::time::now_ms;
use crate::{AttemptClass, Backoff, BreakerSpec, ErrorKind, RecordError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often fleet-level host limits are re-read.
const HOST_LIMITS_TTL: Duration = Duration::from_secs(10);
/// Longest single sleep while waiting, so announcements and shutdowns are noticed.
const TICK: Duration = Duration::from_millis(250);
/// Waits for an unreachable shared rate limiter: 100 ms, growing by 100 ms a try, to 1 s
/// (short, since every record of the host waits behind it).
const RATE_LIMITER_BACKOFF: Backoff =
    Backoff::linear(Duration::from_millis(100), Duration::from_secs(1));

/// What one job asks of the governor.
#[derive(Debug, Clone)]
pub struct JobLimits {
    /// The job id (key of its rate limit).
    pub job: String,
    /// The job's breaker settings: they govern the host's breaker for this job's calls
    /// and waits (see `local_breaker.rs` on hosts shared by jobs).
    pub breaker: BreakerSpec,
    /// Longest pause a `Retry-After` may impose (the job's `retry.max_delay`).
    pub max_pause: Duration,
}

/// How a request was admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary request.
    Normal,
    /// The single probe of an open breaker: its result closes or reopens it.
    Probe,
}

/// What the governor needs to know of an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// What the attempt says about the host.
    pub class: AttemptClass,
    /// The failure, if it failed: its text becomes the breaker's cause.
    pub error: Option<&'a RecordError>,
    /// The `Retry-After` the response carried.
    pub retry_after: Option<Duration>,
}

struct HostState {
    pause_until: AtomicU64,
    probing_until: AtomicU64,
    breaker: Mutex<LocalBreaker>,
    changed: Notify,
    /// The open period (its `since_ms`) whose records were last told they now fail fast:
    /// that is said once per outage, not once per record.
    gave_up_on: AtomicU64,
}

impl HostState {
    fn breaker(&self) -> std::sync::MutexGuard<'_, LocalBreaker> {
        // The breaker's methods cannot panic half-way through an update.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One per worker process: decides when each request may go.
pub struct Governor {
    fleet: Arc<dyn FleetState>,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    dispensers: Mutex<HashMap<String, Arc<Dispenser>>>,
    /// Fleet-level host limits and when they were read. Every request looks them up, so the
    /// read is a shared lock; only a refresh (every `HOST_LIMITS_TTL`) takes `refreshing`.
    host_limits: std::sync::RwLock<(Option<Instant>, HashMap<String, HostLimit>)>,
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Map inserts and lookups only: a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until `until_ms` (a tick at most) or a change, and counts the time as waited for
/// `reason`.
async fn nap(until_ms: u64, changed: &Notify, reason: WaitReason) {
    let started = Instant::now();
    let wait = Duration::from_millis(until_ms.saturating_sub(now_ms())).min(TICK);
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = changed.notified() => {}
    }
    metrics::global().waited(reason, started.elapsed());
}

impl Governor {
    /// A governor over `fleet`; listens to the fleet's announcements until dropped.
    pub fn start(fleet: Arc<dyn FleetState>) -> Arc<Self> {
        let governor = Arc::new(Self {
            fleet: fleet.clone(),
            hosts: Mutex::new(HashMap::new()),
            dispensers: Mutex::new(HashMap::new()),
            host_limits: std::sync::RwLock::new((None, HashMap::new())),
            refreshing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(listen(Arc::downgrade(&governor), fleet));
        governor
    }

    fn host(&self, host: &str) -> Arc<HostState> {
        let mut hosts = lock(&self.hosts);
        // Looked up several times per request: no key allocation once the host is known.
        if let Some(state) = hosts.get(host) {
            return state.clone();
        }
        hosts
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostState {
                    pause_until: AtomicU64::new(0),
                    probing_until: AtomicU64::new(0),
                    breaker: Mutex::new(LocalBreaker::new()),
                    changed: Notify::new(),
                    gave_up_on: AtomicU64::new(0),
                })
            })
            .clone()
    }

    fn apply(&self, event: &FleetEvent) {
        let (host, state) = match event {
            FleetEvent::Pause { host, .. } | FleetEvent::Breaker { host, .. } => {
                let Some(state) = lock(&self.hosts).get(host).cloned() else {
                    return;
                };
                (host, state)
            }
            FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => return,
        };
        match event {
            FleetEvent::Pause { until_ms, .. } => {
                state.pause_until.fetch_max(*until_ms, Ordering::Relaxed);
            }
            FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => return,
            FleetEvent::Breaker { phase, cause, .. } => {
                let mut breaker = state.breaker();
                // This worker's own announcements come back here too: those, and another
                // cool-down after a failed probe, are no change of state.
                if !breaker.phase().same_state(phase) {
                    tracing::info!(
                        host = %host,
                        breaker = %phase.describe(now_ms()),
                        last_error = cause.as_deref().unwrap_or(""),
                        "breaker changed"
                    );
                }
                breaker.adopt(*phase);
                if let Some(cause) = cause {
                    breaker.note_failure(cause);
                }
                drop(breaker);
                state.probing_until.store(0, Ordering::Relaxed);
            }
        }
        state.changed.notify_waiters();
    }

    /// Whether `job`'s requests to `host` must wait now (a pause, or an open breaker):
    /// checked again after a record has its slot, since a pause may have begun while it
    /// waited for one.
    pub fn blocked(&self, host: &str, job: &JobLimits) -> bool {
        let Some(state) = lock(&self.hosts).get(host).cloned() else {
            return false;
        };
        let now = now_ms();
        state.pause_until.load(Ordering::Relaxed) > now || state.breaker().holds(&job.breaker)
    }

    /// The phase of a host's breaker as this worker sees it.
    pub fn breaker_phase(&self, host: &str) -> Option<BreakerPhase> {
        lock(&self.hosts).get(host).map(|s| s.breaker().phase())
    }

    /// Every host this worker has called, with its breaker's phase (for the metrics).
    pub fn breaker_phases(&self) -> Vec<(String, BreakerPhase)> {
        lock(&self.hosts)
            .iter()
            .map(|(host, s)| (host.clone(), s.breaker().phase()))
            .collect()
    }

    /// Waits until a request to `host` may go: no pause, breaker closed (or this is its
    /// probe). Holds no concurrency slot. Rate-limit tokens come after, from
    /// [`Governor::tokens`].
    ///
    /// # Errors
    /// A `breaker` [`RecordError`] once the breaker has kept the record waiting longer than
    /// `breaker.max_wait`.
    pub async fn admit(&self, host: &str, job: &JobLimits) -> Result<Admission, RecordError> {
        let state = self.host(host);
        loop {
            let now = now_ms();
            let pause = state.pause_until.load(Ordering::Relaxed);
            if pause > now {
                nap(pause, &state.changed, WaitReason::Pause).await;
                continue;
            }
            let decision = state.breaker().decide(&job.breaker, now, fastrand::f64);
            match decision {
                Decision::Go => return Ok(Admission::Normal),
                Decision::RampDone => {
                    // Said by the one admission that ends the ramp on this worker.
                    tracing::info!(host = %host, breaker = "closed", "breaker changed");
                    return Ok(Admission::Normal);
                }
                Decision::Wait(until_ms) => {
                    nap(until_ms, &state.changed, WaitReason::Breaker).await;
                }
                Decision::FailFast { since_ms, open_for } => {
                    return Err(give_up(host, &state, since_ms, open_for));
                }
                Decision::Probe { period } => {
                    if self.claim_probe(host, &state, period, job, now).await {
                        tracing::info!(host = %host, "breaker probe");
                        return Ok(Admission::Probe);
                    }
                    // A probe is out (here or on another worker): wait for its verdict.
                    nap(now + 200, &state.changed, WaitReason::Breaker).await;
                }
            }
        }
    }

    /// Claims the probe of the open period ending at `period`: first on this worker, then
    /// fleet-wide. One claim per open period: a failed probe reopens the breaker with a new
    /// `until_ms`, so the next probe needs no release of this one.
    async fn claim_probe(
        &self,
        host: &str,
        state: &HostState,
        period: u64,
        job: &JobLimits,
        now: u64,
    ) -> bool {
        let ttl = u64::try_from(job.breaker.cooldown.get().as_millis()).unwrap_or(5_000) + 30_000;
        let mine = state.probing_until.load(Ordering::Relaxed);
        mine <= now
            && state
                .probing_until
                .compare_exchange(mine, now + ttl, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            && self
                .fleet
                .try_probe(&format!("{host}#{period}"), ttl)
                .await
                .unwrap_or(false)
    }

    /// Waits for a token of every rate limit that applies to a request to `host` (the job's
    /// own `rate` — (requests/s, burst), the spec's or a live `volley limit` — and the
    /// fleet-level limit of the host). Called by a record that holds its job's
    /// slot, right before it sends, so a request goes out at its token's time: tokens taken
    /// early and spent late would bunch requests above the burst.
    pub async fn tokens(&self, host: &str, job: &JobLimits, rate: Option<(f64, u32)>) {
        if let Some((rate, burst)) = rate {
            // One bucket per rate: tokens reserved ahead at the old rate (every waiting
            // record holds one) would otherwise delay a `volley limit` by their backlog.
            self.take(&format!("job:{}@{rate}", job.job), rate, burst)
                .await;
        }
        if let Some(limit) = self.host_limit(host).await {
            self.take(&format!("host:{host}"), limit.rate, limit.burst)
                .await;
        }
    }

    async fn take(&self, key: &str, rate: f64, burst: u32) {
        let dispenser = {
            let mut map = lock(&self.dispensers);
            let entry = map
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Dispenser::new(key.to_string(), rate, burst)));
            if !entry.matches(rate, burst) {
                *entry = Arc::new(Dispenser::new(key.to_string(), rate, burst));
            }
            entry.clone()
        };
        // Only records under a rate limit get here: the others read no clock for it.
        let started = Instant::now();
        let mut attempt = 0u32;
        while let Err(e) = dispenser.take(self.fleet.as_ref()).await {
            // Without the shared bucket the fleet cannot keep its rate: wait rather than
            // exceed it.
            if attempt.is_multiple_of(20) {
                tracing::warn!(key, error.message = %e, "rate limiter unavailable; waiting");
            }
            let delay = RATE_LIMITER_BACKOFF.delay(attempt);
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
        metrics::global().waited(WaitReason::RateLimit, started.elapsed());
    }

    async fn host_limit(&self, host: &str) -> Option<HostLimit> {
        let fresh = |cached: &(Option<Instant>, HashMap<String, HostLimit>)| {
            cached.0.is_some_and(|at| at.elapsed() <= HOST_LIMITS_TTL)
        };
        {
            // Plain map reads: a poisoned lock still holds usable limits.
            let cached = self.host_limits.read().unwrap_or_else(|p| p.into_inner());
            if fresh(&cached) {
                return cached.1.get(host).copied();
            }
        }
        let _refresh = self.refreshing.lock().await;
        let stale = !fresh(&self.host_limits.read().unwrap_or_else(|p| p.into_inner()));
        if stale {
            let read = self.fleet.host_limits().await;
            let mut cached = self.host_limits.write().unwrap_or_else(|p| p.into_inner());
            match read {
                Ok(limits) => *cached = (Some(Instant::now()), limits),
                Err(e) => {
                    tracing::debug!(error.message = %e, "host limits not refreshed");
                    cached.0 = Some(Instant::now());
                }
            }
        }
        self.host_limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(host)
            .copied()
    }

    /// Learns from an attempt: pauses the host fleet-wide on 429/503 with `Retry-After`,
    /// feeds the breaker, and settles a probe.
    pub async fn observe(
        &self,
        host: &str,
        admission: Admission,
        seen: Observation<'_>,
        job: &JobLimits,
    ) {
        let state = self.host(host);
        let now = now_ms();
        if seen.class.asks_to_back_off()
            && let Some(after) = seen.retry_after
        {
            let until = now + u64::try_from(after.min(job.max_pause).as_millis()).unwrap_or(0);
            // Announce only a pause that extends the known one, so a burst of 429s is one
            // announcement, not hundreds.
            if state.pause_until.fetch_max(until, Ordering::Relaxed) + 50 < until {
                tracing::info!(host = %host, pause_ms = until - now, "host asked to back off; pausing it fleet-wide");
                if let Err(e) = self
                    .fleet
                    .announce(FleetEvent::Pause {
                        host: host.to_string(),
                        until_ms: until,
                    })
                    .await
                {
                    tracing::warn!(error.message = %e, "pause not shared with the fleet");
                }
            }
        }
        let failed = seen.class.counts_against_host();
        let (before, change, cause) = {
            let mut breaker = state.breaker();
            if failed && let Some(error) = seen.error {
                breaker.note_failure(error);
            }
            let before = breaker.phase();
            let change = if admission == Admission::Probe {
                let phase = breaker.on_probe_result(&job.breaker, failed, now);
                state.probing_until.store(0, Ordering::Relaxed);
                Some(phase)
            } else {
                breaker.on_call(&job.breaker, failed, now)
            };
            // Only an open breaker carries a cause; the text is copied only then.
            let cause = change
                .filter(|p| matches!(p, BreakerPhase::Open { .. }))
                .and_then(|_| breaker.cause().map(str::to_string));
            (before, change, cause)
        };
        let Some(phase) = change else { return };
        if phase.same_state(&before) {
            // A failed probe: still open, for another cool-down. Said once, when it opened.
            tracing::debug!(host = %host, breaker = %phase.describe(now), "breaker probe failed");
        } else {
            tracing::warn!(
                host = %host,
                breaker = %phase.describe(now),
                last_error = cause.as_deref().unwrap_or(""),
                "breaker changed"
            );
        }
        if let Err(e) = self
            .fleet
            .announce(FleetEvent::Breaker {
                host: host.to_string(),
                phase,
                cause,
            })
            .await
        {
            tracing::warn!(error.message = %e, "breaker change not shared with the fleet");
        }
    }
}

/// The failure of a record the breaker held longer than `breaker.max_wait`: names the host,
/// how long it has been unavailable and its last error. The first record of an outage to
/// give up also says so in the log, once.
fn give_up(host: &str, state: &HostState, since_ms: u64, open_for: Duration) -> RecordError {
    let cause = state.breaker().cause().map(str::to_string);
    let last = cause
        .as_deref()
        .map(|c| format!("; last error: {c}"))
        .unwrap_or_default();
    if state.gave_up_on.swap(since_ms, Ordering::Relaxed) != since_ms {
        tracing::warn!(
            host = %host,
            open_secs = open_for.as_secs(),
            last_error = cause.as_deref().unwrap_or(""),
            "host unavailable longer than breaker.max_wait: records waiting for it now fail with `breaker` and its last error"
        );
    }
    RecordError {
        kind: ErrorKind::Breaker,
        message: format!(
            "{host} unavailable: circuit breaker open for {}s{last}",
            open_for.as_secs()
        ),
    }
}

async fn listen(governor: Weak<Governor>, fleet: Arc<dyn FleetState>) {
    let mut events = fleet.events();
    if let (Some(g), Ok(current)) = (governor.upgrade(), fleet.current().await) {
        for event in &current {
            g.host_seed(event);
        }
    }
    loop {
        let event = events.recv().await;
        let Some(g) = governor.upgrade() else { return };
        match event {
            Ok(event) => g.apply(&event),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                if let Ok(current) = fleet.current().await {
                    current.iter().for_each(|e| g.host_seed(e));
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Governor {
    /// Applies a stored state to a host even if no request has touched it yet. The host's
    /// breaker keeps no settings of its own (each call brings its job's), so none are
    /// assumed for it here.
    fn host_seed(&self, event: &FleetEvent) {
        let host = match event {
            FleetEvent::Pause { host, .. } | FleetEvent::Breaker { host, .. } => host,
            FleetEvent::JobControl { .. } | FleetEvent::JobAdded { .. } => return,
        };
        self.host(host);
        self.apply(event);
    }
}

#[cfg(test)]
mod tests;
