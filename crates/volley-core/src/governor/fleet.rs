use crate::StoreError;
use crate::governor::BreakerPhase;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use tokio::sync::broadcast;

/// A change every worker must know about.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FleetEvent {
    /// No request to `host` before `until_ms` (wall clock, ms since the epoch).
    Pause {
        /// The host key.
        host: String,
        /// End of the pause.
        until_ms: u64,
    },
    /// The host's breaker changed.
    Breaker {
        /// The host key.
        host: String,
        /// The new phase.
        phase: BreakerPhase,
        /// Why it is open: the last failure (`kind: text`), so every worker's records and
        /// `volley status` name the cause, not only "breaker open".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    /// A job's controls changed (`volley cancel`, `pause`, `resume`, `limit`): workers read
    /// them again from the store, where they already are (a worker that missed this reads
    /// them on its next periodic look).
    JobControl {
        /// The job id.
        job: String,
    },
    /// A job joined the index of active jobs (registered, or redriven): workers read the
    /// active jobs now instead of at their next look, so an idle fleet starts on it at once.
    JobAdded {
        /// The job id.
        job: String,
    },
}

/// Tokens reserved from a shared bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reservation {
    /// Wall-clock ms (this process's clock) at which token `i` may be used:
    /// `max(now, base + i × interval)`.
    pub base_ms: f64,
    /// Spacing of the tokens.
    pub interval_ms: f64,
    /// The reserving process's "now", in its own clock.
    pub now_ms: f64,
}

impl Reservation {
    /// When token `i` may be used.
    pub fn at(&self, i: u32) -> f64 {
        (self.base_ms + f64::from(i) * self.interval_ms).max(self.now_ms)
    }
}

/// A fleet-level rate limit of a host.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostLimit {
    /// Requests per second across every job and worker.
    pub rate: f64,
    /// Burst allowance, in requests.
    pub burst: u32,
}

/// The shared state behind the governors of a fleet.
pub trait FleetState: Send + Sync + 'static {
    /// Reserves `n` tokens of bucket `key` (GCRA: `rate` per second, `burst` tolerance).
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        n: u32,
        rate: f64,
        burst: u32,
    ) -> BoxFuture<'a, Result<Reservation, StoreError>>;
    /// Records and broadcasts a change.
    fn announce(&self, event: FleetEvent) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Claims the single probe of an open breaker; `true` for the one caller that wins.
    fn try_probe<'a>(
        &'a self,
        host: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The stored pauses and breaker phases, for a worker that starts or reconnects.
    fn current(&self) -> BoxFuture<'_, Result<Vec<FleetEvent>, StoreError>>;
    /// Fleet-level host limits (`volley hosts limit`).
    fn host_limits(&self) -> BoxFuture<'_, Result<HashMap<String, HostLimit>, StoreError>>;
    /// Changes announced by any worker, this one included.
    fn events(&self) -> broadcast::Receiver<FleetEvent>;
}

/// GCRA on a stored theoretical arrival time: returns the new TAT and the time the first of
/// `n` tokens may be used. Shared by the memory fleet and (as Lua) by Redis.
pub fn gcra_reserve(
    stored_tat: Option<f64>,
    now: f64,
    n: u32,
    rate: f64,
    burst: u32,
) -> (f64, f64) {
    let interval = 1000.0 / rate;
    let tau = f64::from(burst.saturating_sub(1)) * interval;
    let tat = stored_tat.unwrap_or(now).max(now);
    let base = tat - tau;
    (tat + f64::from(n) * interval, base)
}
