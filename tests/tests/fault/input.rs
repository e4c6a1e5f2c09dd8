//! Bad input (T43, T45, T46): each case names its file and line, leaves a documented job
//! state, and never crashes.

use std::collections::BTreeSet;
use std::time::Duration;
use volley_tests::TestEnv;
use volley_tests::support::{describe, export, wait_exit};

async fn produce_raw(
    env: &TestEnv,
    spec: &str,
    input: &str,
) -> anyhow::Result<std::process::Output> {
    env.run("volley-producer", &["--spec", spec, "--input", input])
        .await
}

#[tokio::test]
async fn bad_csv_and_oversized_records_name_file_and_line() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let spec = env.write_spec(
        "badinput",
        "/users/{id}",
        "[input]\nmax_record_bytes = 1024\n",
    )?;
    let spec_s = spec.to_str().unwrap_or_default();
    let csv = env.path("people.csv");
    std::fs::write(&csv, "id,name,email\n1,Ada,a@x.io\n2,Bob\n3,Cy,c@x.io\n")?;
    let out = produce_raw(&env, spec_s, csv.to_str().unwrap_or_default()).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("people.csv:3"),
        "names the file and line: {stderr}"
    );

    let jsonl = env.path("big.jsonl");
    let big = format!("{{\"id\":\"b\",\"pad\":\"{}\"}}", "x".repeat(4096));
    std::fs::write(
        &jsonl,
        format!("{{\"id\":\"a\"}}\n{big}\n{{\"id\":\"c\"}}\n"),
    )?;
    let out = produce_raw(&env, spec_s, jsonl.to_str().unwrap_or_default()).await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("big.jsonl:2"),
        "names the file and line: {stderr}"
    );
    assert!(
        stderr.contains("max_record_bytes"),
        "names the limit: {stderr}"
    );
    // The job is left `input_error`, with the message, as the README says.
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let status = env.run("volley", &["status", &job, "--json"]).await?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["state"], "input_error", "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("big.jsonl:2"))
    );
    Ok(())
}

#[tokio::test]
async fn an_empty_file_is_a_job_of_zero_records_that_completes_at_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let spec = env.write_spec("empty", "/users/{id}", "")?;
    let empty = env.path("empty.jsonl");
    std::fs::write(&empty, "")?;
    let job = env.produce(&spec, &empty, &[]).await?;
    let out = env
        .run("volley", &["status", &job, "--wait", "--json"])
        .await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        (status["state"].as_str(), status["total"].as_u64()),
        (Some("completed"), Some(0))
    );
    Ok(())
}

#[tokio::test]
async fn missing_and_duplicate_ids_are_handled_as_documented() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let spec = env.write_spec("ids", "/users/{_id}", "[result]\nbody = \"none\"\n")?;
    let input = env.path("ids.jsonl");
    let mut text = String::new();
    for i in 0..200 {
        // Every tenth record lacks an id (its line number stands in); ids repeat after 150.
        if i % 10 == 9 {
            text.push_str("{\"name\":\"no id\"}\n");
        } else {
            text.push_str(&format!("{{\"id\":\"u{}\"}}\n", i % 150));
        }
    }
    std::fs::write(&input, text)?;
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
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("records repeat an earlier id")
            && stderr.contains("\"u0\" on lines 1 and 151"),
        "duplicates are reported: {stderr}"
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let fin = tokio::time::timeout(
        Duration::from_secs(60),
        env.run("volley", &["status", &job, "--wait", "--json"]),
    )
    .await??;
    assert_eq!(fin.status.code(), Some(0), "{}", describe(&fin));
    let results = export(&env, &job, &[]).await?;
    let lines: Vec<serde_json::Value> = results
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 200, "every record, duplicates included");
    // One worker, nothing redelivered: one call per record, a repeated id called once for
    // each of its lines.
    assert_eq!(env.mock.stats().requests, 200, "one request per record");
    let keys: BTreeSet<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap_or_default().to_string(),
                l["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(keys.len(), 200, "(id, line) is unique");
    assert!(
        keys.contains(&("10".to_string(), 10)),
        "a record without an id is known by its line"
    );
    assert_eq!(lines.iter().filter(|l| l["id"] == "u0").count(), 2);
    assert!(
        wait_exit(&mut worker, Duration::from_secs(30))
            .await?
            .success()
    );
    Ok(())
}

/// T52: exporting to a full disk fails naming the file and leaves no file that looks
/// complete; a closed pipe ends the export quietly.
#[tokio::test]
async fn exports_to_a_full_disk_or_a_closed_pipe_fail_cleanly() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 2_000)?;
    let spec = env.write_spec("export", "/users/{id}", "")?;
    let job = env.produce(&spec, &input, &[]).await?;
    let mut worker = env.spawn_worker("w", &["--exit-when-idle", "2s"])?;
    let out = env.run("volley", &["status", &job, "--wait"]).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        wait_exit(&mut worker, Duration::from_secs(30))
            .await?
            .success()
    );
    let out = env
        .run("volley", &["results", &job, "--out", "/dev/full"])
        .await?;
    assert_eq!(out.status.code(), Some(73), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // A reader that stops after one line: the export ends without a panic or an error.
    let mut child = env
        .command("volley")
        .args(["results", &job])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    let _ = tokio::io::AsyncReadExt::read(&mut stdout, &mut first).await?;
    drop(stdout);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "a closed pipe is a quiet end: {stderr}"
    );
    Ok(())
}

/// T47: stdin that ends in the middle of a record stops the producer at that line instead
/// of publishing a silently short job.
#[tokio::test]
async fn stdin_cut_mid_record_is_an_error_at_its_line() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    volley_tests::write_jsonl(&input, 5_000)?;
    let bytes = std::fs::read(&input)?;
    let cut = &bytes[..100_003];
    let spec = env.write_spec("cut", "/users/{id}", "[input]\nformat = \"jsonl\"\n")?;
    let mut child = env
        .command("volley-producer")
        .args(["--spec", spec.to_str().unwrap_or_default(), "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, cut).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let line = cut.iter().filter(|b| **b == b'\n').count() + 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("<stdin>:{line}")),
        "names the cut line {line}: {stderr}"
    );
    Ok(())
}
