//! Settings and switches of the README that shape a process rather than a job: the
//! `panic_on_record` failpoint (a record whose task panics fails with `panic`, the rest run
//! on), `volley-worker --http-addr` / `VOLLEY_HTTP_ADDR` (`GET /health`, also while the
//! worker waits for its services), `VOLLEY_RETENTION` (the TTL of a finished job's keys) and
//! `VOLLEY_LOG_FORMAT=json` (every stderr line a JSON object).

use anyhow::Context as _;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;
use volley_tests::support::{
    assert_worker_did_records, describe, export, finish_ok, http_get, send_signal, wait_exit,
    wait_for_job, wait_workers,
};
use volley_tests::{TestEnv, check_results, eventually, path_str, write_jsonl};

/// The record the failpoint panics on: the 8th of 20, in the second chunk of 5.
const PANICKING: &str = "r000007";
const PANIC_TEXT: &str = "panic: failpoint panic_on_record reached at r000007";

/// 20 records in chunks of 5, one failure tolerated (5%), so a job with exactly the
/// panicking record failed ends `completed_with_failures` and exits 0.
fn panic_job(env: &TestEnv) -> anyhow::Result<(std::path::PathBuf, BTreeSet<String>)> {
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20)?;
    let spec = env.write_spec(
        "panics",
        "/users/{id}",
        "[chunking]\nsize = 5\n[result]\nbody = \"none\"\ntolerated_failure_percent = 5\n",
    )?;
    Ok((spec, ids))
}

/// The exported results of a panic job: the panicking record failed with kind `panic`
/// (no response, no attempt spent), every other record ok after one attempt, each once.
fn assert_panic_results(jsonl: &str, ids: &BTreeSet<String>) -> anyhow::Result<()> {
    let results = check_results(jsonl, ids)?;
    for line in &results.lines {
        if line.id == PANICKING {
            assert!(!line.ok, "{line:?}");
            assert_eq!(line.error.as_deref(), Some(PANIC_TEXT), "{line:?}");
            assert_eq!((line.status, line.attempts), (None, 0), "{line:?}");
        } else {
            assert!(line.ok, "only {PANICKING} fails: {line:?}");
            assert_eq!((line.status, line.attempts), (Some(200), 1), "{line:?}");
        }
    }
    Ok(())
}

/// The API saw the 19 other records once each and never the panicking one: the failpoint
/// fires before the record's request is built.
fn assert_api_saw_all_but_the_panicking_record(env: &TestEnv) {
    let stats = env.mock.stats();
    assert_eq!(
        stats.requests, 19,
        "one request per record but the panicking one"
    );
    assert!(
        !stats.per_id.contains_key(PANICKING),
        "the panicking record was sent: {:?}",
        stats.per_id.get(PANICKING)
    );
    assert!(stats.per_id.values().all(|n| *n == 1), "{:?}", stats.per_id);
}

fn assert_panic_counters(status: &serde_json::Value) {
    assert_eq!(status["state"], "completed_with_failures", "{status}");
    for (key, want) in [("total", 20), ("done", 20), ("ok", 19), ("failed", 1)] {
        assert_eq!(status[key].as_u64(), Some(want), "{key}: {status}");
    }
    assert_eq!(
        status["by_error"],
        serde_json::json!({"panic": 1}),
        "{status}"
    );
    assert_eq!(
        status["by_status"],
        serde_json::json!({"200": 19}),
        "{status}"
    );
}

#[tokio::test]
async fn panic_on_record_fails_that_record_with_panic_and_the_run_goes_on() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (spec, ids) = panic_job(&env)?;
    let input = env.path("records.jsonl");
    let out_path = env.path("out.jsonl");
    let out = env
        .command("volley")
        .env("VOLLEY_FAILPOINTS", format!("panic_on_record={PANICKING}"))
        .args([
            "run",
            "--spec",
            path_str(&spec)?,
            "--input",
            path_str(&input)?,
        ])
        .args(["--out", path_str(&out_path)?, "--json"])
        .output()
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_panic_counters(&serde_json::from_slice(&out.stdout)?);
    assert_panic_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    assert_api_saw_all_but_the_panicking_record(&env);
    Ok(())
}

#[tokio::test]
async fn panic_on_record_in_a_fleet_worker_fails_the_record_and_the_worker_finishes_the_job()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (spec, ids) = panic_job(&env)?;
    let input = env.path("records.jsonl");
    let log = std::fs::File::create(env.path("w1.log"))?;
    let mut worker = env
        .command("volley-worker")
        .env("VOLLEY_FAILPOINTS", format!("panic_on_record={PANICKING}"))
        .args(["--worker-id", "w1", "--exit-when-idle", "2s"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    assert_panic_counters(&fin.json);
    // The panic was the record's, not the worker's: the one worker did all 20 records and
    // left cleanly once idle.
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    assert_eq!(assert_worker_did_records(&env, "w1")?, 20);
    assert_panic_results(&export(&env, &job, &[]).await?, &ids)?;
    assert_api_saw_all_but_the_panicking_record(&env);
    Ok(())
}

/// `GET /health` on `addr`: the status code and the body.
async fn get_health(addr: &str) -> anyhow::Result<(u16, String)> {
    http_get(addr, "/health").await
}

/// Polls `GET /health` until the worker listens (it binds at start), for up to 10 s.
async fn health_once_listening(addr: &str) -> anyhow::Result<(u16, String)> {
    eventually(Duration::from_secs(10), || get_health(addr))
        .await
        .with_context(|| format!("/health on {addr} never answered"))
}

fn free_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", volley_tests::private::free_port()?))
}

