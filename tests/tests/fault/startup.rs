//! Workers started before their services (containers, Kubernetes): a worker waits for
//! RabbitMQ and Redis with backoff instead of exiting, does the job once they are up, stops
//! at once on a signal while waiting, and gives up with exit 69 naming the service (its
//! password hidden) when `--startup-timeout` passes.

use crate::kit::wait_for_log;
use anyhow::Context as _;
use std::time::{Duration, Instant};
use volley_tests::private::{PrivateBroker, PrivateRedis, free_port};
use volley_tests::support::{describe, wait_exit, wait_for_job, wait_worker};
use volley_tests::{TestEnv, write_jsonl};

const RECORDS: u64 = 200;

/// Runs a job of [`RECORDS`] records through the worker already started, and checks each
/// record was called once and the worker leaves cleanly.
async fn job_completes_once(
    env: &TestEnv,
    worker: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let input = env.path("records.jsonl");
    write_jsonl(&input, RECORDS)?;
    let spec = env.write_spec(
        "late",
        "/users/{id}",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 20\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(env, &job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    assert_eq!((fin.u64("done"), fin.u64("ok")), (RECORDS, RECORDS));
    let stats = env.mock.stats();
    assert_eq!(stats.requests, RECORDS, "one request per record");
    assert!(stats.per_id.values().all(|n| *n == 1));
    let status = wait_exit(worker, Duration::from_secs(60)).await?;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(status.success(), "worker: {status}: {log}");
    Ok(())
}

/// Waits until the worker says it is waiting for `service`, then until `since` is `wait`
/// old, and checks the worker is still there.
async fn still_waiting_after(
    env: &TestEnv,
    worker: &mut tokio::process::Child,
    service: &str,
    since: Instant,
    wait: Duration,
) -> anyhow::Result<()> {
    let needle = format!("{service} not reachable yet; waiting for it");
    wait_for_log(env, "w1.log", &needle, Duration::from_secs(20)).await?;
    tokio::time::sleep(wait.saturating_sub(since.elapsed())).await;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(
        worker.try_wait()?.is_none(),
        "the worker is still waiting for {service}: {log}"
    );
    Ok(())
}

/// Waits until w1 consumes: it beats from then on, so `volley workers` lists it.
async fn consuming(env: &TestEnv) -> anyhow::Result<()> {
    wait_worker(env, &["w1"], |_| true, Duration::from_secs(60))
        .await
        .context("w1 never started consuming (no heartbeat)")
}

#[tokio::test]
async fn a_worker_started_before_rabbitmq_waits_for_it_then_does_the_job() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let pb = PrivateBroker::start("")?;
    pb.stop_app()?;
    let env = TestEnv::new().await?.with_servers(Some(pb.url()), None);
    let started = Instant::now();
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "10s"])?;
    let service = format!("RabbitMQ at amqp://guest:***@127.0.0.1:{}/%2f", pb.port);
    still_waiting_after(
        &env,
        &mut worker,
        &service,
        started,
        Duration::from_secs(10),
    )
    .await?;
    pb.start_app()?;
    consuming(&env).await?;
    job_completes_once(&env, &mut worker).await
}

#[tokio::test]
async fn a_worker_started_before_redis_waits_for_it_then_does_the_job() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let port = free_port()?;
    let env = TestEnv::new()
        .await?
        .with_servers(None, Some(format!("redis://127.0.0.1:{port}")));
    let started = Instant::now();
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "10s"])?;
    let service = format!("Redis at redis://127.0.0.1:{port}");
    still_waiting_after(&env, &mut worker, &service, started, Duration::from_secs(5)).await?;
    let _redis = PrivateRedis::start_on(port, &[])?;
    consuming(&env).await?;
    job_completes_once(&env, &mut worker).await
}

#[tokio::test]
async fn past_the_startup_timeout_a_worker_exits_69_naming_the_service_still_down()
-> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let env = TestEnv::new().await?;
    let amqp_port = free_port()?;
    let redis_port = free_port()?;
    for (var, url, named) in [
        (
            "VOLLEY_AMQP_URL",
            format!("amqp://guest:secret-pw@127.0.0.1:{amqp_port}/%2f"),
            format!(
                "RabbitMQ at amqp://guest:***@127.0.0.1:{amqp_port}/%2f still not reachable after 2s (the start-up timeout); last error: "
            ),
        ),
        (
            "VOLLEY_REDIS_URL",
            format!("redis://:secret-pw@127.0.0.1:{redis_port}"),
            format!(
                "Redis at redis://:***@127.0.0.1:{redis_port} still not reachable after 2s (the start-up timeout); last error: "
            ),
        ),
    ] {
        let started = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            env.command("volley-worker")
                .args(["--startup-timeout", "2s"])
                .env(var, &url)
                .output(),
        )
        .await??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{}", describe(&out));
        assert!(stderr.contains(&named), "names {var}'s service: {stderr}");
        assert!(stderr.contains("waiting for it"), "said it waits: {stderr}");
        assert!(!stderr.contains("secret-pw"), "password shown: {stderr}");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "waited for the timeout"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_stop_signal_ends_the_wait_for_the_broker_at_once_with_exit_0() -> anyhow::Result<()> {
    let _serial = crate::serial().await;
    let port = free_port()?;
    let env = TestEnv::new().await?.with_servers(
        Some(format!("amqp://guest:guest@127.0.0.1:{port}/%2f")),
        None,
    );
    let mut worker = env.spawn_worker("w1", &[])?;
    wait_for_log(&env, "w1.log", "waiting for it", Duration::from_secs(20)).await?;
    let pid = worker
        .id()
        .ok_or_else(|| anyhow::anyhow!("worker has no pid"))?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
    let status = wait_exit(&mut worker, Duration::from_secs(5)).await?;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(
        status.success(),
        "exit 0 on a stop while waiting, got {status}: {log}"
    );
    assert!(
        log.contains("stopped while waiting for the broker"),
        "{log}"
    );
    Ok(())
}
