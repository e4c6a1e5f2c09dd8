//! The publishing side: batches of encoded chunks, published with confirms; after each
//! confirmed batch the job's publish mark advances in the store.

use crate::reader::{Prepared, ReadEvent, ReadPlan, read_chunks};
use crate::skip::{DoneRecords, counted};
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use volley_core::input::{InputError, ReaderOptions, RecordReader};
use volley_core::patiently::{Patiently, Retrying};
use volley_core::time::now_ms;
use volley_core::{
    Backoff, Broker, BrokerError, ChunkMessage, JobId, JobSpec, JobState, NewJob, OutgoingChunk,
    PublishMark, Registration, Store, StoreError,
};

/// Chunks per confirmed batch.
const BATCH_CHUNKS: usize = 64;
/// Largest chunk message; RabbitMQ 4.x refuses messages above 16 MiB by default.
pub(crate) const MAX_CHUNK_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;
/// How long the producer keeps retrying an unreachable broker or store before giving up.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(300);
/// Its waits between tries: 200 ms doubling to 5 s.
const OUTAGE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(200), Duration::from_secs(5));

/// [`OUTAGE_PATIENCE`], or the `producer_outage_patience_ms` failpoint's value (a test of
/// the give-up path that does not take 5 minutes).
fn outage_patience() -> Duration {
    volley_core::failpoint::armed("producer_outage_patience_ms")
        .and_then(|v| v.parse().ok())
        .map_or(OUTAGE_PATIENCE, Duration::from_millis)
}

/// What to produce.
pub struct ProduceRequest {
    /// The spec's text, stored with the job.
    pub spec_text: String,
    /// The parsed spec.
    pub spec: JobSpec,
    /// The job id (new or resumed).
    pub job: JobId,
    /// The record source.
    pub input: Box<dyn BufRead + Send>,
    /// How the source is named in messages and in the job (file path or `<stdin>`).
    pub input_name: String,
    /// Reader options (format resolved).
    pub reader: ReaderOptions,
    /// Seconds a finished job's keys are kept unless the spec's `result.retention` says
    /// otherwise (the fleet's default, from the settings).
    pub retention_secs: u64,
    /// Called with the number of records published so far.
    pub on_progress: Box<dyn Fn(u64) + Send>,
    /// Instead of resuming, republish these chunks of a fully published job, the ones
    /// [`crate::check_missing`] found certainly missing (no outcome in the store, neither
    /// queued nor held: Redis lost recent writes). Those that got an outcome since are left.
    pub missing: Option<Vec<u64>>,
    /// Records not to publish: an earlier run has their results (`volley run --skip-done`).
    pub skip_done: Option<Arc<DoneRecords>>,
    /// Only resume an existing job: an unknown id is [`ProduceError::UnknownJob`], and
    /// nothing is registered or published.
    pub resume_only: bool,
    /// Called once the job is registered or found, before anything is published.
    pub on_start: Box<dyn FnOnce(&JobStart) + Send>,
}

/// What registering found: the producer says which on stderr, since `--job-id` both
/// creates and resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStart {
    /// A new job.
    Created,
    /// An existing job, publishing from this chunk on.
    Resuming {
        /// The first chunk this run publishes.
        chunk: u64,
    },
    /// An existing job whose chunks were all published: nothing to do.
    AlreadyPublished {
        /// Its state.
        state: JobState,
    },
}

/// What a producer run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    /// The job.
    pub job: JobId,
    /// Records in the job.
    pub total_records: u64,
    /// Chunks in the job.
    pub total_chunks: u64,
    /// Chunks published by this run (the rest were published by an earlier run).
    pub published_now: u64,
    /// Where a resumed run started.
    pub resumed_at_chunk: Option<u64>,
    /// The job's state after publishing.
    pub state: JobState,
    /// Repeated record ids (processed all the same).
    pub duplicates: crate::DuplicateReport,
    /// With `missing`: the chunks published again.
    pub republished: Vec<u64>,
    /// The job was cancelled (`volley cancel`) while this run published: it stopped after
    /// the batch it was on, and the totals are what it had published.
    pub cancelled: bool,
}

