//! Records sent again: `breaker.max_wait` fails the records of a host that stays down with
//! `breaker` and the last error, and `volley retry --only breaker` sends them once the API is
//! back; a write carries the same `Idempotency-Key: {job}-{record id}` when its chunk is
//! redelivered after a worker was killed and when it is redriven.

use anyhow::Context as _;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use volley_tests::support::{describe, export, finish_ok, wait_for_job};
use volley_tests::tiny::{self, Reply};
use volley_tests::{TestEnv, check_results, eventually_every, write_jsonl};

#[tokio::test]
async fn max_wait_fails_held_records_with_breaker_and_retry_only_breaker_sends_them_again()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 50)?;
    // 5 failed calls open the breaker; records have 5 attempts, so none can spend them all
    // before it opens: every record is held, then failed by max_wait.
    let spec = env.write_spec(
        "maxwait",
        "/users/{id}",
        "[chunking]\nsize = 10\n[concurrency]\nper_worker = 4\n\
         [retry]\nmax_attempts = 5\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n\
         [breaker]\nmin_calls = 5\nfailure_percent = 50\ncooldown = \"1s\"\nramp = \"1s\"\n\
         max_wait = \"2s\"\n[result]\nbody = \"none\"\n",
    )?;
    env.mock.set_outage(Some(503));
    let job = env.produce(&spec, &input, &[]).await?;
    let started = Instant::now();
    let mut worker = env.spawn_worker("w1", &[])?;
    let fin = wait_for_job(&env, &job).await?;
    let took = started.elapsed();
    assert_eq!(
        (fin.code, fin.state(), fin.u64("failed"), fin.u64("done")),
        (3, "failed", 50, 50),
        "{}",
        fin.json
    );
    // Fast: the 2 s of max_wait, a 1 s cool-down nap at most, and the start of a worker.
    eprintln!("max_wait 2s: the job failed {took:?} after the worker started");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let host = env.mock.base_url();
    let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
    for l in &results.lines {
        let error = l.error.as_deref().unwrap_or_default();
        let held = error
            .strip_prefix(&format!(
                "breaker: {host} unavailable: circuit breaker open for "
            ))
            .and_then(|rest| {
                rest.strip_suffix("s; last error: status: HTTP 503 Service Unavailable")
            })
            .and_then(|secs| secs.parse::<u64>().ok());
        assert!(
            !l.ok && held.is_some_and(|s| s >= 2),
            "{}: not a breaker failure after max_wait naming the 503: {error}",
            l.id
        );
    }
    // Every request the API saw is an attempt a result records.
    let attempts: u64 = results.lines.iter().map(|l| u64::from(l.attempts)).sum();
    let outage_requests = env.mock.stats().requests;
    assert_eq!(outage_requests, attempts, "requests during the outage");

    // The API is back. The worker cannot know until its next probe: once the cool-down of
    // the last failed probe has passed (`volley status` says `open (probing)`), a redrive
    // sends one record as the probe while the others wait for its answer, then all of them.
    env.mock.set_outage(None);
    eventually_every(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let out = env.run("volley", &["status", &job, "--json"]).await?;
            let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            anyhow::ensure!(status["host"]["breaker"] == "open (probing)", "{status}");
            anyhow::Ok(())
        },
    )
    .await
    .context("the cool-down never passed")?;
    let out = env
        .run("volley", &["retry", &job, "--only", "breaker", "--json"])
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["records"], 50, "{report}");
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (
            fin.code,
            fin.state(),
            fin.u64("ok"),
            fin.u64("failed"),
            fin.u64("done"),
            fin.u64("total")
        ),
        (0, "completed", 50, 0, 50, 50),
        "{}",
        fin.json
    );
    let results = check_results(&export(&env, &job, &[]).await?, &ids)?;
    assert!(results.lines.iter().all(|l| l.ok && l.attempts == 1));
    assert_eq!(
        env.mock.stats().requests,
        outage_requests + 50,
        "one request per redriven record"
    );
    let pid = worker.id().ok_or_else(|| anyhow::anyhow!("worker gone"))?;
    volley_tests::support::send_signal("-TERM", pid)?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}

/// What the tiny API does: 0 holds every request unanswered, 1 answers 503, 2 answers 200.
static MODE: AtomicU8 = AtomicU8::new(0);

fn by_mode(_: &str, _: u16) -> Reply {
    match MODE.load(Ordering::SeqCst) {
        0 => Reply::Stall,
        1 => Reply::Bytes(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .into(),
        ),
        _ => Reply::Bytes(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\
             connection: close\r\n\r\n{}"
                .into(),
        ),
    }
}

/// The Idempotency-Key of each request from `from` on, counted.
fn keys_since(server: &tiny::TinyServer, from: usize) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for h in &server.headers()[from..] {
        let key = h
            .split('|')
            .find_map(|l| l.strip_prefix("idempotency-key:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("a POST without an idempotency key: {h}"));
        *keys.entry(key.to_string()).or_default() += 1;
    }
    keys
}

async fn wait_for_seen(server: &tiny::TinyServer, n: usize) -> anyhow::Result<()> {
    eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async { server.headers().len() >= n },
    )
    .await
    .with_context(|| format!("the API saw {} requests, not {n}", server.headers().len()))?;
    Ok(())
}

#[tokio::test]
async fn a_write_keeps_its_idempotency_key_on_redelivery_and_on_redrive() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20)?;
    let server = tiny::serve(by_mode).await?;
    let spec = env.path("writes.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"writes\"\n[chunking]\nsize = 10\n[concurrency]\nper_worker = 20\n\
             [retry]\nmax_attempts = 1\n[breaker]\nenabled = false\n[request]\n\
             method = \"POST\"\nurl = \"http://127.0.0.1:{}/users\"\nbody = {{ id = \"{{id}}\" }}\n\
             timeout = \"60s\"\n",
            server.port
        ),
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let expected: BTreeMap<String, usize> =
        ids.iter().map(|id| (format!("{job}-{id}"), 1)).collect();

    // Round 1: w1 sends all 20 and holds both chunks, unanswered; kill -9.
    MODE.store(0, Ordering::SeqCst);
    let mut w1 = env.spawn_worker("w1", &[])?;
    wait_for_seen(&server, 20).await?;
    w1.start_kill()?;
    w1.wait().await?;
    assert_eq!(keys_since(&server, 0), expected, "the first sending");

    // Round 2: the chunks come back to w2, whose requests fail (503, one attempt).
    MODE.store(1, Ordering::SeqCst);
    let mut w2 = env.spawn_worker("w2", &[])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("failed")), (3, 20), "{}", fin.json);
    assert_eq!(
        server.headers().len(),
        40,
        "one request per record per round"
    );
    assert_eq!(keys_since(&server, 20), expected, "the redelivery");

    // Round 3: redriven, answered.
    MODE.store(2, Ordering::SeqCst);
    let out = env.run("volley", &["retry", &job, "--json"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (fin.code, fin.u64("ok"), fin.u64("failed")),
        (0, 20, 0),
        "{}",
        fin.json
    );
    assert_eq!(
        server.headers().len(),
        60,
        "one request per record per round"
    );
    assert_eq!(keys_since(&server, 40), expected, "the redrive");
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    let pid = w2.id().ok_or_else(|| anyhow::anyhow!("worker gone"))?;
    volley_tests::support::send_signal("-TERM", pid)?;
    finish_ok(&mut w2, Duration::from_secs(30)).await?;
    Ok(())
}
