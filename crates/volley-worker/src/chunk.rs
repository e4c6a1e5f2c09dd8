//! The life of one delivered chunk: decode, find its job, take its hold (skip it if already
//! committed, wait while another delivery runs it), run its records (only those an earlier,
//! returned delivery did not finish), commit atomically, and only then ack.

use crate::hold::{self, ChunkHold, Holders, Taken};
use crate::jobs::{JobCache, JobEntry};
use crate::state::WorkerState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use volley_core::metrics;
use volley_core::patiently::Patiently;
use volley_core::time::now_ms;
use volley_core::{
    Backoff, ChunkCommit, ChunkDecodeError, ChunkDelivery, ChunkMessage, ChunkRecord, CommitStatus,
    ErrorKind, HttpProcessor, JobId, RecordOutcome, Store, partial, run_until,
};

/// What every chunk task shares.
pub(crate) struct ChunkContext<S> {
    pub(crate) store: S,
    pub(crate) jobs: JobCache,
    pub(crate) state: Arc<WorkerState>,
    /// Fired when the drain timeout passes: unfinished chunks go back to the queue.
    pub(crate) abort: CancellationToken,
    /// See [`crate::WorkerOptions::settle_poison_at`].
    pub(crate) settle_poison_at: Option<u64>,
    /// See [`crate::WorkerOptions::max_hold`].
    pub(crate) max_hold: Duration,
    /// See [`crate::WorkerOptions::store_name`].
    pub(crate) store_name: String,
    /// Names this worker's holds on the chunks it runs.
    pub(crate) holders: Holders,
}

/// Backoff for store retries (and start-up waits): 100 ms doubling to 5 s.
pub(crate) const STORE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5));

/// What a delivery calls for, decided before any record is touched.
enum Plan<S: Store> {
    /// Not a chunk message at all: dead-lettered as it is.
    Undecodable(ChunkDecodeError),
    /// A chunk of a job the store does not know (or the drain timeout passed while asking).
    Unknown,
    /// A chunk already committed (a redelivery, or a copy published twice): acked without
    /// work.
    Skip,
    /// Another delivery of the chunk still runs it (or the drain timeout came while
    /// waiting): returned to the queue unsettled.
    Busy,
    /// A chunk that keeps coming back (workers crashed or were stopped on it): its records
    /// are settled as `poison` without calling the API, and the message is dead-lettered.
    Poison {
        message: ChunkMessage,
        hold: ChunkHold<S>,
        deliveries: u64,
    },
    /// The job's spec cannot run on this worker: its records fail with the reason.
    Broken {
        message: ChunkMessage,
        hold: ChunkHold<S>,
        reason: String,
    },
    /// The job is cancelled (`volley cancel`): its records are settled as `cancelled`
    /// without calling the API, and the chunk is acked.
    Cancelled {
        message: ChunkMessage,
        hold: ChunkHold<S>,
    },
    /// Call the API for the chunk's records.
    Run {
        message: ChunkMessage,
        hold: ChunkHold<S>,
        processor: Arc<HttpProcessor>,
    },
}

/// How a held chunk's records got (or did not get) their outcomes.
enum Ran {
    /// Every record has an outcome: commit them.
    Outcomes(Vec<RecordOutcome>),
    /// The drain timeout or the hold limit came first: the chunk goes back unfinished, with
    /// the outcomes it has so far (saved first, so they are not bought twice).
    Unfinished(Vec<Option<RecordOutcome>>),
}

/// Handles one delivery to the end; never panics on bad input. Every line logged meanwhile
/// carries the chunk's `job.id` and `chunk` (once decoded) from the span around it.
pub(crate) async fn handle_delivery<S: Store, D: ChunkDelivery>(
    ctx: Arc<ChunkContext<S>>,
    delivery: D,
) {
    // At error level, the span is on whenever any line is, whatever the level filter: its
    // fields reach a warning under `warn` too.
    let span = tracing::error_span!(
        "chunk",
        job.id = tracing::field::Empty,
        chunk = tracing::field::Empty
    );
    handle(ctx, delivery).instrument(span).await;
}