/// Why producing stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// A malformed record; the job is `input_error` and resumable after a fix.
    #[error("{error}")]
    Input {
        /// The reader's error (names file and line).
        error: InputError,
        /// Chunks published before it.
        published_chunks: u64,
        /// Records read before it (published or in the incomplete chunk that was not).
        records_before: u64,
    },
    /// A resumed run found another input than the one published before.
    #[error(
        "input changed since job {job} was started: the records of its first {chunks} published chunks differ; start a new job (without --job-id) or restore the original input"
    )]
    InputChanged {
        /// The job.
        job: JobId,
        /// Chunks compared.
        chunks: u64,
    },
    /// A chunk is too large for the broker.
    #[error(
        "chunk {chunk} would be {bytes} bytes, above the broker message limit of {limit} bytes; lower chunking.size (records average {avg} bytes)"
    )]
    ChunkTooLarge {
        /// The chunk.
        chunk: u64,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
        /// Average bytes per record in it.
        avg: usize,
    },
    /// `--resume` of a job the store does not know; nothing was registered.
    #[error(
        "no job {job} to resume: nothing was registered or published (--job-id {job} would create it)"
    )]
    UnknownJob {
        /// The job.
        job: JobId,
    },
    /// `--missing` cannot apply to this job.
    #[error("cannot republish missing chunks of job {job}: {reason}")]
    NotRepublishable {
        /// The job.
        job: JobId,
        /// Why.
        reason: String,
    },
    /// The broker refused or could not be reached.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The store refused or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers (or resumes) the job and publishes every chunk not yet confirmed.
