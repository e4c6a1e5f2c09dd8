//! Bad specs (T48, T49): refused before anything is registered or published, exit 2, with
//! the key named.

use volley_tests::TestEnv;
use volley_tests::support::describe;

#[tokio::test]
async fn every_bad_spec_is_refused_naming_its_key_and_nothing_is_registered() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 10)?;
    let cases = [
        (
            "",
            "url = \"http://127.0.0.1:8080/users/{id\"",
            "request.url: unclosed placeholder '{id'",
        ),
        (
            "",
            "url = \"http://{host}/x\"",
            "request.url: placeholder not allowed in host",
        ),
        (
            "",
            "url = \"ftp://example.com/{id}\"",
            "request.url: scheme 'ftp' is not supported",
        ),
        (
            "",
            "url = \"example.com/{id}\"",
            "request.url: 'example.com/{id}' has no scheme",
        ),
        (
            "",
            "url = \"http://h/x\"\nmethod = \"FETCH\"",
            "request.method: unsupported method 'FETCH'",
        ),
        (
            "",
            "url = \"http://h/x\"\ntimeout = \"ten\"",
            "request.timeout: invalid duration 'ten'",
        ),
        (
            "[concurrency]\nper_worker = 0\n",
            "url = \"http://h/{id}\"",
            "concurrency.per_worker: must be between 1 and 100000, got 0",
        ),
        (
            "[retry]\nmax_attempts = 0\n",
            "url = \"http://h/{id}\"",
            "retry.max_attempts: must be between 1 and 100, got 0",
        ),
        (
            "[result]\ntolerated_failure_percent = 150\n",
            "url = \"http://h/{id}\"",
            "result.tolerated_failure_percent: must be between 0 and 100, got 150",
        ),
        (
            "[result]\nmax_body_bytes = 999999999999\n",
            "url = \"http://h/{id}\"",
            "result.max_body_bytes: must be between 1 and 16777216",
        ),
        (
            "[surprise]\nx = 1\n",
            "url = \"http://h/{id}\"",
            "unknown field `surprise`",
        ),
    ];
    let spec = env.path("bad.toml");
    for (sections, request, expected) in cases {
        std::fs::write(
            &spec,
            format!("name = \"bad\"\n{sections}[request]\n{request}\n"),
        )?;
        let out = env
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
        assert_eq!(out.status.code(), Some(2), "{expected}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let jobs = env.run("volley", &["jobs", "--json"]).await?;
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&jobs.stdout)?;
    assert!(jobs.is_empty(), "nothing was registered: {jobs:?}");
    Ok(())
}
