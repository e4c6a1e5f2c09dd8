//! One contract for the store and one for the broker, run against the in-memory adapters and
//! the real Redis and RabbitMQ: the embedded default must behave as the fleet does.

use anyhow::Context as _;
use std::time::Duration;
use volley_core::memory::{MemoryBroker, MemoryStore};
use volley_core::redrive::{RedriveError, RedriveFilter, redrive};
use volley_core::throughput::Finished;
use volley_core::{
    Broker, ChunkCommit, ChunkConsumer, ChunkDelivery, ChunkMessage, ChunkRecord, ChunkTally,
    CommitStatus, ErrorKind, Follow, HoldReply, JobId, JobState, NewJob, OutgoingChunk,
    PublishMark, RecordError, RecordOutcome, Registration, Store, StoreError, WorkerBeat,
    decode_chunk_results, encode_chunk_results,
};
use volley_tests::TestEnv;

fn new_job(id: &JobId, spec: &str, tolerated: f64) -> NewJob {
    NewJob {
        id: id.clone(),
        name: "contract".into(),
        spec_toml: spec.into(),
        input: "in.jsonl".into(),
        chunk_size: 2,
        tolerated_failure_percent: tolerated,
        retention_secs: 3600,
        weight: volley_core::Weight::default(),
        now_ms: 1_000,
        resume_only: false,
    }
}

fn outcome(id: &str, status: u16, failed: bool) -> RecordOutcome {
    RecordOutcome {
        id: id.into(),
        line: 1,
        status: Some(status),
        attempts: if failed { 3 } else { 1 },
        latency_ms: 12,
        error: failed.then(|| RecordError {
            kind: ErrorKind::Status,
            message: format!("HTTP {status}"),
        }),
        body: None,
    }
}

fn commit(job: &JobId, chunk: u64, outcomes: &[RecordOutcome]) -> ChunkCommit {
    ChunkCommit {
        job: job.clone(),
        chunk,
        results: encode_chunk_results(outcomes),
        failed_inputs: Vec::new(),
        splices: Vec::new(),
        tally: ChunkTally::of(outcomes),
        finished: Finished {
            done: outcomes.len() as u64,
            failed: outcomes.iter().filter(|o| !o.ok()).count() as u64,
        },
        now_ms: 2_000 + chunk,
    }
}

fn record(id: &str) -> ChunkRecord {
    serde_json::from_value(serde_json::json!({"id": id, "line": 1, "data": {"id": id}}))
        .expect("record")
}

fn timeout(id: &str) -> RecordOutcome {
    RecordOutcome {
        status: None,
        error: Some(RecordError {
            kind: ErrorKind::Timeout,
            message: "after 5s".into(),
        }),
        ..outcome(id, 0, true)
    }
}

/// Takes every chunk of `job` the broker holds, as the worker would see them.
async fn drain<B: Broker>(broker: &B, job: &JobId) -> anyhow::Result<Vec<ChunkMessage>> {
    let mut consumer = broker.consume(10).await?;
    consumer.follow(vec![Follow {
        job: job.clone(),
        prefetch: 10,
    }]);
    let mut out = Vec::new();
    while let Some(d) = next_within(&mut consumer, 1_000).await {
        out.push(ChunkMessage::decode(d.payload())?);
        d.ack().await?;
    }
    consumer.close().await;
    Ok(out)
}

/// Runs a redrive chunk's records to the given outcomes and commits them as a worker does.
async fn commit_redrive<S: Store>(
    store: &S,
    msg: &ChunkMessage,
    outcomes: &[RecordOutcome],
) -> anyhow::Result<CommitStatus> {
    let c = ChunkCommit::build(&msg.job, msg.chunk, &msg.records, outcomes, 9_000)
        .ok_or_else(|| anyhow::anyhow!("unreadable earlier outcome"))?;
    Ok(store.commit_chunk(&c).await?)
}

