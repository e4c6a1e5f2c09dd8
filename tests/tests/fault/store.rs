//! Redis going away mid-job (T25) on a private Redis with AOF: workers keep their chunks
//! unacked and retry the commit; nothing is acked before it is in Redis.

use crate::kit::{ready_before_and_after, wait_for_log};
use crate::oracle::{ApiBound, oracle, wait_done};
use anyhow::Context as _;
use std::time::Duration;
use volley_tests::private::PrivateRedis;
use volley_tests::support::{describe, finish_ok, send_signal, wait_exit};
use volley_tests::{TestEnv, eventually, eventually_every, write_jsonl};

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
    // The workers finish what they hold and fail to commit it.
    for log in ["w1.log", "w2.log"] {
        wait_for_log(&env, log, "commit failed", Duration::from_secs(20)).await?;
    }
    let (before, during) = ready_before_and_after(&env, &job, Duration::from_secs(4)).await?;
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
        finish_ok(w, Duration::from_secs(60)).await?;
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
    // Freeze the worker so that the chunks committed before the loss are known exactly:
    // a commit it sent before the stop has reached Redis by the time the count is read
    // twice the same, and it makes no other until it is resumed, after the loss.
    let w1_pid = w1.id().ok_or_else(|| anyhow::anyhow!("w1 has no pid"))?;
    send_signal("-STOP", w1_pid)?;
    let committed = eventually(Duration::from_secs(10), || async {
        let first = chunks_done(&env, &job).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let then = chunks_done(&env, &job).await?;
        anyhow::ensure!(then == first, "{first} chunks done, 100 ms later {then}");
        anyhow::Ok(first)
    })
    .await
    .context("the frozen worker's commits never stood still")?;
    let requests_before = env.mock.stats().requests;
    pr.kill();
    pr.restart()?;
    send_signal("-CONT", w1_pid)?;
    // A new worker learns the jobs to follow from Redis, which knows none now: it leaves
    // the forgotten job's queue alone. w1 finishes what it held, finds no job to commit to,
    // returns those chunks and follows the job no more.
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "2"])?;
    wait_for_log(&env, "w1.log", "store lost state", Duration::from_secs(30)).await?;
    wait_for_log(&env, "w2.log", "worker consuming", Duration::from_secs(30)).await?;
    // Several of w2's readings of the active jobs (one a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let w2_log = std::fs::read_to_string(env.path("w2.log"))?;
    assert!(
        !w2_log.contains("consuming the job's queue"),
        "w2 consumed a job Redis forgot: {w2_log}"
    );
    // Only the two chunks w1 held at the loss (prefetch 2 × 100 records) may be called
    // after it: their commit finds no job, so w1 keeps them, and neither worker calls the
    // API for a job the store forgot.
    let requests_after = env.mock.stats().requests;
    assert!(
        requests_after <= requests_before + 2 * 100,
        "{requests_after} requests after the loss, {requests_before} before: a forgotten job was called"
    );
    let status = env.run("volley", &["status", &job, "--json"]).await?;
    assert_eq!(
        status.status.code(),
        Some(2),
        "status knows no such job and says so: {}",
        describe(&status)
    );
    for w in [&mut w1, &mut w2] {
        let _ = w.start_kill();
        let _ = wait_exit(w, Duration::from_secs(10)).await;
    }
    eprintln!(
        "amnesia: {committed} chunks committed before the loss, {requests_before} requests then, {requests_after} after"
    );
    // With both workers gone, every chunk not committed before the loss is back on the
    // queue: none was acked or dead-lettered as a stranger.
    let total_chunks = 5_000 / 100;
    let counts = wait_for_ready(
        &env,
        &job,
        total_chunks - committed,
        Duration::from_secs(10),
    )
    .await
    .with_context(|| format!("{committed} chunks were committed before the loss"))?;
    assert_eq!(
        (counts.chunks_ready, counts.dead),
        (total_chunks - committed, 0),
        "{committed} chunks were committed before the loss: {counts:?}"
    );
    // Redis forgot the job, so the clean-up would not find its queue.
    let id = volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?;
    env.broker()?.delete_topology(&[id]).await?;
    Ok(())
}

async fn chunks_done(env: &TestEnv, job: &str) -> anyhow::Result<u32> {
    let id = volley_core::JobId::parse(job).map_err(anyhow::Error::msg)?;
    let status = volley_core::Store::job_status(&env.store()?, &id).await?;
    Ok(status.map_or(0, |s| s.chunks_done as u32))
}

/// Waits until the chunk queue holds `ready` messages and no consumer (unacked ones come
/// back when their consumer's connection closes), and returns the counts then.
async fn wait_for_ready(
    env: &TestEnv,
    job: &str,
    ready: u32,
    within: Duration,
) -> anyhow::Result<volley_amqp::QueueCounts> {
    let job = volley_core::JobId::parse(job).map_err(anyhow::Error::msg)?;
    eventually_every(within, Duration::from_millis(100), || async {
        // Redis forgot the job: the test names its queue.
        let counts = env
            .broker()?
            .queue_counts(std::slice::from_ref(&job))
            .await?;
        anyhow::ensure!(
            counts.chunks_ready == ready && counts.consumers == 0,
            "{counts:?}"
        );
        anyhow::Ok(counts)
    })
    .await
    .with_context(|| format!("the chunk queue never held {ready} ready chunks and no consumer"))
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
    let (before, during) = ready_before_and_after(&env, &job, Duration::from_secs(3)).await?;
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
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
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
    let (before, during) = ready_before_and_after(&env, &job, Duration::from_secs(3)).await?;
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
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
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
        finish_ok(w, Duration::from_secs(60)).await?;
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
    let (before, during) = ready_before_and_after(&env, &job, Duration::from_secs(3)).await?;
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
    finish_ok(&mut w1, Duration::from_secs(60)).await?;
    Ok(())
}
