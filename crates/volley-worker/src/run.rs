//! The worker's main loop: follow the active jobs' queues, consume, hand each delivery to
//! its own task, heartbeat, and on shutdown stop consuming, drain within the timeout, then
//! return what is left.

use crate::chunk::{ChunkContext, handle_delivery};
use crate::follow::{Reading, follows, read_active};
use crate::jobs::JobCache;
use crate::options::WorkerOptions;
use crate::startup::{NotUp, consume_when_up};
use crate::state::WorkerState;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volley_core::governor::{FleetState, Governor};
use volley_core::time::now_ms;
use volley_core::{
    Broker, BrokerError, ChunkConsumer, ClientOptions, JobId, JobState, Store, WorkerBeat,
    WorkerPhase, build_client,
};

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The broker could not be consumed from.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// The broker was still not reachable when the start-up timeout passed.
    #[error(transparent)]
    NotUp(#[from] NotUp),
}

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerReport {
    /// Chunks committed by this worker.
    pub chunks_committed: u64,
    /// Records in those chunks.
    pub records_done: u64,
    /// Whether every held chunk finished before the drain timeout.
    pub drained: bool,
}

/// Runs a worker until `shutdown` fires (or it has been idle for `exit_when_idle`).
///
/// # Errors
/// [`WorkerError`] when it cannot start (a broker still down after
/// [`WorkerOptions::startup_timeout`] is waited for first); once running it survives broker
/// and store outages.
pub async fn run_worker<B: Broker, S: Store>(
    broker: B,
    store: S,
    options: WorkerOptions,
    fleet: Arc<dyn FleetState>,
    shutdown: CancellationToken,
    state: Option<Arc<WorkerState>>,
) -> Result<WorkerReport, WorkerError> {
    let broker = Arc::new(broker);
    let client =
        build_client(&ClientOptions::default()).map_err(|e| WorkerError::Http(e.to_string()))?;
    let state = state.unwrap_or_else(|| Arc::new(WorkerState::new()));
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    volley_core::metrics::global().set_concurrency_limit(options.concurrency.max(1));
    let governor = Governor::start(fleet.clone());
    state.set_governor(governor.clone());
    // Taken slots are the requests in flight the heartbeat reports.
    let beat_slots = slots.clone();
    let events = fleet.events();
    let ctx = Arc::new(ChunkContext {
        store: store.clone(),
        jobs: JobCache::new(client, slots, governor),
        state: state.clone(),
        abort: CancellationToken::new(),
        settle_poison_at: options.settle_poison_at,
        max_hold: options.max_hold,
        store_name: options.store_name.clone(),
        holders: crate::hold::Holders::new(&options.worker_id),
    });
    state.readiness.waiting_for(&options.broker_name);
    let Some(mut consumer) = consume_when_up(broker.as_ref(), &options, &shutdown).await? else {
        tracing::info!("stopped while waiting for the broker");
        return Ok(WorkerReport {
            chunks_committed: 0,
            records_done: 0,
            drained: true,
        });
    };
    // Time spent waiting for the broker is not idleness (`--exit-when-idle`).
    state.touch().await;
    state
        .readiness
        .consuming(&options.broker_name, consumer.link());
    tracing::info!(worker.id = %options.worker_id, concurrency = options.concurrency, prefetch = options.prefetch, "worker consuming");
    // The heartbeat outlives the consume loop: a draining worker stays visible, and the
    // last beat says it exited.
    let heartbeat_stop = CancellationToken::new();
    // Ends the heartbeat too if this future is dropped instead of returning.
    let _heartbeat_guard = heartbeat_stop.clone().drop_guard();
    let draining = CancellationToken::new();
    let follow_now = Arc::new(tokio::sync::Notify::new());
    let watcher = {
        let (ctx, stop) = (ctx.clone(), heartbeat_stop.clone());
        let follow_now = follow_now.clone();
        tokio::spawn(async move {
            let store = ctx.store.clone();
            crate::controls::watch_controls(store, &ctx.jobs, events, &follow_now, stop).await;
        })
    };
    let store_for_follow = store.clone();
    let heartbeat = tokio::spawn(heartbeat_loop(
        store,
        Beating {
            state: state.clone(),
            slots: beat_slots,
            options: options.clone(),
            draining: draining.clone(),
        },
        heartbeat_stop.clone(),
    ));
    let (readings_tx, mut readings) = tokio::sync::mpsc::unbounded_channel();
    // Stopped with the heartbeat, on every way out of this function.
    tokio::spawn(read_active(
        store_for_follow,
        readings_tx,
        follow_now,
        heartbeat_stop.clone(),
    ));
    // The jobs whose queues are consumed now.
    let mut followed: Vec<JobId> = Vec::new();
    let tracker = TaskTracker::new();
    let idle_tick = options
        .exit_when_idle
        .map_or(Duration::from_secs(3600), |d| {
            (d / 4).max(Duration::from_millis(20))
        });
    let mut ticker = tokio::time::interval(idle_tick);
    let mut publishers = HashMap::new();
    let mut failure = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(Reading { active, ended }) = readings.recv() => {
                let wanted = follows(&active, options.prefetch);
                followed = wanted.iter().map(|f| f.job.clone()).collect();
                consumer.follow(wanted);
                for job in ended {
                    tokio::spawn(delete_ended_queue(broker.clone(), ctx.store.clone(), job));
                }
            }
            _ = ticker.tick() => {
                // Time without a broker is not idleness: the queue may be full behind an
                // outage.
                if !consumer.is_connected() {
                    state.touch().await;
                }
                if let Some(limit) = options.exit_when_idle
                    && state.idle_for().await >= limit
                {
                    // Silence from the consumer is not proof of an empty queue (a partition
                    // looks the same): leave only when the broker says so.
                    match tokio::time::timeout(Duration::from_secs(5), broker.waiting(&followed)).await {
                        Ok(Ok(0)) => {
                            if let Some(job) = still_publishing(&ctx, &followed, &mut publishers).await {
                                tracing::info!(job.id = %job, "idle, but the producer is still publishing a job this worker follows; staying");
                                state.touch().await;
                            } else {
                                tracing::info!(idle_ms = limit.as_millis() as u64, "idle; stopping");
                                break;
                            }
                        }
                        Ok(Ok(waiting)) => {
                            tracing::info!(waiting, "idle consumer but chunks are waiting; staying");
                            state.touch().await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(error.message = %e, "idle consumer and the broker cannot be asked; staying");
                            state.touch().await;
                        }
                        Err(_) => {
                            tracing::warn!("idle consumer and the broker cannot be asked; staying");
                            state.touch().await;
                        }
                    }
                }
            }
            delivery = consumer.next() => {
                let Some(delivery) = delivery else {
                    if let Some(e) = consumer.failure() {
                        failure = Some(e);
                    }
                    break;
                };
                state.touch().await;
                // Counted before the task starts, so the idle check never sees a gap.
                let held = state.hold_chunk();
                let ctx = ctx.clone();
                let state = state.clone();
                tracker.spawn(async move {
                    handle_delivery(ctx, delivery).await;
                    drop(held);
                    state.touch().await;
                });
            }
        }
    }
    state.readiness.draining();
    draining.cancel();
    consumer.cancel().await;
    tracker.close();
    let held = state.chunks_held.load(Ordering::Relaxed);
    if held > 0 {
        tracing::info!(
            chunks = held,
            timeout_ms = options.drain_timeout.as_millis() as u64,
            "draining held chunks"
        );
    }
    let drained = tokio::time::timeout(options.drain_timeout, tracker.wait())
        .await
        .is_ok();
    if !drained {
        tracing::warn!("drain timeout passed; returning unfinished chunks to the queue");
        ctx.abort.cancel();
        tracker.wait().await;
    }
    consumer.close().await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let _ = watcher.await;
    let report = WorkerReport {
        chunks_committed: state.chunks_committed.load(Ordering::Relaxed),
        records_done: state.records_done.load(Ordering::Relaxed),
        drained,
    };
    tracing::info!(
        chunks = report.chunks_committed,
        records = report.records_done,
        drained,
        "worker stopped"
    );
    match failure {
        Some(e) => Err(WorkerError::Broker(e)),
        None => Ok(report),
    }
}