async fn redrive_contract<S: Store, B: Broker>(store: S, broker: B) -> anyhow::Result<()> {
    let job = JobId::parse("redrive-job").map_err(anyhow::Error::msg)?;
    store.register_job(&new_job(&job, "spec", 0.0)).await?;
    let inputs0 = [record("a"), record("b")];
    let first = [outcome("a", 200, false), outcome("b", 503, true)];
    let c0 = ChunkCommit::build(&job, 0, &inputs0, &first, 2_000).expect("commit");
    assert_eq!(c0.failed_inputs.len(), 1, "only the failed record is kept");
    store.commit_chunk(&c0).await?;
    let inputs1 = [record("c")];
    let c1 = ChunkCommit::build(&job, 1, &inputs1, &[timeout("c")], 2_001).expect("commit");
    store.commit_chunk(&c1).await?;
    assert_eq!(
        store.finish_publishing(&job, 3, 2, 3_000).await?,
        JobState::Failed
    );

    // Only 503s: one record goes out again, as chunk 2, pointing back at chunk 0.
    let only: RedriveFilter = "status=503".parse().map_err(anyhow::Error::msg)?;
    let report = redrive(&store, &broker, &job, &only, 10, 4_000).await?;
    assert_eq!((report.records, report.chunks), (1, 1));
    assert_eq!(report.state, JobState::Running);
    let sent = drain(&broker, &job).await?;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chunk, 2);
    assert!(sent[0].is_redrive());
    let redo = sent[0].records[0].redo.as_ref().expect("redo");
    assert_eq!(
        (sent[0].records[0].id.as_str(), redo.chunk, redo.pos),
        ("b", 0, 1)
    );
    assert_eq!(sent[0].records[0].data["id"], "b");
    // A second retry while this one runs is refused.
    assert!(matches!(
        redrive(&store, &broker, &job, &RedriveFilter::default(), 10, 4_100).await,
        Err(RedriveError::Store(StoreError::Conflict(_)))
    ));

    // b now succeeds: its old outcome leaves every counter, its new one enters.
    assert_eq!(
        commit_redrive(&store, &sent[0], &[outcome("b", 200, false)]).await?,
        CommitStatus::Committed(JobState::Failed)
    );
    assert_eq!(
        commit_redrive(&store, &sent[0], &[outcome("b", 200, false)]).await?,
        CommitStatus::AlreadyCommitted
    );
    let s = store.job_status(&job).await?.expect("status");
    assert_eq!((s.done, s.ok, s.failed), (3, 2, 1));
    assert_eq!(s.by_status.get("200"), Some(&2));
    assert_eq!(s.by_status.get("503"), None);
    assert_eq!(s.by_error.get("status"), None);
    assert_eq!(s.by_error.get("timeout"), Some(&1));
    assert_eq!(s.redrive_chunks, 1);
    let rows = store.chunk_results(&job, 0..1).await?;
    let lines = decode_chunk_results(0, rows[0].as_deref().unwrap_or_default())?;
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.id.as_str(), l.ok))
            .collect::<Vec<_>>(),
        [("a", true), ("b", true)]
    );

    // Everything left (the timeout), in a round that is cut off after registering: the next
    // call republishes it instead of planning a new one.
    let (_, left) = store.failed_inputs(&job, 0).await?;
    assert_eq!(left.len(), 1, "b's kept input is gone once it succeeded");
    store
        .add_redrive_chunks(&job, &[b"[]".to_vec()], 5_000)
        .await?;
    let report = redrive(&store, &broker, &job, &RedriveFilter::default(), 10, 5_100).await?;
    assert_eq!(report.resumed_chunks, 1);
    let resumed = drain(&broker, &job).await?;
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        commit_redrive(&store, &resumed[0], &[]).await?,
        CommitStatus::Committed(JobState::Failed)
    );
    let report = redrive(&store, &broker, &job, &RedriveFilter::default(), 10, 6_000).await?;
    assert_eq!((report.records, report.chunks), (1, 1));
    let sent = drain(&broker, &job).await?;
    assert_eq!(
        commit_redrive(&store, &sent[0], &[outcome("c", 201, false)]).await?,
        CommitStatus::Committed(JobState::Completed)
    );
    let s = store.job_status(&job).await?.expect("status");
    assert_eq!(
        (s.done, s.ok, s.failed, s.state),
        (3, 3, 0, JobState::Completed)
    );
    assert!(s.by_error.is_empty());
    let report = redrive(&store, &broker, &job, &RedriveFilter::default(), 10, 7_000).await?;
    assert_eq!(report.records, 0, "nothing left to retry");
    Ok(())
}

