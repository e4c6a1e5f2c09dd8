//! `volley serve`: the JSON API against a real fleet (the same figures as `volley status
//! --json` and the API's own counter), the pages' shell and its security headers.

use anyhow::Context as _;
use std::time::Duration;
use tokio::io::AsyncBufReadExt as _;
use volley_tests::support::{finish_ok, http_get, http_get_with_head, http_request, wait_for_job};
use volley_tests::{TestEnv, write_jsonl};

/// Starts `volley serve` on a free port; its address, read from its first line.
async fn serve(env: &TestEnv) -> anyhow::Result<(tokio::process::Child, String)> {
    serve_with(env, None).await
}

/// As [`serve`], with `VOLLEY_DASHBOARD_TOKEN` set to `token`.
async fn serve_with(
    env: &TestEnv,
    token: Option<&str>,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut command = env.command("volley");
    command
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("VOLLEY_DASHBOARD_TOKEN")
        .stdout(std::process::Stdio::piped());
    if let Some(token) = token {
        command.env("VOLLEY_DASHBOARD_TOKEN", token);
    }
    let mut child = command.spawn()?;
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
    // What KEDA's metrics-api scaler reads: the records still to do.
    let (code, pending) = get_json(&addr, "/api/pending").await?;
    assert_eq!(code, 200);
    let left = pending["records_pending"].as_u64().unwrap_or(0);
    assert!(left > 0 && left <= 3_000 - seen[0], "{pending}");
    assert_eq!(pending["jobs_active"], 1, "{pending}");
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

    let (code, pending) = get_json(&addr, "/api/pending").await?;
    assert_eq!(
        (code, pending["records_pending"].as_u64()),
        (200, Some(0)),
        "{pending}"
    );
    let (code, metrics) = http_get(&addr, "/metrics").await?;
    assert_eq!(code, 200);
    for line in [
        "volley_fleet_records_pending 0",
        "volley_fleet_jobs{state=\"completed\"} 1",
        "volley_fleet_chunks_ready 0",
        "volley_fleet_dead_letters 0",
        "volley_fleet_broker_up 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    // A second dashboard (or this one restarted) shows the same figures at once.
    let (mut second, addr2) = serve(&env).await?;
    let (_, again) = get_json(&addr2, &format!("/api/jobs/{job}")).await?;
    for key in ["state", "done", "ok", "failed", "by_status", "finished_ms"] {
        assert_eq!(again[key], shown[key], "{key}");
    }
    second.start_kill()?;
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
    for page in ["/", "/jobs/some-job", "/workers", "/hosts", "/dead"] {
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

/// Where the browser test's tools are, or why they are not (scripts/browser-tools.sh
/// installs them; scripts/test.sh runs it and sets `VOLLEY_REQUIRE_BROWSER=1`).
fn browser_tools() -> Result<std::path::PathBuf, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let modules = root.join("target/browser-node/node_modules/playwright-core/package.json");
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        return Err("no /usr/bin/chromium (bash scripts/browser-tools.sh installs it)".into());
    }
    if !modules.exists() {
        return Err(format!(
            "no {} (bash scripts/browser-tools.sh)",
            modules.display()
        ));
    }
    Ok(modules)
}

#[tokio::test]
async fn in_a_real_browser_progress_rises_cancel_needs_the_token_and_stored_text_stays_text()
-> anyhow::Result<()> {
    let modules = match browser_tools() {
        Ok(m) => m,
        Err(why) if std::env::var_os("VOLLEY_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED: the browser test cannot run: {why}");
            return Ok(());
        }
        Err(why) => anyhow::bail!("the browser test cannot run: {why}"),
    };
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 20_000)?;
    let hostile = "<img src=x onerror=\"window.__volley_pwned=true;alert(1)\">";
    let spec = env.path("hostile.toml");
    std::fs::write(
        &spec,
        format!(
            "name = '{hostile}'\n[request]\nurl = \"{}/users/{{id}}?delay_ms=50\"\n\
             [result]\nbody = \"none\"\n[chunking]\nsize = 100\n[concurrency]\nper_worker = 16\n",
            env.mock.base_url()
        ),
    )?;
    let token = "browser-test-token";
    let token_file = env.path("token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let mut child = env
        .command("volley")
        .args(["serve", "--addr", "127.0.0.1:0", "--token-file"])
        .arg(&token_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(env.path("serve.log"))?)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await??
        .context("serve said nothing")?;
    assert!(first.contains("actions need the token"), "{first}");
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|u| u.trim_end_matches('/').to_string())
        .context("no URL")?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let job = env.produce(&spec, &input, &[]).await?;

    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|r| r.join("target/dashboard-screenshots"))
        .context("no root")?;
    std::fs::create_dir_all(&shots)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(150),
        tokio::process::Command::new("node")
            .arg(&script)
            .args([base.as_str(), job.as_str(), token, hostile])
            .arg(&shots)
            .env("PLAYWRIGHT_CORE", &modules)
            .output(),
    )
    .await??;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser checks failed:\n{said}");

    // What the browser did is what the fleet shows: the job ended cancelled, before its end,
    // and the dashboard logged who did it.
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "cancelled", "{}", fin.json);
    assert!(
        fin.u64("ok") < 20_000,
        "cancelled before the end: {}",
        fin.json
    );
    assert_eq!(fin.u64("ok") + fin.u64("cancelled"), 20_000, "{}", fin.json);
    let log = std::fs::read_to_string(env.path("serve.log"))?;
    assert!(
        log.contains(&format!("cancel job {job}")) && log.contains("session"),
        "{log}"
    );
    assert!(!log.contains(token), "the token never reaches the log");
    for shot in [
        "jobs",
        "job-refused",
        "job-cancelled",
        "workers",
        "hosts",
        "dead",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    finish_ok(&mut worker, Duration::from_secs(60)).await?;
    child.start_kill()?;
    Ok(())
}

