//! Poison (T09, T50): chunks that crash every worker that takes them, and messages that are
//! not chunks at all. Neither may block the queue or lose a record.

use crate::oracle::{ApiBound, oracle};
use anyhow::Context as _;
use std::time::Duration;
use tokio::process::Child;
use volley_core::{Broker, OutgoingChunk};
use volley_tests::support::{describe, finish_ok};
use volley_tests::{TestEnv, eventually, eventually_every, write_jsonl};

fn worker_with_failpoints(env: &TestEnv, label: &str, failpoints: &str) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.path(&format!("{label}.log")))?;
    Ok(env
        .command("volley-worker")
        .args([
            "--worker-id",
            label,
            "--prefetch",
            "1",
            "--exit-when-idle",
            "3s",
        ])
        .env("VOLLEY_FAILPOINTS", failpoints)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// A worker that aborts on r000123 (in chunk 2).
fn crashy(env: &TestEnv) -> anyhow::Result<Child> {
    worker_with_failpoints(env, "crashy", "abort_on_record=r000123")
}

/// One look at the crashy worker: `Ok` once one exits cleanly (the poison chunk is settled);
/// one that crashed is counted and replaced.
fn settled(env: &TestEnv, worker: &mut Child, crashes: &mut u32) -> anyhow::Result<()> {
    match worker.try_wait()? {
        Some(status) if status.success() => return Ok(()),
        Some(_) => {
            *worker = crashy(env)?;
            *crashes += 1;
        }
        None => {}
    }
    anyhow::bail!("{crashes} crashes so far, a worker runs")
}

/// T09: a record that kills its worker every time. Its chunk comes back until it nears the
/// delivery limit, then it is settled: its records fail with `poison`, the job ends, the
/// message waits in the dead-letter queue (`volley dead` shows it as settled), and once the
/// cause is fixed `volley dead --requeue` sends its records again.
#[tokio::test]
async fn a_chunk_that_kills_every_worker_is_settled_as_poison_and_can_be_retried()
-> anyhow::Result<()> {
    let mut env = TestEnv::new().await?;
    env.extra_env
        .push(("VOLLEY_DELIVERY_LIMIT".into(), "4".into()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 500)?;
    let spec = env.write_spec(
        "poison",
        "/users/{id}",
        "[chunking]\nsize = 50\n[result]\nbody = \"none\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut crashes = 0;
    let mut worker = crashy(&env)?;
    eventually(Duration::from_secs(90), || {
        std::future::ready(settled(&env, &mut worker, &mut crashes))
    })
    .await
    .context("the poison chunk was never settled")?;
    assert!(
        (2..=4).contains(&crashes),
        "crashed {crashes} times before the chunk was settled (delivery limit 4)"
    );
    // Each crashing delivery of the poison chunk may have called its other records first:
    // at most the delivery limit (4) × 50 records; the settling delivery calls nothing.
    // The same bound holds after the requeue below (the counter is cumulative, the
    // results then record the 50 records' new attempts).
    let crashed = ApiBound::AtMost(4 * 50, "records called by the deliveries that crashed");
    let verdict = oracle(&env, &job, &ids, 1, crashed, Duration::from_secs(30)).await?;
    assert_eq!(verdict.status["state"], "failed");
    let poisoned: Vec<&str> = verdict
        .results
        .lines
        .iter()
        .filter(|l| !l.ok)
        .map(|l| l.id.as_str())
        .collect();
    assert_eq!(poisoned.len(), 50, "the 50 records of the poison chunk");
    assert!(poisoned.contains(&"r000123") && poisoned.contains(&"r000100"));
    assert!(verdict.results.lines.iter().filter(|l| !l.ok).all(|l| {
        l.error
            .as_deref()
            .is_some_and(|e| e.starts_with("poison: chunk delivered"))
    }));
    let log = std::fs::read_to_string(env.path("crashy.log"))?;
    assert!(log.contains("settling its records as poison"), "{log}");

    let out = env.run("volley", &["dead", "--json"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let dead: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["job"], job.as_str());
    assert_eq!(dead[0]["chunk"], 2, "r000123 is in chunk 2: {dead:?}");
    assert_eq!(dead[0]["settled"], true, "{dead:?}");

    // Fixed (no failpoint): requeueing the dead letter sends its records again.
    let out = env.run("volley", &["dead", "--requeue", "--json"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["requeued"], 0, "{report}");
    assert_eq!(report["settled"], 1, "{report}");
    assert_eq!(report["retried"][0]["records"], 50, "{report}");
    let mut fixed = env.spawn_worker("fixed", &["--exit-when-idle", "3s"])?;
    let verdict = oracle(&env, &job, &ids, 0, crashed, Duration::from_secs(60)).await?;
    assert_eq!(verdict.status["state"], "completed");
    finish_ok(&mut fixed, Duration::from_secs(30)).await?;
    Ok(())
}

/// T50: messages that are not chunks of a known job are dead-lettered on first delivery,
/// shown by `volley dead`, and a requeue sends them round once more without a loop.
#[tokio::test]
async fn garbage_messages_are_dead_lettered_at_once_and_shown_by_volley_dead() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 1_000)?;
    let spec = env.write_spec("garbage", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let job = env.produce(&spec, &input, &[]).await?;
    // The garbage goes into the queue of a job that stays active (stopped at a bad first
    // line, so its queue is followed and empty): workers consume only active jobs' queues,
    // and a requeue sends a dead letter back to the queue it died in.
    let bad = env.path("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \n")?;
    let out = env
        .run(
            "volley-producer",
            &[
                "--spec",
                volley_tests::path_str(&spec)?,
                "--input",
                volley_tests::path_str(&bad)?,
                "--job-id",
                "stopped-1",
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let job_id = volley_core::JobId::parse("stopped-1").map_err(anyhow::Error::msg)?;
    let garbage = [
        b"\xff\xfe not json".to_vec(),
        Vec::new(),
        br#"{"v":1,"job":"no-such-job","chunk":0,"records":[]}"#.to_vec(),
        br#"{"v":99,"job":"x","chunk":0,"records":[]}"#.to_vec(),
    ];
    env.broker()?
        .publish_confirmed(
            garbage
                .iter()
                .enumerate()
                .map(|(i, payload)| OutgoingChunk {
                    job: job_id.clone(),
                    message_id: format!("garbage:{i}"),
                    payload: payload.clone(),
                })
                .collect(),
        )
        .await?;
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "5s"])?;
    // Garbage is dead-lettered without a call and no chunk is redelivered.
    let verdict = oracle(
        &env,
        &job,
        &ids,
        4,
        ApiBound::Exact,
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(verdict.u64("ok"), 1_000, "garbage did not block the job");
    let out = env.run("volley", &["dead", "--json"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let dead: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(dead.iter().all(|d| d["reason"] == "rejected"), "{dead:?}");
    assert!(
        dead.iter().any(|d| d["preview"]
            .as_str()
            .is_some_and(|p| p.starts_with("\\xff\\xfe"))),
        "non-printable bytes are escaped: {dead:?}"
    );
    // Listing did not consume them.
    assert_eq!(env.queue_counts().await?.dead, 4);
    let out = env.run("volley", &["dead", "--requeue"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("moved 4"));
    // The worker refuses them again, once each.
    eventually_every(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let counts = env.queue_counts().await?;
            anyhow::ensure!(
                counts.dead == 4 && counts.chunks_ready == 0 && counts.consumers > 0,
                "{counts:?}"
            );
            anyhow::Ok(())
        },
    )
    .await
    .context("the requeued garbage was not dead-lettered again")?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}