///
/// # Errors
/// [`ProduceError`]; the job's state in the store says how to continue.
pub async fn produce<B: Broker, S: Store>(
    broker: &B,
    store: &S,
    request: ProduceRequest,
) -> Result<ProduceReport, ProduceError> {
    let ProduceRequest {
        spec_text,
        spec,
        job,
        input,
        input_name,
        reader,
        retention_secs,
        on_progress,
        missing,
        skip_done,
        resume_only,
        on_start,
    } = request;
    if missing.is_some()
        && patiently("read job", || store.job_status(&job))
            .await?
            .is_none()
    {
        return Err(ProduceError::NotRepublishable {
            job,
            reason: "no such job in this namespace".into(),
        });
    }
    let new_job = NewJob {
        id: job.clone(),
        name: spec.name.clone(),
        spec_toml: spec_text,
        input: input_name,
        chunk_size: spec.chunking.size,
        tolerated_failure_percent: spec.result.tolerated_failure_percent,
        retention_secs: spec
            .result
            .retention_secs(std::time::Duration::from_secs(retention_secs)),
        weight: spec.weight,
        now_ms: now_ms(),
        resume_only,
    };
    let registration = patiently("register job", || store.register_job(&new_job)).await?;
    if !matches!(registration, Registration::Unknown) {
        broker.declare_job(&job).await?;
    }
    let mark = match registration {
        Registration::Unknown => return Err(ProduceError::UnknownJob { job }),
        Registration::Created => {
            on_start(&JobStart::Created);
            PublishMark {
                chunks: 0,
                records: 0,
                input_digest: String::new(),
            }
        }
        Registration::Resume { mark, .. } if missing.is_some() => {
            let republish = Republish {
                job,
                spec,
                input,
                reader,
                mark,
                certain: missing.unwrap_or_default(),
            };
            return republish_missing(broker, store, republish).await;
        }
        Registration::Resume { state, mark } => {
            if matches!(state, JobState::Running) || state.is_terminal() {
                on_start(&JobStart::AlreadyPublished { state });
                let status = store.job_status(&job).await?;
                let (total_records, total_chunks) =
                    status.map_or((mark.records, mark.chunks), |s| {
                        (
                            s.total.unwrap_or(mark.records),
                            s.total_chunks.unwrap_or(mark.chunks),
                        )
                    });
                return Ok(ProduceReport {
                    job,
                    total_records,
                    total_chunks,
                    published_now: 0,
                    resumed_at_chunk: Some(total_chunks),
                    state,
                    duplicates: crate::DuplicateReport::default(),
                    republished: Vec::new(),
                    cancelled: false,
                });
            }
            on_start(&JobStart::Resuming { chunk: mark.chunks });
            mark
        }
    };
    // For the fault test of a producer that dies between registering and publishing.
    volley_core::failpoint::abort_when_reached("producer_abort_after_register", 1);
    let resumed_at_chunk = (mark.chunks > 0).then_some(mark.chunks);
    let plan = ReadPlan {
        job: job.clone(),
        chunk_size: spec.chunking.size,
        max_chunk_bytes: MAX_CHUNK_BYTES,
        skip_chunks: mark.chunks,
        expected_digest: mark.input_digest.clone(),
        only: None,
    };
    let (tx, mut rx) = mpsc::channel(BATCH_CHUNKS * 2);
    let records_read = Arc::new(AtomicU64::new(0));
    let count = records_read.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let source = reader.source_name.clone();
        let records = RecordReader::new(input, reader);
        match skip_done {
            Some(done) => read_chunks(counted(done.filter(records, source), count), &plan, &tx),
            None => read_chunks(counted(records, count), &plan, &tx),
        }
    });
    let mut published = mark.clone();
    let mut published_now = 0;
    let mut failure = None;
    let mut batch: Vec<Prepared> = Vec::with_capacity(BATCH_CHUNKS);
    let mut duplicates = crate::DuplicateReport::default();
    let mut cancelled = false;
    loop {
        let event = rx.recv().await;
        let mut end = event.is_none();
        match event {
            Some(ReadEvent::Chunk(prepared)) => batch.push(prepared),
            Some(ReadEvent::Duplicates(report)) => duplicates = report,
            Some(ReadEvent::Bad(error)) => {
                end = true;
                failure = Some(Failure::Input(error));
            }
            Some(ReadEvent::Changed { chunks }) => {
                end = true;
                failure = Some(Failure::Changed(chunks));
            }
            Some(ReadEvent::TooLarge { chunk, bytes }) => {
                end = true;
                failure = Some(Failure::TooLarge(chunk, bytes));
            }
            None => {}
        }
        if batch.len() >= BATCH_CHUNKS
            || (end && !batch.is_empty())
            || (!batch.is_empty() && rx.is_empty())
        {
            publish_batch(broker, store, &job, &mut batch, &mut published).await?;
            on_progress(published.records);
            // Read once per batch: nothing more of a cancelled job is published, and its
            // totals are what was, so ok + failed + cancelled = done = total still holds.
            if is_cancelled(store, &job).await {
                tracing::warn!(job.id = %job, records = published.records, "job cancelled: publishing stopped");
                cancelled = true;
                break;
            }
        }
        if end {
            break;
        }
    }
    drop(rx);
    let _ = reading.await;
    published_now += published.chunks - mark.chunks;
    match failure {
        Some(Failure::Input(error)) => {
            let message = error.to_string();
            patiently("record input error", || {
                store.record_input_error(&job, &message)
            })
            .await?;
            return Err(ProduceError::Input {
                error,
                published_chunks: published.chunks,
                records_before: records_read.load(Ordering::Relaxed),
            });
        }
        Some(Failure::Changed(chunks)) => return Err(ProduceError::InputChanged { job, chunks }),
        Some(Failure::TooLarge(chunk, bytes)) => {
            let records = u64::from(spec.chunking.size).max(1);
            let avg = bytes / usize::try_from(records).unwrap_or(1);
            return Err(ProduceError::ChunkTooLarge {
                chunk,
                bytes,
                limit: MAX_CHUNK_BYTES,
                avg,
            });
        }
        None => {}
    }
    let state = patiently("finish publishing", || {
        store.finish_publishing(&job, published.records, published.chunks, now_ms())
    })
    .await?;
    Ok(ProduceReport {
        job,
        total_records: published.records,
        total_chunks: published.chunks,
        published_now,
        resumed_at_chunk,
        state,
        duplicates,
        republished: Vec::new(),
        cancelled,
    })
}

