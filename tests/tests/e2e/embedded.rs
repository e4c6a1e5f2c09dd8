//! `volley run` and `volley demo`: the embedded default, no services.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use volley_tests::support::{describe, send_signal, wait_for_requests};
use volley_tests::{TestEnv, check_results, path_str, write_jsonl};

#[tokio::test]
async fn volley_run_accounts_for_every_record_and_fails_bad_ones_with_reasons() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let mut ids = BTreeSet::new();
    let mut file = std::fs::File::create(&input)?;
    for i in 0..3_000 {
        let id = format!("r{i:06}");
        // Every 100th record lacks the field the URL needs.
        if i % 100 == 7 {
            writeln!(file, "{{\"id\":\"{id}\"}}")?;
        } else {
            writeln!(file, "{{\"id\":\"{id}\",\"email\":\"u{i}@example.com\"}}")?;
        }
        ids.insert(id);
    }
    drop(file);
    let spec = env.write_spec(
        "embedded",
        "/users/{id}?email={email}",
        "[result]\nbody = \"none\"\ntolerated_failure_percent = 5\n",
    )?;
    let out_path = env.path("out.jsonl");
    let out = env
        .run_embedded(&spec, &input, &out_path, &["--json"])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(status["state"], "completed_with_failures");
    assert_eq!(
        (status["done"].as_u64(), status["failed"].as_u64()),
        (Some(3_000), Some(30))
    );
    let results = check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    let failed: Vec<_> = results.lines.iter().filter(|l| !l.ok).collect();
    assert_eq!(failed.len(), 30);
    assert!(
        failed.iter().all(
            |l| l.error.as_deref() == Some("template: missing field 'email'") && l.attempts == 0
        )
    );
    let stats = env.mock.stats();
    assert_eq!(
        stats.requests, 2_970,
        "no request for records that could not be rendered"
    );
    assert!(!stats.per_id.contains_key("r000007"));
    Ok(())
}

#[tokio::test]
async fn timeouts_become_classified_failures_and_the_job_fails_beyond_tolerance()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = volley_tests::write_jsonl(&input, 20)?;
    let spec = env.write_spec(
        "slow",
        "/users/{id}?delay_ms=3000",
        "[retry]\nmax_attempts = 2\nbase_delay = \"10ms\"\n[breaker]\nenabled = false\n",
    )?;
    let text = std::fs::read_to_string(&spec)?.replace("timeout = \"5s\"", "timeout = \"200ms\"");
    std::fs::write(&spec, text)?;
    let out_path = env.path("out.jsonl");
    let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
    assert_eq!(
        out.status.code(),
        Some(3),
        "a failed job exits 3: {}",
        describe(&out)
    );
    let results = check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    for line in &results.lines {
        assert!(!line.ok);
        assert_eq!(line.attempts, 2);
        assert!(
            line.error
                .as_deref()
                .is_some_and(|e| e.starts_with("timeout: ")),
            "{:?}",
            line.error
        );
    }
    assert_eq!(env.mock.stats().requests, 40);
    Ok(())
}

#[tokio::test]
async fn demo_runs_without_services() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let out_path = env.path("demo.jsonl");
    let out = env
        .command("volley")
        .args([
            "demo",
            "--records",
            "2000",
            "--out",
            out_path.to_str().unwrap_or_default(),
        ])
        .env("VOLLEY_AMQP_URL", "amqp://nobody:nothing@127.0.0.1:1/%2f")
        .env("VOLLEY_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .await?;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("records      2000 done"), "{stdout}");
    assert!(stdout.contains("p50"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out_path)?.lines().count(), 2_000);
    Ok(())
}

