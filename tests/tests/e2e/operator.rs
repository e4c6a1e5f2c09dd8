//! What an operator's commands say and do on a healthy job: `volley status` never calls its
//! chunks missing, `volley-producer --missing` refuses and publishes nothing, `volley
//! workers` counts requests (not records) in flight and shows draining and exited workers
//! as such, and `status --wait --timeout` has its own exit code. The API's own request
//! counter is the judge: one call per record.

use anyhow::Context as _;
use std::cell::{Cell, RefCell};
use std::time::Duration;
use volley_core::{JobState, Store as _};
use volley_tests::support::{describe, finish_ok, wait_for_job, wait_workers, workers};
use volley_tests::{TestEnv, eventually, eventually_every, path_str, write_jsonl};

/// The job completes, the API saw exactly one request per record, and the worker leaves
/// cleanly once idle.
async fn completes_with_one_request_per_record(
    env: &TestEnv,
    job: &str,
    worker: &mut tokio::process::Child,
    records: u64,
) -> anyhow::Result<()> {
    let fin = wait_for_job(env, job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    assert_eq!(env.mock.stats().requests, records, "one request per record");
    finish_ok(worker, Duration::from_secs(60)).await?;
    Ok(())
}

async fn job_state(env: &TestEnv, job: &str) -> anyhow::Result<Option<JobState>> {
    let status = env
        .store()?
        .job_status(&volley_core::JobId::parse(job).map_err(anyhow::Error::msg)?)
        .await?;
    Ok(status.map(|s| s.state))
}

/// `volley-producer --spec S --input I --job-id J --missing`.
async fn republish(
    env: &TestEnv,
    spec: &std::path::Path,
    input: &std::path::Path,
    job: &str,
) -> anyhow::Result<std::process::Output> {
    let args = [
        "--spec",
        path_str(spec)?,
        "--input",
        path_str(input)?,
        "--job-id",
        job,
        "--missing",
    ];
    env.run("volley-producer", &args).await
}

#[tokio::test]
async fn status_and_missing_leave_a_healthy_slow_job_alone_from_its_start() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 300)?;
    let spec = env.write_spec(
        "slow",
        "/users/{id}?delay_ms=3000",
        "[chunking]\nsize = 100\n[concurrency]\nper_worker = 60\n[result]\nbody = \"none\"\n",
    )?;
    // The worker beats (holding nothing) before the job exists, then takes all three chunks
    // at once: the moment its last beat says nothing is held while nothing is queued.
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    wait_workers(&env, &["w1"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    let refused = republish(&env, &spec, &input, &job).await?;
    assert_eq!(refused.status.code(), Some(75), "{}", describe(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("not republishing"), "{said}");
    // Read status, both forms, for as long as the job runs.
    let looks = Cell::new(0);
    eventually(Duration::from_secs(120), || async {
        if job_state(&env, &job).await? != Some(JobState::Running) {
            return anyhow::Ok(());
        }
        for args in [vec!["status", &job, "--json"], vec!["status", &job]] {
            let out = env.run("volley", &args).await?;
            assert!(out.status.success(), "{}", describe(&out));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("missing"),
                "a healthy job reported missing chunks: {text}"
            );
            looks.set(looks.get() + 1);
        }
        anyhow::bail!("still running after {} looks", looks.get())
    })
    .await
    .context("the job never left running")?;
    assert!(looks.get() >= 2, "status was never read while the job ran");
    completes_with_one_request_per_record(&env, &job, &mut worker, 300).await?;
    Ok(())
}

#[tokio::test]
async fn missing_refuses_while_chunks_are_queued_or_held() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 1_000)?;
    let spec = env.write_spec(
        "queued",
        "/users/{id}?delay_ms=500",
        "[chunking]\nsize = 100\n[concurrency]\nper_worker = 50\n[result]\nbody = \"none\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--prefetch", "1", "--exit-when-idle", "3s"])?;
    let refused = republish(&env, &spec, &input, &job).await?;
    assert_eq!(refused.status.code(), Some(75), "{}", describe(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("not republishing"), "{said}");
    // A wait that runs out has its own exit code, and a bare number is seconds.
    let out = env
        .run("volley", &["status", &job, "--wait", "--timeout", "1"])
        .await?;
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("after the timeout"));
    completes_with_one_request_per_record(&env, &job, &mut worker, 1_000).await?;
    Ok(())
}