/// `Ok` once the worker's log at `log` says it waits for `name`; else what the log holds, and
/// whether the worker left.
fn says_it_waits(
    log: &std::path::Path,
    name: &str,
    worker: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(log)?;
    if text
        .lines()
        .any(|l| l.contains(name) && l.contains("not reachable yet; waiting for it"))
    {
        return Ok(());
    }
    match worker.try_wait()? {
        Some(status) => anyhow::bail!("the worker left ({status}):\n{text}"),
        None => anyhow::bail!("{text}"),
    }
}

/// Starts a worker whose `var` points at a closed port (`url`, the service `name`) with
/// `--startup-timeout 0`, waits until its log says it waits for that service, then checks
/// `/health` answers 200 `ok` while it waits and that SIGTERM ends the wait with exit 0.
async fn health_while_waiting_for(var: &str, url: &str, name: &str) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let http = free_addr()?;
    let log_path = env.path("w1.log");
    let log = std::fs::File::create(&log_path)?;
    let mut worker = env
        .command("volley-worker")
        .env(var, url)
        .args(["--worker-id", "w1", "--startup-timeout", "0"])
        .args(["--http-addr", &http])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // The README's start-up line (`… not reachable yet; waiting for it`), naming the service:
    // the worker is past everything before that wait (Redis, for the broker's). The line is
    // what is waited for: nothing else tells a worker that waits from one that starts.
    eventually(Duration::from_secs(10), || {
        std::future::ready(says_it_waits(&log_path, name, &mut worker))
    })
    .await
    .with_context(|| format!("the worker never said it waits for {name}"))?;
    assert_eq!(health_once_listening(&http).await?, (200, "ok".to_string()));
    // Still waiting, not exited: a liveness probe must not restart a worker that waits.
    assert!(
        worker.try_wait()?.is_none(),
        "the worker left while waiting for {name}"
    );
    // SIGTERM while waiting exits 0 at once (bounded here by the 5 s a test allows for a
    // process to be scheduled and exit on this shared machine).
    send_signal("-TERM", worker.id().expect("worker pid"))?;
    let exit = wait_exit(&mut worker, Duration::from_secs(5)).await?;
    assert_eq!(exit.code(), Some(0), "exit while waiting for {name}");
    Ok(())
}

#[tokio::test]
async fn health_answers_while_the_worker_waits_for_a_closed_redis() -> anyhow::Result<()> {
    // Nobody listens on this port: the worker waits for Redis for as long as it takes.
    let url = format!("redis://{}", free_addr()?);
    health_while_waiting_for("VOLLEY_REDIS_URL", &url, "Redis at").await
}

#[tokio::test]
async fn health_answers_while_the_worker_waits_for_a_closed_rabbitmq() -> anyhow::Result<()> {
    // Redis is up, the broker's port is closed: the worker waits for RabbitMQ.
    let url = format!("amqp://guest:guest@{}/%2f", free_addr()?);
    health_while_waiting_for("VOLLEY_AMQP_URL", &url, "RabbitMQ at").await
}

#[tokio::test]
async fn health_from_volley_http_addr_answers_while_the_worker_consumes() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let http = free_addr()?;
    let log = std::fs::File::create(env.path("w1.log"))?;
    let mut worker = env
        .command("volley-worker")
        .env("VOLLEY_HTTP_ADDR", &http)
        .args(["--worker-id", "w1"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // Listed with a heartbeat: connected to both services and consuming.
    wait_workers(&env, &["w1"]).await?;
    assert_eq!(get_health(&http).await?, (200, "ok".to_string()));
    send_signal("-TERM", worker.id().expect("worker pid"))?;
    finish_ok(&mut worker, Duration::from_secs(10)).await?;
    Ok(())
}

/// Every key of `job` in Redis with its TTL in seconds (-1: none).
async fn job_key_ttls(env: &TestEnv, job: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    // Braces are literal in a Redis glob: this is `{ns}:job:{ID}:*`.
    let pattern = format!("{}:job:{{{job}}}:*", env.ns);
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut redis)
        .await?;
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut redis).await?;
        out.push((key, ttl));
    }
    Ok(out)
}