#[tokio::test]
async fn dry_run_prints_requests_with_secrets_redacted_and_sends_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 50)?;
    let spec = env.path("dry.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"dry\"\n[request]\nmethod = \"POST\"\nurl = \"{}/users\"\n\
             headers = {{ Authorization = \"Bearer ${{env:DRY_TOKEN}}\" }}\n\
             body = {{ id = \"{{id}}\", mail = \"{{email}}\" }}\n",
            env.mock.base_url()
        ),
    )?;
    let spec_s = spec.to_str().unwrap_or_default();
    let input_s = input.to_str().unwrap_or_default();
    // RabbitMQ and Redis addresses that count every connection: a dry run must open none.
    let amqp = std::net::TcpListener::bind("127.0.0.1:0")?;
    let redis = std::net::TcpListener::bind("127.0.0.1:0")?;
    for l in [&amqp, &redis] {
        l.set_nonblocking(true)?;
    }
    let amqp_url = format!("amqp://guest:guest@{}/%2f", amqp.local_addr()?);
    let redis_url = format!("redis://{}", redis.local_addr()?);
    for (bin, args) in [
        (
            "volley",
            vec![
                "run",
                "--spec",
                spec_s,
                "--input",
                input_s,
                "--dry-run",
                "--limit",
                "3",
            ],
        ),
        (
            "volley-producer",
            vec![
                "--spec",
                spec_s,
                "--input",
                input_s,
                "--dry-run",
                "--limit",
                "3",
            ],
        ),
    ] {
        for json in [false, true] {
            let out = env
                .command(bin)
                .args(&args)
                .args(json.then_some("--json"))
                .env("DRY_TOKEN", "s3cr3t-value")
                .env("VOLLEY_AMQP_URL", &amqp_url)
                .env("VOLLEY_REDIS_URL", &redis_url)
                .output()
                .await?;
            assert_eq!(out.status.code(), Some(0), "{bin}: {}", describe(&out));
            for (name, l) in [("RabbitMQ", &amqp), ("Redis", &redis)] {
                assert!(
                    matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                    "{bin} --dry-run connected to {name}"
                );
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                !format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)).contains("s3cr3t"),
                "the secret must not be printed"
            );
            if !json {
                assert_eq!(stdout.matches("POST ").count(), 3, "{stdout}");
                assert!(stdout.contains("authorization: <redacted>"), "{stdout}");
                continue;
            }
            let previews: Vec<serde_json::Value> = stdout
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?;
            let ids: Vec<&str> = previews.iter().filter_map(|p| p["id"].as_str()).collect();
            assert_eq!(ids, ["r000000", "r000001", "r000002"], "{stdout}");
            for p in &previews {
                assert_eq!(p["method"], "POST", "{p}");
                assert_eq!(p["url"], format!("{}/users", env.mock.base_url()), "{p}");
                assert_eq!(p["body"]["id"], p["id"], "{p}");
                let header = |name: &str| {
                    p["headers"]
                        .as_array()
                        .and_then(|hs| hs.iter().find(|h| h[0] == name).and_then(|h| h[1].as_str()))
                };
                assert_eq!(header("authorization"), Some("<redacted>"), "{p}");
            }
        }
    }
    assert_eq!(env.mock.stats().requests, 0, "a dry run sends nothing");
    // A record the templates cannot render is named, with exit 65.
    let spec_missing = env.write_spec("missing", "/users/{nickname}", "")?;
    let out = env
        .run(
            "volley",
            &[
                "run",
                "--spec",
                spec_missing.to_str().unwrap_or_default(),
                "--input",
                input_s,
                "--dry-run",
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("not sent: template: missing field 'nickname'")
    );
    Ok(())
}

/// `volley run --spec S --input I --out O [extra…]` as a child with piped output.
fn spawn_run(
    env: &TestEnv,
    spec: &std::path::Path,
    input: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    Ok(env
        .command("volley")
        .args([
            "run",
            "--spec",
            path_str(spec)?,
            "--input",
            path_str(input)?,
        ])
        .args(["--out", path_str(out)?])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// A run stopped by `signal` once some records are done keeps exactly the finished records,
/// says it was interrupted, and the rest then runs with `--skip-done`: the API sees every
/// record exactly once over the two runs.
async fn an_interrupted_run_keeps_what_it_did_and_the_rest_runs_once(
    signal: &str,
) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 400)?;
    // 8 in flight at 200 ms a record: about 10 s for all of them.
    let spec = env.write_spec(
        "interrupted",
        "/users/{id}?delay_ms=200",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 8\n[chunking]\nsize = 10\n",
    )?;
    let first = env.path("first.jsonl");
    let run = spawn_run(&env, &spec, &input, &first, &[])?;
    let pid = run
        .id()
        .ok_or_else(|| anyhow::anyhow!("volley run has no pid"))?;
    wait_for_requests(&env, 50, Duration::from_secs(30)).await?;
    send_signal(signal, pid)?;
    let out = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output()).await??;
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The results hold exactly the records the API saw, each once, and the API saw each of
    // them once.
    let stats = env.mock.stats();
    assert!(stats.per_id.values().all(|n| *n == 1), "{:?}", stats.per_id);
    let seen: BTreeSet<String> = stats.per_id.keys().cloned().collect();
    let kept = check_results(&std::fs::read_to_string(&first)?, &seen)?;
    assert!(
        (50..400).contains(&kept.lines.len()),
        "{} records kept",
        kept.lines.len()
    );
    assert!(
        stderr.contains(&format!("{} records ran", kept.lines.len()))
            && stderr.contains(&format!("{} did not run", 400 - kept.lines.len())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--skip-done {}", first.display())),
        "the summary says how to run the rest: {stderr}"
    );
    // The rest: only the records not done reach the API.
    let rest = env.path("rest.jsonl");
    let out = env
        .run_embedded(&spec, &input, &rest, &["--skip-done", path_str(&first)?])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stats = env.mock.stats();
    assert_eq!(stats.requests, 400, "one request per record over both runs");
    assert!(stats.per_id.values().all(|n| *n == 1));
    let both = std::fs::read_to_string(&first)? + &std::fs::read_to_string(&rest)?;
    check_results(&both, &ids)?;
    Ok(())
}