async fn store_contract<S: Store>(store: S) -> anyhow::Result<()> {
    let job = JobId::parse("contract-job-1").map_err(anyhow::Error::msg)?;
    assert!(
        !store.has_history().await?,
        "a fresh namespace has no history"
    );
    // A resume-only registration of an unknown job writes nothing.
    let resume_only = NewJob {
        resume_only: true,
        ..new_job(&job, "spec-a", 0.0)
    };
    assert_eq!(
        store.register_job(&resume_only).await?,
        Registration::Unknown
    );
    assert!(store.job_status(&job).await?.is_none());
    assert!(store.list_jobs().await?.is_empty());
    assert!(!store.has_history().await?, "nothing was registered");
    assert_eq!(
        store.register_job(&new_job(&job, "spec-a", 0.0)).await?,
        Registration::Created
    );
    assert!(matches!(
        store.register_job(&new_job(&job, "spec-b", 0.0)).await,
        Err(StoreError::Conflict(_))
    ));
    let mark = PublishMark {
        chunks: 1,
        records: 2,
        input_digest: "d1".into(),
    };
    store.record_published(&job, &mark).await?;
    assert_eq!(
        store.register_job(&new_job(&job, "spec-a", 0.0)).await?,
        Registration::Resume {
            state: JobState::Publishing,
            mark: mark.clone()
        }
    );
    assert_eq!(store.job_spec(&job).await?.as_deref(), Some("spec-a"));
    assert!(
        store.has_history().await?,
        "a registered job leaves history"
    );

    // One holder at a time: another waits while the hold lasts, takes it once given up
    // or expired; the commit ends it, and after that every holder hears `Committed`.
    let ttl = Duration::from_secs(30);
    assert_eq!(
        store.hold_chunk(&job, 0, "h1", ttl).await?,
        HoldReply::Taken
    );
    assert_eq!(
        store.hold_chunk(&job, 0, "h1", ttl).await?,
        HoldReply::Taken,
        "renewed"
    );
    match store.hold_chunk(&job, 0, "h2", ttl).await? {
        HoldReply::HeldElsewhere(left) => assert!(left > Duration::from_secs(25), "{left:?}"),
        other => panic!("h2 took a held chunk: {other:?}"),
    }
    store.release_chunk(&job, 0, "h2").await?;
    assert!(
        matches!(
            store.hold_chunk(&job, 0, "h2", ttl).await?,
            HoldReply::HeldElsewhere(_)
        ),
        "only the holder gives a hold up"
    );
    store.release_chunk(&job, 0, "h1").await?;
    assert_eq!(
        store
            .hold_chunk(&job, 0, "h2", Duration::from_millis(50))
            .await?,
        HoldReply::Taken
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        store.hold_chunk(&job, 0, "h3", ttl).await?,
        HoldReply::Taken,
        "h2's expired"
    );
    let unknown = JobId::parse("contract-unknown-1").map_err(anyhow::Error::msg)?;
    assert_eq!(
        store.hold_chunk(&unknown, 0, "h1", ttl).await?,
        HoldReply::UnknownJob
    );

    // The commit is applied once: a second commit of the same chunk changes nothing.
    let first = [outcome("a", 200, false), outcome("b", 503, true)];
    assert_eq!(
        store.commit_chunk(&commit(&job, 0, &first)).await?,
        CommitStatus::Committed(JobState::Publishing)
    );
    let before = store.job_status(&job).await?.expect("status");
    assert_eq!(
        store.commit_chunk(&commit(&job, 0, &first)).await?,
        CommitStatus::AlreadyCommitted
    );
    let after = store.job_status(&job).await?.expect("status");
    assert_eq!(
        before, after,
        "a redelivered commit must not change any counter"
    );
    assert_eq!(
        (
            after.done,
            after.ok,
            after.failed,
            after.retries,
            after.chunks_done
        ),
        (2, 1, 1, 2, 1)
    );
    assert_eq!(after.by_status.get("503"), Some(&1));
    assert_eq!(after.by_error.get("status"), Some(&1));
    assert!(store.is_committed(&job, 0).await?);
    assert!(!store.is_committed(&job, 1).await?);
    assert_eq!(
        store.hold_chunk(&job, 0, "h3", ttl).await?,
        HoldReply::Committed
    );
    assert_eq!(
        store.hold_chunk(&job, 0, "h4", ttl).await?,
        HoldReply::Committed
    );
    assert_eq!(
        store.uncommitted_chunks(&job, 11).await?,
        (1..11).collect::<Vec<u64>>()
    );

    // Totals declared, last chunk committed: the job ends, beyond its tolerance here.
    assert_eq!(
        store.finish_publishing(&job, 3, 2, 3_000).await?,
        JobState::Running
    );
    let last = [outcome("c", 200, false)];
    assert_eq!(
        store.commit_chunk(&commit(&job, 1, &last)).await?,
        CommitStatus::Committed(JobState::Failed)
    );
    let done = store.job_status(&job).await?.expect("status");
    assert_eq!(
        (done.state, done.total, done.done),
        (JobState::Failed, Some(3), 3)
    );
    let results = store.chunk_results(&job, 0..3).await?;
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_deref(),
        Some(&encode_chunk_results(&first)[..])
    );
    assert!(results[2].is_none());

    // Chunks of unknown jobs are refused.
    let ghost = JobId::parse("no-such-job").map_err(anyhow::Error::msg)?;
    assert_eq!(
        store.commit_chunk(&commit(&ghost, 0, &last)).await?,
        CommitStatus::UnknownJob
    );
    assert!(store.job_status(&ghost).await?.is_none());

    // Within tolerance, and the empty job.
    let tolerant = JobId::parse("contract-job-2").map_err(anyhow::Error::msg)?;
    store
        .register_job(&new_job(&tolerant, "spec", 50.0))
        .await?;
    store.commit_chunk(&commit(&tolerant, 0, &first)).await?;
    assert_eq!(
        store.finish_publishing(&tolerant, 2, 1, 4_000).await?,
        JobState::CompletedWithFailures
    );
    let empty = JobId::parse("contract-job-3").map_err(anyhow::Error::msg)?;
    store.register_job(&new_job(&empty, "spec", 0.0)).await?;
    assert_eq!(
        store.finish_publishing(&empty, 0, 0, 4_000).await?,
        JobState::Completed
    );

    // Input errors are recorded and cleared by progress.
    let halted = JobId::parse("contract-job-4").map_err(anyhow::Error::msg)?;
    store.register_job(&new_job(&halted, "spec", 0.0)).await?;
    store.record_input_error(&halted, "in.jsonl:7: bad").await?;
    let s = store.job_status(&halted).await?.expect("status");
    assert_eq!(
        (s.state, s.error.as_deref()),
        (JobState::InputError, Some("in.jsonl:7: bad"))
    );
    store.record_published(&halted, &mark).await?;
    assert_eq!(
        store.job_status(&halted).await?.expect("status").state,
        JobState::Publishing
    );

    let listed: Vec<String> = store
        .list_jobs()
        .await?
        .into_iter()
        .map(|j| j.job)
        .collect();
    for id in [
        "contract-job-1",
        "contract-job-2",
        "contract-job-3",
        "contract-job-4",
    ] {
        assert!(listed.contains(&id.to_string()), "{id} not in {listed:?}");
    }
    let beat = WorkerBeat {
        id: "w1".into(),
        in_flight: 3,
        chunks_held: 1,
        records_done: 9,
        at_ms: 10_000,
        started_ms: 1,
        records_held: 100,
        state: volley_core::WorkerPhase::Draining,
        interval_ms: 5_000,
    };
    store.heartbeat(&beat).await?;
    assert_eq!(store.workers(10_500, 1_000).await?, vec![beat]);
    assert!(store.workers(20_000, 1_000).await?.is_empty());
    Ok(())
}