/// Whether the job was cancelled. A store that cannot say is taken for no: the batch after
/// asks again.
async fn is_cancelled<S: Store>(store: &S, job: &JobId) -> bool {
    matches!(store.job_controls(job).await, Ok(Some(c)) if c.cancel_ms.is_some())
}

enum Failure {
    Input(InputError),
    Changed(u64),
    TooLarge(u64, usize),
}

/// Publishes a batch (retrying through broker outages), then advances the mark.
async fn publish_batch<B: Broker, S: Store>(
    broker: &B,
    store: &S,
    job: &JobId,
    batch: &mut Vec<Prepared>,
    published: &mut PublishMark,
) -> Result<(), ProduceError> {
    let Some(last) = batch.last() else {
        return Ok(());
    };
    let next_mark = PublishMark {
        chunks: last.chunk + 1,
        records: published.records + batch.iter().map(|p| p.records).sum::<u64>(),
        input_digest: last.digest.clone(),
    };
    let messages: Vec<OutgoingChunk> = batch
        .drain(..)
        .map(|p| OutgoingChunk {
            job: job.clone(),
            message_id: ChunkMessage::message_id(job, p.chunk),
            payload: p.payload,
        })
        .collect();
    publish_patiently(broker, job, messages).await?;
    patiently("record publish mark", || {
        store.record_published(job, &next_mark)
    })
    .await?;
    *published = next_mark;
    volley_core::failpoint::abort_when_reached("producer_abort_after_chunks", published.chunks);
    // For fault tests that need a producer caught mid-publish.
    if let Some(ms) =
        volley_core::failpoint::armed("producer_batch_delay_ms").and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(())
}

/// Publishes with confirms, republishing the whole batch through broker outages. A copy
/// of a chunk that did reach the queue runs no record twice: it waits for the chunk's hold
/// and skips it once committed.
async fn publish_patiently<B: Broker>(
    broker: &B,
    job: &JobId,
    messages: Vec<OutgoingChunk>,
) -> Result<(), ProduceError> {
    // For fault tests: every chunk published twice, each copy right behind its original,
    // as a republish after lost confirms would queue them.
    let messages = if volley_core::failpoint::armed("producer_publish_twice").is_some() {
        messages.into_iter().flat_map(|m| [m.clone(), m]).collect()
    } else {
        messages
    };
    through_outage(
        |e| matches!(e, BrokerError::Unavailable(_)),
        |r| {
            let (attempt, e) = (r.attempt, r.error);
            tracing::warn!(job.id = %job, attempt, error.message = %e, retry_in_ms = r.retry_in.as_millis() as u64, "publish not confirmed; republishing the batch");
        },
        || broker.publish_confirmed(messages.clone()),
    )
    .await
    .map_err(ProduceError::Broker)
}

/// What `--missing` republishes from.
struct Republish {
    job: JobId,
    spec: JobSpec,
    input: Box<dyn BufRead + Send>,
    reader: ReaderOptions,
    mark: PublishMark,
    /// The chunks found certainly missing.
    certain: Vec<u64>,
}

