//! The life of one delivered chunk: decode, find its job, skip it if already committed, run
//! its records, commit atomically, and only then ack.

use crate::jobs::{JobCache, JobEntry};
use crate::state::WorkerState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_core::patiently::Patiently;
use volley_core::time::now_ms;
use volley_core::{
    Backoff, ChunkCommit, ChunkDelivery, ChunkMessage, ChunkRecord, CommitStatus, ErrorKind,
    RecordError, RecordOutcome, Store, run_chunk,
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
}

/// Backoff for store retries (and start-up waits): 100 ms doubling to 5 s.
pub(crate) const STORE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5));

/// Handles one delivery to the end; never panics on bad input.
pub(crate) async fn handle_delivery<S: Store, D: ChunkDelivery>(
    ctx: Arc<ChunkContext<S>>,
    delivery: D,
) {
    let message = match ChunkMessage::decode(delivery.payload()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error.message = %e, bytes = delivery.payload().len(), "poison message: dead-lettering");
            dead_letter(&ctx, &delivery).await;
            return;
        }
    };
    let job = message.job.clone();
    let chunk = message.chunk;
    let Some(entry) = find_job(&ctx, &message).await else {
        requeue_or_dead_letter(&ctx, &delivery, &message).await;
        return;
    };
    if delivery.redelivered() && matches!(ctx.store.is_committed(&job, chunk).await, Ok(true)) {
        ctx.state
            .chunks_already_committed
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(job.id = %job, chunk, "redelivered chunk already committed; acking without work");
        ack(&ctx, &delivery, &message).await;
        return;
    }
    let records = message.records.len() as u64;
    ctx.state.records_held.fetch_add(records, Ordering::Relaxed);
    let inputs: Arc<[ChunkRecord]> = message.records.into();
    let poisoned = ctx
        .settle_poison_at
        .zip(delivery.delivery_count())
        .filter(|(limit, count)| count >= limit)
        .map(|(_, count)| count);
    if let Some(count) = poisoned {
        tracing::warn!(job.id = %job, chunk, deliveries = count, "chunk keeps coming back: settling its records as poison");
    }
    let outcomes = match entry.as_ref() {
        _ if poisoned.is_some() => Some(failed_outcomes(
            &inputs,
            ErrorKind::Poison,
            &format!(
                "chunk delivered {} times without completing (workers crashed or were stopped on it); not tried again",
                poisoned.unwrap_or_default() + 1
            ),
        )),
        JobEntry::Ready(processor) => {
            tokio::select! {
                outcomes = run_chunk(processor.clone(), inputs.clone()) => outcomes,
                () = ctx.abort.cancelled() => None,
                () = tokio::time::sleep(ctx.max_hold) => {
                    tracing::warn!(job.id = %job, chunk, held_secs = ctx.max_hold.as_secs(), "chunk held too long (a tight rate limit, long Retry-After or slow API for chunking.size records); returning it before RabbitMQ's consumer_timeout closes the channel");
                    None
                }
            }
        }
        JobEntry::Broken(reason) => Some(failed_outcomes(
            &inputs,
            ErrorKind::Template,
            &format!("job spec cannot run on this worker: {reason}"),
        )),
    };
    let committed = match outcomes {
        Some(outcomes) => match ChunkCommit::build(&job, chunk, &inputs, &outcomes, now_ms()) {
            Some(c) => commit(&ctx, &c).await,
            None => {
                tracing::warn!(job.id = %job, chunk, "redrive chunk carries an unreadable earlier outcome: dead-lettering");
                dead_letter(&ctx, &delivery).await;
                ctx.state.records_held.fetch_sub(records, Ordering::Relaxed);
                return;
            }
        },
        None => false,
    };
    ctx.state.records_held.fetch_sub(records, Ordering::Relaxed);
    if committed {
        ctx.state.records_done.fetch_add(records, Ordering::Relaxed);
        if poisoned.is_some() {
            // Accounted for in the store (every record failed with `poison`); the message
            // goes to the dead-letter queue so `volley dead` shows what crashed the workers,
            // and `volley dead --requeue` sends its records again.
            tracing::warn!(job.id = %job, chunk, "poison chunk settled and dead-lettered");
            dead_letter(&ctx, &delivery).await;
            return;
        }
        volley_core::failpoint::abort_when_reached(
            "worker_abort_after_commits",
            ctx.state.chunks_committed.load(Ordering::Relaxed),
        );
        ack_delivery(&ctx, &delivery, job.as_str(), chunk).await;
    } else {
        tracing::info!(job.id = %job, chunk, "returning unfinished chunk to the queue");
        let _ = delivery.requeue().await;
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
                tracing::warn!(job.id = %message.job, error.message = %e, "cannot load job spec; retrying");
            },
            || ctx.jobs.get(&ctx.store, &message.job),
        )
        .await
        .ok()
        .flatten()
}