/// The job the broker contract's messages belong to.
fn contract_job() -> JobId {
    JobId::parse("contract-1").expect("valid id")
}

fn chunk(i: u32) -> OutgoingChunk {
    OutgoingChunk {
        job: contract_job(),
        message_id: format!("m:{i}"),
        payload: format!("payload-{i}").into_bytes(),
    }
}

async fn next_within<C: ChunkConsumer>(consumer: &mut C, ms: u64) -> Option<C::Delivery> {
    tokio::time::timeout(Duration::from_millis(ms), consumer.next())
        .await
        .ok()
        .flatten()
}

async fn broker_contract<B: Broker, F, Fut>(broker: B, dead_count: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    broker
        .publish_confirmed(vec![chunk(1), chunk(2), chunk(3)])
        .await?;
    let follow = || {
        vec![Follow {
            job: contract_job(),
            prefetch: 2,
        }]
    };
    let mut consumer = broker.consume(2).await?;
    consumer.follow(follow());
    let d1 = next_within(&mut consumer, 5_000)
        .await
        .expect("first delivery");
    let d2 = next_within(&mut consumer, 5_000)
        .await
        .expect("second delivery");
    assert_eq!(
        (d1.payload(), d2.payload()),
        (&b"payload-1"[..], &b"payload-2"[..])
    );
    assert!(!d1.redelivered());
    assert!(
        next_within(&mut consumer, 300).await.is_none(),
        "prefetch 2 must hold back the third"
    );
    assert!(d1.ack().await?);
    let d3 = next_within(&mut consumer, 5_000)
        .await
        .expect("third after an ack");
    assert_eq!(d3.payload(), b"payload-3");
    // A requeued message comes back marked as redelivered.
    assert!(d2.requeue().await?);
    let again = next_within(&mut consumer, 5_000)
        .await
        .expect("requeued delivery");
    assert_eq!(again.payload(), b"payload-2");
    assert!(again.redelivered());
    // A dead-lettered message leaves the queue for the dead-letter queue.
    assert!(d3.dead_letter().await?);
    volley_tests::eventually(Duration::from_secs(5), || async {
        let dead = dead_count().await?;
        anyhow::ensure!(dead >= 1, "{dead} dead-lettered");
        anyhow::Ok(())
    })
    .await
    .context("the dead-lettered message never reached the dead-letter queue")?;
    assert_eq!(dead_count().await?, 1);
    // Unsettled when the consumer goes away: delivered again to the next consumer.
    drop(again);
    consumer.close().await;
    let mut second = broker.consume(2).await?;
    second.follow(follow());
    let back = next_within(&mut second, 5_000)
        .await
        .expect("unsettled message comes back");
    assert_eq!(back.payload(), b"payload-2");
    assert!(back.ack().await?);
    assert!(
        next_within(&mut second, 300).await.is_none(),
        "acked messages never come back"
    );
    second.close().await;
    Ok(())
}