/// Deletes the queue of a job that ended, unless a chunk is ready in it or the job was
/// reopened (a redrive) by the time of the delete. Every worker that saw the job end tries;
/// the first one deletes it, and the broker cancels the other workers' consumers.
async fn delete_ended_queue<B: Broker, S: Store>(broker: Arc<B>, store: S, job: JobId) {
    let still_ended = async {
        matches!(store.job_status(&job).await, Ok(Some(status)) if status.state.is_terminal())
    };
    match tokio::time::timeout(
        QUEUE_DELETE_WAIT,
        broker.delete_ended_queue(&job, still_ended),
    )
    .await
    {
        Ok(Ok(true)) => tracing::info!(job.id = %job, "deleted the ended job's queue"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            tracing::debug!(job.id = %job, error.message = %e, "the ended job's queue is not deleted");
        }
        Err(_) => tracing::debug!(job.id = %job, "the ended job's queue is not deleted in time"),
    }
}

/// How long deleting an ended job's queue may take.
const QUEUE_DELETE_WAIT: Duration = Duration::from_secs(10);

/// What the heartbeat reads.
struct Beating {
    state: Arc<WorkerState>,
    /// The worker's request slots: taken ones are requests in flight.
    slots: Arc<Semaphore>,
    options: WorkerOptions,
    /// Cancelled once the worker stops consuming.
    draining: CancellationToken,
}

