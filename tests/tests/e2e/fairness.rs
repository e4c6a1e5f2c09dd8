//! Fairness between jobs: each job has a queue of its own, so a small job submitted behind a
//! large one is not stuck behind the large one's backlog, and `weight` gives a job a larger
//! share of the fleet.

use anyhow::Context as _;
use std::time::Duration;
use volley_tests::support::{describe, finish_ok, wait_for_job};
use volley_tests::{TestEnv, eventually_every, write_jsonl};

/// `volley status JOB --json`, now.
async fn status(env: &TestEnv, job: &str) -> anyhow::Result<serde_json::Value> {
    let out = env.run("volley", &["status", job, "--json"]).await?;
    anyhow::ensure!(out.status.success(), "{}", describe(&out));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn figure(status: &serde_json::Value, key: &str) -> anyhow::Result<u64> {
    status[key]
        .as_u64()
        .with_context(|| format!("status has no {key}: {status}"))
}

#[tokio::test]
async fn a_small_job_behind_a_large_one_finishes_before_the_large_one_is_half_done()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let large_input = env.path("large.jsonl");
    write_jsonl(&large_input, 20_000)?;
    let small_input = env.path("small.jsonl");
    write_jsonl(&small_input, 200)?;
    // Each job may have 8 calls of 10 ms in flight per worker: the large one needs many
    // seconds, the small one a fraction of one, once it gets its turn.
    let extra = "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 8\n";
    let large_spec = env.write_spec("large", "/users/{id}?delay_ms=10", extra)?;
    let small_spec = env.write_spec("small", "/users/{id}?delay_ms=10", extra)?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "3s"])?;
    let large = env.produce(&large_spec, &large_input, &[]).await?;
    // The large job's whole backlog is queued and being worked on before the small job comes.
    eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let done = figure(&status(&env, &large).await?, "done")?;
            anyhow::ensure!(done > 0, "the large job has not started");
            anyhow::Ok(())
        },
    )
    .await?;
    let small = env.produce(&small_spec, &small_input, &[]).await?;
    let small_end = wait_for_job(&env, &small).await?;
    let large_then = status(&env, &large).await?;
    assert_eq!(small_end.state(), "completed", "{}", small_end.json);
    assert_eq!(small_end.u64("ok"), 200, "{}", small_end.json);
    let large_done = figure(&large_then, "done")?;
    assert!(
        large_done < 10_000,
        "the small job ended only when the large one had {large_done} of 20000 done: it waited behind the backlog"
    );
    // It started at once, not after a share of the backlog: a loose bound, far below the
    // large job's run time, far above a turn of the workers' consumers.
    let waited = figure(&small_end.json, "first_commit_ms")?
        .saturating_sub(figure(&small_end.json, "created_ms")?);
    assert!(
        waited < 10_000,
        "the small job's first commit came {waited} ms after it was registered"
    );
    let large_end = wait_for_job(&env, &large).await?;
    assert_eq!(large_end.state(), "completed", "{}", large_end.json);
    assert_eq!(large_end.u64("ok"), 20_000, "{}", large_end.json);
    assert_eq!(
        env.mock.stats().requests,
        20_200,
        "the API saw one request per record of both jobs"
    );
    finish_ok(&mut w1, Duration::from_secs(30)).await?;
    finish_ok(&mut w2, Duration::from_secs(30)).await?;
    let counts = env.queue_counts().await?;
    assert_eq!((counts.chunks_ready, counts.dead), (0, 0), "{counts:?}");
    Ok(())
}

#[tokio::test]
async fn a_heavier_job_gets_the_larger_share_of_a_busy_fleet() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 4_000)?;
    // Chunks of 10 records, well under the job's in-flight bound: what a job holds is what
    // it can have waiting for the worker's 8 slots, which the two jobs share.
    let extra = |weight: u32| {
        format!(
            "weight = {weight}\n[chunking]\nsize = 10\n[result]\nbody = \"none\"\n[concurrency]\nper_worker = 64\n"
        )
    };
    let light_spec = env.write_spec("light", "/users/{id}?delay_ms=20", &extra(1))?;
    let heavy_spec = env.write_spec("heavy", "/users/{id}?delay_ms=20", &extra(3))?;
    let light = env.produce(&light_spec, &input, &[]).await?;
    let heavy = env.produce(&heavy_spec, &input, &[]).await?;
    // Both jobs wait in full before the fleet starts, so neither has a head start.
    let worker_args = [
        "--exit-when-idle",
        "3s",
        "--concurrency",
        "8",
        "--prefetch",
        "1",
    ];
    let mut w1 = env.spawn_worker("w1", &worker_args)?;
    let mut w2 = env.spawn_worker("w2", &worker_args)?;
    // The midpoint: the heavier job half done.
    let (light_done, heavy_done) = eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let heavy_done = figure(&status(&env, &heavy).await?, "done")?;
            anyhow::ensure!(heavy_done >= 2_000, "the heavy job has {heavy_done} done");
            let light_done = figure(&status(&env, &light).await?, "done")?;
            anyhow::Ok((light_done, heavy_done))
        },
    )
    .await?;
    // Weight 3 against 1 holds three times the chunks; loosely, it has clearly more done.
    assert!(
        light_done * 3 < heavy_done * 2,
        "at the midpoint the light job had {light_done} done, the heavy one {heavy_done}"
    );
    for job in [&light, &heavy] {
        let end = wait_for_job(&env, job).await?;
        assert_eq!(end.state(), "completed", "{}", end.json);
        assert_eq!(end.u64("ok"), 4_000, "{}", end.json);
    }
    assert_eq!(
        env.mock.stats().requests,
        8_000,
        "the API saw one request per record of both jobs"
    );
    finish_ok(&mut w1, Duration::from_secs(30)).await?;
    finish_ok(&mut w2, Duration::from_secs(30)).await?;
    Ok(())
}