/// The throughput series: a commit counts its records in its second and in its minute since
/// registration (at 1 s here), a redelivered commit counts nothing, and the job's retention
/// is read back.
async fn throughput_contract<S: Store>(store: S) -> anyhow::Result<()> {
    let job = JobId::parse("contract-rate").map_err(anyhow::Error::msg)?;
    store.register_job(&new_job(&job, "spec", 100.0)).await?;
    let at = |chunk: u64, now_ms: u64, outcomes: &[RecordOutcome]| ChunkCommit {
        now_ms,
        ..commit(&job, chunk, outcomes)
    };
    let two = [outcome("a", 200, false), outcome("b", 503, true)];
    let one = [outcome("c", 200, false)];
    store.commit_chunk(&at(0, 5_000, &two)).await?;
    store.commit_chunk(&at(1, 5_900, &one)).await?;
    store.commit_chunk(&at(1, 5_950, &one)).await?;
    store.commit_chunk(&at(2, 63_000, &two)).await?;
    let status = store.job_status(&job).await?.context("status")?;
    assert_eq!(status.retention_secs, 3600);
    let seconds: Vec<(u64, Finished)> = status
        .recent
        .seconds
        .iter()
        .map(|(s, f)| (*s, *f))
        .collect();
    assert_eq!(
        seconds,
        vec![
            (5, Finished { done: 3, failed: 1 }),
            (63, Finished { done: 2, failed: 1 })
        ]
    );
    assert_eq!(
        store.job_minutes(&job).await?,
        vec![
            (0, Finished { done: 3, failed: 1 }),
            (1, Finished { done: 2, failed: 1 })
        ],
        "minute 1 begins 60 s after registration"
    );
    // Over the last 10 s at 64 s: the second 63 only.
    assert!((status.recent.rate(64_000, 10, status.first_commit_ms) - 0.2).abs() < 1e-9);
    Ok(())
}

