//! Running out of file descriptors (T42): a worker allowed 256 open files and asked for 512
//! requests in flight. A request that cannot open a connection waits for a descriptor
//! without spending an attempt or blaming the host; the worker neither crashes nor spins,
//! and every record ends ok on its first attempt.

use crate::oracle::{ApiBound, oracle};
use std::time::Duration;
use volley_tests::support::wait_exit;
use volley_tests::{TestEnv, bin, write_jsonl};

#[tokio::test]
async fn a_worker_out_of_file_descriptors_retries_and_finishes() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 3_000)?;
    let spec = env.write_spec(
        "fds",
        "/users/{id}?delay_ms=500",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 512\nadaptive = false\n\
         [retry]\nmax_attempts = 3\nbase_delay = \"50ms\"\nmax_delay = \"1s\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let log = std::fs::File::create(env.path("w.log"))?;
    let worker_bin = bin("volley-worker");
    let mut worker = tokio::process::Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg(&worker_bin)
        .args([
            "--worker-id",
            "w",
            "--concurrency",
            "512",
            "--prefetch",
            "8",
            "--exit-when-idle",
            "3s",
        ])
        .envs(env.envs())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    // A connection that cannot be opened never reaches the API, and no chunk goes back to
    // the queue: the API sees each record once.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 3_000, "{}", verdict.status);
    // Waiting for a descriptor is not an attempt: every record was sent once.
    let spent: Vec<(&String, u32)> = verdict
        .results
        .lines
        .iter()
        .filter(|l| l.attempts != 1)
        .map(|l| (&l.id, l.attempts))
        .take(5)
        .collect();
    assert!(spent.is_empty(), "records that spent attempts: {spent:?}");
    // Idle pooled connections hold descriptors for 15-30 s, and the broker check that
    // lets an idle worker leave needs one.
    let status = wait_exit(&mut worker, Duration::from_secs(90)).await?;
    let log = std::fs::read_to_string(env.path("w.log"))?;
    assert!(status.success(), "{log}");
    assert!(
        log.contains("open-file limit is below"),
        "warned at start: {log}"
    );
    assert!(
        log.contains("out of file descriptors"),
        "said what happened: {log}"
    );
    assert!(
        !log.contains("breaker changed"),
        "a local shortage is not the host's fault: {log}"
    );
    Ok(())
}
