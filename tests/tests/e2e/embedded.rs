//! `volley run` and `volley demo`: the embedded default, no services.

use crate::support::describe;
use std::collections::BTreeSet;
use std::io::Write;
use volley_tests::{TestEnv, check_results};

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
        let out = env
            .command(bin)
            .args(&args)
            .env("DRY_TOKEN", "s3cr3t-value")
            .output()
            .await?;
        assert_eq!(out.status.code(), Some(0), "{bin}: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.matches("POST ").count(), 3, "{stdout}");
        assert!(stdout.contains("authorization: <redacted>"), "{stdout}");
        assert!(stdout.contains("\"id\": \"r000002\""), "{stdout}");
        assert!(
            !format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)).contains("s3cr3t"),
            "the secret must not be printed"
        );
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