async fn handle<S: Store, D: ChunkDelivery>(ctx: Arc<ChunkContext<S>>, delivery: D) {
    let arrived = Instant::now();
    if delivery.redelivered() {
        metrics::global().chunk_redelivered();
    }
    match plan(&ctx, &delivery).await {
        Plan::Undecodable(e) => {
            tracing::warn!(error.message = %e, bytes = delivery.payload().len(), "poison message: dead-lettering");
            dead_letter(&ctx, &delivery).await;
        }
        Plan::Unknown => requeue_or_dead_letter(&ctx, &delivery).await,
        Plan::Skip => {
            ctx.state
                .chunks_already_committed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("chunk already committed; acking without work");
            ack(&ctx, &delivery).await;
        }
        Plan::Busy => {
            let _ = delivery.requeue().await;
        }
        Plan::Poison {
            message,
            hold,
            deliveries,
        } => {
            tracing::warn!(
                deliveries,
                "chunk keeps coming back: settling its records as poison"
            );
            let reason = format!(
                "chunk delivered {} times without completing (workers crashed or were stopped on it); not tried again",
                deliveries + 1
            );
            settle(&ctx, &delivery, message, hold, Work::Poison(reason)).await;
        }
        Plan::Broken {
            message,
            hold,
            reason,
        } => {
            let reason = format!("job spec cannot run on this worker: {reason}");
            settle(&ctx, &delivery, message, hold, Work::Broken(reason)).await;
        }
        Plan::Cancelled { message, hold } => {
            tracing::info!(
                "job cancelled: settling the chunk's records as cancelled without calls"
            );
            settle(&ctx, &delivery, message, hold, Work::Cancelled).await;
        }
        Plan::Run {
            message,
            hold,
            processor,
        } => {
            let work = Work::Run {
                processor,
                until: arrived + ctx.max_hold,
            };
            settle(&ctx, &delivery, message, hold, work).await;
        }
    }
}

/// Reads the delivery and asks the store what it needs to know to decide its [`Plan`].
async fn plan<S: Store, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D) -> Plan<S> {
    let message = match ChunkMessage::decode(delivery.payload()) {
        Ok(m) => m,
        Err(e) => return Plan::Undecodable(e),
    };
    let span = tracing::Span::current();
    span.record("job.id", tracing::field::display(&message.job));
    span.record("chunk", message.chunk);
    let Some(entry) = find_job(ctx, &message).await else {
        return Plan::Unknown;
    };
    // Every delivery, first or not, asks: a first delivery may be a copy published twice.
    // Waiting for a twin is bounded by half the hold limit, so the run keeps the other half.
    let taken = hold::take(
        &ctx.store,
        &ctx.holders,
        &message.job,
        message.chunk,
        ctx.max_hold / 2,
        &ctx.abort,
    )
    .await;
    let hold = match taken {
        Taken::Hold(hold) => hold,
        Taken::Committed => return Plan::Skip,
        Taken::Busy => return Plan::Busy,
    };
    if let Some(deliveries) = ctx
        .settle_poison_at
        .zip(delivery.delivery_count())
        .and_then(|(limit, count)| (count >= limit).then_some(count))
    {
        return Plan::Poison {
            message,
            hold,
            deliveries,
        };
    }
    match entry.as_ref() {
        JobEntry::Ready(processor) if still_cancelled(ctx, &message.job, processor).await => {
            Plan::Cancelled { message, hold }
        }
        JobEntry::Ready(processor) => Plan::Run {
            message,
            hold,
            processor: processor.clone(),
        },
        JobEntry::Broken(reason) => Plan::Broken {
            message,
            hold,
            reason: reason.clone(),
        },
    }
}

/// Whether the job is cancelled, asking the store again when this worker thinks so: a
/// `volley retry` takes the cancel back, and its chunks may arrive before the worker's next
/// look at the controls. A store that cannot say leaves the worker's view as it is.
async fn still_cancelled<S: Store>(
    ctx: &ChunkContext<S>,
    job: &JobId,
    processor: &HttpProcessor,
) -> bool {
    if !processor.controls().cancelled() {
        return false;
    }
    if let Ok(Some(controls)) = ctx.store.job_controls(job).await {
        processor.apply_controls(controls);
    }
    processor.controls().cancelled()
}