/// Produces a job of 10 records with `retention` (None: the variable unset) and `extra` in
/// its spec.
async fn produce_with_retention(
    env: &TestEnv,
    name: &str,
    retention: Option<&str>,
    extra: &str,
) -> anyhow::Result<String> {
    let input = env.path(&format!("{name}.jsonl"));
    write_jsonl(&input, 10)?;
    let spec = env.write_spec(
        name,
        "/users/{id}",
        &format!("[chunking]\nsize = 5\n{extra}"),
    )?;
    let mut cmd = env.command("volley-producer");
    match retention {
        Some(value) => cmd.env("VOLLEY_RETENTION", value),
        None => cmd.env_remove("VOLLEY_RETENTION"),
    };
    let out = cmd
        .args(["--spec", path_str(&spec)?, "--input", path_str(&input)?])
        .output()
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

#[tokio::test]
async fn retention_sets_the_ttl_of_a_finished_jobs_keys() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let hour = produce_with_retention(&env, "hour", Some("1h"), "").await?;
    let default = produce_with_retention(&env, "default", None, "").await?;
    // The spec's retention wins over the setting, for its job.
    let spec =
        produce_with_retention(&env, "spec", Some("1h"), "[result]\nretention = \"2h\"\n").await?;
    // No worker runs yet, so the jobs are certainly unfinished: nothing expires.
    for job in [&hour, &default, &spec] {
        let ttls = job_key_ttls(&env, job).await?;
        assert!(!ttls.is_empty(), "job {job} has no keys");
        assert!(
            ttls.iter().all(|(_, t)| *t == -1),
            "a running job expires: {ttls:?}"
        );
    }
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "2s"])?;
    for (job, retention) in [(&hour, 3_600), (&default, 7 * 24 * 3_600), (&spec, 7_200)] {
        let fin = wait_for_job(&env, job).await?;
        assert_eq!((fin.code, fin.state()), (0, "completed"), "{}", fin.json);
        let ttls = job_key_ttls(&env, job).await?;
        let names: Vec<&str> = ttls
            .iter()
            .filter_map(|(k, _)| k.rsplit(':').next())
            .collect();
        // The job's five keys (no failure: no failed inputs, no redrive).
        assert_eq!(
            names,
            ["chunks", "counters", "meta", "results", "series"],
            "{ttls:?}"
        );
        // The TTL counts down from the retention since the job finished, a few seconds ago
        // at most (the wait above returned once it had); 60 s of slack for a slow machine.
        assert!(
            ttls.iter()
                .all(|(_, t)| *t <= retention && *t > retention - 60),
            "{job}: TTLs not about {retention} s: {ttls:?}"
        );
    }
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}

/// Parses every line of a process's stderr as a JSON log object with a `level` and a
/// `message`; a line that names `job` carries it as the `job.id` field. Returns the lines.
fn assert_json_log(who: &str, stderr: &str, job: &str) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("{who}: a stderr line is not JSON ({e}): {line:?}\n{stderr}")
        });
        assert!(value.is_object(), "{who}: not an object: {line}");
        let level = value["level"].as_str().unwrap_or_default();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{who}: no level: {line}"
        );
        assert!(value["message"].is_string(), "{who}: no message: {line}");
        if line.contains(job) {
            assert_eq!(
                value["job.id"], job,
                "{who}: names the job but not as job.id: {line}"
            );
        }
        lines.push(value);
    }
    assert!(
        lines.iter().any(|l| l["job.id"] == job),
        "{who}: no line about job {job}:\n{stderr}"
    );
    lines
}

#[tokio::test]
async fn json_log_format_makes_every_stderr_line_a_json_object() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (spec, _) = panic_job(&env)?;
    let input = env.path("records.jsonl");
    let worker_log = env.path("w1.err");
    let mut worker = env
        .command("volley-worker")
        .env("VOLLEY_LOG_FORMAT", "json")
        // A record whose task panics: the panic is reported in JSON too.
        .env("VOLLEY_FAILPOINTS", format!("panic_on_record={PANICKING}"))
        .env("RUST_BACKTRACE", "1")
        .args(["--worker-id", "w1", "--exit-when-idle", "2s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_log)?)
        .spawn()?;
    let produced = env
        .command("volley-producer")
        .env("VOLLEY_LOG_FORMAT", "json")
        .args(["--spec", path_str(&spec)?, "--input", path_str(&input)?])
        .output()
        .await?;
    assert!(produced.status.success(), "{}", describe(&produced));
    let job = String::from_utf8(produced.stdout.clone())?
        .trim()
        .to_string();
    assert_json_log("producer", &String::from_utf8(produced.stderr)?, &job);
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    let lines = assert_json_log("worker", &std::fs::read_to_string(&worker_log)?, &job);
    // The record's failure names its job and record as fields, and the panic itself (the
    // hook's report, text of several lines without JSON logs) is one JSON line too.
    let panic = "failpoint panic_on_record reached at r000007";
    let record_line = lines
        .iter()
        .find(|l| l["message"] == "record processor panicked")
        .unwrap_or_else(|| panic!("no line for the panicking record: {lines:?}"));
    assert_eq!(
        (
            &record_line["job.id"],
            &record_line["record.id"],
            &record_line["panic"]
        ),
        (&job.as_str().into(), &PANICKING.into(), &panic.into()),
        "{record_line}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "panicked" && l["panic"] == panic),
        "the panic is not reported as a JSON line: {lines:?}"
    );
    Ok(())
}
