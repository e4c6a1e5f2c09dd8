//! RabbitMQ going away mid-job on a private broker, stopped (T17) or killed (T18): producer
//! and workers reconnect on their own, nothing confirmed is lost, the job completes.

use crate::kit::spawn_producer;
use crate::oracle::{ApiBound, oracle};
use anyhow::Context as _;
use std::time::Duration;
use volley_core::{JobId, Store};
use volley_tests::private::PrivateBroker;
use volley_tests::support::{finish_ok, wait_exit};
use volley_tests::{TestEnv, eventually_every, write_jsonl};

/// How the broker goes away.
#[derive(Clone, Copy)]
enum Outage {
    /// `rabbitmqctl stop_app`, then `start_app` (T17).
    StopApp,
    /// `kill -9` of the Erlang VM, then a fresh start on the same data (T18).
    KillNode,
}

#[tokio::test]
async fn rabbitmq_stopped_mid_job_then_started_again_loses_nothing() -> anyhow::Result<()> {
    broker_outage_mid_publish(Outage::StopApp).await
}

#[tokio::test]
async fn rabbitmq_killed_mid_job_then_restarted_loses_nothing() -> anyhow::Result<()> {
    broker_outage_mid_publish(Outage::KillNode).await
}

async fn broker_outage_mid_publish(outage: Outage) -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("")?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20_000)?;
    let spec = env.write_spec(
        "outage",
        "/users/{id}",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n[chunking]\nsize = 20\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "8s"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "8s"])?;
    let job_id = "outage-job-1";
    let mut producer = spawn_producer(&env, &spec, &input, job_id, "producer_batch_delay_ms=400")?;
    // The moment: the producer part way through publishing.
    let store = env.store()?;
    let id = JobId::parse(job_id).map_err(anyhow::Error::msg)?;
    eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async {
            let published = store.job_status(&id).await?.map(|s| s.published_chunks);
            anyhow::ensure!(
                published.is_some_and(|n| n >= 128),
                "published chunks: {published:?}"
            );
            anyhow::Ok(())
        },
    )
    .await
    .context("the producer never published 128 chunks")?;
    match outage {
        Outage::StopApp => pb.stop_app()?,
        Outage::KillNode => pb.kill_node()?,
    }
    // The outage lasts 8 s: several producer batches (400 ms apart) and heartbeats fall in
    // it. Nothing is asserted about the time itself.
    tokio::time::sleep(Duration::from_secs(8)).await;
    match outage {
        Outage::StopApp => pb.start_app()?,
        Outage::KillNode => pb.restart_node()?,
    }
    let status = wait_exit(&mut producer, Duration::from_secs(120)).await?;
    let producer_log = std::fs::read_to_string(env.path("producer.log"))?;
    assert!(
        status.success(),
        "the producer rode out the outage: {producer_log}"
    );
    assert!(
        producer_log.contains("publish not confirmed; republishing the batch"),
        "the outage hit the producer mid-publish: {producer_log}"
    );
    // The outage drops both workers' channels: the broker hands the chunks they held (2 ×
    // prefetch 8) out again while the workers still run them, and the producer republishes
    // the batch the outage left unconfirmed, as new messages. Every copy waits for its
    // chunk's hold and then skips it: the API sees each record once.
    let outage_repeats = ApiBound::Exact;
    let verdict = oracle(
        &env,
        job_id,
        &ids,
        0,
        outage_repeats,
        Duration::from_secs(180),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 20_000);
    for (name, w) in [("w1", &mut w1), ("w2", &mut w2)] {
        finish_ok(w, Duration::from_secs(60)).await?;
        let log = std::fs::read_to_string(env.path(&format!("{name}.log")))?;
        // Only a reconnect after a lost connection writes this line; the first start does not.
        assert!(
            log.matches("consumer reconnected").count() >= 1,
            "{name} never reconnected: {log}"
        );
    }
    Ok(())
}

