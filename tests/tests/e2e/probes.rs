//! A worker's probes and metrics as an operator meets them: `/readyz` turns `draining` at
//! SIGTERM while `/livez` stays 200, `volley-worker healthcheck` exits 0 or 1 with the
//! reason, `/metrics` after a job agrees with the job's own figures and the API's count
//! (parsed by `prometheus-parse`, a Prometheus text-format parser), and JSON log lines of
//! a chunk carry its `job.id` and `chunk`.

use anyhow::Context as _;
use prometheus_parse::{Sample, Scrape, Value};
use std::io::Write as _;
use std::process::Output;
use std::time::Duration;
use volley_tests::support::{
    describe, finish_ok, http_get, send_signal, wait_for_job, wait_for_requests,
};
use volley_tests::{TestEnv, eventually, write_jsonl};

fn free_addr() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", volley_tests::private::free_port()?))
}

/// `volley-worker healthcheck --url addr [extra…]`.
async fn healthcheck(env: &TestEnv, addr: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let mut args = vec!["healthcheck", "--url", addr];
    args.extend_from_slice(extra);
    env.run("volley-worker", &args).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[tokio::test]
async fn readyz_says_draining_from_sigterm_while_a_held_chunk_finishes() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let http = free_addr()?;
    let mut worker = env.spawn_worker("w1", &["--http-addr", &http, "--drain-timeout", "60s"])?;
    let ready = eventually(Duration::from_secs(15), || async {
        let answer = http_get(&http, "/readyz").await?;
        anyhow::ensure!(answer.0 == 200, "{answer:?}");
        anyhow::Ok(answer)
    })
    .await
    .context("the worker never became ready")?;
    assert_eq!(ready, (200, "ok".to_string()));
    let out = healthcheck(&env, &http, &[]).await?;
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "ok"),
        "{}",
        describe(&out)
    );
    // Two records of one chunk, each answered after 6 s: the chunk is held while the
    // worker drains.
    let input = env.path("records.jsonl");
    write_jsonl(&input, 2)?;
    let spec = env.write_spec(
        "slow",
        "/users/{id}?delay_ms=6000",
        "[chunking]\nsize = 2\n",
    )?;
    // Answers take 6 s: a longer request timeout than the env's usual 5 s.
    let spec_text =
        std::fs::read_to_string(&spec)?.replace("timeout = \"5s\"", "timeout = \"20s\"");
    std::fs::write(&spec, spec_text)?;
    let job = env.produce(&spec, &input, &[]).await?;
    wait_for_requests(&env, 2, Duration::from_secs(15)).await?;
    send_signal("-TERM", worker.id().expect("worker pid"))?;
    let draining = eventually(Duration::from_secs(5), || async {
        let answer = http_get(&http, "/readyz").await?;
        anyhow::ensure!(answer.0 == 503, "{answer:?}");
        anyhow::Ok(answer)
    })
    .await
    .context("/readyz did not turn 503 after SIGTERM")?;
    assert_eq!(draining, (503, "draining".to_string()));
    assert_eq!(http_get(&http, "/livez").await?, (200, "ok".to_string()));
    let out = healthcheck(&env, &http, &[]).await?;
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(1), "draining"),
        "{}",
        describe(&out)
    );
    let out = healthcheck(&env, &http, &["--live"]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // All of the above happened during the drain: the held chunk had not finished.
    assert!(
        worker.try_wait()?.is_none(),
        "the worker left before the checks were done: the chunk was not held throughout"
    );
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!((fin.code, fin.u64("ok")), (0, 2), "{}", fin.json);
    assert_eq!(env.mock.stats().requests, 2);
    // Nothing listens any more.
    let out = healthcheck(&env, &http, &[]).await?;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).starts_with(&format!("cannot reach http://{http}/readyz: ")),
        "{}",
        describe(&out)
    );
    Ok(())
}

/// Records of three kinds: every 10th fails with 404 (not retried), every 3rd of the rest
/// fails its first attempt with 503 and succeeds on the retry, the others succeed at once.
fn mixed_records(path: &std::path::Path, n: u64) -> anyhow::Result<(u64, u64)> {
    let mut file = std::fs::File::create(path)?;
    let (mut failing, mut retried) = (0, 0);
    for i in 0..n {
        let (fail_first, status) = if i % 10 == 0 {
            failing += 1;
            (100, 404)
        } else if i % 3 == 1 {
            retried += 1;
            (1, 503)
        } else {
            (0, 503)
        };
        writeln!(
            file,
            "{}",
            serde_json::json!({"id": format!("r{i:04}"), "ff": fail_first, "s": status})
        )?;
    }
    Ok((failing, retried))
}

