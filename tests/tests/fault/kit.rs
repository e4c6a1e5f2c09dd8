//! Helpers only the fault scenarios use.

use std::time::Duration;
use volley_tests::{TestEnv, eventually_every};

/// Waits until a process's log (a file in the test's directory) contains `needle`.
pub(crate) async fn wait_for_log(
    env: &TestEnv,
    file: &str,
    needle: &str,
    within: Duration,
) -> anyhow::Result<()> {
    eventually_every(within, Duration::from_millis(200), || async {
        let log = std::fs::read_to_string(env.path(file)).unwrap_or_default();
        if log.contains(needle) {
            Ok(())
        } else {
            Err(format!("{file} never said {needle:?}: {log}"))
        }
    })
    .await
}

/// Starts `volley-producer` for `job` in the background with failpoints armed (e.g.
/// `producer_batch_delay_ms=300` to catch it mid-publish); its stderr goes to
/// `producer.log`.
pub(crate) fn spawn_producer(
    env: &TestEnv,
    spec: &std::path::Path,
    input: &std::path::Path,
    job: &str,
    failpoints: &str,
) -> anyhow::Result<tokio::process::Child> {
    Ok(env
        .command("volley-producer")
        .args([
            "--spec",
            spec.to_str().unwrap_or_default(),
            "--input",
            input.to_str().unwrap_or_default(),
            "--job-id",
            job,
        ])
        .env("VOLLEY_FAILPOINTS", failpoints)
        .stderr(std::fs::File::create(env.path("producer.log"))?)
        .stdout(std::process::Stdio::null())
        .spawn()?)
}

/// The job's queue's ready count, read now and again after `over`. The workers' prefetch is
/// full, so a worker that acked a chunk would take the next one at once: a count that does
/// not move means no chunk was acked meanwhile. That needs chunks to take: the count must
/// be above 0 at the start. `over` is argued by the commit retries it spans: a worker
/// retries a refused commit after 0.1, 0.2, 0.4, 0.8, 1.6 s…, so three seconds from the first
/// refusal hold several tries, each of which would ack if it wrongly took a refusal for
/// success.
pub(crate) async fn ready_before_and_after(
    env: &TestEnv,
    job: &str,
    over: Duration,
) -> anyhow::Result<(u32, u32)> {
    // Named, not read from Redis: Redis may be the one failing.
    let job = [volley_core::JobId::parse(job).map_err(anyhow::Error::msg)?];
    let ready =
        || async { Ok::<_, anyhow::Error>(env.broker()?.queue_counts(&job).await?.chunks_ready) };
    let before = ready().await?;
    anyhow::ensure!(
        before > 0,
        "no chunk was ready to take: a worker acking would not show"
    );
    tokio::time::sleep(over).await;
    let after = ready().await?;
    Ok((before, after))
}

/// The private broker's log, checked to be the log of a broker that served this scenario
/// (it accepted connections), so an assertion that some line is absent from it cannot pass
/// on an empty or wrong file.
pub(crate) fn served_broker_log(pb: &volley_tests::private::PrivateBroker) -> String {
    let log = pb.log();
    assert!(
        log.contains("accepting AMQP connection"),
        "the private broker's log shows no connection: {log}"
    );
    log
}