/// `--missing`: a fully published job whose store has no outcome for some chunks the queue
/// no longer holds (acked, then lost by a Redis that forgot its last writes). Re-reads the
/// input, checks it is the one published, and publishes those chunks again; the publish
/// mark does not move.
async fn republish_missing<B: Broker, S: Store>(
    broker: &B,
    store: &S,
    republish: Republish,
) -> Result<ProduceReport, ProduceError> {
    let Republish {
        job,
        spec,
        input,
        reader,
        mark,
        certain,
    } = republish;
    let status = patiently("read job", || store.job_status(&job))
        .await?
        .ok_or_else(|| ProduceError::NotRepublishable {
            job: job.clone(),
            reason: "no such job in this namespace".into(),
        })?;
    let state = status.state;
    let mut report = ProduceReport {
        job: job.clone(),
        total_records: status.total.unwrap_or(status.published_records),
        total_chunks: status.total_chunks.unwrap_or(status.published_chunks),
        published_now: 0,
        resumed_at_chunk: None,
        state,
        duplicates: crate::DuplicateReport::default(),
        republished: Vec::new(),
        cancelled: false,
    };
    if state.is_terminal() {
        return Ok(report);
    }
    if state != JobState::Running {
        return Err(ProduceError::NotRepublishable {
            job,
            reason: format!(
                "it is {state}, not fully published: run without --missing to resume publishing"
            ),
        });
    }
    let mut missing = patiently("read committed chunks", || {
        store.uncommitted_chunks(&job, report.total_chunks)
    })
    .await?;
    missing.retain(|c| certain.contains(c));
    if missing.is_empty() {
        return Ok(report);
    }
    let plan = ReadPlan {
        job: job.clone(),
        chunk_size: spec.chunking.size,
        max_chunk_bytes: usize::MAX,
        skip_chunks: 0,
        expected_digest: mark.input_digest,
        only: Some(missing.iter().copied().collect()),
    };
    let (tx, mut rx) = mpsc::channel(BATCH_CHUNKS * 2);
    let reading = tokio::task::spawn_blocking(move || {
        read_chunks(RecordReader::new(input, reader), &plan, &tx);
    });
    let mut batch = Vec::with_capacity(BATCH_CHUNKS);
    let mut changed = None;
    while let Some(event) = rx.recv().await {
        match event {
            ReadEvent::Chunk(p) => {
                report.republished.push(p.chunk);
                batch.push(OutgoingChunk {
                    job: job.clone(),
                    message_id: ChunkMessage::message_id(&job, p.chunk),
                    payload: p.payload,
                });
            }
            // The input was published whole before: a bad record now means it changed.
            ReadEvent::Changed { chunks } => changed = Some(chunks),
            ReadEvent::Bad(_) | ReadEvent::TooLarge { .. } => changed = Some(report.total_chunks),
            ReadEvent::Duplicates(_) => {}
        }
        if changed.is_some() {
            break;
        }
        if batch.len() >= BATCH_CHUNKS || (!batch.is_empty() && rx.is_empty()) {
            publish_patiently(broker, &job, std::mem::take(&mut batch)).await?;
        }
    }
    drop(rx);
    let _ = reading.await;
    if let Some(chunks) = changed {
        return Err(ProduceError::InputChanged { job, chunks });
    }
    publish_patiently(broker, &job, batch).await?;
    report.published_now = report.republished.len() as u64;
    Ok(report)
}

/// Retries a store call through outages for a while; other errors end at once.
async fn patiently<T, F, Fut>(what: &str, call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    through_outage(
        |e| matches!(e, StoreError::Unavailable(_)),
        |r| {
            let (attempt, e) = (r.attempt, r.error);
            tracing::warn!(attempt, error.message = %e, "{what}: store unavailable; retrying");
        },
        call,
    )
    .await
}

/// Retries `call` through an outage for [`outage_patience`]. The producer has no token to
/// cancel its waits: an interrupted producer exits, and a resumed run picks up from the
/// publish mark.
async fn through_outage<T, E, Fut>(
    transient: impl Fn(&E) -> bool,
    on_retry: impl FnMut(&Retrying<'_, E>),
    call: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let never = CancellationToken::new();
    Patiently::new(OUTAGE_BACKOFF, &never)
        .for_at_most(outage_patience())
        .run(transient, on_retry, call)
        .await
        .map_err(|gave_up| {
            gave_up
                .into_error()
                .expect("the producer's retries have no token that could cancel them")
        })
}
