//! The embedded default: the same producer, worker and pipeline as a fleet, on the in-memory
//! broker and store, in one process, with no RabbitMQ and no Redis.

use indicatif::ProgressBar;
use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_core::governor::MemoryFleet;
use volley_core::input::ReaderOptions;
use volley_core::memory::{MemoryBroker, MemoryStore};
use volley_core::time::now_ms;
use volley_core::{JobId, JobSpec, JobState, JobStatus, Store};
use volley_producer::{DoneRecords, ProduceError, ProduceRequest, produce};
use volley_worker::{WorkerOptions, run_worker};

/// An embedded job to run.
pub struct EmbeddedJob {
    /// The spec's text.
    pub spec_text: String,
    /// The parsed spec.
    pub spec: JobSpec,
    /// Records.
    pub input: Box<dyn BufRead + Send>,
    /// Their name in messages.
    pub input_name: String,
    /// Reader options.
    pub reader: ReaderOptions,
    /// After an interrupt, how long the records in flight may take to finish.
    pub drain_timeout: Duration,
    /// Records an earlier run has results for: not run again.
    pub skip_done: Option<Arc<DoneRecords>>,
}

/// A finished embedded run: the store holds the results.
pub struct EmbeddedRun {
    /// The store, for export.
    pub store: MemoryStore,
    /// The job id.
    pub job: JobId,
    /// The final status.
    pub status: JobStatus,
    /// The producer's error, if it stopped at bad input (published chunks still ran).
    pub input_error: Option<ProduceError>,
    /// Wall time.
    pub elapsed: Duration,
    /// Set when the run was interrupted before the job ended.
    pub interrupted: Option<Interruption>,
}

/// How an interrupted run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    /// Whether every chunk in flight finished within the drain timeout (when not, the
    /// unfinished ones are not in the results, though some of their requests were sent).
    pub drained: bool,
}

/// The spec with `concurrency.per_worker` set to `per_worker` (`volley run --concurrency`),
/// so the job's own bound is the one asked for, not only the worker's.
///
/// # Errors
/// The spec's error when the value is refused (e.g. out of range).
pub fn with_per_worker(spec_text: &str, per_worker: usize) -> Result<(String, JobSpec), String> {
    let mut table: toml::Table = spec_text.parse().map_err(|e| format!("{e}"))?;
    let concurrency = table
        .entry("concurrency")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(concurrency) = concurrency.as_table_mut() else {
        return Err("concurrency: expected a table".into());
    };
    let value = i64::try_from(per_worker).unwrap_or(i64::MAX);
    concurrency.insert("per_worker".into(), toml::Value::Integer(value));
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    let spec = JobSpec::from_toml(&text).map_err(|e| e.to_string())?;
    Ok((text, spec))
}

/// Runs a job to its end in this process, or until `interrupt` fires: then no new chunk
/// starts, the chunks in flight finish (within the drain timeout) and the run returns with
/// the finished ones committed.
///
/// # Errors
/// Only for producer failures other than bad input (which are reported in the run).
pub async fn run_embedded(
    job: EmbeddedJob,
    bar: &ProgressBar,
    interrupt: &CancellationToken,
) -> Result<EmbeddedRun, ProduceError> {
    let started = std::time::Instant::now();
    let broker = MemoryBroker::new();
    let store = MemoryStore::new();
    let id = JobId::generate(&job.spec.name, now_ms() / 1000);
    let concurrency = usize::try_from(job.spec.concurrency.per_worker).unwrap_or(usize::MAX);
    let chunk_size = usize::try_from(job.spec.chunking.size).unwrap_or(1).max(1);
    let options = WorkerOptions {
        concurrency,
        // Enough chunks held to keep every slot busy while finished chunks commit.
        prefetch: u16::try_from((2 * concurrency).div_ceil(chunk_size) + 2).unwrap_or(u16::MAX),
        worker_id: "embedded".into(),
        drain_timeout: job.drain_timeout,
        heartbeat_interval: Duration::from_secs(3600),
        ..WorkerOptions::default()
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        broker.clone(),
        store.clone(),
        options,
        std::sync::Arc::new(MemoryFleet::new()),
        shutdown.clone(),
        None,
    ));
    let progress = bar.clone();
    let request = ProduceRequest {
        spec_text: job.spec_text,
        spec: job.spec,
        job: id.clone(),
        input: job.input,
        input_name: job.input_name,
        reader: job.reader,
        retention_secs: 0,
        on_progress: Box::new(move |n| {
            if progress.length().is_none_or(|l| l < n) {
                progress.set_length(n);
            }
        }),
        missing: None,
        skip_done: job.skip_done,
        resume_only: false,
        on_start: Box::new(|_| {}),
    };
    // Dropping the producer at the interrupt is clean: on the in-memory broker and store it
    // publishes a batch and records its mark without waiting in between, so it only ever
    // stops where every published chunk is counted in the mark.
    let produced = tokio::select! {
        produced = produce(&broker, &store, request) => Some(produced),
        () = interrupt.cancelled() => None,
    };
    let producer_done = produced.is_some();
    let input_error = match produced {
        Some(Ok(report)) => {
            bar.set_length(report.total_records);
            None
        }
        Some(Err(e @ ProduceError::Input { .. })) => Some(e),
        Some(Err(e)) => {
            shutdown.cancel();
            let _ = worker.await;
            return Err(e);
        }
        None => None,
    };
    let ended = tokio::select! {
        _ = wait_for_end(&store, &id, bar), if producer_done => true,
        () = interrupt.cancelled() => false,
    };
    // On an interrupt the worker stops taking chunks and drains the ones it holds.
    shutdown.cancel();
    let drained = match worker.await {
        Ok(Ok(report)) => report.drained,
        _ => false,
    };
    // Only an interrupt before the job was registered leaves no status: nothing ran.
    let status = store.job_status(&id).await?.unwrap_or_else(|| JobStatus {
        job: id.to_string(),
        state: JobState::Publishing,
        ..JobStatus::default()
    });
    bar.set_position(status.done);
    Ok(EmbeddedRun {
        store,
        job: id,
        status,
        input_error,
        elapsed: started.elapsed(),
        interrupted: (!ended).then_some(Interruption { drained }),
    })
}

/// Polls until the job is terminal, or (after an input error) until every published chunk
/// has committed.
async fn wait_for_end(store: &MemoryStore, job: &JobId, bar: &ProgressBar) -> JobStatus {
    loop {
        if let Ok(Some(status)) = store.job_status(job).await {
            bar.set_position(status.done);
            if status.has_ended() {
                return status;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
