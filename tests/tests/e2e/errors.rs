//! The real cause of a failure is never hidden: a dead port, an API answering 500 or 503 to
//! everything, and an API's error body. The user learns the cause within seconds (the log),
//! finds it in every result and in `volley status`, and the job ends in classified failures
//! within the documented `breaker.max_wait` instead of waiting silently.

use anyhow::Context as _;
use std::time::Duration;
use volley_tests::support::{describe, finish_ok, wait_exit, wait_for_job};
use volley_tests::{TestEnv, check_results, eventually_every, write_jsonl};

/// The default of `breaker.max_wait` as the README documents it, and room for the rest of a
/// run around it.
fn max_wait_and_slack() -> Duration {
    Duration::from_secs(60 + 45)
}

/// Polls a log file until a line satisfies `found`; returns that line.
async fn wait_for_line(
    log: &std::path::Path,
    within: Duration,
    found: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    eventually_every(within, Duration::from_millis(100), || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        match text.lines().find(|l| found(l)) {
            Some(line) => Ok(line.to_string()),
            None => Err(format!("no such line:\n{text}")),
        }
    })
    .await
}

#[tokio::test]
async fn a_dead_port_says_connection_refused_within_seconds_and_every_record_fails_with_it()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // Bound and dropped: nothing listens there now.
    let port = volley_tests::private::free_port()?;
    let host = format!("127.0.0.1:{port}");
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 200)?;
    // Every setting but the URL is the default a new user gets.
    let spec = env.path("dead.toml");
    std::fs::write(
        &spec,
        format!("name = \"dead\"\n[request]\nurl = \"http://{host}/users/{{id}}\"\n"),
    )?;
    let out_path = env.path("out.jsonl");
    let log = env.path("run.log");
    let mut run = env
        .command("volley")
        .arg("run")
        .arg("--spec")
        .arg(&spec)
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(&out_path)
        // What a user sees: the default log level.
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(env.path("run.out"))?)
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let line = wait_for_line(&log, Duration::from_secs(15), |l| {
        l.to_ascii_lowercase().contains("connection refused") && l.contains(&host)
    })
    .await?;
    eprintln!("warned: {line}");
    let status = wait_exit(&mut run, max_wait_and_slack()).await?;
    let text = std::fs::read_to_string(&log)?;
    assert_eq!(status.code(), Some(3), "the job failed:\n{text}");
    let results = check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    for l in &results.lines {
        let error = l.error.as_deref().unwrap_or_default();
        assert!(
            !l.ok && error.to_ascii_lowercase().contains("connection refused"),
            "{} hides the cause: {error}",
            l.id
        );
    }
    // The breaker says when it opens, not once per cool-down.
    let changes = text.matches("breaker changed").count();
    assert_eq!(changes, 1, "breaker log lines:\n{text}");
    Ok(())
}

#[tokio::test]
async fn an_api_answering_503_with_retry_after_to_everything_ends_in_classified_failures()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 20)?;
    let spec = env.write_spec(
        "down",
        "/users/{id}?status=503&retry_after=2",
        "[retry]\nmax_attempts = 2\n",
    )?;
    let out_path = env.path("out.jsonl");
    let out = tokio::time::timeout(
        max_wait_and_slack(),
        env.run_embedded(&spec, &input, &out_path, &[]),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the job did not end within max_wait and slack"))??;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let results = check_results(&std::fs::read_to_string(&out_path)?, &ids)?;
    for l in &results.lines {
        let error = l.error.as_deref().unwrap_or_default();
        assert!(
            !l.ok && error.contains("HTTP 503"),
            "{} is not classified with its status: {error}",
            l.id
        );
    }
    // The breaker still protects the host: the API saw exactly the attempts the results
    // record, no record got more than its two, except the probes the open breaker sent
    // (they spend no attempt of the record that carried them, which ends failed by the
    // breaker), and those came at most one per cool-down of Retry-After's 2 s.
    let requests = env.mock.stats().requests;
    let attempts: u64 = results.lines.iter().map(|l| u64::from(l.attempts)).sum();
    assert_eq!(requests, attempts, "requests against recorded attempts");
    let probes: u64 = results
        .lines
        .iter()
        .filter(|l| l.attempts > 2)
        .map(|l| {
            let error = l.error.as_deref().unwrap_or_default();
            assert!(
                error.contains("breaker"),
                "{} got {} attempts of 2 without the breaker: {error}",
                l.id,
                l.attempts
            );
            u64::from(l.attempts) - 2
        })
        .sum();
    let bound = max_wait_and_slack().as_secs() / 2 + 1;
    assert!(
        probes <= bound,
        "{probes} probes within {:?}",
        max_wait_and_slack()
    );
    Ok(())
}

