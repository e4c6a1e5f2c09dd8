//! Workers dying and being stopped (T01, T06) on the shared services.

use crate::kit::wait_for_log;
use crate::oracle::{ApiBound, oracle, wait_done};
use anyhow::Context as _;
use std::time::{Duration, Instant};
use volley_tests::support::{describe, finish_ok, wait_exit, wait_for_requests, wait_worker};
use volley_tests::{TestEnv, write_jsonl};

fn kill(signal: &str, pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
    Ok(())
}

/// T01: `kill -9` a worker while it holds chunks; its chunks come back and are committed
/// once; a replacement joins later.
#[tokio::test]
async fn a_worker_killed_mid_flight_loses_nothing_and_counts_nothing_twice() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "kill9",
        // Slow enough that the rest of the job outlasts a heartbeat (5 s) after the moment.
        "/users/{id}?delay_ms=100",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut victim = env.spawn_worker("victim", &["--prefetch", "4"])?;
    let mut other = env.spawn_worker("other", &["--prefetch", "4", "--exit-when-idle", "4s"])?;
    // The moment: a quarter done, the victim busy (it holds up to 4 chunks).
    wait_done(&env, &job, 2_500, Duration::from_secs(60)).await?;
    // Its heartbeat says it holds chunks: the kill lands on work in progress.
    let busy = |w: &serde_json::Value| w["chunks_held"].as_u64().is_some_and(|n| n > 0);
    wait_worker(&env, &["victim"], busy, Duration::from_secs(20)).await?;
    kill("-KILL", victim.id().unwrap_or_default())?;
    let _ = wait_exit(&mut victim, Duration::from_secs(10)).await?;
    // The victim is gone: its requests reached the API before this (what it had written to
    // its sockets arrived when they closed), and the broker returns its chunks only now.
    let cut_ms = crate::oracle::now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut replacement = env.spawn_worker("replacement", &["--exit-when-idle", "4s"])?;
    // HTTP is at least once: only the records the victim held (prefetch 4 × 100) may have
    // been called twice.
    let held = ApiBound::CutChunks {
        chunks: 4,
        size: 100,
        cut_ms,
        why: "the chunks the killed worker held",
    };
    let verdict = oracle(&env, &job, &ids, 0, held, Duration::from_secs(120)).await?;
    assert_eq!(verdict.u64("ok"), 10_000);
    for w in [&mut other, &mut replacement] {
        finish_ok(w, Duration::from_secs(60)).await?;
    }
    Ok(())
}

/// T06: SIGTERM with work that cannot finish within the drain timeout: the worker exits in
/// time, returns its chunks unfinished (nothing partly committed), and another worker
/// completes them.
#[tokio::test]
async fn sigterm_returns_work_that_cannot_finish_within_the_drain_timeout() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 200)?;
    let spec = env.write_spec(
        "drain",
        "/users/{id}?delay_ms=4000",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 20\n[concurrency]\nper_worker = 100\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut first = env.spawn_worker("first", &["--prefetch", "3", "--drain-timeout", "1s"])?;
    // Wait until the first worker holds chunks and its requests are out.
    wait_for_requests(&env, 40, Duration::from_secs(20))
        .await
        .context("the worker never started calling")?;
    let stopped = Instant::now();
    kill("-TERM", first.id().unwrap_or_default())?;
    let status = wait_exit(&mut first, Duration::from_secs(10)).await?;
    let took = stopped.elapsed();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    // The records take 4 s, so the drain runs its full second; returning the chunks and
    // closing take tens of milliseconds (measured: 1.02-1.05 s in all), the rest of the
    // half second is for a busy CI machine.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1_500),
        "exit after the 1 s drain timeout plus clean-up, took {took:?}"
    );
    let log = std::fs::read_to_string(env.path("first.log"))?;
    assert!(log.contains("returning unfinished chunk"), "{log}");
    let store = env.store()?;
    let id = volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?;
    let status_now = volley_core::Store::job_status(&store, &id)
        .await?
        .expect("job");
    assert_eq!(status_now.done, 0, "nothing partly committed");
    // The first worker has exited: its calls came before this, the second's after.
    let cut_ms = crate::oracle::now_ms();
    let mut second = env.spawn_worker("second", &["--exit-when-idle", "3s"])?;
    // The first worker's calls were out when it returned its chunks (prefetch 3 × 20
    // records): the second calls them again.
    let returned = ApiBound::CutChunks {
        chunks: 3,
        size: 20,
        cut_ms,
        why: "the chunks the stopped worker returned",
    };
    oracle(&env, &job, &ids, 0, returned, Duration::from_secs(60)).await?;
    finish_ok(&mut second, Duration::from_secs(30)).await?;
    Ok(())
}

