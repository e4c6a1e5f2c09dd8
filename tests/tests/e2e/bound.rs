//! The per-worker bound holds from the first request: a worker handed many chunks of a job
//! it has not seen yet (all at once, by its prefetch) still calls the API with at most
//! `concurrency.per_worker` requests in flight. The judge is the API's own in-flight
//! maximum, not the worker's counters.

use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_core::governor::MemoryFleet;
use volley_core::memory::MemoryBroker;
use volley_core::time::now_ms;
use volley_core::{
    Broker, ChunkEncoder, ChunkMessage, JobId, NewJob, OutgoingChunk, PublishMark, Store,
};
use volley_tests::support::{wait_exit, wait_for_job};
use volley_tests::{TestEnv, eventually, write_jsonl};
use volley_worker::{WorkerOptions, run_worker};

const PER_WORKER: u64 = 4;
const PREFETCH: &str = "8";
const CHUNKS: u64 = 10;
const CHUNK_SIZE: u64 = 4;

/// A slow API (200 ms a call) so the first deliveries overlap, `per_worker = 4`, chunks of 4.
fn spec_extra() -> String {
    format!(
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = {PER_WORKER}\n[chunking]\nsize = {CHUNK_SIZE}\n"
    )
}

fn assert_bound_held(env: &TestEnv, records: u64) {
    let stats = env.mock.stats();
    assert!(
        stats.in_flight_max <= PER_WORKER,
        "the API saw {} requests in flight at once; per_worker is {PER_WORKER}",
        stats.in_flight_max
    );
    assert_eq!(stats.requests, records, "one request per record");
    assert_eq!(stats.per_id.len() as u64, records);
    assert!(
        stats.per_id.values().all(|n| *n == 1),
        "a record was called twice"
    );
}

/// In process: `run_worker` on the in-memory broker, with the real Redis store, and every
/// chunk already queued before the worker starts.
#[tokio::test]
async fn prefetched_chunks_of_a_new_job_share_one_bound_in_process() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let store = env.store()?;
    let broker = MemoryBroker::new();
    let spec_text = format!(
        "name = \"bound\"\n{}\n[request]\nurl = \"{}/users/{{id}}?delay_ms=200\"\ntimeout = \"5s\"\n",
        spec_extra(),
        env.mock.base_url()
    );
    let job = JobId::parse("bound-job-1").map_err(anyhow::Error::msg)?;
    publish_whole_job(&store, &broker, &job, &spec_text).await?;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        broker.clone(),
        store.clone(),
        WorkerOptions {
            prefetch: 8,
            worker_id: "bound-w1".into(),
            ..WorkerOptions::default()
        },
        Arc::new(MemoryFleet::new()),
        shutdown.clone(),
        None,
    ));
    eventually(Duration::from_secs(60), || async {
        let status = store.job_status(&job).await?;
        let ended = status.as_ref().is_some_and(|s| s.state.is_terminal());
        anyhow::ensure!(ended, "{status:?}");
        anyhow::Ok(())
    })
    .await
    .context("job never ended")?;
    shutdown.cancel();
    let report = worker.await??;
    assert_eq!(report.records_done, CHUNKS * CHUNK_SIZE);
    assert_bound_held(&env, CHUNKS * CHUNK_SIZE);
    Ok(())
}

/// Registers `job` in the store and puts all of its chunks on the broker, as a producer that
/// finished before any worker started.
async fn publish_whole_job<S: Store, B: Broker>(
    store: &S,
    broker: &B,
    job: &JobId,
    spec_text: &str,
) -> anyhow::Result<()> {
    store
        .register_job(&NewJob {
            id: job.clone(),
            name: "bound".into(),
            spec_toml: spec_text.into(),
            input: "generated".into(),
            chunk_size: u32::try_from(CHUNK_SIZE)?,
            tolerated_failure_percent: 0.0,
            retention_secs: 3600,
            weight: volley_core::Weight::default(),
            now_ms: now_ms(),
            resume_only: false,
        })
        .await?;
    let chunks = (0..CHUNKS)
        .map(|chunk| {
            let mut encoder = ChunkEncoder::new(job, chunk, 1024);
            for i in 0..CHUNK_SIZE {
                let id = format!("r{:06}", chunk * CHUNK_SIZE + i);
                encoder.push(
                    &id,
                    chunk * CHUNK_SIZE + i + 1,
                    &format!(r#"{{"id":"{id}"}}"#),
                );
            }
            OutgoingChunk {
                job: job.clone(),
                message_id: ChunkMessage::message_id(job, chunk),
                payload: encoder.finish(),
            }
        })
        .collect();
    broker.publish_confirmed(chunks).await?;
    let records = CHUNKS * CHUNK_SIZE;
    store
        .record_published(
            job,
            &PublishMark {
                chunks: CHUNKS,
                records,
                input_digest: String::new(),
            },
        )
        .await?;
    store
        .finish_publishing(job, records, CHUNKS, now_ms())
        .await?;
    Ok(())
}

/// With the real binaries: the producer publishes the whole job first, then a worker starts
/// with `--prefetch 8` and takes 8 chunks of a job it has never seen at once.
#[tokio::test]
async fn prefetched_chunks_of_a_new_job_share_one_bound_in_the_worker_binary() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let records = CHUNKS * CHUNK_SIZE;
    write_jsonl(&input, records)?;
    let spec = env.write_spec("bound", "/users/{id}?delay_ms=200", &spec_extra())?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--prefetch", PREFETCH, "--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    assert_eq!((fin.u64("done"), fin.u64("ok")), (records, records));
    let status = wait_exit(&mut worker, Duration::from_secs(30)).await?;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(status.success(), "worker: {status}: {log}");
    assert_bound_held(&env, records);
    Ok(())
}