/// How a held chunk's records get their outcomes.
enum Work {
    /// Call the API, returning the chunk unfinished at `until` (the hold limit).
    Run {
        processor: Arc<HttpProcessor>,
        until: Instant,
    },
    Cancelled,
    Poison(String),
    Broken(String),
}

/// How long requests in flight may finish when a chunk is returned at the hold limit.
const HOLD_GRACE: Duration = Duration::from_secs(30);

/// What a cancelled job's unsent records say.
const CANCELLED: &str = "job cancelled (volley cancel) before the request was sent";

/// Gives every record of the chunk an outcome, commits them in one step, and only then
/// settles the message: acked, dead-lettered (a poison chunk) or requeued (unfinished).
async fn settle<S: Store, D: ChunkDelivery>(
    ctx: &ChunkContext<S>,
    delivery: &D,
    message: ChunkMessage,
    hold: ChunkHold<S>,
    how: Work,
) {
    let (job, chunk) = (message.job, message.chunk);
    let held = ctx.state.hold_records(message.records.len() as u64);
    let inputs: Arc<[ChunkRecord]> = message.records.into();
    let poison = matches!(how, Work::Poison(_));
    let ran = match how {
        Work::Run { processor, until } => {
            let saved = saved_outcomes(ctx, delivery, &job, chunk, inputs.len()).await;
            run(ctx, processor, &inputs, saved, until, hold.lost()).await
        }
        Work::Cancelled => {
            // Records a returned delivery already finished keep their real outcome.
            let saved = saved_outcomes(ctx, delivery, &job, chunk, inputs.len()).await;
            let cancelled = failed_outcomes(&inputs, ErrorKind::Cancelled, CANCELLED);
            Ran::Outcomes(
                saved
                    .into_iter()
                    .zip(cancelled)
                    .map(|(saved, cancelled)| saved.unwrap_or(cancelled))
                    .collect(),
            )
        }
        Work::Poison(reason) => Ran::Outcomes(failed_outcomes(&inputs, ErrorKind::Poison, &reason)),
        Work::Broken(reason) => {
            Ran::Outcomes(failed_outcomes(&inputs, ErrorKind::Template, &reason))
        }
    };
    let committed = match ran {
        Ran::Outcomes(outcomes) => {
            match ChunkCommit::build(&job, chunk, &inputs, &outcomes, now_ms()) {
                Some(c) => commit(ctx, &c, &outcomes).await,
                None => {
                    tracing::warn!(
                        "redrive chunk carries an unreadable earlier outcome: dead-lettering"
                    );
                    hold.release().await;
                    dead_letter(ctx, delivery).await;
                    return;
                }
            }
        }
        Ran::Unfinished(outcomes) => {
            save_partial(ctx, &job, chunk, &outcomes).await;
            false
        }
    };
    let records = held.release();
    if !committed {
        tracing::info!("returning unfinished chunk to the queue");
        hold.release().await;
        let _ = delivery.requeue().await;
        return;
    }
    // The commit gave the hold up.
    drop(hold);
    ctx.state.records_done.fetch_add(records, Ordering::Relaxed);
    if poison {
        // Accounted for in the store (every record failed with `poison`); the message goes
        // to the dead-letter queue so `volley dead` shows what crashed the workers, and
        // `volley dead --requeue` sends its records again.
        tracing::warn!("poison chunk settled and dead-lettered");
        dead_letter(ctx, delivery).await;
        return;
    }
    volley_core::failpoint::abort_when_reached(
        "worker_abort_after_commits",
        ctx.state.chunks_committed.load(Ordering::Relaxed),
    );
    ack(ctx, delivery).await;
}

