//! Redis going away mid-job (T25) on a private Redis with AOF: workers keep their chunks
//! unacked and retry the commit; nothing is acked before it is in Redis.

use crate::kit::{ready_before_and_after, wait_for_log};
use crate::oracle::{ApiBound, oracle, wait_done};
use crate::support::wait_exit;
use std::time::Duration;
use volley_tests::private::PrivateRedis;
use volley_tests::{TestEnv, write_jsonl};

#[tokio::test]
async fn redis_down_mid_job_holds_every_ack_until_the_commit_lands() -> anyhow::Result<()> {
    let mut pr = PrivateRedis::start(&[])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "redisdown",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    wait_done(&env, &job, 2_500, Duration::from_secs(60)).await?;
    pr.kill();
    // Give the workers time to finish what they hold and fail to commit it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, during) = ready_before_and_after(&env, Duration::from_secs(4)).await?;
    assert_eq!(
        before, during,
        "no chunk was acked (and no new one taken) while Redis was down"
    );
    pr.restart()?;
    // The workers hold their chunks and retry the commit until it lands: nothing goes back
    // to the queue, nothing is called twice.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 10_000);
    let logs = std::fs::read_to_string(env.path("w1.log"))?
        + &std::fs::read_to_string(env.path("w2.log"))?;
    assert!(
        logs.contains("commit failed; retrying, chunk stays unacked"),
        "the workers retried their commits: {logs}"
    );
    for w in [&mut w1, &mut w2] {
        assert!(wait_exit(w, Duration::from_secs(60)).await?.success());
    }
    Ok(())
}

/// T26: Redis restarted without persistence forgets every job. Workers must notice and
/// keep the chunks (not ack them, not dead-letter them as strangers), and say so.
#[tokio::test]
async fn redis_that_lost_its_data_is_noticed_and_no_chunk_is_thrown_away() -> anyhow::Result<()> {
    let mut pr = PrivateRedis::start(&["--appendonly", "no"])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    write_jsonl(&input, 5_000)?;
    let spec = env.write_spec(
        "amnesia",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 16\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "2"])?;
    wait_done(&env, &job, 500, Duration::from_secs(60)).await?;
    let requests_before = env.mock.stats().requests;
    pr.kill();
    pr.restart()?;
    // A new worker has no cached spec: every chunk it takes belongs to a job Redis forgot.
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "2"])?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Only the two chunks w1 held at the loss (prefetch 2 × 100 records) may be called
    // after it: their commit finds no job, so w1 keeps them, and neither worker calls the
    // API for a job the store forgot.
    let requests_after = env.mock.stats().requests;
    assert!(
        requests_after <= requests_before + 2 * 100,
        "{requests_after} requests after the loss, {requests_before} before: a forgotten job was called"
    );
    let counts = env.broker().queue_counts().await?;
    assert_eq!(counts.dead, 0, "nothing dead-lettered as a stranger");
    assert!(
        counts.chunks_ready > 0,
        "the chunks are still queued: {counts:?}"
    );
    let logs = std::fs::read_to_string(env.path("w1.log"))?
        + &std::fs::read_to_string(env.path("w2.log"))?;
    assert!(
        logs.contains("store lost state"),
        "the workers said what happened: {logs}"
    );
    let status = env.run("volley", &["status", &job]).await?;
    assert_ne!(
        status.status.code(),
        Some(0),
        "status does not pretend the job is fine"
    );
    for w in [&mut w1, &mut w2] {
        let _ = w.start_kill();
        let _ = wait_exit(w, Duration::from_secs(10)).await;
    }
    Ok(())
}

/// T30: Redis full (`maxmemory` with `noeviction`): commits are refused with OOM, no chunk
/// is acked meanwhile, and the job completes once there is room again.
#[tokio::test]
async fn a_full_redis_holds_every_ack_until_there_is_room() -> anyhow::Result<()> {
    let pr = PrivateRedis::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 3_000)?;
    // Kept bodies fill 4 MB well before the job ends.
    let spec = env.write_spec(
        "full",
        "/users/{id}?body_bytes=4000",
        "[result]\nbody = \"text\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    // Wait until the commits are refused.
    wait_for_log(&env, "w.log", "OOM", Duration::from_secs(60)).await?;
    let (before, during) = ready_before_and_after(&env, Duration::from_secs(3)).await?;
    assert_eq!(before, during, "no ack while Redis refuses writes");
    let out = pr.cli(&["CONFIG", "SET", "maxmemory", "0"])?;
    assert!(out.status.success());
    // The workers hold their chunks and retry the commit until it lands: nothing goes back
    // to the queue, nothing is called twice.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 3_000);
    assert!(
        wait_exit(&mut worker, Duration::from_secs(60))
            .await?
            .success()
    );
    Ok(())
}

