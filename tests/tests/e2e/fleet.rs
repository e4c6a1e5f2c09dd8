//! The fleet path: volley-producer → RabbitMQ → volley-worker processes → Redis → volley.

use anyhow::Context as _;
use std::time::Duration;
use volley_core::Store;
use volley_tests::support::{
    assert_worker_did_records, describe, export, finish_ok, wait_exit, wait_for_job, wait_workers,
};
use volley_tests::{TestEnv, check_results, write_jsonl};

const BODY_NONE: &str = "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 64\n";

#[tokio::test]
async fn ten_thousand_records_through_two_workers_are_each_accounted_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "fleet",
        "/users/{id}?delay_ms=2",
        "[result]\nselect = [\"/id\", \"/email\"]\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "3s"])?;
    // Both workers announce themselves with heartbeats.
    wait_workers(&env, &["w1", "w2"])
        .await
        .context("workers never heartbeat")?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "status --wait exit code: {}", fin.json);
    assert_eq!(fin.state(), "completed");
    assert_eq!(fin.json["job"], job.as_str());
    assert_eq!(
        (
            fin.u64("total"),
            fin.u64("done"),
            fin.u64("ok"),
            fin.u64("failed")
        ),
        (10_000, 10_000, 10_000, 0)
    );
    let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
    assert_eq!(results.ok(), 10_000);
    let sample = results
        .lines
        .iter()
        .find(|l| l.id == "r004242")
        .expect("r004242 exported");
    assert_eq!(sample.status, Some(200));
    assert_eq!(sample.line, 4243);
    assert_eq!(
        sample.body.as_ref().and_then(|b| b["id"].as_str()),
        Some("r004242")
    );
    assert_eq!(
        env.mock.stats().requests,
        10_000,
        "the API saw one request per record"
    );
    finish_ok(&mut w1, Duration::from_secs(30)).await?;
    finish_ok(&mut w2, Duration::from_secs(30)).await?;
    // Both workers took part, and their own counts add up to one call per record.
    let done = assert_worker_did_records(&env, "w1")? + assert_worker_did_records(&env, "w2")?;
    assert_eq!(
        done, 10_000,
        "the workers' exit lines count every record once"
    );
    let counts = env.queue_counts().await?;
    assert_eq!((counts.chunks_ready, counts.dead), (0, 0));
    Ok(())
}