/// T07: a worker frozen (SIGSTOP) long enough for the broker to give its chunks to another
/// worker, then thawed. Holding an unacked message is not a lease: the zombie finishes its
/// calls, its commits are no-ops, its acks are refused by its dead channel, and it
/// reconnects and carries on. Counters stay exact.
#[tokio::test]
async fn a_frozen_worker_that_wakes_up_after_its_chunks_moved_on_changes_no_counter()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?.with_servers(
        Some(format!(
            "{}?heartbeat=2",
            volley_runtime::settings::DEFAULT_AMQP_URL
        )),
        None,
    );
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 8_000)?;
    let spec = env.write_spec(
        "zombie",
        "/users/{id}?delay_ms=50",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut zombie = env.spawn_worker("zombie", &["--prefetch", "4", "--exit-when-idle", "4s"])?;
    let mut other = env.spawn_worker("other", &["--prefetch", "4", "--exit-when-idle", "4s"])?;
    wait_done(&env, &job, 2_000, Duration::from_secs(60)).await?;
    let pid = zombie.id().unwrap_or_default();
    let consumers = env.queue_counts().await?.consumers;
    kill("-STOP", pid)?;
    // Heartbeats of 2 s: the broker drops the frozen worker's connection within ~6 s and
    // requeues what it held. The frozen worker wakes only once its consumer is gone.
    volley_tests::eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let done = env.queue_counts().await?.consumers < consumers;
            anyhow::ensure!(done, "not yet");
            anyhow::Ok(())
        },
    )
    .await
    .context("the broker kept the frozen worker's consumer for 20 s")?;
    kill("-CONT", pid)?;
    // The zombie's chunks (prefetch 4 × 100) went to the other worker while the zombie
    // still finished its own calls: each may have been called twice. The calls it had in
    // flight when frozen (per_worker 32) outlive their 5 s timeout and are retried on wake.
    let moved = ApiBound::AtMost(
        4 * 100 + 32,
        "the chunks the frozen worker held, and its timed-out calls",
    );
    let verdict = oracle(&env, &job, &ids, 0, moved, Duration::from_secs(120)).await?;
    assert_eq!(verdict.u64("ok"), 8_000);
    for w in [&mut zombie, &mut other] {
        finish_ok(w, Duration::from_secs(60)).await?;
    }
    let log = std::fs::read_to_string(env.path("zombie.log"))?;
    assert!(
        log.contains("consumer lost its channel") || log.contains("ack not delivered"),
        "the zombie noticed its channel was gone: {log}"
    );
    Ok(())
}

/// T08: a second signal during the drain exits at once (130); what the worker held goes
/// back to the queue, and a new worker completes the job.
#[tokio::test]
async fn a_second_signal_exits_at_once_and_loses_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 400)?;
    let spec = env.write_spec(
        "twice",
        "/users/{id}?delay_ms=3000",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 20\n[concurrency]\nper_worker = 100\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut first = env.spawn_worker("first", &["--prefetch", "3", "--drain-timeout", "30s"])?;
    wait_for_requests(&env, 40, Duration::from_secs(20))
        .await
        .context("the worker never started calling")?;
    let pid = first.id().unwrap_or_default();
    kill("-TERM", pid)?;
    // The second signal only once the first is taken (two signals at once may be one):
    // the worker then says it drains, at once, in `volley workers`.
    wait_worker(
        &env,
        &["first"],
        |w| w["state"] == "draining",
        Duration::from_secs(10),
    )
    .await
    .context("the first signal was never taken")?;
    let stopped = Instant::now();
    kill("-TERM", pid)?;
    let status = wait_exit(&mut first, Duration::from_secs(10)).await?;
    assert_eq!(
        status.code(),
        Some(130),
        "the second signal exits at once with 130"
    );
    // "At once": measured at 15-20 ms, against a 30 s drain and 3 s records.
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "exited {took:?} after the second signal"
    );
    // The first worker has exited: its calls came before this, the second's after.
    let cut_ms = crate::oracle::now_ms();
    let mut second = env.spawn_worker("second", &["--exit-when-idle", "3s"])?;
    // The first worker's calls were out when it returned its chunks (prefetch 3 × 20
    // records): the second calls them again.
    let returned = ApiBound::CutChunks {
        chunks: 3,
        size: 20,
        cut_ms,
        why: "the chunks the stopped worker returned",
    };
    oracle(&env, &job, &ids, 0, returned, Duration::from_secs(60)).await?;
    finish_ok(&mut second, Duration::from_secs(30)).await?;
    Ok(())
}

