//! Watching, verifying and cleaning up as an operator does: `volley status` shows recent
//! rates and an ETA on a running job and `stalled` once nothing finishes (an outage holding
//! the breaker open), `--watch` prints plain lines on a pipe and JSON lines with `--json`,
//! `volley jobs --state` filters, `volley verify` passes on a good job and names what a
//! corrupted counter or a deleted results row breaks, `volley forget` leaves no key of the
//! job, and `volley namespace delete` leaves no key, queue or exchange.

use anyhow::Context as _;
use std::time::Duration;
use volley_tests::support::{describe, finish_ok, wait_for_job};
use volley_tests::{TestEnv, eventually_every, write_jsonl};

/// `volley status JOB --json`, parsed.
async fn status_json(env: &TestEnv, job: &str) -> anyhow::Result<serde_json::Value> {
    let out = env.run("volley", &["status", job, "--json"]).await?;
    anyhow::ensure!(out.status.success(), "{}", describe(&out));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The Redis keys of the namespace that match `pattern` (after the namespace).
async fn keys(env: &TestEnv, pattern: &str) -> anyhow::Result<Vec<String>> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:{pattern}", env.ns))
        .query_async(&mut conn)
        .await?;
    Ok(found)
}

/// Runs a Redis command against the test's server (to corrupt what Volley wrote).
async fn redis_cmd(env: &TestEnv, cmd: &mut redis::Cmd) -> anyhow::Result<()> {
    let client = redis::Client::open(env.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: redis::Value = cmd.query_async(&mut conn).await?;
    Ok(())
}

fn job_key(env: &TestEnv, job: &str, part: &str) -> String {
    format!("{}:job:{{{job}}}:{part}", env.ns)
}

#[tokio::test]
async fn status_shows_recent_rates_and_an_eta_then_stalled_while_an_outage_holds_the_job()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 3_000)?;
    // Retried for long and never failed fast by the breaker: the outage pauses the job.
    let spec = env.write_spec(
        "paced",
        "/users/{id}?delay_ms=40",
        "[chunking]\nsize = 10\n[concurrency]\nper_worker = 8\n[result]\nbody = \"none\"\n\
         [retry]\nmax_attempts = 100\nbase_delay = \"200ms\"\nmax_delay = \"1s\"\n\
         [breaker]\nmax_wait = \"10m\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let running = eventually_every(
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let s = status_json(&env, &job).await?;
            let moving = s["rate_10s"].as_f64().unwrap_or(0.0) > 0.0
                && s["rate_1m"].as_f64().unwrap_or(0.0) > 0.0
                && s["eta_secs"].as_f64().is_some_and(|e| e > 0.0);
            anyhow::ensure!(moving, "not moving yet: {s}");
            anyhow::Ok(s)
        },
    )
    .await
    .context("a running job shows its recent rates and an ETA")?;
    assert_eq!(running["state"], "running", "{running}");
    assert!(running["stalled_secs"].is_null(), "{running}");
    assert_eq!(running["live_workers"], 1, "{running}");
    assert!(running["p95_ms"].as_f64().is_some(), "{running}");

    env.mock.set_outage(Some(503));
    let stalled = eventually_every(Duration::from_secs(90), Duration::from_secs(1), || async {
        let s = status_json(&env, &job).await?;
        anyhow::ensure!(s["stalled_secs"].as_u64().is_some(), "not stalled yet: {s}");
        anyhow::Ok(s)
    })
    .await
    .context("a job that finishes nothing for a while is stalled")?;
    assert!(stalled["stalled_secs"].as_u64() >= Some(30), "{stalled}");
    assert!(stalled["eta_secs"].is_null(), "no stale ETA: {stalled}");
    let text = env.run("volley", &["status", &job]).await?;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("stalled: nothing finished for"), "{text}");

    env.mock.set_outage(None);
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    assert_eq!(fin.u64("ok"), 3_000, "{}", fin.json);
    let stats = env.mock.stats();
    assert_eq!(stats.per_id.len(), 3_000, "every record was called");
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
    // The series behind the rates counted every record once.
    let minutes = volley_core::Store::job_minutes(
        &env.store()?,
        &volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?,
    )
    .await?;
    assert_eq!(minutes.iter().map(|(_, f)| f.done).sum::<u64>(), 3_000);
    Ok(())
}

