//! Helpers only the fault scenarios use.

use std::time::Duration;
use volley_tests::TestEnv;

/// Waits until a process's log (a file in the test's directory) contains `needle`.
pub(crate) async fn wait_for_log(
    env: &TestEnv,
    file: &str,
    needle: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let log = std::fs::read_to_string(env.path(file)).unwrap_or_default();
        if log.contains(needle) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{file} never said {needle:?} within {within:?}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// The chunk queue's ready count, read now and again after `over`: a count that does not
/// move means no chunk was acked (nor a new one taken) meanwhile.
pub(crate) async fn ready_before_and_after(
    env: &TestEnv,
    over: Duration,
) -> anyhow::Result<(u32, u32)> {
    let before = env.broker().queue_counts().await?.chunks_ready;
    tokio::time::sleep(over).await;
    let after = env.broker().queue_counts().await?.chunks_ready;
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