#[tokio::test]
async fn an_api_answering_500_to_everything_shows_its_statuses_and_error_in_volley_status()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 200)?;
    let spec = env.write_spec(
        "broken",
        "/users/{id}?status=500",
        "[breaker]\nmax_wait = \"10s\"\n[result]\nbody = \"none\"\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    // While the breaker holds the records, status already says why.
    let during = eventually_every(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let out = env.run("volley", &["status", &job, "--json"]).await?;
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let named = json["host"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 500"));
            anyhow::ensure!(named, "{}", describe(&out));
            anyhow::Ok(json)
        },
    )
    .await
    .context("volley status never named the API's 500")?;
    eprintln!("status while held: {during}");
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "failed", "{}", fin.json);
    assert!(
        fin.json["by_status"]["500"].as_u64().is_some_and(|n| n > 0),
        "the 500s are counted: {}",
        fin.json
    );
    let text = env.run("volley", &["status", &job]).await?;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("500: ") && text.contains("last error: status: HTTP 500"),
        "{text}"
    );
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test]
async fn a_failed_response_keeps_the_api_reason_with_secrets_cut_out() -> anyhow::Result<()> {
    let secret = "tok-3f9a7c21e8";
    let mut env = TestEnv::new().await?;
    env.extra_env
        .push(("VOLLEY_TEST_TOKEN".into(), secret.into()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 5)?;
    for mode in ["json", "text"] {
        let spec = env.write_spec(
            &format!("rejected-{mode}"),
            "/users/{id}?status=400&echo_headers=true",
            &format!("[result]\nbody = \"{mode}\"\n"),
        )?;
        // The header goes under [request], which write_spec puts last.
        let text = std::fs::read_to_string(&spec)?
            + "headers = { X-Api-Token = \"${env:VOLLEY_TEST_TOKEN}\" }\n";
        std::fs::write(&spec, text)?;
        let out_path = env.path(&format!("{mode}.jsonl"));
        let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
        assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
        let exported = std::fs::read_to_string(&out_path)?;
        assert!(
            !exported.contains(secret),
            "the secret was kept: {exported}"
        );
        let results = check_results(&exported, &ids)?;
        for l in &results.lines {
            assert_eq!(l.error.as_deref(), Some("status: HTTP 400 Bad Request"));
            let body = l
                .body
                .clone()
                .ok_or_else(|| anyhow::anyhow!("{mode}: no body kept for {}", l.id))?;
            // `text` keeps the body as the API wrote it, `json` parsed.
            let body: serde_json::Value = match (mode, body) {
                ("text", serde_json::Value::String(text)) => serde_json::from_str(&text)?,
                ("json", json @ serde_json::Value::Object(_)) => json,
                (_, other) => anyhow::bail!("{mode}: the body kept as {other}"),
            };
            assert_eq!(body["error"], "mock failure", "{mode}: {body}");
            assert_eq!(
                body["headers"]["x-api-token"], "[redacted]",
                "{mode}: {body}"
            );
        }
    }
    Ok(())
}