#[tokio::test]
async fn memory_store_keeps_the_throughput_series() -> anyhow::Result<()> {
    throughput_contract(MemoryStore::new()).await
}

#[tokio::test]
async fn redis_store_keeps_the_throughput_series() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    throughput_contract(env.store()?).await
}

#[tokio::test]
async fn memory_store_meets_the_store_contract() -> anyhow::Result<()> {
    store_contract(MemoryStore::new()).await
}

#[tokio::test]
async fn redis_store_meets_the_store_contract() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    store_contract(env.store()?).await
}

#[tokio::test]
async fn memory_adapters_meet_the_redrive_contract() -> anyhow::Result<()> {
    redrive_contract(MemoryStore::new(), MemoryBroker::new()).await
}

#[tokio::test]
async fn redis_and_rabbitmq_meet_the_redrive_contract() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    redrive_contract(env.store()?, env.broker()?).await
}

#[tokio::test]
async fn memory_broker_meets_the_broker_contract() -> anyhow::Result<()> {
    let broker = MemoryBroker::new();
    let probe = broker.clone();
    broker_contract(broker, move || {
        let n = probe.dead_letters().len() as u64;
        async move { Ok(n) }
    })
    .await
}

#[tokio::test]
async fn rabbitmq_broker_meets_the_broker_contract() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let broker = env.broker()?;
    let probe = env.broker()?;
    broker_contract(broker, move || {
        let probe = probe.clone();
        async move { Ok(u64::from(probe.queue_counts(&[]).await?.dead)) }
    })
    .await?;
    // No job of the store owns the contract's queue: the clean-up would not find it.
    env.broker()?.delete_topology(&[contract_job()]).await?;
    Ok(())
}

/// Registering a job tells the fleet at once (`FleetEvent::JobAdded`): idle workers follow
/// its queue then, not at their next look at the active jobs.
#[tokio::test]
async fn registering_a_job_is_announced_to_the_fleet() -> anyhow::Result<()> {
    use volley_core::governor::{FleetEvent, FleetState as _};
    let env = TestEnv::new().await?;
    let store = env.store()?;
    let options = volley_redis::RedisOptions::from_settings(&env.settings()?);
    let fleet = volley_redis::RedisFleet::start(store.clone(), &options)?;
    let mut events = fleet.events();
    let job = JobId::parse("announced-1").map_err(anyhow::Error::msg)?;
    // The subscription is made in the background: register until the event comes.
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            store.register_job(&new_job(&job, "spec", 0.0)).await?;
            match tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
                Ok(Ok(FleetEvent::JobAdded { job: added })) => return anyhow::Ok(added),
                _ => continue,
            }
        }
    })
    .await
    .context("no JobAdded announcement within 10 s")??;
    assert_eq!(heard, "announced-1");
    Ok(())
}
