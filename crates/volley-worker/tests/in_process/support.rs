//! The harness: `run_worker` on the in-memory broker, store and fleet against a mock API in
//! this process, as `volley run` wires it, with jobs published by hand so each test controls
//! what the worker is handed (a redelivery, a rising delivery count, raw bytes).

use anyhow::Context as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use volley_core::governor::MemoryFleet;
use volley_core::memory::{MemoryBroker, MemoryStore};
use volley_core::time::now_ms;
use volley_core::{
    Broker, ChunkEncoder, ChunkMessage, JobId, JobStatus, NewJob, OutgoingChunk, PublishMark, Store,
};
use volley_mockapi::{MockConfig, MockServer};
use volley_worker::{WorkerError, WorkerOptions, WorkerReport, run_worker};

/// One record of a chunk: its id and the JSON object its request template reads.
pub(crate) type Rec = (String, String);

/// A record whose data is `{"id": id}` plus `extra` (a JSON object's members, e.g.
/// `"delay":5`).
pub(crate) fn rec(id: &str, extra: &str) -> Rec {
    let data = if extra.is_empty() {
        format!("{{\"id\":\"{id}\"}}")
    } else {
        format!("{{\"id\":\"{id}\",{extra}}}")
    };
    (id.to_string(), data)
}

/// The in-memory services and the mock API of one test.
pub(crate) struct Harness {
    pub(crate) broker: MemoryBroker,
    pub(crate) store: MemoryStore,
    pub(crate) fleet: Arc<MemoryFleet>,
    pub(crate) mock: MockServer,
}

/// A running worker: fire `shutdown` and await `task` to stop it.
pub(crate) struct Running {
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: JoinHandle<Result<WorkerReport, WorkerError>>,
}

impl Running {
    /// Stops the worker and returns its report.
    pub(crate) async fn stop(self) -> anyhow::Result<WorkerReport> {
        self.shutdown.cancel();
        Ok(self.task.await??)
    }
}

impl Harness {
    pub(crate) async fn start(config: MockConfig) -> anyhow::Result<Self> {
        Ok(Self {
            broker: MemoryBroker::new(),
            store: MemoryStore::new(),
            fleet: Arc::new(MemoryFleet::new()),
            mock: MockServer::start("127.0.0.1:0", config).await?,
        })
    }

    /// A spec calling the mock at `path` (a template: `/users/{id}?delay_ms={delay}`), with
    /// `rest` appended (tables such as `[retry]`).
    pub(crate) fn spec(&self, path: &str, rest: &str) -> String {
        format!(
            "name = \"w\"\n[request]\nurl = \"{}{path}\"\n{rest}",
            self.mock.base_url()
        )
    }

    /// Options as the tests want them unless they say otherwise: no heartbeat noise, a
    /// short start-up wait, and the process bound well above any job's `per_worker`.
    pub(crate) fn options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: 64,
            prefetch: 8,
            drain_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(3600),
            worker_id: "in-process".into(),
            startup_timeout: Some(Duration::from_secs(1)),
            ..WorkerOptions::default()
        }
    }

    /// Registers a job and publishes its chunks, as the producer does.
    pub(crate) async fn publish(&self, spec: &str, chunks: &[Vec<Rec>]) -> anyhow::Result<JobId> {
        let job = JobId::generate("w", now_ms() / 1000);
        let chunk_size = chunks.iter().map(Vec::len).max().unwrap_or(1);
        self.store
            .register_job(&NewJob {
                id: job.clone(),
                name: "w".into(),
                spec_toml: spec.into(),
                input: "in.jsonl".into(),
                chunk_size: u32::try_from(chunk_size)?,
                tolerated_failure_percent: 0.0,
                retention_secs: 60,
                weight: volley_core::Weight::default(),
                now_ms: now_ms(),
                resume_only: false,
            })
            .await?;
        let mut batch = Vec::new();
        let mut line = 0;
        for (index, records) in (0u64..).zip(chunks) {
            let mut encoder = ChunkEncoder::new(&job, index, 256);
            for (id, data) in records {
                line += 1;
                encoder.push(id, line, data);
            }
            batch.push(OutgoingChunk {
                job: job.clone(),
                message_id: ChunkMessage::message_id(&job, index),
                payload: encoder.finish(),
            });
        }
        self.broker.publish_confirmed(batch).await?;
        let mark = PublishMark {
            chunks: chunks.len() as u64,
            records: line,
            input_digest: "test".into(),
        };
        self.store.record_published(&job, &mark).await?;
        self.store
            .finish_publishing(&job, mark.records, mark.chunks, now_ms())
            .await?;
        Ok(job)
    }

    /// Starts `run_worker` on this harness's broker, store and fleet.
    pub(crate) fn spawn(&self, options: WorkerOptions) -> Running {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_worker(
            self.broker.clone(),
            self.store.clone(),
            options,
            self.fleet.clone(),
            shutdown.clone(),
            None,
        ));
        Running { shutdown, task }
    }

    pub(crate) async fn status(&self, job: &JobId) -> anyhow::Result<JobStatus> {
        self.store
            .job_status(job)
            .await?
            .context("the store knows the job")
    }

    /// Waits until the job has ended, and returns its final status.
    pub(crate) async fn until_ended(
        &self,
        job: &JobId,
        within: Duration,
    ) -> anyhow::Result<JobStatus> {
        eventually(within, || async {
            let status = self.status(job).await.ok()?;
            ended(&status).then_some(status)
        })
        .await
        .with_context(|| format!("job {job} did not end"))
    }

    /// Waits until nothing is left on the queue or held by a consumer.
    pub(crate) async fn until_settled(&self, within: Duration) -> anyhow::Result<()> {
        eventually(within, || async {
            (self.broker.ready_len() == 0 && self.broker.unacked_len() == 0).then_some(())
        })
        .await
        .with_context(|| {
            format!(
                "queue not settled: {} ready, {} unacked",
                self.broker.ready_len(),
                self.broker.unacked_len()
            )
        })
    }
}

/// Whether the job has reached a terminal state.
pub(crate) fn ended(status: &JobStatus) -> bool {
    status.state.is_terminal()
}

/// Polls `check` every 10 ms until it gives a value, or fails after `within` (on tokio's
/// clock, so under paused time too).
pub(crate) async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
