//! Transport: proxies from the environment and redirects that stay within their origin.

use std::sync::{Arc, Mutex};
use volley_tests::support::describe;
use volley_tests::tiny::{self, Reply};
use volley_tests::{TestEnv, check_results, write_jsonl};

type Seen = Arc<Mutex<Vec<String>>>;

async fn tiny_server(answer: fn(&str, u16) -> Reply) -> anyhow::Result<(u16, Seen)> {
    let server = tiny::serve(answer).await?;
    Ok((server.port, server.lines))
}

async fn tiny_server_with_headers(
    answer: fn(&str, u16) -> Reply,
) -> anyhow::Result<(u16, Seen, Seen)> {
    let server = tiny::serve(answer).await?;
    Ok((server.port, server.lines, server.headers))
}

fn ok_json(_: &str, _: u16) -> Reply {
    Reply::Bytes("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"via\":\"p\"}".into())
}

async fn run_job(
    env: &TestEnv,
    spec: &str,
    extra_env: &[(&str, String)],
) -> anyhow::Result<String> {
    let input = env.path("records.jsonl");
    let spec_path = env.path("job.toml");
    std::fs::write(&spec_path, spec)?;
    let out_path = env.path("out.jsonl");
    let mut cmd = env.command("volley");
    cmd.args([
        "run",
        "--spec",
        spec_path.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--out",
        out_path.to_str().unwrap_or_default(),
        "--json",
    ])
    .env_remove("http_proxy")
    .env_remove("https_proxy")
    .env_remove("all_proxy")
    .env_remove("no_proxy")
    .env_remove("HTTPS_PROXY")
    .env_remove("ALL_PROXY");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().await?;
    anyhow::ensure!(
        matches!(out.status.code(), Some(0 | 3)),
        "volley run: {}",
        describe(&out)
    );
    // The summary (with the job id) for the tests that need it.
    std::fs::write(env.path("summary.json"), &out.stdout)?;
    Ok(std::fs::read_to_string(out_path)?)
}

/// The job id `volley run --json` reported in the last `run_job`.
fn last_job_id(env: &TestEnv) -> anyhow::Result<String> {
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("summary.json"))?)?;
    summary["job"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no job id in the summary: {summary}"))
}

#[tokio::test]
async fn requests_go_through_the_proxy_from_the_environment_unless_no_proxy_says_otherwise()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let ids = write_jsonl(&env.path("records.jsonl"), 10)?;
    let (port, seen) = tiny_server(ok_json).await?;
    let spec = "name = \"proxied\"\n[retry]\nmax_attempts = 1\n[breaker]\nenabled = false\n\
                [request]\nurl = \"http://volley-proxy-test.invalid/users/{id}\"\n";
    let proxy = format!("http://127.0.0.1:{port}");
    let results = run_job(&env, spec, &[("HTTP_PROXY", proxy.clone())]).await?;
    let checked = check_results(&results, &ids)?;
    assert_eq!(checked.ok(), 10, "{results}");
    let lines = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(lines.len(), 10);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("GET http://volley-proxy-test.invalid/users/r0000")),
        "absolute-form requests to the proxy: {lines:?}"
    );

    // NO_PROXY exempts the host: the request goes direct, and the name does not resolve.
    let results = run_job(
        &env,
        spec,
        &[
            ("HTTP_PROXY", proxy),
            ("NO_PROXY", "volley-proxy-test.invalid".into()),
        ],
    )
    .await?;
    let checked = check_results(&results, &ids)?;
    assert_eq!(checked.ok(), 0);
    assert!(
        checked
            .lines
            .iter()
            .all(|l| l.error.as_deref().is_some_and(|e| e.starts_with("dns: "))),
        "{results}"
    );
    assert_eq!(seen.lock().unwrap_or_else(|p| p.into_inner()).len(), 10);
    Ok(())
}

fn redirecting(target: &str, port: u16) -> Reply {
    let to = if target.starts_with("/away/") {
        // Another origin: a worker must not follow it with the job's headers.
        format!("http://localhost:{port}/landed")
    } else if target.starts_with("/hop/") {
        "/landed".to_string()
    } else {
        return ok_json(target, port);
    };
    Reply::Bytes(format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let ids = write_jsonl(&env.path("records.jsonl"), 4)?;
    let (port, seen) = tiny_server(redirecting).await?;
    let spec = |path: &str| {
        format!(
            "name = \"redirects\"\n[retry]\nmax_attempts = 1\n[breaker]\nenabled = false\n\
             [request]\nurl = \"http://127.0.0.1:{port}/{path}/{{id}}\"\n\
             headers = {{ X-Api-Key = \"k-123\" }}\n"
        )
    };
    let results = run_job(&env, &spec("hop"), &[]).await?;
    assert_eq!(check_results(&results, &ids)?.ok(), 4, "{results}");
    let results = run_job(&env, &spec("away"), &[]).await?;
    let checked = check_results(&results, &ids)?;
    assert!(
        checked.lines.iter().all(|l| !l.ok
            && l.error
                .as_deref()
                .is_some_and(|e| e.starts_with("redirect: "))),
        "{results}"
    );
    let lines = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let landed = lines.iter().filter(|l| l.contains("/landed")).count();
    assert_eq!(landed, 4, "only the same-origin hops landed: {lines:?}");
    Ok(())
}

fn unavailable(_: &str, _: u16) -> Reply {
    Reply::Bytes(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
    )
}

#[tokio::test]
async fn a_write_carries_the_same_idempotency_key_on_every_attempt() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let ids = write_jsonl(&env.path("records.jsonl"), 5)?;
    let (port, seen, headers) = tiny_server_with_headers(unavailable).await?;
    let spec = format!(
        "name = \"writes\"\n[retry]\nmax_attempts = 3\nbase_delay = \"5ms\"\n\
         [breaker]\nenabled = false\n[request]\nmethod = \"POST\"\n\
         url = \"http://127.0.0.1:{port}/users\"\nbody = {{ id = \"{{id}}\" }}\n"
    );
    let results = run_job(&env, &spec, &[]).await?;
    let checked = check_results(&results, &ids)?;
    assert!(
        checked.lines.iter().all(|l| !l.ok && l.attempts == 3),
        "{results}"
    );
    assert_eq!(seen.lock().unwrap_or_else(|p| p.into_inner()).len(), 15);
    let headers = headers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut keys: std::collections::BTreeMap<String, usize> = Default::default();
    for h in &headers {
        let key = h
            .split('|')
            .find_map(|l| l.strip_prefix("idempotency-key:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("a POST without an idempotency key: {h}"));
        *keys.entry(key.to_string()).or_default() += 1;
    }
    assert_eq!(keys.len(), 5, "one key per record: {keys:?}");
    assert!(
        keys.values().all(|n| *n == 3),
        "the same key on each attempt: {keys:?}"
    );
    // Exactly `{job}-{record id}`, so a redelivery or a redrive of the record (another
    // worker, another round) sends the same key.
    let job = last_job_id(&env)?;
    let expected: std::collections::BTreeSet<String> =
        ids.iter().map(|id| format!("{job}-{id}")).collect();
    assert_eq!(
        keys.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        expected,
        "{keys:?}"
    );
    Ok(())
}
