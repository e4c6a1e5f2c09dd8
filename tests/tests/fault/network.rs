//! A network partition between the workers and RabbitMQ (T23): connections stay open but
//! nothing flows, no FIN, no RST. Heartbeats detect it, the workers tear down and reconnect
//! after the heal, the broker requeues what the lost channels held, and nothing is lost or
//! counted twice.

use crate::oracle::{ApiBound, oracle, wait_done};
use anyhow::Context as _;
use std::time::Duration;
use volley_tests::chaos::ChaosProxy;
use volley_tests::support::finish_ok;
use volley_tests::{TestEnv, eventually_every, write_jsonl};

#[tokio::test]
async fn a_partition_from_rabbitmq_is_detected_by_heartbeats_and_healed() -> anyhow::Result<()> {
    let proxy = ChaosProxy::start("127.0.0.1:5672".parse()?).await?;
    let env = TestEnv::new().await?.with_servers(
        Some(format!(
            "amqp://guest:guest@{}/%2f?heartbeat=3",
            proxy.addr()
        )),
        None,
    );
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "partition",
        "/users/{id}?delay_ms=10",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    wait_done(&env, &job, 2_500, Duration::from_secs(60)).await?;
    proxy.blackhole();
    // Heartbeats (2 s, missed twice) detect the partition: within 15 s a worker says its
    // channel is lost, and only then is the network healed. Only the log says so: the
    // workers' heartbeats go to Redis, which the partition does not touch.
    eventually_every(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let logs = std::fs::read_to_string(env.path("w1.log"))?
                + &std::fs::read_to_string(env.path("w2.log"))?;
            anyhow::ensure!(logs.contains("consumer lost its channel"), "{logs}");
            anyhow::Ok(())
        },
    )
    .await
    .context("heartbeats did not detect the partition")?;
    proxy.heal();
    // One partition: the broker requeues what both workers' lost channels held, while the
    // workers still run those chunks (the API and Redis are reachable): the copies wait for
    // the chunks' holds and skip them once committed.
    let requeued = ApiBound::Exact;
    let verdict = oracle(&env, &job, &ids, 0, requeued, Duration::from_secs(120)).await?;
    assert_eq!(verdict.u64("ok"), 10_000);
    for w in [&mut w1, &mut w2] {
        finish_ok(w, Duration::from_secs(60)).await?;
    }
    // Clean up directly, after the proxy has dropped every connection: the env's own drop
    // would go through the proxy, and a late frame held by the proxy could declare the
    // queues again.
    proxy.sever();
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(500)).await;
    volley_amqp::AmqpBroker::new(volley_amqp::AmqpOptions::new(
        volley_runtime::settings::DEFAULT_AMQP_URL,
        env.ns.clone(),
    ))
    .delete_topology(&[volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?])
    .await?;
    Ok(())
}