#[tokio::test]
async fn redelivered_committed_chunk_changes_no_counter_and_calls_no_api() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 1_000)?;
    let spec = env.write_spec("redeliver", "/users/{id}", BODY_NONE)?;
    let job = env.produce(&spec, &input, &[]).await?;
    // This worker commits its third chunk, then dies before acking it (as kill -9 would).
    let mut cmd = env.command("volley-worker");
    let doomed_log = std::fs::File::create(env.path("doomed.log"))?;
    cmd.args(["--worker-id", "doomed", "--prefetch", "1"])
        .env("VOLLEY_FAILPOINTS", "worker_abort_after_commits=3")
        .stderr(doomed_log);
    let mut doomed = cmd.spawn()?;
    let status = wait_exit(&mut doomed, Duration::from_secs(60)).await?;
    assert!(!status.success(), "the failpoint aborts the worker");
    let before = env
        .store()?
        .job_status(&volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?)
        .await?
        .expect("job");
    assert_eq!(
        before.chunks_done, 3,
        "three chunks committed before the abort"
    );
    // The survivor gets the committed-but-unacked chunk back and acks it without work.
    let mut survivor = env.spawn_worker("survivor", &["--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (fin.code, fin.u64("done"), fin.u64("ok")),
        (0, 1_000, 1_000)
    );
    assert_eq!(fin.u64("chunks_done"), 10);
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    assert_eq!(
        env.mock.stats().requests,
        1_000,
        "the redelivered chunk made no HTTP call"
    );
    finish_ok(&mut survivor, Duration::from_secs(30)).await?;
    let log = std::fs::read_to_string(env.path("survivor.log"))?;
    assert!(
        log.contains("chunk already committed; acking without work"),
        "survivor log:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn producer_killed_half_way_resumes_without_publishing_a_chunk_twice() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20_000)?;
    let spec = env.write_spec("resume", "/users/{id}", BODY_NONE)?;
    let spec_s = spec.to_str().unwrap_or_default();
    let input_s = input.to_str().unwrap_or_default();
    let killed = env
        .command("volley-producer")
        .args([
            "--spec",
            spec_s,
            "--input",
            input_s,
            "--job-id",
            "resume-me",
        ])
        .env("VOLLEY_FAILPOINTS", "producer_abort_after_chunks=50")
        .output()
        .await?;
    assert!(
        !killed.status.success(),
        "the failpoint aborts the producer: {}",
        describe(&killed)
    );
    let store = env.store()?;
    let job = volley_core::JobId::parse("resume-me").map_err(anyhow::Error::msg)?;
    let half = store
        .job_status(&job)
        .await?
        .expect("job registered before the first publish");
    assert_eq!(half.state, volley_core::JobState::Publishing);
    assert!(
        (50..200).contains(&half.published_chunks),
        "published {}",
        half.published_chunks
    );
    let resumed = env
        .run(
            "volley-producer",
            &[
                "--spec",
                spec_s,
                "--input",
                input_s,
                "--job-id",
                "resume-me",
            ],
        )
        .await?;
    assert!(resumed.status.success(), "{}", describe(&resumed));
    assert_eq!(
        String::from_utf8(resumed.stdout.clone())?.trim(),
        "resume-me"
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        stderr.contains(&format!(
            "resuming job resume-me at chunk {}",
            half.published_chunks
        )),
        "{stderr}"
    );
    let counts = env.queue_counts().await?;
    assert_eq!(
        counts.chunks_ready, 200,
        "every chunk exactly once on the queue"
    );
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, "resume-me").await?;
    assert_eq!(
        (
            fin.code,
            fin.u64("total"),
            fin.u64("total_chunks"),
            fin.u64("done")
        ),
        (0, 20_000, 200, 20_000)
    );
    check_results(&export(&env, "resume-me", &[]).await?, &ids)?;
    assert_eq!(env.mock.stats().requests, 20_000);
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    // A third run finds the job fully published and changes nothing.
    let again = env
        .run(
            "volley-producer",
            &[
                "--spec",
                spec_s,
                "--input",
                input_s,
                "--job-id",
                "resume-me",
            ],
        )
        .await?;
    assert!(again.status.success(), "{}", describe(&again));
    assert_eq!(env.queue_counts().await?.chunks_ready, 0);
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_held_chunks_and_exits_zero() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 2_000)?;
    let spec = env.write_spec(
        "drain",
        "/users/{id}?delay_ms=200",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 50\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut first = env.spawn_worker("first", &["--prefetch", "2", "--drain-timeout", "20s"])?;
    let store = env.store()?;
    let id = volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?;
    volley_tests::eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let done = store.job_status(&id).await?.map_or(0, |s| s.done) >= 200;
            anyhow::ensure!(done, "not yet");
            anyhow::Ok(())
        },
    )
    .await
    .context("no progress")?;
    let pid = first.id().expect("worker pid");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = wait_exit(&mut first, Duration::from_secs(25)).await?;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    // The held chunks finished within the drain: every call the worker made is in a
    // committed chunk, and the job's records done are whole chunks.
    let drained = store.job_status(&id).await?.expect("job");
    assert_eq!(
        (env.mock.stats().requests, drained.done % 100),
        (drained.done, 0),
        "held chunks finish within the drain: {drained:?}"
    );
    assert!(drained.done < 2_000, "the worker stopped before the end");
    let mut second = env.spawn_worker("second", &["--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (fin.code, fin.u64("done"), fin.u64("ok")),
        (0, 2_000, 2_000)
    );
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    assert_eq!(
        env.mock.stats().requests,
        2_000,
        "nothing was processed twice"
    );
    finish_ok(&mut second, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test]
async fn retry_redrives_failed_records_until_they_succeed_with_exact_counters() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 1_000)?;
    let spec = env.write_spec(
        "redrive",
        "/users/{id}?fail_pct=30&status=503",
        "[retry]\nmax_attempts = 1\n[chunking]\nsize = 50\n[breaker]\nenabled = false\n",
    )?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "5s"])?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.state()), (3, "failed"), "{}", fin.json);
    let mut failed = fin.u64("failed");
    assert!((150..=450).contains(&failed), "about 30% fail: {failed}");

    // Only timeouts: there are none, so nothing goes out.
    let out = env
        .run("volley", &["retry", &job, "--only", "timeout"])
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nothing to retry"));
    let out = env
        .run("volley", &["retry", &job, "--only", "slow"])
        .await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'slow' is not an error kind"));

    let mut sent = 1_000;
    for round in 1..=15 {
        let listed = check_failed_listing(&env, &job, failed).await?;
        let out = env
            .run("volley", &["retry", &job, "--only", "status=503", "--json"])
            .await?;
        assert!(out.status.success(), "{}", describe(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(report["records"], failed, "round {round}: {report}");
        // Small rounds can be done by the time the last chunk is confirmed.
        assert!(
            ["running", "completed", "failed"].contains(&report["state"].as_str().unwrap_or("")),
            "{report}"
        );
        sent += failed;
        let fin = wait_for_job(&env, &job).await?;
        // Every record counted once, as its latest outcome.
        assert_eq!((fin.u64("total"), fin.u64("done")), (1_000, 1_000));
        assert_eq!(fin.u64("ok") + fin.u64("failed"), 1_000, "{}", fin.json);
        let by_status: u64 = fin.json["by_status"]
            .as_object()
            .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        assert_eq!(by_status, 1_000, "{}", fin.json);
        let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
        assert_eq!(results.ok() as u64, fin.u64("ok"));
        assert_eq!(
            env.mock.stats().requests,
            sent,
            "one request per record per round"
        );
        assert!(listed.iter().all(|id| ids.contains(id)));
        failed = fin.u64("failed");
        if failed == 0 {
            assert_eq!((fin.code, fin.state()), (0, "completed"));
            assert!(results.lines.iter().all(|l| l.ok && l.status == Some(200)));
            break;
        }
    }
    assert_eq!(failed, 0, "15 rounds at 30% failure leave nothing failed");
    let out = env.run("volley", &["retry", &job]).await?;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nothing to retry"));
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
    Ok(())
}

/// `volley results --failed` lists exactly the failed records, each with its reason.
async fn check_failed_listing(
    env: &TestEnv,
    job: &str,
    failed: u64,
) -> anyhow::Result<Vec<String>> {
    let text = export(env, job, &["--failed"]).await?;
    let mut ids = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(v["ok"], false);
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("status: ")),
            "{line}"
        );
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(ids.len() as u64, failed);
    Ok(ids)
}

