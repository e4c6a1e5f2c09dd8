use crate::readiness::{Liveness, Readiness};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Mutex;
use volley_core::governor::Governor;

/// The one place a worker's live state is kept: read by the heartbeat, the idle check and
/// the probes (`/livez`, `/readyz`, `/metrics`).
#[derive(Debug)]
pub struct WorkerState {
    /// Whether the worker should get work, and why not.
    pub readiness: Readiness,
    /// Whether its runtime makes progress.
    pub liveness: Liveness,
    /// The worker's governor, once it runs: `/metrics` reads its breakers.
    governor: OnceLock<Arc<Governor>>,
    /// Chunks delivered and not yet settled.
    pub chunks_held: AtomicU64,
    /// Records whose chunk is held and not yet committed.
    pub records_held: AtomicU64,
    /// Records committed since start.
    pub records_done: AtomicU64,
    /// Chunks committed since start.
    pub chunks_committed: AtomicU64,
    /// Redelivered chunks found already committed (acked without work).
    pub chunks_already_committed: AtomicU64,
    /// Messages dead-lettered as poison.
    pub chunks_dead_lettered: AtomicU64,
    /// Acks that could not be sent because the channel was gone.
    pub acks_lost: AtomicU64,
    /// Failed commit attempts (store unavailable).
    pub commit_retries: AtomicU64,
    last_activity: Mutex<Instant>,
    started: Instant,
}

impl Default for WorkerState {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerState {
    /// The state of a worker about to start.
    pub fn new() -> Self {
        Self {
            readiness: Readiness::new(),
            liveness: Liveness::new(),
            governor: OnceLock::new(),
            chunks_held: AtomicU64::new(0),
            records_held: AtomicU64::new(0),
            records_done: AtomicU64::new(0),
            chunks_committed: AtomicU64::new(0),
            chunks_already_committed: AtomicU64::new(0),
            chunks_dead_lettered: AtomicU64::new(0),
            acks_lost: AtomicU64::new(0),
            commit_retries: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            started: Instant::now(),
        }
    }

    pub(crate) async fn touch(&self) {
        *self.last_activity.lock().await = Instant::now();
    }

    pub(crate) async fn idle_for(&self) -> std::time::Duration {
        if self.chunks_held.load(Ordering::Relaxed) > 0 {
            return std::time::Duration::ZERO;
        }
        self.last_activity.lock().await.elapsed()
    }

    /// Counts a delivered chunk as held until the returned guard drops (even by a panic).
    pub(crate) fn hold_chunk(self: &Arc<Self>) -> Held {
        Held::new(self.clone(), Gauge::Chunks, 1)
    }

    /// Counts a chunk's records as held until the guard drops or is released.
    pub(crate) fn hold_records(self: &Arc<Self>, records: u64) -> Held {
        Held::new(self.clone(), Gauge::Records, records)
    }

    fn gauge(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Chunks => &self.chunks_held,
            Gauge::Records => &self.records_held,
        }
    }

    pub(crate) fn set_governor(&self, governor: Arc<Governor>) {
        let _ = self.governor.set(governor);
    }

    /// The worker's governor, once it runs.
    pub fn governor(&self) -> Option<&Arc<Governor>> {
        self.governor.get()
    }

    /// Time since the worker started.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

/// The gauges a [`Held`] guard keeps.
#[derive(Debug, Clone, Copy)]
enum Gauge {
    Chunks,
    Records,
}

/// A count added to one of the worker's gauges while something is held, and taken off again
/// when the guard goes, on every path out.
#[must_use = "the count is taken off again when the guard drops"]
pub(crate) struct Held {
    state: Arc<WorkerState>,
    gauge: Gauge,
    count: u64,
}

impl Held {
    fn new(state: Arc<WorkerState>, gauge: Gauge, count: u64) -> Self {
        state.gauge(gauge).fetch_add(count, Ordering::Relaxed);
        Self {
            state,
            gauge,
            count,
        }
    }

    /// Takes the count off now; returns it.
    pub(crate) fn release(self) -> u64 {
        self.count
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.state
            .gauge(self.gauge)
            .fetch_sub(self.count, Ordering::Relaxed);
    }
}
