//! Security checks (SEC-1, SEC-2, SEC-3, SEC-5, SEC-6): secrets never reach logs, status,
//! results (even when the API echoes them back) or Redis; record values never change where
//! a request goes.

use std::time::Duration;
use volley_tests::support::{describe, export, wait_exit};
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
    assert_scan_finds_a_planted_secret(&mut redis, &env.ns.to_string()).await?;
    let stored = namespace_values(&mut redis, &env.ns.to_string()).await?;
    assert!(
        stored
            .iter()
            .any(|(_, text)| text.contains("${env:API_TOKEN}")),
        "the scan read the stored spec (its secret reference)"
    );
    for (key, text) in stored {
        assert!(
            !text.contains(&sentinel),
            "the secret is stored in Redis key {key}"
        );
    }
    Ok(())
}

/// Proves the scan below can see a secret: a sentinel planted in a hash field of a throwaway
/// key of the namespace must be found (DUMP, used before, compresses values and missed it).
async fn assert_scan_finds_a_planted_secret(
    redis: &mut redis::aio::MultiplexedConnection,
    ns: &str,
) -> anyhow::Result<()> {
    let planted = format!("PLANTED-{}", uuid::Uuid::new_v4().simple());
    let key = format!("{ns}:scan-probe");
    let value = format!("{{\"body\":\"{}\"}}", planted.repeat(40));
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("r-1")
        .arg(&value)
        .query_async(redis)
        .await?;
    let found = namespace_values(redis, ns)
        .await?
        .into_iter()
        .any(|(_, text)| text.contains(&planted));
    let () = redis::cmd("DEL").arg(&key).query_async(redis).await?;
    assert!(
        found,
        "the Redis scan finds a secret planted in a hash field"
    );
    Ok(())
}

/// Every key of the namespace with its readable contents, read by type (values as stored,
/// not serialized, so nothing is hidden by compression).
async fn namespace_values(
    redis: &mut redis::aio::MultiplexedConnection,
    ns: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{ns}:*"))
            .arg("COUNT")
            .arg(500)
            .query_async(redis)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    anyhow::ensure!(!keys.is_empty(), "the namespace {ns} has keys in Redis");
    let mut values = Vec::new();
    for key in keys {
        let text = key_text(redis, &key).await?;
        values.push((key, text));
    }
    Ok(values)
}

/// One key's contents as text, read with the command of its type.
async fn key_text(
    redis: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> anyhow::Result<String> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(redis).await?;
    let parts: Vec<Vec<u8>> = match kind.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query_async(redis).await?],
        "hash" => redis::cmd("HGETALL").arg(key).query_async(redis).await?,
        "set" => redis::cmd("SMEMBERS").arg(key).query_async(redis).await?,
        "zset" => {
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(redis)
                .await?
        }
        "list" => {
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async(redis)
                .await?
        }
        "stream" => {
            let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .query_async(redis)
                .await?;
            entries.into_iter().flat_map(|(_, fields)| fields).collect()
        }
        // Expired between SCAN and TYPE.
        "none" => Vec::new(),
        other => anyhow::bail!("Redis key {key} has a type the scan cannot read: {other}"),
    };
    Ok(parts
        .iter()
        .map(|part| String::from_utf8_lossy(part))
        .collect::<Vec<_>>()
        .join("\n"))
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
    // One header set per request, so the loop below checks every request's Host.
    let headers = server.headers();
    assert_eq!(headers.len(), lines.len(), "{headers:?}");
    for header in headers {
        assert!(header.contains("host: 127.0.0.1:"), "{header}");
        assert!(!header.contains("host: evil"), "{header}");
    }
    Ok(())
}
