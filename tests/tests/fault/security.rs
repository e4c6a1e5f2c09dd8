//! Security checks (SEC-1, SEC-2, SEC-3, SEC-5, SEC-6): secrets never reach logs, status,
//! results (even when the API echoes them back) or Redis; record values never change where
//! a request goes.

use crate::support::{describe, export, wait_exit};
use std::time::Duration;
use volley_tests::tiny::{self, Reply};
use volley_tests::{TestEnv, write_jsonl};

#[tokio::test]
async fn secrets_never_reach_logs_status_results_or_redis() -> anyhow::Result<()> {
    let mut env = TestEnv::new().await?;
    let sentinel = format!("S3NT1NEL-{}", uuid::Uuid::new_v4().simple());
    env.extra_env.push(("API_TOKEN".into(), sentinel.clone()));
    env.extra_env.push(("RUST_LOG".into(), "debug".into()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 300)?;
    // The API echoes request headers into the bodies Volley keeps (SEC-3).
    let spec = env.write_spec(
        "secret",
        "/users/{id}?echo_headers=true",
        "[result]\nbody = \"json\"\n[request]\n",
    )?;
    // The spec's headers: a secret reference, resolved only inside the processes.
    let text = std::fs::read_to_string(&spec)?.replace(
        "timeout = \"5s\"",
        "timeout = \"5s\"\nheaders = { Authorization = \"Bearer ${env:API_TOKEN}\" }",
    );
    let text = text.replacen("[request]\n\n[request]", "[request]", 1);
    std::fs::write(&spec, text)?;
    let producer = env
        .run(
            "volley-producer",
            &[
                "--spec",
                spec.to_str().unwrap_or_default(),
                "--input",
                input.to_str().unwrap_or_default(),
            ],
        )
        .await?;
    assert!(producer.status.success(), "{}", describe(&producer));
    let job = String::from_utf8_lossy(&producer.stdout).trim().to_string();
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let status = env
        .run("volley", &["status", &job, "--wait", "--json"])
        .await?;
    assert_eq!(status.status.code(), Some(0), "{}", describe(&status));
    let results = export(&env, &job, &[]).await?;
    assert_eq!(results.lines().count(), ids.len());
    assert!(
        results.contains("\"authorization\":\"Bearer [redacted]\""),
        "the echoed header is kept, its secret cut out: {}",
        results.lines().next().unwrap_or_default()
    );
    assert!(
        wait_exit(&mut worker, Duration::from_secs(30))
            .await?
            .success()
    );
    let dry = env
        .run(
            "volley",
            &[
                "run",
                "--spec",
                spec.to_str().unwrap_or_default(),
                "--input",
                input.to_str().unwrap_or_default(),
                "--dry-run",
            ],
        )
        .await?;
    assert!(dry.status.success(), "{}", describe(&dry));
    // Wrong passwords in connection URLs: the errors name the server, never the password.
    let mut bad_urls = Vec::new();
    for (var, url) in [
        (
            "VOLLEY_REDIS_URL",
            format!("redis://:{sentinel}@127.0.0.1:1/"),
        ),
        (
            "VOLLEY_AMQP_URL",
            format!("amqp://guest:{sentinel}@127.0.0.1:1/%2f"),
        ),
    ] {
        let out = env
            .command("volley-producer")
            .args([
                "--spec",
                spec.to_str().unwrap_or_default(),
                "--input",
                input.to_str().unwrap_or_default(),
            ])
            .env(var, url)
            .output()
            .await?;
        assert_eq!(out.status.code(), Some(69), "{}", describe(&out));
        bad_urls.push(out);
    }
    let mut seen = String::new();
    for out in [&producer, &status, &dry]
        .into_iter()
        .chain(bad_urls.iter())
    {
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    seen.push_str(&std::fs::read_to_string(env.path("w.log"))?);
    seen.push_str(&results);
    assert!(
        seen.contains("127.0.0.1:1"),
        "the failed connections were reported"
    );
    assert!(
        !seen.contains(&sentinel),
        "a secret leaked into output or logs"
    );
    // Redis holds the spec with the reference, never the value.
    let mut redis = redis::Client::open(env.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.ns))
        .query_async(&mut redis)
        .await?;
    assert!(!keys.is_empty());
    for key in keys {
        let dumped: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(&mut redis).await?;
        let dumped = dumped.unwrap_or_default();
        assert!(
            !dumped
                .windows(sentinel.len())
                .any(|w| w == sentinel.as_bytes()),
            "the secret is stored in Redis key {key}"
        );
    }
    Ok(())
}

fn record_lines(_: &str, _: u16) -> Reply {
    Reply::Bytes(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
            .into(),
    )
}

#[tokio::test]
async fn hostile_record_values_never_change_where_a_request_goes() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let server = tiny::serve(record_lines).await?;
    let hostile = [
        "../admin",
        "a/b",
        "%2F",
        "?x=1",
        "#f",
        "@evil.com",
        "..",
        ".",
        "//evil",
        "\\evil",
        "a b",
        "ünï",
        "x\r\nHost: evil",
    ];
    let input = env.path("hostile.jsonl");
    let mut text = String::new();
    for (i, v) in hostile.iter().enumerate() {
        text.push_str(&serde_json::json!({"id": format!("h{i}"), "v": v}).to_string());
        text.push('\n');
    }
    std::fs::write(&input, text)?;
    let spec = env.path("hostile.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"hostile\"\n[retry]\nmax_attempts = 1\n[breaker]\nenabled = false\n\
             [request]\nurl = \"http://127.0.0.1:{}/users/{{v}}?q={{v}}\"\n\
             headers = {{ X-Value = \"{{v}}\" }}\n",
            server.port
        ),
    )?;
    let out_path = env.path("out.jsonl");
    let out = env.run_embedded(&spec, &input, &out_path, &[]).await?;
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        describe(&out)
    );
    let results: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let error = |id: &str| {
        results
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["error"].as_str().map(str::to_string))
    };
    // Whole `.` and `..` segments fail the record; CRLF cannot split a header.
    assert!(
        error("h6").is_some_and(|e| e.starts_with("template: ")),
        "{:?}",
        error("h6")
    );
    assert!(
        error("h7").is_some_and(|e| e.starts_with("template: ")),
        "{:?}",
        error("h7")
    );
    assert!(
        error("h12").is_some_and(|e| e.starts_with("template: ")),
        "{:?}",
        error("h12")
    );
    let lines = server.lines();
    assert_eq!(
        lines.len(),
        hostile.len() - 3,
        "one request per sendable record: {lines:?}"
    );
    for line in &lines {
        let target = line.split_whitespace().nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        assert!(
            path.starts_with("/users/") && path.matches('/').count() == 2,
            "the value stayed one path segment: {line}"
        );
        assert_eq!(target.matches('?').count(), 1, "one query: {line}");
        assert!(!target.contains('#'), "{line}");
    }
    for header in server.headers() {
        assert!(header.contains("host: 127.0.0.1:"), "{header}");
        assert!(!header.contains("host: evil"), "{header}");
    }
    Ok(())
}
