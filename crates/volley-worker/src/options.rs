use std::time::Duration;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Requests in flight in this process, across all jobs (each job is further bounded by
    /// its `concurrency.per_worker`).
    pub concurrency: usize,
    /// Chunks held (delivered, not yet acked) at once.
    pub prefetch: u16,
    /// After a stop signal: how long in-flight chunks may take to finish and commit before
    /// the rest are returned to the queue.
    pub drain_timeout: Duration,
    /// Stop once nothing has arrived and nothing is held for this long.
    pub exit_when_idle: Option<Duration>,
    /// How often the heartbeat is written.
    pub heartbeat_interval: Duration,
    /// This worker's id (in heartbeats and logs).
    pub worker_id: String,
    /// A chunk delivered this many times before (its workers crashed on it, or were killed)
    /// is settled without processing: every record fails with `poison`, the job can finish,
    /// and `volley retry JOB --only poison` sends the records again. Set just below the
    /// queue's delivery limit so the broker does not dead-letter the chunk first.
    pub settle_poison_at: Option<u64>,
    /// A chunk still running after this long is returned to the queue, so no delivery is
    /// held past RabbitMQ's `consumer_timeout` (30 min by default), which would close the
    /// channel and return every chunk on it.
    pub max_hold: Duration,
    /// How long to wait at start for a broker that is not up yet (`None`: as long as it
    /// takes); see [`crate::startup`].
    pub startup_timeout: Option<Duration>,
    /// The broker, named for people in the start-up wait's messages and the readiness
    /// probe's reasons (with a redacted URL).
    pub broker_name: String,
    /// The store, named likewise (with a redacted URL).
    pub store_name: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 512,
            prefetch: 8,
            drain_timeout: Duration::from_secs(30),
            exit_when_idle: None,
            heartbeat_interval: Duration::from_secs(5),
            worker_id: default_worker_id(),
            settle_poison_at: None,
            max_hold: Duration::from_secs(25 * 60),
            startup_timeout: Some(DEFAULT_STARTUP_TIMEOUT),
            broker_name: "the broker".into(),
            store_name: "the store".into(),
        }
    }
}

/// How long a worker waits at start for RabbitMQ and Redis by default: long enough for a
/// broker or a Redis started at the same time (a RabbitMQ node can take a minute to boot on
/// a busy host), short enough that a wrong address is reported within minutes.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// `host-pid-xxxx`.
pub(crate) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix: String = (0..4)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("{host}-{}-{suffix}", std::process::id())
}