impl Beating {
    fn beat(&self, started_ms: u64, phase: WorkerPhase) -> WorkerBeat {
        let state = &self.state;
        let slots = self.options.concurrency.max(1);
        WorkerBeat {
            id: self.options.worker_id.clone(),
            in_flight: slots.saturating_sub(self.slots.available_permits()) as u64,
            records_held: state.records_held.load(Ordering::Relaxed),
            chunks_held: state.chunks_held.load(Ordering::Relaxed),
            records_done: state.records_done.load(Ordering::Relaxed),
            at_ms: now_ms(),
            started_ms,
            state: phase,
            interval_ms: u64::try_from(self.options.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
        }
    }
}

/// Beats every interval (`running`, then `draining` once the worker stops consuming) until
/// `stop`, then writes a last `exited` beat: the consumer is closed by then, so whoever reads
/// it knows this worker holds nothing.
async fn heartbeat_loop<S: Store>(store: S, beating: Beating, stop: CancellationToken) {
    let started_ms = now_ms();
    let mut ticker = tokio::time::interval(beating.options.heartbeat_interval);
    loop {
        let was = if beating.draining.is_cancelled() {
            WorkerPhase::Draining
        } else {
            WorkerPhase::Running
        };
        let phase = tokio::select! {
            () = stop.cancelled() => WorkerPhase::Exited,
            _ = ticker.tick() => was,
            // Said at once, not at the next tick.
            () = beating.draining.cancelled(), if was == WorkerPhase::Running => WorkerPhase::Draining,
        };
        let beat = beating.beat(started_ms, phase);
        // A store that does not answer must not hold up the worker's exit.
        let readiness = &beating.state.readiness;
        let store_name = &beating.options.store_name;
        match tokio::time::timeout(BEAT_WAIT, store.heartbeat(&beat)).await {
            Ok(Ok(())) => readiness.store_answered(),
            Ok(Err(e)) => {
                tracing::debug!(error.message = %e, "heartbeat not written");
                readiness.store_failed(format!("{store_name}: {e}"));
            }
            Err(_) => {
                tracing::debug!("heartbeat not answered");
                readiness.store_failed(format!(
                    "{store_name}: not answering (heartbeat took over {} s)",
                    BEAT_WAIT.as_secs()
                ));
            }
        }
        if phase == WorkerPhase::Exited {
            return;
        }
    }
}

/// How long one heartbeat write may take.
const BEAT_WAIT: Duration = Duration::from_secs(3);

/// How long a `publishing` job may go without a new chunk before an idle worker stops
/// waiting for its producer (which may have died; a re-run brings workers back).
const PRODUCER_SILENCE: Duration = Duration::from_secs(60);

/// A job this worker follows whose producer is still publishing (an empty queue then
/// means the producer is slower than the workers, or blocked by a broker alarm, not that
/// the work is done). `seen` remembers each job's publish mark and when it last moved.
async fn still_publishing<S: Store>(
    ctx: &ChunkContext<S>,
    followed: &[JobId],
    seen: &mut HashMap<JobId, (u64, Instant)>,
) -> Option<JobId> {
    for job in followed {
        let Ok(Some(status)) = ctx.store.job_status(job).await else {
            continue;
        };
        if status.state != JobState::Publishing {
            continue;
        }
        let mark = seen
            .entry(job.clone())
            .or_insert((status.published_chunks, Instant::now()));
        if mark.0 != status.published_chunks {
            *mark = (status.published_chunks, Instant::now());
        }
        if mark.1.elapsed() < PRODUCER_SILENCE {
            return Some(job.clone());
        }
    }
    None
}