/// The sample `name` whose labels are exactly `labels`, as a number.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    match found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name} is not a number: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_after_a_job_equal_the_jobs_own_figures() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let http = free_addr()?;
    let input = env.path("records.jsonl");
    let (failing, retried) = mixed_records(&input, 60)?;
    let spec = env.write_spec(
        "mixed",
        "/users/{id}?fail_first={ff}&status={s}",
        "[chunking]\nsize = 7\n[result]\nbody = \"none\"\ntolerated_failure_percent = 20\n[retry]\nbase_delay = \"10ms\"\n",
    )?;
    let log = env.path("w1.log");
    let mut worker = env
        .command("volley-worker")
        .args([
            "--worker-id",
            "w1",
            "--http-addr",
            &http,
            "--log-format",
            "json",
        ])
        .args(["--concurrency", "16"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    let (status, text) = http_get(&http, "/metrics").await?;
    assert_eq!(status, 200, "{text}");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?;
    let requests = env.mock.stats().requests;
    // The job's figures, the API's count and the scenario agree with each other…
    assert_eq!(
        (fin.u64("ok"), fin.u64("failed"), fin.u64("retries")),
        (60 - failing, failing, retried),
        "{}",
        fin.json
    );
    assert_eq!(fin.json["by_error"]["status"], failing, "{}", fin.json);
    assert_eq!(requests, 60 + retried);
    // …and the metrics with them.
    let finished = "volley_records_finished_total";
    assert_eq!(
        value(
            &scrape,
            finished,
            &[("outcome", "ok"), ("error_kind", "none")]
        ),
        fin.u64("ok") as f64
    );
    assert_eq!(
        value(
            &scrape,
            finished,
            &[("outcome", "failed"), ("error_kind", "status")]
        ),
        fin.u64("failed") as f64
    );
    assert_eq!(
        value(
            &scrape,
            finished,
            &[("outcome", "cancelled"), ("error_kind", "none")]
        ),
        0.0
    );
    let by_class = |class| {
        value(
            &scrape,
            "volley_http_requests_total",
            &[("status_class", class)],
        )
    };
    assert_eq!(
        (
            by_class("2xx"),
            by_class("4xx"),
            by_class("5xx"),
            by_class("none")
        ),
        ((60 - failing) as f64, failing as f64, retried as f64, 0.0)
    );
    let sent: f64 = ["2xx", "3xx", "4xx", "5xx", "none"]
        .into_iter()
        .map(by_class)
        .sum();
    assert_eq!(
        sent, requests as f64,
        "requests by class against the API's count"
    );
    assert_eq!(
        value(&scrape, "volley_retries_total", &[]),
        fin.u64("retries") as f64
    );
    assert_eq!(
        value(&scrape, "volley_request_duration_seconds_count", &[]),
        requests as f64
    );
    assert_eq!(
        value(&scrape, "volley_chunks_committed_total", &[]),
        fin.u64("chunks_done") as f64
    );
    assert_eq!(value(&scrape, "volley_requests_in_flight", &[]), 0.0);
    assert_eq!(value(&scrape, "volley_concurrency_limit", &[]), 16.0);
    assert_eq!(
        value(
            &scrape,
            "volley_breaker_state",
            &[("host", &env.mock.base_url()), ("state", "closed")]
        ),
        1.0,
        "{text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&scrape, "volley_build_info", &[("version", version)]),
        1.0
    );
    for sample in &scrape.samples {
        assert!(
            sample.labels.values().all(|v| !v.contains(&job)),
            "a label names the job: {sample:?}"
        );
    }
    send_signal("-TERM", worker.id().expect("worker pid"))?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    // A chunk's lines carry its job and chunk as fields, from the span around the chunk.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a worker log line is not JSON")?;
    let finished = lines
        .iter()
        .find(|l| l["message"] == "job finished")
        .with_context(|| format!("no `job finished` line: {lines:?}"))?;
    assert_eq!(finished["job.id"], job.as_str(), "{finished}");
    assert!(finished["chunk"].as_u64().is_some(), "{finished}");
    Ok(())
}

#[tokio::test]
async fn healthcheck_with_nothing_listening_exits_1_naming_the_address() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let addr = free_addr()?;
    let out = healthcheck(&env, &addr, &["--live"]).await?;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).starts_with(&format!("cannot reach http://{addr}/livez: ")),
        "{}",
        describe(&out)
    );
    Ok(())
}