async fn post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let (code, _, body) = http_request(addr, "POST", path, headers, body).await?;
    Ok((code, serde_json::from_str(&body).unwrap_or_default()))
}

async fn status_json(env: &TestEnv, job: &str) -> anyhow::Result<serde_json::Value> {
    let out = env.run("volley", &["status", job, "--json"]).await?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test]
async fn actions_need_the_token_and_change_the_running_job_as_the_cli_does() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 5_000)?;
    let spec = env.write_spec(
        "steered",
        "/users/{id}?delay_ms=50",
        "[result]\nbody = \"none\"\n[chunking]\nsize = 50\n[concurrency]\nper_worker = 8\n",
    )?;
    let (mut dashboard, addr) = serve_with(&env, Some("t0ken")).await?;
    let (mut read_only, ro_addr) = serve(&env).await?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "3s"])?;
    let job = env.produce(&spec, &input, &[]).await?;
    let bearer = [
        ("Authorization", "Bearer t0ken"),
        ("Content-Type", "application/json"),
    ];
    // Refused: no token on a read-only dashboard; no proof, a wrong one, a cross-site cookie.
    let (code, said) = post(&ro_addr, &format!("/api/jobs/{job}/pause"), &bearer, "{}").await?;
    assert_eq!(code, 403, "{said}");
    assert!(
        said["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("read-only")),
        "{said}"
    );
    let (code, _) = post(
        &addr,
        &format!("/api/jobs/{job}/pause"),
        &[("Content-Type", "application/json")],
        "{}",
    )
    .await?;
    assert_eq!(code, 401);
    let (code, _) = post(
        &addr,
        &format!("/api/jobs/{job}/cancel"),
        &[("Authorization", "Bearer nope")],
        "{}",
    )
    .await?;
    assert_eq!(code, 401);
    let (code, _) = post(
        &addr,
        &format!("/api/jobs/{job}/cancel"),
        &[
            ("Cookie", "volley_session=99999999999999.00"),
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/json"),
        ],
        "{}",
    )
    .await?;
    assert_eq!(code, 401, "a forged cookie is no session");
    let now = status_json(&env, &job).await?;
    assert_eq!(
        (now["state"].as_str(), now["paused"].as_bool()),
        (Some("running"), Some(false)),
        "{now}"
    );

    // With the token: pause, limit, resume, as volley pause / limit / resume.
    let (code, said) = post(&addr, &format!("/api/jobs/{job}/pause"), &bearer, "{}").await?;
    assert_eq!(code, 200, "{said}");
    assert_eq!(status_json(&env, &job).await?["paused"], true);
    let (code, said) = post(
        &addr,
        &format!("/api/jobs/{job}/limit"),
        &bearer,
        r#"{"rate": 40, "concurrency": 4}"#,
    )
    .await?;
    assert_eq!(code, 200, "{said}");
    assert_eq!(
        (
            said["controls"]["rate"].as_f64(),
            said["controls"]["concurrency"].as_u64()
        ),
        (Some(40.0), Some(4)),
        "{said}"
    );
    let (code, said) = post(
        &addr,
        &format!("/api/jobs/{job}/limit"),
        &bearer,
        r#"{"rate": -1}"#,
    )
    .await?;
    assert_eq!(code, 400, "{said}");
    let (code, _) = post(&addr, &format!("/api/jobs/{job}/resume"), &bearer, "{}").await?;
    assert_eq!(code, 200);
    let shown = status_json(&env, &job).await?;
    assert_eq!(
        (
            shown["paused"].as_bool(),
            shown["controls"]["rate"].as_f64()
        ),
        (Some(false), Some(40.0)),
        "{shown}"
    );
    let (code, _) = post(
        &addr,
        &format!("/api/jobs/{job}/limit"),
        &bearer,
        r#"{"clear": true}"#,
    )
    .await?;
    assert_eq!(code, 200);
    let (code, said) = post(&addr, &format!("/api/jobs/{job}/cancel"), &bearer, "{}").await?;
    assert_eq!(code, 200, "{said}");
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "cancelled", "{}", fin.json);
    assert_eq!(fin.u64("ok") + fin.u64("cancelled"), 5_000);
    assert_eq!(
        env.mock.stats().requests,
        fin.u64("ok") + fin.u64("retries"),
        "no request after the cancel was counted twice"
    );
    // A host's fleet limit, as volley hosts limit / unlimit; the dead letters, listed.
    let host = env.mock.base_url();
    let (code, _) = post(
        &addr,
        "/api/hosts/limit",
        &[("Content-Type", "application/json")],
        &format!(r#"{{"host": "{host}", "rate": 50}}"#),
    )
    .await?;
    assert_eq!(code, 401, "a host limit needs the token too");
    let (code, said) = post(
        &addr,
        "/api/hosts/limit",
        &bearer,
        &format!(r#"{{"host": "{host}", "rate": 50, "burst": 5}}"#),
    )
    .await?;
    assert_eq!(code, 200, "{said}");
    let (_, hosts) = get_json(&addr, "/api/hosts").await?;
    let listed = hosts
        .as_array()
        .and_then(|a| a.iter().find(|h| h["limit"]["rate"] == 50.0))
        .cloned();
    assert!(listed.is_some_and(|h| h["limit"]["burst"] == 5), "{hosts}");
    let cli = env.run("volley", &["hosts", "--json"]).await?;
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains("\"rate\":50"),
        "volley hosts sees it"
    );
    let (code, _) = post(
        &addr,
        "/api/hosts/limit",
        &bearer,
        &format!(r#"{{"host": "{host}"}}"#),
    )
    .await?;
    assert_eq!(code, 200);
    let (_, hosts) = get_json(&addr, "/api/hosts").await?;
    assert!(
        hosts
            .as_array()
            .is_some_and(|a| a.iter().all(|h| h["limit"].is_null())),
        "{hosts}"
    );
    let (code, dead) = get_json(&addr, "/api/dead").await?;
    assert_eq!(
        (code, dead.as_array().map(Vec::len)),
        (200, Some(0)),
        "{dead}"
    );
    // The cancelled records are sent again with retry, as volley retry does.
    let (code, said) = post(&addr, &format!("/api/jobs/{job}/retry"), &bearer, "{}").await?;
    assert_eq!(code, 200, "{said}");
    assert_eq!(
        said["records"].as_u64(),
        Some(fin.u64("cancelled")),
        "{said}"
    );
    // The job runs again: a live limit speeds the redrive up.
    let (code, said) = post(
        &addr,
        &format!("/api/jobs/{job}/limit"),
        &bearer,
        r#"{"concurrency": 128}"#,
    )
    .await?;
    assert_eq!(code, 200, "{said}");
    let again = wait_for_job(&env, &job).await?;
    assert_eq!(
        (again.state(), again.u64("ok")),
        ("completed", 5_000),
        "{}",
        again.json
    );
    let (code, said) = post(
        &addr,
        &format!("/api/jobs/{job}/retry"),
        &bearer,
        r#"{"only": "bogus"}"#,
    )
    .await?;
    assert_eq!(code, 400, "{said}");
    // An ended job takes no more controls: 409.
    let (code, said) = post(&addr, &format!("/api/jobs/{job}/pause"), &bearer, "{}").await?;
    assert_eq!(code, 409, "{said}");
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    dashboard.start_kill()?;
    read_only.start_kill()?;
    Ok(())
}