/// Calls the API for every record `saved` has no outcome for, unless the drain timeout,
/// the hold limit (`until`) or the loss of the chunk's hold comes first.
async fn run<S>(
    ctx: &ChunkContext<S>,
    processor: Arc<HttpProcessor>,
    inputs: &Arc<[ChunkRecord]>,
    mut saved: Vec<Option<RecordOutcome>>,
    until: Instant,
    lost: &CancellationToken,
) -> Ran {
    if ctx.abort.is_cancelled() {
        return Ran::Unfinished(saved);
    }
    let todo: Vec<usize> = (0..inputs.len()).filter(|&i| saved[i].is_none()).collect();
    let records: Arc<[ChunkRecord]> = if todo.len() == inputs.len() {
        inputs.clone()
    } else {
        tracing::info!(
            finished = inputs.len() - todo.len(),
            "chunk returned earlier: running only the records it had not finished"
        );
        todo.iter().map(|&i| inputs[i].clone()).collect()
    };
    // The drain timeout has passed: cut off at once. The hold limit, or a hold another
    // delivery took over: requests in flight (paid for) may finish within a grace that
    // stays far below the consumer timeout.
    let stop = async {
        tokio::select! {
            () = ctx.abort.cancelled() => Duration::ZERO,
            () = lost.cancelled() => HOLD_GRACE,
            () = tokio::time::sleep_until(until.into()) => {
                tracing::warn!(held_secs = ctx.max_hold.as_secs(), "chunk held too long (a pause, a tight rate limit, long Retry-After or slow API for chunking.size records); returning it before RabbitMQ's consumer_timeout closes the channel");
                HOLD_GRACE
            }
        }
    };
    let outcomes = run_until(processor, records, stop).await;
    for (pos, outcome) in todo.into_iter().zip(outcomes) {
        saved[pos] = outcome;
    }
    if saved.iter().all(Option::is_some) {
        Ran::Outcomes(saved.into_iter().flatten().collect())
    } else {
        Ran::Unfinished(saved)
    }
}

/// The outcomes an earlier delivery of this chunk saved when it returned the chunk
/// unfinished (only a redelivery can have any), retrying the store until it answers (the
/// commit needs it too). Unreadable: none, and the chunk runs whole.
async fn saved_outcomes<S: Store, D: ChunkDelivery>(
    ctx: &ChunkContext<S>,
    delivery: &D,
    job: &JobId,
    chunk: u64,
    len: usize,
) -> Vec<Option<RecordOutcome>> {
    let none = || vec![None; len];
    if !delivery.redelivered() {
        return none();
    }
    let stored = Patiently::new(STORE_BACKOFF, &ctx.abort)
        .run(
            |_| true,
            |r| {
                let e = r.error;
                tracing::warn!(error.message = %e, "cannot read the chunk's saved outcomes; retrying");
            },
            || ctx.store.partial(job, chunk),
        )
        .await;
    match stored {
        Ok(Some(bytes)) => partial::decode(&bytes, len).unwrap_or_else(|| {
            tracing::warn!("saved outcomes of the chunk are unreadable; running it whole");
            none()
        }),
        // Not read before the drain timeout: nothing runs then (the same abort stops the
        // run at once) and the saved outcomes stay for the next delivery.
        Ok(None) | Err(_) => none(),
    }
}

/// Saves a returned chunk's finished outcomes before it goes back to the queue.
async fn save_partial<S: Store>(
    ctx: &ChunkContext<S>,
    job: &JobId,
    chunk: u64,
    outcomes: &[Option<RecordOutcome>],
) {
    let Some(encoded) = partial::encode(outcomes) else {
        return;
    };
    // Not bound to `abort`: this runs after the drain timeout too, and is short.
    let save = tokio::time::timeout(
        Duration::from_secs(5),
        ctx.store.save_partial(job, chunk, &encoded),
    )
    .await;
    match save {
        Ok(Ok(())) => {
            let finished = outcomes.iter().filter(|o| o.is_some()).count();
            tracing::info!(finished, "saved the finished records of the returned chunk");
        }
        Ok(Err(e)) => {
            tracing::warn!(error.message = %e, "finished records of the returned chunk not saved; they will be sent again");
        }
        Err(_) => {
            tracing::warn!(
                "finished records of the returned chunk not saved in time; they will be sent again"
            );
        }
    }
}

