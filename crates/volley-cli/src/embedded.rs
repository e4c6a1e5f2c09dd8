//! The embedded default: the same producer, worker and pipeline as a fleet, on the in-memory
//! broker and store, in one process, with no RabbitMQ and no Redis.

use indicatif::ProgressBar;
use std::io::BufRead;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_core::governor::MemoryFleet;
use volley_core::input::ReaderOptions;
use volley_core::memory::{MemoryBroker, MemoryStore};
use volley_core::time::now_ms;
use volley_core::{JobId, JobSpec, JobState, JobStatus, Store};
use volley_producer::{ProduceError, ProduceRequest, produce};
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
    /// Worker concurrency cap (defaults to the spec's per_worker).
    pub concurrency: Option<usize>,
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
}

/// Runs a job to its end in this process.
///
/// # Errors
/// Only for producer failures other than bad input (which are reported in the run).
pub async fn run_embedded(
    job: EmbeddedJob,
    bar: &ProgressBar,
) -> Result<EmbeddedRun, ProduceError> {
    let started = std::time::Instant::now();
    let broker = MemoryBroker::new();
    let store = MemoryStore::new();
    let id = JobId::generate(&job.spec.name, now_ms() / 1000);
    let per_worker = usize::try_from(job.spec.concurrency.per_worker).unwrap_or(usize::MAX);
    let concurrency = job.concurrency.unwrap_or(per_worker);
    let chunk_size = usize::try_from(job.spec.chunking.size).unwrap_or(1).max(1);
    let options = WorkerOptions {
        concurrency,
        // Enough chunks held to keep every slot busy while finished chunks commit.
        prefetch: u16::try_from((2 * concurrency).div_ceil(chunk_size) + 2).unwrap_or(u16::MAX),
        worker_id: "embedded".into(),
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
    };
    let produced = produce(&broker, &store, request).await;
    let input_error = match produced {
        Ok(report) => {
            bar.set_length(report.total_records);
            None
        }
        Err(e @ ProduceError::Input { .. }) => Some(e),
        Err(e) => {
            shutdown.cancel();
            let _ = worker.await;
            return Err(e);
        }
    };
    let status = wait_for_end(&store, &id, bar).await;
    shutdown.cancel();
    let _ = worker.await;
    Ok(EmbeddedRun {
        store,
        job: id,
        status,
        input_error,
        elapsed: started.elapsed(),
    })
}

/// Polls until the job is terminal, or (after an input error) until every published chunk
/// has committed.
async fn wait_for_end(store: &MemoryStore, job: &JobId, bar: &ProgressBar) -> JobStatus {
    loop {
        if let Ok(Some(status)) = store.job_status(job).await {
            bar.set_position(status.done);
            let state = JobState::parse(&status.state);
            let stalled = state == Some(JobState::InputError)
                && status.chunks_done >= status.published_chunks;
            if state.is_some_and(JobState::is_terminal) || stalled {
                return status;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