#[tokio::test]
async fn workers_count_requests_in_flight_and_show_draining_and_exited() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 400)?;
    let spec = env.write_spec(
        "held",
        "/users/{id}?delay_ms=400",
        "[chunking]\nsize = 100\n[concurrency]\nper_worker = 4\n[result]\nbody = \"none\"\n",
    )?;
    env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--prefetch", "1"])?;
    // A chunk of 100 records is held, 4 of them are requests at a time.
    let seen = eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let listed = workers(&env).await?;
            let w = listed.iter().find(|w| w["id"] == "w1").cloned();
            w.filter(|w| w["chunks_held"].as_u64() > Some(0) && w["in_flight"].as_u64() > Some(0))
                .ok_or_else(|| anyhow::anyhow!("{listed:?}"))
        },
    )
    .await
    .context("w1 never held a chunk")?;
    assert!(
        seen["in_flight"].as_u64() <= Some(4),
        "requests in flight above per_worker: {seen}"
    );
    assert_eq!(seen["records_held"], 100, "{seen}");
    assert_eq!(seen["state"], "running", "{seen}");

    // Told to stop while it holds a chunk, it is shown draining, then exited.
    let pid = worker.id().ok_or_else(|| anyhow::anyhow!("worker gone"))?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success());
    // Every state w1 is shown in, in order, until it is shown exited.
    let states = RefCell::new(Vec::<String>::new());
    eventually_every(
        Duration::from_secs(40),
        Duration::from_millis(100),
        || async {
            let listed = workers(&env).await?;
            let state = listed
                .iter()
                .find(|w| w["id"] == "w1")
                .and_then(|w| w["state"].as_str());
            let mut states = states.borrow_mut();
            if let Some(state) = state
                && states.last().map(String::as_str) != Some(state)
            {
                states.push(state.to_string());
            }
            anyhow::ensure!(
                states.last().map(String::as_str) == Some("exited"),
                "{states:?} {listed:?}"
            );
            anyhow::Ok(())
        },
    )
    .await
    .context("w1 never shown exited")?;
    let states = states.into_inner();
    assert!(
        states.contains(&"draining".to_string()),
        "never shown draining: {states:?}"
    );
    finish_ok(&mut worker, Duration::from_secs(10)).await?;
    let listed = workers(&env).await?;
    assert!(
        listed
            .iter()
            .filter(|w| w["id"] == "w1")
            .all(|w| w["state"] == "exited"),
        "an exited worker listed as live: {listed:?}"
    );
    let out = env.run("volley", &["workers"]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("w1") && l.contains("exited")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_killed_worker_is_shown_dead_not_running() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let mut worker = env.spawn_worker("w1", &[])?;
    wait_workers(&env, &["w1"]).await?;
    worker.start_kill()?;
    worker.wait().await?;
    // Three missed 5 s beats and a little: then it is dead, and never running after that.
    eventually_every(
        Duration::from_secs(40),
        Duration::from_millis(500),
        || async {
            let listed = workers(&env).await?;
            let state = listed
                .iter()
                .find(|w| w["id"] == "w1")
                .map(|w| w["state"].clone());
            anyhow::ensure!(
                state.as_ref().is_some_and(|s| s == "dead"),
                "shown as {state:?}: {listed:?}"
            );
            anyhow::Ok(())
        },
    )
    .await
    .context("a killed worker never shown dead")?;
    let out = env.run("volley", &["workers"]).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("w1") && l.contains("dead")),
        "{text}"
    );
    Ok(())
}
