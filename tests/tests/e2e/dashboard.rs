//! `volley serve`: the JSON API against a real fleet (the same figures as `volley status
//! --json` and the API's own counter), the pages' shell and its security headers.

use anyhow::Context as _;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use volley_tests::support::{finish_ok, http_get, http_get_with_head, wait_for_job};
use volley_tests::{TestEnv, write_jsonl};

/// Starts `volley serve` on a free port; its address, read from its first line.
async fn serve(env: &TestEnv) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut child = env
        .command("volley")
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await??
        .context("serve said nothing")?;
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("no address in {first:?}"))?
        .to_string();
    Ok((child, addr))
}

async fn get_json(addr: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let (code, body) = http_get(addr, path).await?;
    let json = serde_json::from_str(&body).with_context(|| format!("{path}: {body}"))?;
    Ok((code, json))
}

#[tokio::test]
async fn the_api_shows_a_running_job_rising_and_its_end_as_status_does() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 3_000)?;
    let spec = env.write_spec(
        "watched",
        "/users/{id}?delay_ms=40",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 100\n[concurrency]\nper_worker = 32\n",
    )?;
    let (mut dashboard, addr) = serve(&env).await?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let job = env.produce(&spec, &input, &[]).await?;

    // The jobs list shows it, and its progress rises while we watch.
    let mut seen = Vec::new();
    let started = tokio::time::Instant::now();
    while seen.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        let (code, jobs) = get_json(&addr, "/api/jobs").await?;
        assert_eq!(code, 200, "{jobs}");
        let listed = jobs
            .as_array()
            .and_then(|a| a.iter().find(|j| j["job"] == job.as_str()))
            .with_context(|| format!("{job} not listed: {jobs}"))?;
        let done = listed["done"].as_u64().unwrap_or(0);
        if listed["state"] == "running" && done > 0 && done < 3_000 && seen.last() != Some(&done) {
            seen.push(done);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.len() == 2 && seen[1] > seen[0],
        "progress seen: {seen:?}"
    );
    let (code, running) = get_json(&addr, "/api/jobs?state=running").await?;
    assert_eq!(code, 200);
    assert!(
        running
            .as_array()
            .is_some_and(|a| a.iter().all(|j| j["state"] == "running"))
    );

    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.code, 0, "{}", fin.json);
    let (code, shown) = get_json(&addr, &format!("/api/jobs/{job}")).await?;
    assert_eq!(code, 200, "{shown}");
    let status = env.run("volley", &["status", &job, "--json"]).await?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    for key in [
        "state",
        "total",
        "done",
        "ok",
        "failed",
        "cancelled",
        "retries",
        "by_status",
    ] {
        assert_eq!(
            shown[key], status[key],
            "{key}: dashboard {shown} vs status {status}"
        );
    }
    assert_eq!(shown["done"].as_u64(), Some(env.mock.stats().requests));
    assert_eq!(shown["host"]["breaker"], "closed");

    let (code, workers) = get_json(&addr, "/api/workers").await?;
    assert_eq!(code, 200);
    assert!(
        workers
            .as_array()
            .is_some_and(|a| a.iter().any(|w| w["id"] == "w1")),
        "{workers}"
    );
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    dashboard.start_kill()?;
    Ok(())
}

#[tokio::test]
async fn pages_come_with_a_strict_policy_and_errors_say_what_is_wrong() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (mut dashboard, addr) = serve(&env).await?;
    for page in ["/", "/jobs/some-job", "/workers", "/hosts"] {
        let (code, head, body) = http_get_with_head(&addr, page).await?;
        assert_eq!(code, 200, "{page}: {head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
            "{page}: {head}"
        );
        assert!(head.contains("x-content-type-options: nosniff"), "{page}");
        assert!(
            body.contains("<script src=\"/assets/app.js\" defer></script>"),
            "{page}: {body}"
        );
        assert!(!body.contains("<script>"), "no inline script: {body}");
    }
    let (code, script) = http_get(&addr, "/assets/app.js").await?;
    assert_eq!(code, 200);
    assert!(
        !script.contains("innerHTML"),
        "stored text is never assigned as HTML"
    );

    let (code, missing) = get_json(&addr, "/api/jobs/no-such-job").await?;
    assert_eq!(code, 404, "{missing}");
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-job")),
        "{missing}"
    );
    let (code, bad) = get_json(&addr, "/api/jobs?state=nonsense").await?;
    assert_eq!(code, 400, "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown state 'nonsense'")),
        "{bad}"
    );
    let (code, info) = get_json(&addr, "/api/info").await?;
    assert_eq!((code, info["read_only"].as_bool()), (200, Some(true)));
    assert_eq!(info["namespace"], env.ns.as_str());
    dashboard.start_kill()?;
    Ok(())
}