#[tokio::test]
async fn verify_passes_on_a_good_job_and_names_a_corrupted_counter_or_a_lost_row()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 200)?;
    let spec = env.write_spec(
        "checked",
        "/users/{id}?fail_pct=10&status=422",
        "[chunking]\nsize = 20\n[result]\nbody = \"none\"\ntolerated_failure_percent = 50\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    // A job that has not ended is refused.
    let out = env.run("volley", &["verify", &job]).await?;
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify checks a job once it has finished"),
        "{}",
        describe(&out)
    );
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let fin = wait_for_job(&env, &job).await?;
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
    assert_eq!(env.mock.stats().requests, 200, "one request per record");
    let (ok, failed) = (fin.u64("ok"), fin.u64("failed"));
    assert!(failed > 0, "some records failed: {}", fin.json);

    let out = env.run("volley", &["verify", &job]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text.lines().all(|l| l.starts_with("PASS")), "{text}");

    // One success too many in the counters.
    let counters = job_key(&env, &job, "counters");
    redis_cmd(&env, redis::cmd("HINCRBY").arg(&counters).arg("ok").arg(1)).await?;
    let out = env.run("volley", &["verify", &job, "--json"]).await?;
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["ok"], false, "{report}");
    let counters_check = &report["checks"][0];
    assert_eq!(counters_check["check"], "counters", "{report}");
    assert_eq!(counters_check["outcome"], "fail", "{report}");
    assert_eq!(
        counters_check["detail"],
        format!(
            "ok {} + failed {failed} + cancelled 0 = {}, but done is 200",
            ok + 1,
            ok + 1 + failed
        ),
        "{report}"
    );
    redis_cmd(&env, redis::cmd("HINCRBY").arg(&counters).arg("ok").arg(-1)).await?;

    // A chunk's stored results row lost.
    let results = job_key(&env, &job, "results");
    redis_cmd(&env, redis::cmd("HDEL").arg(&results).arg("3")).await?;
    let out = env.run("volley", &["verify", &job]).await?;
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("results"))
        .context("a results line")?;
    assert!(line.starts_with("FAIL"), "{text}");
    assert!(line.contains("chunks 3 have no stored results"), "{text}");
    assert!(line.contains("180 rows for 200 records"), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains("counters"))
            .all(|l| l.starts_with("PASS")),
        "the counters are whole again: {text}"
    );

    // forget deletes every key of the job; the job is then unknown.
    let out = env.run("volley", &["forget", &job]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        keys(&env, &format!("job:{{{job}}}*")).await?,
        Vec::<String>::new()
    );
    let out = env.run("volley", &["status", &job]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    Ok(())
}

#[tokio::test]
async fn watch_prints_lines_on_a_pipe_jobs_filter_by_state_and_namespace_delete_leaves_nothing()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 1_200)?;
    let spec = env.write_spec(
        "watched",
        "/users/{id}?delay_ms=50",
        "[chunking]\nsize = 20\n[concurrency]\nper_worker = 5\n[result]\nbody = \"none\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;

    let jobs = |state: &'static str| {
        let env = &env;
        async move {
            let out = env
                .run("volley", &["jobs", "--state", state, "--json"])
                .await?;
            anyhow::ensure!(out.status.success(), "{}", describe(&out));
            let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
            anyhow::Ok(
                list.iter()
                    .filter_map(|j| j["job"].as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(jobs("running,publishing").await?, vec![job.clone()]);
    assert!(jobs("completed").await?.is_empty());
    // A running namespace is not deleted, and the refusal names the job.
    let out = env
        .run("volley", &["namespace", "delete", env.ns.as_str()])
        .await?;
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{job} (running)")),
        "{}",
        describe(&out)
    );
    let out = env.run("volley", &["forget", &job]).await?;
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forget it once it has ended"),
        "{}",
        describe(&out)
    );

    // On a pipe, --watch prints a plain line every few seconds, then the final view.
    let out = env.run("volley", &["status", &job, "--watch"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !text.contains('\x1b'),
        "no terminal codes on a pipe: {text:?}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("job {job} ")))
        .collect();
    assert!(lines.len() >= 2, "plain lines while it ran: {text}");
    assert!(lines.iter().all(|l| l.contains("/s (10s)")), "{text}");
    assert!(
        text.contains("state     completed"),
        "the final view: {text}"
    );
    // --watch --json: one object a line, the last one final.
    let out = env
        .run("volley", &["status", &job, "--watch", "--json"])
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let last: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .context("a JSON line")?,
    )?;
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["done"], 1_200, "{last}");
    assert!(last["expires_ms"].as_u64().is_some(), "{last}");
    assert_eq!(jobs("completed").await?, vec![job.clone()]);
    assert!(jobs("running").await?.is_empty());
    let out = env.run("volley", &["jobs", "--state", "done"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(env.mock.stats().requests, 1_200, "one request per record");
    finish_ok(&mut worker, Duration::from_secs(60)).await?;

    let ids = [volley_core::JobId::parse(&job).map_err(anyhow::Error::msg)?];
    let before = env.broker()?.existing_topology(&ids).await?;
    assert!(
        before.contains(&format!("exchange {}", env.ns)),
        "the namespace's exchange exists before the delete: {before:?}"
    );
    let out = env
        .run(
            "volley",
            &["namespace", "delete", env.ns.as_str(), "--json"],
        )
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(said["keys"].as_u64() > Some(0), "{said}");
    assert_eq!(keys(&env, "*").await?, Vec::<String>::new(), "no key left");
    assert_eq!(
        env.broker()?.existing_topology(&ids).await?,
        Vec::<String>::new(),
        "no queue or exchange left"
    );
    Ok(())
}
