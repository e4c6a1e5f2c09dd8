use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Mutex;

/// The one place a worker's live state is kept: read by the heartbeat, the idle check and
/// (later) the metrics endpoint.
#[derive(Debug)]
pub struct WorkerState {
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

impl WorkerState {
    pub(crate) fn new() -> Self {
        Self {
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

    /// Time since the worker started.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}