/// T22: a worker configured with another delivery limit than the queue was declared with
/// stops with an error naming the argument, instead of looping.
#[tokio::test]
async fn a_delivery_limit_mismatch_is_a_clear_error_not_a_crash_loop() -> anyhow::Result<()> {
    let mut env = TestEnv::new().await?;
    env.extra_env
        .push(("VOLLEY_DELIVERY_LIMIT".into(), "10".into()));
    let input = env.path("records.jsonl");
    write_jsonl(&input, 10)?;
    let spec = env.write_spec("limits", "/users/{id}", "")?;
    env.produce(&spec, &input, &[]).await?;
    let out = env
        .command("volley-worker")
        .args(["--exit-when-idle", "2s"])
        .env("VOLLEY_DELIVERY_LIMIT", "5")
        .output()
        .await?;
    assert!(
        !out.status.success(),
        "{}",
        volley_tests::support::describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "was declared with x-delivery-limit 10, but delivery_limit (VOLLEY_DELIVERY_LIMIT) is 5 here: set VOLLEY_DELIVERY_LIMIT=10"
        ),
        "names the argument, the setting and the queue's value: {stderr}"
    );
    Ok(())
}

/// T02: a crash storm: a random worker is killed every 2 s, six times, and restarted. With
/// the delivery limit at its default no innocent chunk is dead-lettered or settled as
/// poison, and every record is counted once.
#[tokio::test]
async fn a_crash_storm_loses_nothing_and_poisons_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 12_000)?;
    let spec = env.write_spec(
        "storm",
        "/users/{id}?delay_ms=10",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let names = ["s1", "s2", "s3"];
    let mut workers = Vec::new();
    for name in names {
        workers.push(env.spawn_worker(name, &["--prefetch", "4", "--exit-when-idle", "5s"])?);
    }
    wait_done(&env, &job, 1_000, Duration::from_secs(60)).await?;
    for round in 0..6 {
        let victim = fastrand::usize(0..workers.len());
        kill("-KILL", workers[victim].id().unwrap_or_default())?;
        let _ = wait_exit(&mut workers[victim], Duration::from_secs(10)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        workers[victim] = env.spawn_worker(
            &format!("{}-{round}", names[victim]),
            &["--prefetch", "4", "--exit-when-idle", "5s"],
        )?;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    // Each of the 6 kills sends back what its victim held (prefetch 4 × 100 records).
    let killed = ApiBound::Chunks {
        chunks: 6 * 4,
        size: 100,
        why: "per kill, the chunks the victim held",
    };
    let verdict = oracle(&env, &job, &ids, 0, killed, Duration::from_secs(120)).await?;
    assert_eq!(verdict.u64("ok"), 12_000, "no record settled as poison");
    for w in &mut workers {
        finish_ok(w, Duration::from_secs(60)).await?;
    }
    Ok(())
}

/// T20: a running job's queue is deleted under an idle worker (the broker cancels its
/// consumer): the worker notices, declares the queue again and consumes; the job, resumed,
/// completes.
#[tokio::test]
async fn a_deleted_queue_is_noticed_and_declared_again() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // A job stopped at a bad line after 200 records: active, its published chunks done, its
    // queue empty and followed.
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 500)?;
    let good = std::fs::read_to_string(&input)?;
    let broken = good.replacen("{\"id\":\"r000200\"", "{\"id\": ", 1);
    std::fs::write(&input, &broken)?;
    let spec = env.write_spec("again", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let (spec_s, input_s) = (
        volley_tests::path_str(&spec)?.to_string(),
        volley_tests::path_str(&input)?.to_string(),
    );
    let args = [
        "--spec", &spec_s, "--input", &input_s, "--job-id", "again-1",
    ];
    let out = env.run("volley-producer", &args).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "20s"])?;
    let consumed = || async {
        let counts = env.queue_counts().await?;
        anyhow::ensure!(
            counts.consumers > 0 && counts.chunks_ready == 0,
            "{counts:?}"
        );
        anyhow::Ok(())
    };
    volley_tests::eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(100),
        consumed,
    )
    .await
    .context("the worker never consumed the job's queue")?;
    let queue = format!("{}.chunks.again-1", env.ns);
    let out = std::process::Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output()?;
    anyhow::ensure!(out.status.success(), "delete_queue: {out:?}");
    // Within a few seconds the worker is consuming again from a fresh queue.
    volley_tests::eventually_every(
        Duration::from_secs(15),
        Duration::from_millis(250),
        consumed,
    )
    .await
    .context("the worker never came back to the queue")?;
    wait_for_log(
        &env,
        "w.log",
        "cancelled by the broker",
        Duration::from_secs(5),
    )
    .await?;
    std::fs::write(&input, good)?;
    let out = env.run("volley-producer", &args).await?;
    assert!(out.status.success(), "{}", describe(&out));
    // The queue was deleted empty: nothing is redelivered.
    oracle(
        &env,
        "again-1",
        &ids,
        0,
        ApiBound::Exact,
        Duration::from_secs(60),
    )
    .await?;
    let _ = worker.start_kill();
    let _ = wait_exit(&mut worker, Duration::from_secs(10)).await;
    Ok(())
}
