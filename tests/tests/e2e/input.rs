//! Bad specs and bad input, through the real binaries.

use std::io::Write;
use std::time::Duration;
use volley_core::Store;
use volley_tests::support::{describe, export, finish_ok, wait_for_job};
use volley_tests::{TestEnv, check_results};

#[tokio::test]
async fn a_bad_spec_is_refused_naming_the_key_before_anything_is_registered() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 10)?;
    let cases = [
        (
            "[retry]\nmax_atempts = 3\n",
            "retry.max_atempts: unknown field `max_atempts`",
        ),
        (
            "[chunking]\nsize = 0\n",
            "chunking.size: must be between 1 and 10000, got 0",
        ),
        (
            "[retry]\nbase_delay = \"ten\"\n",
            "retry.base_delay: invalid duration 'ten'",
        ),
    ];
    for (extra, expected) in cases {
        let spec = env.write_spec("bad", "/users/{id}", extra)?;
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
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(out.stdout.is_empty(), "no job id printed");
    }
    let secret = env.write_spec("secret", "/users/{id}", "")?;
    let text = std::fs::read_to_string(&secret)?.replace(
        "[request]\n",
        "[request]\nheaders = { Authorization = \"Bearer ${env:VOLLEY_TEST_UNSET_TOKEN}\" }\n",
    );
    std::fs::write(&secret, text)?;
    let out = env
        .run(
            "volley-producer",
            &[
                "--spec",
                secret.to_str().unwrap_or_default(),
                "--input",
                input.to_str().unwrap_or_default(),
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "request.headers.Authorization: environment variable VOLLEY_TEST_UNSET_TOKEN is not set"
    ));
    assert!(
        env.store()?.list_jobs().await?.is_empty(),
        "nothing registered"
    );
    Ok(())
}

#[tokio::test]
async fn a_malformed_line_stops_the_producer_and_a_fixed_input_resumes_the_job()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let mut ids = std::collections::BTreeSet::new();
    let mut file = std::fs::File::create(&input)?;
    for i in 0..5_000 {
        let id = format!("r{i:06}");
        if i == 1_233 {
            writeln!(file, "{{\"id\": \"{id}\", \"email\": ")?;
        } else {
            writeln!(file, "{{\"id\":\"{id}\",\"n\":{i}}}")?;
        }
        ids.insert(id);
    }
    drop(file);
    let spec = env.write_spec("badline", "/users/{id}", "[result]\nbody = \"none\"\n")?;
    let args = [
        "--spec",
        spec.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--job-id",
        "badline-1",
    ];
    let out = env.run("volley-producer", &args).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:1234:", input.display())),
        "names file and line: {stderr}"
    );
    assert!(
        stderr.contains("re-run with --resume badline-1"),
        "{stderr}"
    );
    let job = volley_core::JobId::parse("badline-1").map_err(anyhow::Error::msg)?;
    let status = env
        .store()?
        .job_status(&job)
        .await?
        .expect("job registered");
    assert_eq!(status.state, volley_core::JobState::InputError);
    assert_eq!(
        status.published_chunks, 12,
        "the complete chunks before line 1234 are published"
    );
    assert_eq!(env.queue_counts().await?.chunks_ready, 12);
    // Fix the line, run the same command again: the job continues where it stopped.
    let fixed = std::fs::read_to_string(&input)?.replace(
        "{\"id\": \"r001233\", \"email\": ",
        "{\"id\":\"r001233\",\"n\":1233}",
    );
    std::fs::write(&input, fixed)?;
    let out = env.run("volley-producer", &args).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming job badline-1 at chunk 12"));
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, "badline-1").await?;
    assert_eq!(
        (fin.code, fin.state(), fin.u64("done")),
        (0, "completed", 5_000)
    );
    check_results(&export(&env, "badline-1", &[]).await?, &ids)?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test]
async fn a_changed_input_is_refused_on_resume() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 3_000)?;
    let spec = env.write_spec("changed", "/users/{id}", "")?;
    let args = [
        "--spec",
        spec.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--job-id",
        "changed-1",
    ];
    let out = env
        .command("volley-producer")
        .args(args)
        .env("VOLLEY_FAILPOINTS", "producer_abort_after_chunks=5")
        .output()
        .await?;
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&input)?.replace("\"n\":7}", "\"n\":700}");
    std::fs::write(&input, text)?;
    let out = env.run("volley-producer", &args).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("input changed since job changed-1 was started")
    );
    Ok(())
}

#[tokio::test]
async fn the_producer_reads_stdin() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    let ids = volley_tests::write_jsonl(&input, 1_500)?;
    let spec = env.write_spec(
        "stdin",
        "/users/{id}",
        "[input]\nformat = \"jsonl\"\n[result]\nbody = \"none\"\n",
    )?;
    let mut producer = env
        .command("volley-producer")
        .args(["--spec", spec.to_str().unwrap_or_default(), "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = producer.stdin.take().expect("stdin");
    stdin.write_all(&std::fs::read(&input)?).await?;
    drop(stdin);
    let out = producer.wait_with_output().await?;
    assert!(out.status.success(), "{}", describe(&out));
    let job = String::from_utf8(out.stdout)?.trim().to_string();
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (fin.code, fin.u64("total"), fin.u64("done")),
        (0, 1_500, 1_500)
    );
    assert_eq!(fin.json["input"], "<stdin>");
    check_results(&export(&env, &job, &[]).await?, &ids)?;
    finish_ok(&mut worker, Duration::from_secs(30)).await?;
    Ok(())
}
