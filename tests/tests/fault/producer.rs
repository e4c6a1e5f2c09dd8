//! The producer dying between registering a job and publishing its first chunk (T11): the
//! job is listed as `publishing`, never as finished, and a re-run with `--job-id` publishes
//! it whole.

use crate::oracle::{ApiBound, oracle};
use std::time::Duration;
use volley_tests::support::{describe, wait_exit};
use volley_tests::{TestEnv, write_jsonl};

#[tokio::test]
async fn a_producer_killed_before_its_first_publish_is_resumed_with_job_id() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 2_000)?;
    let spec = env.write_spec("early", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let args = [
        "--spec",
        spec.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--job-id",
        "early-death",
    ];
    let killed = env
        .command("volley-producer")
        .args(args)
        .env("VOLLEY_FAILPOINTS", "producer_abort_after_register=1")
        .output()
        .await?;
    assert!(!killed.status.success(), "{}", describe(&killed));
    assert_eq!(env.queue_counts().await?.chunks_ready, 0);
    let jobs = env.run("volley", &["jobs", "--json"]).await?;
    assert!(jobs.status.success(), "{}", describe(&jobs));
    let jobs: serde_json::Value = serde_json::from_slice(&jobs.stdout)?;
    let listed = jobs
        .as_array()
        .and_then(|a| a.iter().find(|j| j["job"] == "early-death"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["state"], "publishing", "{jobs}");

    let resumed = env.run("volley-producer", &args).await?;
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    // The killed producer published nothing, the re-run publishes each chunk once.
    let verdict = oracle(
        &env,
        "early-death",
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(verdict.status["state"], "completed");
    assert_eq!(verdict.u64("total_chunks"), 20);
    assert!(
        wait_exit(&mut worker, Duration::from_secs(30))
            .await?
            .success()
    );
    Ok(())
}

/// A producer whose confirms were lost republishes a batch that did reach the queue: every
/// chunk arrives twice, each copy right behind its original, as first deliveries. Copies
/// taken while the original runs wait for its hold; copies taken after its commit skip. The
/// API sees each record once.
#[tokio::test]
async fn chunks_published_twice_call_no_record_twice() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 2_000)?;
    let spec = env.write_spec(
        "twice",
        "/users/{id}?delay_ms=20",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 20\n[concurrency]\nper_worker = 16\n",
    )?;
    let job = "published-twice";
    let mut producer =
        crate::kit::spawn_producer(&env, &spec, &input, job, "producer_publish_twice=1")?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "4", "--exit-when-idle", "3s"])?;
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "4", "--exit-when-idle", "3s"])?;
    assert!(
        wait_exit(&mut producer, Duration::from_secs(60))
            .await?
            .success()
    );
    let verdict = oracle(
        &env,
        job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 2_000);
    assert_eq!(verdict.u64("total_chunks"), 100);
    let logs = [&mut w1, &mut w2];
    for w in logs {
        assert!(wait_exit(w, Duration::from_secs(30)).await?.success());
    }
    let logs = std::fs::read_to_string(env.path("w1.log"))?
        + &std::fs::read_to_string(env.path("w2.log"))?;
    // Both ways a copy is absorbed happened: after the commit, and while its twin ran.
    assert!(
        logs.contains("chunk already committed"),
        "no copy came after its commit"
    );
    assert!(
        logs.contains("another delivery of this chunk is running it"),
        "no copy came while its twin ran"
    );
    Ok(())
}