#[tokio::test]
async fn sigint_keeps_the_finished_records_and_the_rest_runs_once() -> anyhow::Result<()> {
    an_interrupted_run_keeps_what_it_did_and_the_rest_runs_once("-INT").await
}

#[tokio::test]
async fn sigterm_keeps_the_finished_records_and_the_rest_runs_once() -> anyhow::Result<()> {
    an_interrupted_run_keeps_what_it_did_and_the_rest_runs_once("-TERM").await
}

#[tokio::test]
async fn a_second_signal_exits_at_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 40)?;
    // Each held record takes 5 s: a drain would need at least that.
    let spec = env.write_spec(
        "twice",
        "/users/{id}?delay_ms=5000",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 4\n[chunking]\nsize = 4\n",
    )?;
    let out_path = env.path("out.jsonl");
    let mut run = spawn_run(&env, &spec, &input, &out_path, &[])?;
    let pid = run
        .id()
        .ok_or_else(|| anyhow::anyhow!("volley run has no pid"))?;
    wait_for_requests(&env, 4, Duration::from_secs(30)).await?;
    send_signal("-INT", pid)?;
    // The second signal only once the first is taken (two signals at once may be one).
    let stderr = run
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("interrupted") {
                return Ok::<_, std::io::Error>(true);
            }
        }
        Ok(false)
    })
    .await??;
    assert!(announced, "the first signal is announced on stderr");
    let second = Instant::now();
    send_signal("-TERM", pid)?;
    let status = tokio::time::timeout(Duration::from_secs(3), run.wait()).await??;
    let took = second.elapsed();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM, at once");
    // "At once": measured at 5 ms (the held records would need 5 s); 500 ms leaves room
    // for a busy CI machine, far below anything that waits for a record.
    assert!(
        took < Duration::from_millis(500),
        "exited {took:?} after the second signal"
    );
    assert!(
        !out_path.exists(),
        "nothing is written after a second signal"
    );
    Ok(())
}

/// The largest number of requests that arrived within `window` of each other: all of them
/// were in flight together when each takes longer than `window`.
fn in_flight_lower_bound(mut arrivals: Vec<u64>, window: u64) -> usize {
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| arrivals[i..].partition_point(|t| *t < arrivals[i] + window))
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn concurrency_flag_raises_the_in_flight_limit_above_per_worker() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 256)?;
    let spec = env.write_spec(
        "wide",
        "/users/{id}?delay_ms=300",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 4\n[chunking]\nsize = 10\n",
    )?;
    let out_path = env.path("out.jsonl");
    let out = env
        .run_embedded(&spec, &input, &out_path, &["--concurrency", "64"])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    let stats = env.mock.stats();
    assert_eq!(stats.requests, 256);
    // Every request takes at least 300 ms, so requests arriving within 290 ms of each other
    // were in flight at once.
    let in_flight = in_flight_lower_bound(stats.times_ms, 290);
    assert!(
        in_flight >= 48,
        "--concurrency 64 over per_worker = 4: the API saw only {in_flight} requests in flight"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_csv_line_says_exactly_which_records_ran() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.csv");
    let mut file = std::fs::File::create(&input)?;
    writeln!(file, "id,email")?;
    // Records on lines 2..=200, then a row with a field too many on line 201.
    for i in 0..199 {
        writeln!(file, "r{i:06},u{i}@example.com")?;
    }
    writeln!(file, "r000199,u199@example.com,extra")?;
    for i in 200..300 {
        writeln!(file, "r{i:06},u{i}@example.com")?;
    }
    drop(file);
    let spec = env.write_spec("badcsv", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let out_path = env.path("res.jsonl");
    let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("records.csv:201"), "{stderr}");
    assert!(
        stderr.contains("100 records ran (lines 2-101)"),
        "the chunk before the bad line ran: {stderr}"
    );
    assert!(
        stderr.contains("the 99 records on lines 102-200 did not run"),
        "the records of the incomplete chunk did not: {stderr}"
    );
    assert!(
        stderr.contains(&format!("--skip-done {}", out_path.display())),
        "{stderr}"
    );
    let ran: BTreeSet<String> = (0..100).map(|i| format!("r{i:06}")).collect();
    check_results(&std::fs::read_to_string(&out_path)?, &ran)?;
    assert_eq!(env.mock.stats().requests, 100);
    Ok(())
}

#[tokio::test]
async fn result_lines_have_the_keys_the_readme_names() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 4)?;
    let spec = env.write_spec("keys", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let out_path = env.path("out.jsonl");
    let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = std::fs::read_to_string(&out_path)?;
    check_results(&text, &ids)?;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let keys: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut expected = vec![
            "attempts",
            "body",
            "error",
            "id",
            "latency_ms",
            "line",
            "ok",
            "status",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected, "{line}");
        assert!(
            value["body"].is_null(),
            "no body kept with body = \"none\": {line}"
        );
    }
    Ok(())
}