/// T31: Redis cannot write its snapshot (a directory sits where `dump.rdb` goes), so with
/// `stop-writes-on-bgsave-error` it refuses every write with MISCONF. Like a full Redis:
/// no ack meanwhile, and the job completes once snapshots work again.
#[tokio::test]
async fn a_redis_that_cannot_persist_holds_every_ack_until_it_can() -> anyhow::Result<()> {
    let pr = PrivateRedis::start(&[])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let out = pr.cli(&["CONFIG", "SET", "save", "3600 1"])?;
    assert!(out.status.success());
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 5_000)?;
    let spec = env.write_spec(
        "misconf",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    wait_done(&env, &job, 1_000, Duration::from_secs(60)).await?;
    let blocker = pr.dir.join("dump.rdb");
    std::fs::create_dir(&blocker)?;
    pr.cli(&["BGSAVE"])?;
    wait_for_log(&env, "w.log", "MISCONF", Duration::from_secs(60)).await?;
    let (before, during) = ready_before_and_after(&env, Duration::from_secs(3)).await?;
    assert_eq!(before, during, "no ack while Redis refuses writes");
    std::fs::remove_dir(&blocker)?;
    let out = pr.cli(&["BGSAVE"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The workers hold their chunks and retry the commit until it lands: nothing goes back
    // to the queue, nothing is called twice.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 5_000);
    let log = std::fs::read_to_string(env.path("w.log"))?;
    assert!(
        log.contains("commit failed; retrying, chunk stays unacked"),
        "{log}"
    );
    assert!(
        wait_exit(&mut worker, Duration::from_secs(60))
            .await?
            .success()
    );
    Ok(())
}

/// T29: Redis kills the workers' connections again and again: commands in flight fail,
/// Volley retries them (redis-rs does not), the pool reconnects, the counts stay exact.
#[tokio::test]
async fn killed_redis_connections_are_retried_without_double_counting() -> anyhow::Result<()> {
    let pr = PrivateRedis::start(&[])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 8_000)?;
    let spec = env.write_spec(
        "clientkill",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 50\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut w1 = env.spawn_worker("w1", &["--exit-when-idle", "4s"])?;
    let mut w2 = env.spawn_worker("w2", &["--exit-when-idle", "4s"])?;
    wait_done(&env, &job, 1_000, Duration::from_secs(60)).await?;
    for _ in 0..5 {
        pr.cli(&["CLIENT", "KILL", "TYPE", "normal"])?;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The workers hold their chunks and retry the commit until it lands: nothing goes back
    // to the queue, nothing is called twice.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 8_000);
    for w in [&mut w1, &mut w2] {
        assert!(wait_exit(w, Duration::from_secs(60)).await?.success());
    }
    Ok(())
}

/// T28: Redis stops answering writes for a while (`CLIENT PAUSE … WRITE`): commits wait or
/// time out, are retried, and land once; nothing is acked before.
#[tokio::test]
async fn paused_redis_writes_are_waited_out_without_double_counting() -> anyhow::Result<()> {
    let pr = PrivateRedis::start(&[])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 6_000)?;
    let spec = env.write_spec(
        "pause",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "2", "--exit-when-idle", "5s"])?;
    wait_done(&env, &job, 1_000, Duration::from_secs(60)).await?;
    pr.cli(&["CLIENT", "PAUSE", "6000", "WRITE"])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (before, during) = ready_before_and_after(&env, Duration::from_secs(3)).await?;
    assert_eq!(before, during, "no ack while writes are paused");
    // The workers hold their chunks and retry the commit until it lands: nothing goes back
    // to the queue, nothing is called twice.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(120),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 6_000);
    assert!(wait_exit(&mut w1, Duration::from_secs(60)).await?.success());
    Ok(())
}