/// The job's entry, retrying the store until it answers; `None` for a job it does not
/// know, or when the drain timeout passes first.
async fn find_job<S: Store>(
    ctx: &ChunkContext<S>,
    message: &ChunkMessage,
) -> Option<Arc<JobEntry>> {
    Patiently::new(STORE_BACKOFF, &ctx.abort)
        .run(
            |_| true,
            |r| {
                let e = r.error;
                tracing::warn!(error.message = %e, "cannot load job spec; retrying");
            },
            || ctx.jobs.get(&ctx.store, &message.job),
        )
        .await
        .ok()
        .flatten()
}

/// Commits until the store gives a definite answer; `false` when the chunk must go back to
/// the queue instead (drain timeout passed, or the store lost the job). The records of a
/// chunk this commit wrote (not one another delivery wrote first) count as finished.
async fn commit<S: Store>(
    ctx: &ChunkContext<S>,
    commit: &ChunkCommit,
    outcomes: &[RecordOutcome],
) -> bool {
    let job = &commit.job;
    let started = Instant::now();
    let readiness = &ctx.state.readiness;
    let answer = Patiently::new(STORE_BACKOFF, &ctx.abort)
        .run(
            |_| true,
            |r| {
                ctx.state.commit_retries.fetch_add(1, Ordering::Relaxed);
                let (attempt, e) = (r.attempt, r.error);
                readiness.store_failed(format!("{}: {e}", ctx.store_name));
                if attempt.is_multiple_of(10) {
                    tracing::warn!(attempt, error.message = %e, "commit failed; retrying, chunk stays unacked");
                }
            },
            || ctx.store.commit_chunk(commit),
        )
        .await;
    let Ok(status) = answer else {
        return false;
    };
    readiness.store_answered();
    match status {
        CommitStatus::Committed(state) => {
            ctx.state.chunks_committed.fetch_add(1, Ordering::Relaxed);
            let metrics = metrics::global();
            metrics.chunk_committed(started.elapsed());
            for outcome in outcomes {
                metrics.record_finished(outcome.error.as_ref().map(|e| e.kind));
            }
            tracing::debug!(state = %state, "commit.ok");
            if state.is_terminal() {
                tracing::info!(state = %state, "job finished");
            }
            true
        }
        CommitStatus::AlreadyCommitted => {
            ctx.state
                .chunks_already_committed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("commit.already: another delivery committed this chunk");
            true
        }
        CommitStatus::UnknownJob => {
            tracing::error!("store lost state for job (or chunk out of range); not acking");
            // Forget the cached spec, so the next delivery checks the store first
            // instead of calling the API again, and slow the loop down.
            ctx.jobs.forget(job).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            false
        }
    }
}

fn failed_outcomes(records: &[ChunkRecord], kind: ErrorKind, message: &str) -> Vec<RecordOutcome> {
    records
        .iter()
        .map(|r| RecordOutcome::unsent(r, kind, message))
        .collect()
}

async fn requeue_or_dead_letter<S: Store, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D) {
    if ctx.abort.is_cancelled() {
        let _ = delivery.requeue().await;
        return;
    }
    if matches!(ctx.store.has_history().await, Ok(false) | Err(_)) {
        // No job was ever registered here (or the store cannot say): the store has most
        // likely lost its data. Dead-lettering would hide the loss; the chunk goes back,
        // slowly, until someone looks (the delivery limit dead-letters it in the end, and
        // `volley dead --requeue` restores it).
        tracing::error!(
            "store lost state: Redis knows no job in this namespace (restarted without persistence?); returning the chunk instead of dead-lettering it"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = delivery.requeue().await;
        return;
    }
    tracing::warn!("chunk of an unknown job: dead-lettering");
    dead_letter(ctx, delivery).await;
}

async fn dead_letter<S, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D) {
    ctx.state
        .chunks_dead_lettered
        .fetch_add(1, Ordering::Relaxed);
    metrics::global().chunk_dead_lettered();
    if let Err(e) = delivery.dead_letter().await {
        tracing::warn!(error.message = %e, "dead-lettering failed; the broker will redeliver");
    }
}

async fn ack<S, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D) {
    match delivery.ack().await {
        Ok(true) => tracing::debug!("ack"),
        Ok(false) | Err(_) => {
            ctx.state.acks_lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "ack not delivered (channel was replaced); the broker will redeliver and the commit absorbs it"
            );
        }
    }
}