/// Commits until the store gives a definite answer; `false` when the chunk must go back to
/// the queue instead (drain timeout passed, or the store lost the job).
async fn commit<S: Store>(ctx: &ChunkContext<S>, commit: &ChunkCommit) -> bool {
    let (job, chunk) = (&commit.job, commit.chunk);
    let answer = Patiently::new(STORE_BACKOFF, &ctx.abort)
        .run(
            |_| true,
            |r| {
                ctx.state.commit_retries.fetch_add(1, Ordering::Relaxed);
                let (attempt, e) = (r.attempt, r.error);
                if attempt.is_multiple_of(10) {
                    tracing::warn!(job.id = %job, chunk, attempt, error.message = %e, "commit failed; retrying, chunk stays unacked");
                }
            },
            || ctx.store.commit_chunk(commit),
        )
        .await;
    let Ok(status) = answer else {
        return false;
    };
    match status {
        CommitStatus::Committed(state) => {
            ctx.state.chunks_committed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(job.id = %job, chunk, state = %state, "commit.ok");
            if state.is_terminal() {
                tracing::info!(job.id = %job, state = %state, "job finished");
            }
            true
        }
        CommitStatus::AlreadyCommitted => {
            ctx.state
                .chunks_already_committed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(job.id = %job, chunk, "commit.already: another delivery committed this chunk");
            true
        }
        CommitStatus::UnknownJob => {
            tracing::error!(job.id = %job, chunk, "store lost state for job (or chunk out of range); not acking");
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
        .map(|r| RecordOutcome {
            id: r.id.clone(),
            line: r.line,
            status: None,
            attempts: 0,
            latency_ms: 0,
            error: Some(RecordError {
                kind,
                message: message.to_string(),
            }),
            body: None,
        })
        .collect()
}

async fn requeue_or_dead_letter<S: Store, D: ChunkDelivery>(
    ctx: &ChunkContext<S>,
    delivery: &D,
    message: &ChunkMessage,
) {
    if ctx.abort.is_cancelled() {
        let _ = delivery.requeue().await;
        return;
    }
    if matches!(ctx.store.has_history().await, Ok(false) | Err(_)) {
        // No job was ever registered here (or the store cannot say): the store has most
        // likely lost its data. Dead-lettering would hide the loss; the chunk goes back,
        // slowly, until someone looks (the delivery limit dead-letters it in the end, and
        // `volley dead --requeue` restores it).
        tracing::error!(job.id = %message.job, chunk = message.chunk, "store lost state: Redis knows no job in this namespace (restarted without persistence?); returning the chunk instead of dead-lettering it");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = delivery.requeue().await;
        return;
    }
    tracing::warn!(job.id = %message.job, chunk = message.chunk, "chunk of an unknown job: dead-lettering");
    dead_letter(ctx, delivery).await;
}

async fn dead_letter<S, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D) {
    ctx.state
        .chunks_dead_lettered
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = delivery.dead_letter().await {
        tracing::warn!(error.message = %e, "dead-lettering failed; the broker will redeliver");
    }
}

async fn ack<S, D: ChunkDelivery>(ctx: &ChunkContext<S>, delivery: &D, message: &ChunkMessage) {
    ack_delivery(ctx, delivery, message.job.as_str(), message.chunk).await;
}

async fn ack_delivery<S, D: ChunkDelivery>(
    ctx: &ChunkContext<S>,
    delivery: &D,
    job: &str,
    chunk: u64,
) {
    match delivery.ack().await {
        Ok(true) => tracing::debug!(job.id = %job, chunk, "ack"),
        Ok(false) | Err(_) => {
            ctx.state.acks_lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job.id = %job, chunk, "ack not delivered (channel was replaced); the broker will redeliver and the commit absorbs it");
        }
    }
}