#[tokio::test]
async fn the_demo_input_written_for_a_fleet_runs_through_one() -> anyhow::Result<()> {
    // What docker-compose's demo does: `volley demo --write-input`, then the producer and
    // the workers on the files it wrote.
    let env = TestEnv::new().await?;
    let dir = env.path("demo");
    let out = env
        .command("volley")
        .args(["demo", "--write-input", volley_tests::path_str(&dir)?])
        .args(["--records", "1500", "--api-url", &env.mock.base_url()])
        .output()
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let records = std::fs::read_to_string(dir.join("records.jsonl"))?;
    assert_eq!(records.lines().count(), 1_500);
    // --write-input without --api-url names what is missing and writes nothing.
    let alone = env
        .command("volley")
        .args([
            "demo",
            "--write-input",
            volley_tests::path_str(&env.path("none"))?,
        ])
        .output()
        .await?;
    assert_eq!(alone.status.code(), Some(2), "{}", describe(&alone));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("--api-url"));
    assert!(!env.path("none").exists());

    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let job = env
        .produce(&dir.join("spec.toml"), &dir.join("records.jsonl"), &[])
        .await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    assert_eq!((fin.u64("done"), fin.u64("ok")), (1_500, 1_500));
    // The demo's 2% transient 503s are retried: every request is an attempt of a record.
    let attempts: u64 = export(&env, &job, &[])
        .await?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["attempts"].as_u64())
        .sum();
    assert_eq!(env.mock.stats().requests, attempts);
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}
