//! Redis going away mid-job (T25) on a private Redis with AOF: workers keep their chunks
//! unacked and retry the commit; nothing is acked before it is in Redis.

use crate::oracle::{oracle, wait_done};
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
    let before = env.broker().queue_counts().await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = env.broker().queue_counts().await?;
    assert_eq!(
        before.chunks_ready, during.chunks_ready,
        "no chunk was acked (and no new one taken) while Redis was down"
    );
    pr.restart()?;
    let verdict = oracle(&env, &job, &ids, 0, Duration::from_secs(120)).await?;
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