/// T19 and T13: the broker closes every connection again and again while workers hold
/// chunks and the producer is publishing: old deliveries are never acked on a new channel,
/// the producer republishes what was not confirmed and never hangs, counts stay exact.
#[tokio::test]
async fn connections_closed_again_and_again_lose_and_double_nothing() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("")?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "forced",
        "/users/{id}?delay_ms=10",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n[chunking]\nsize = 10\n",
    )?;
    let job = "forced-job-1";
    let mut producer = spawn_producer(&env, &spec, &input, job, "producer_batch_delay_ms=500")?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "4", "--exit-when-idle", "5s"])?;
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "4", "--exit-when-idle", "5s"])?;
    crate::oracle::wait_done(&env, job, 500, Duration::from_secs(60)).await?;
    for _ in 0..4 {
        pb.close_all_connections()?;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let status = wait_exit(&mut producer, Duration::from_secs(120)).await?;
    let producer_log = std::fs::read_to_string(env.path("producer.log"))?;
    assert!(status.success(), "{producer_log}");
    assert!(
        producer_log.matches("CONNECTION_FORCED").count() >= 2,
        "the closes hit the producer while it was publishing: {producer_log}"
    );
    let job = job.to_string();
    // Each of the 4 closes drops both workers' channels (the chunks they held come back
    // while they still run them) and may leave the producer's batch in flight unconfirmed
    // (republished as new messages). The chunks' holds keep every copy from calling again.
    let close_repeats = ApiBound::Exact;
    let verdict = oracle(&env, &job, &ids, 0, close_repeats, Duration::from_secs(120)).await?;
    assert_eq!(verdict.u64("ok"), 10_000);
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(60)).await?;
    }
    assert!(
        !crate::kit::served_broker_log(&pb).contains("unknown delivery tag"),
        "an old delivery was acked on a new channel"
    );
    Ok(())
}

/// T15: a memory alarm blocks every publishing connection while the producer publishes.
/// The producer waits (no error storm) and resumes; workers, on consume-only connections,
/// keep committing and acking meanwhile; the job completes.
#[tokio::test]
async fn a_memory_alarm_blocks_the_producer_but_not_the_workers() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("")?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20_000)?;
    let spec = env.write_spec(
        "alarm",
        "/users/{id}?delay_ms=10",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 16\n[chunking]\nsize = 20\n",
    )?;
    let job = "alarm-job-1";
    let mut producer = spawn_producer(&env, &spec, &input, job, "producer_batch_delay_ms=300")?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "4", "--exit-when-idle", "5s"])?;
    let store = env.store()?;
    let id = JobId::parse(job).map_err(anyhow::Error::msg)?;
    eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async {
            let seen = store
                .job_status(&id)
                .await?
                .map(|s| (s.published_chunks, s.done));
            anyhow::ensure!(
                seen.is_some_and(|(published, done)| published >= 200 && done >= 1_000),
                "(published chunks, done): {seen:?}"
            );
            anyhow::Ok(())
        },
    )
    .await
    .context("the job never got going (200 chunks published, 1000 records done)")?;
    let out = pb.ctl(&["set_vm_memory_high_watermark", "0.000001"])?;
    assert!(out.status.success(), "{out:?}");
    // The alarm is raised at the broker's next memory check (within a second); a batch sent
    // just before it is confirmed soon after. Then the count must stand still for 8 s: the
    // producer publishes a batch every 300 ms (the failpoint), so a producer that was not
    // blocked would add more than twenty batches in that time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = store.job_status(&id).await?.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = store.job_status(&id).await?.unwrap_or_default();
    let out = pb.ctl(&["set_vm_memory_high_watermark", "0.4"])?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        before.published_chunks, during.published_chunks,
        "publishing is blocked during the alarm"
    );
    assert!(
        during.done > before.done,
        "workers kept committing and acking during the alarm: {} then {}",
        before.done,
        during.done
    );
    let status = wait_exit(&mut producer, Duration::from_secs(120)).await?;
    let producer_log = std::fs::read_to_string(env.path("producer.log"))?;
    assert!(status.success(), "{producer_log}");
    assert!(
        producer_log.matches("WARN").count() + producer_log.matches("ERROR").count() <= 3,
        "no error storm: {producer_log}"
    );
    // The alarm blocks publishing without closing a connection: nothing is redelivered or
    // republished.
    let verdict = oracle(
        &env,
        job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 20_000);
    finish_ok(&mut w1, Duration::from_secs(60)).await?;
    Ok(())
}
