//! The operator's side of the commands: output into a closed pipe, `--resume`, the exit
//! codes `--help` lists, and a delivery limit that differs from the queue's.

use std::process::{Output, Stdio};
use std::time::Duration;
use volley_core::Store;
use volley_tests::support::{describe, wait_exit, wait_for_job};
use volley_tests::{TestEnv, path_str, write_jsonl};

/// Runs a command whose stdout is a pipe nobody reads: its read end is closed before the
/// command writes, so every write meets EPIPE, as under `| head -1` once head has left.
async fn into_closed_pipe(
    env: &TestEnv,
    name: &str,
    args: &[&str],
) -> anyhow::Result<(Option<i32>, String)> {
    let mut child = env
        .command(name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    ))
}

/// As [`into_closed_pipe`], with stderr a closed pipe too (`cmd 2>&1 | head -1`): what the
/// command says on stderr must not make it panic either. Only the exit code can be read.
async fn into_closed_pipes(
    env: &TestEnv,
    name: &str,
    args: &[&str],
) -> anyhow::Result<Option<i32>> {
    let mut child = env
        .command(name)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    Ok(status.code())
}

/// A finished job of `records` records in the env's namespace.
async fn finished_job(env: &TestEnv, records: u64) -> anyhow::Result<(String, String)> {
    let input = env.path("records.jsonl");
    write_jsonl(&input, records)?;
    let spec = env.write_spec("operator", "/users/{id}", "")?;
    let mut worker = env.spawn_worker("w1", &["--exit-when-idle", "2s"])?;
    let job = env.produce(&spec, &input, &[]).await?;
    let fin = wait_for_job(env, &job).await?;
    anyhow::ensure!(fin.state() == "completed", "job ended {}", fin.json);
    wait_exit(&mut worker, Duration::from_secs(30)).await?;
    Ok((job, path_str(&spec)?.to_string()))
}

#[tokio::test]
async fn every_command_into_a_closed_pipe_ends_quietly_with_its_code() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (job, spec) = finished_job(&env, 300).await?;
    let input = env.path("records.jsonl");
    let input = path_str(&input)?;
    let dry = [
        "--spec",
        &spec,
        "--input",
        input,
        "--dry-run",
        "--limit",
        "300",
    ];
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("volley", [&["run"][..], &dry[..]].concat()),
        ("volley-producer", dry.to_vec()),
        ("volley", vec!["status", &job]),
        ("volley", vec!["status", &job, "--json"]),
        ("volley", vec!["status", &job, "--wait"]),
        ("volley", vec!["jobs"]),
        ("volley", vec!["jobs", "--json"]),
        ("volley", vec!["workers"]),
        ("volley", vec!["hosts", "--json"]),
        ("volley", vec!["hosts"]),
        ("volley", vec!["dead", "--json"]),
        ("volley", vec!["dead"]),
        ("volley", vec!["results", &job]),
        ("volley", vec!["retry", &job]),
    ];
    for (name, args) in &commands {
        let (code, stderr) = into_closed_pipe(&env, name, args).await?;
        let what = format!("{name} {}", args.join(" "));
        assert_eq!(code, Some(0), "{what}: stderr {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{what}: {stderr}"
        );
    }
    for (name, args) in &commands {
        let code = into_closed_pipes(&env, name, args).await?;
        assert_eq!(
            code,
            Some(0),
            "{name} {} with stderr closed too",
            args.join(" ")
        );
    }
    // A failure said on a closed stderr keeps its exit code (a panic would be 101).
    let code = into_closed_pipes(&env, "volley", &["status", "no-such-job-1"]).await?;
    assert_eq!(
        code,
        Some(2),
        "volley status of an unknown job with stderr closed"
    );
    let code = into_closed_pipes(
        &env,
        "volley-producer",
        &["--spec", &spec, "--input", "/nonexistent.jsonl"],
    )
    .await?;
    assert_eq!(
        code,
        Some(66),
        "volley-producer of a missing input with stderr closed"
    );
    // Another write error is no quiet matter: the output would be short behind a 0.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
    // (Spawned: `output()` would replace the stdout given with a pipe.)
    let out = env
        .command("volley")
        .args(["jobs"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()?
        .wait_with_output()
        .await?;
    assert_eq!(out.status.code(), Some(73), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot write to stdout"),
        "{}",
        describe(&out)
    );
    env.cleanup().await
}

#[tokio::test]
async fn resume_of_a_job_that_does_not_exist_registers_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 250)?;
    let spec = env.write_spec("resume", "/users/{id}", "")?;
    let (spec, input) = (path_str(&spec)?, path_str(&input)?);
    let base = ["--spec", spec, "--input", input];

    let out = env
        .run(
            "volley-producer",
            &[&base[..], &["--resume", "nope-1"]].concat(),
        )
        .await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no job nope-1 to resume in namespace {}", env.ns)),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no job id printed: {}",
        describe(&out)
    );
    let store = env.store()?;
    let id = volley_core::JobId::parse("nope-1").map_err(anyhow::Error::msg)?;
    assert!(store.job_status(&id).await?.is_none(), "no job registered");
    assert!(store.list_jobs().await?.is_empty(), "no job listed");
    let counts = env.queue_counts().await?;
    assert_eq!(counts.chunks_ready, 0, "no chunk queued");
    // --missing of an unknown job refuses too.
    let out = env
        .run(
            "volley-producer",
            &[&base[..], &["--resume", "nope-1", "--missing"]].concat(),
        )
        .await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(store.list_jobs().await?.is_empty(), "no job listed");

    // --job-id creates, and says so; a bad line stops it, and the advice is --resume.
    let bad = env.path("bad.jsonl");
    let mut text = std::fs::read_to_string(input)?;
    let good = text.clone();
    text.insert_str(nth_line_start(&text, 230), "{not json\n");
    std::fs::write(&bad, text)?;
    let out = env
        .run(
            "volley-producer",
            &[
                "--spec",
                spec,
                "--input",
                path_str(&bad)?,
                "--job-id",
                "j-1",
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(65), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("created job j-1"), "{stderr}");
    assert!(stderr.contains("re-run with --resume j-1"), "{stderr}");
    std::fs::write(&bad, good)?;
    let resume = [
        "--spec",
        spec,
        "--input",
        path_str(&bad)?,
        "--resume",
        "j-1",
    ];
    let out = env.run("volley-producer", &resume).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "j-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming job j-1 at chunk 2"), "{stderr}");
    let out = env.run("volley-producer", &resume).await?;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("job j-1 already fully published"),
        "{stderr}"
    );
    let counts = env.queue_counts().await?;
    assert_eq!(counts.chunks_ready, 3, "each of the 3 chunks queued once");
    // Another spec under the same id is an argument error, not an unreachable store.
    let other = env.write_spec("other", "/users/{id}?delay_ms=1", "")?;
    let out = env
        .run(
            "volley-producer",
            &[
                "--spec",
                path_str(&other)?,
                "--input",
                input,
                "--resume",
                "j-1",
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists with a different spec"),
        "{}",
        describe(&out)
    );
    env.cleanup().await
}

/// Where line `n` (from 1) of `text` starts.
fn nth_line_start(text: &str, n: usize) -> usize {
    text.match_indices('\n')
        .nth(n - 2)
        .map_or(0, |(at, _)| at + 1)
}

/// The codes the "Exit codes:" table of `--help` lists.
fn help_codes(out: &Output) -> Vec<i32> {
    let text = String::from_utf8_lossy(&out.stdout);
    let Some((_, table)) = text.split_once("Exit codes:") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn help_lists_each_exit_code_the_command_returns() -> anyhow::Result<()> {
    let mut env = TestEnv::new().await?;
    let spec = env.write_spec("help", "/users/{id}", "")?;
    let spec = path_str(&spec)?.to_string();
    let missing = env.path("absent.jsonl");
    let missing = path_str(&missing)?.to_string();
    let input = env.path("records.jsonl");
    write_jsonl(&input, 10)?;
    let input = path_str(&input)?.to_string();
    // Each case: the command (as --help takes it), its arguments, and the code it returns.
    let cases: Vec<(Vec<&str>, Vec<&str>, i32)> = vec![
        (vec!["volley", "status"], vec!["no-such-job"], 2),
        (vec!["volley", "results"], vec!["no-such-job"], 2),
        (vec!["volley", "retry"], vec!["no-such-job"], 2),
        (vec!["volley", "dead"], vec!["--json"], 0),
        (vec!["volley", "jobs"], vec![], 0),
        (vec!["volley", "run"], vec!["--spec", "absent.toml"], 2),
        (
            vec!["volley", "run"],
            vec!["--spec", &spec, "--input", &missing, "--dry-run"],
            66,
        ),
        (
            vec!["volley-producer"],
            vec!["--spec", &spec, "--input", &missing],
            66,
        ),
        (
            vec!["volley-producer"],
            vec!["--spec", &spec, "--input", &input, "--resume", "x"],
            2,
        ),
    ];
    for (command, args, expected) in &cases {
        let out = env
            .run(command[0], &[&command[1..], &args[..]].concat())
            .await?;
        assert_eq!(out.status.code(), Some(*expected), "{}", describe(&out));
        let help = env
            .run(command[0], &[&command[1..], &["--help"]].concat())
            .await?;
        assert!(
            help_codes(&help).contains(expected),
            "{} --help does not list {expected}:\n{}",
            command.join(" "),
            String::from_utf8_lossy(&help.stdout)
        );
    }
    // Redis unreachable: 69, listed by every fleet command.
    env.redis_url = "redis://127.0.0.1:1".into();
    for command in ["status", "results", "jobs", "workers", "hosts", "retry"] {
        let mut args = vec![command];
        if matches!(command, "status" | "results" | "retry") {
            args.push("some-job");
        }
        let out = env.run("volley", &args).await?;
        assert_eq!(out.status.code(), Some(69), "{}", describe(&out));
        let help = env.run("volley", &[command, "--help"]).await?;
        assert!(help_codes(&help).contains(&69), "volley {command} --help");
    }
    for binary in ["volley", "volley-producer", "volley-worker"] {
        let help = env.run(binary, &["--help"]).await?;
        let codes = help_codes(&help);
        assert!(
            [0, 2, 69].iter().all(|c| codes.contains(c)),
            "{binary} --help lists {codes:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn another_delivery_limit_is_one_line_naming_the_setting() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_jsonl(&input, 250)?;
    let spec = env.write_spec("limits", "/users/{id}", "")?;
    // Declared by the producer with the default delivery limit, 20.
    let job = env.produce(&spec, &input, &[]).await?;
    let other_limit = |name: &str, args: &[&str]| {
        let mut cmd = env.command(name);
        // The log filter a user has by default (the kit asks for info logs).
        cmd.args(args)
            .env("VOLLEY_DELIVERY_LIMIT", "7")
            .env_remove("RUST_LOG");
        cmd
    };
    // Reading needs no matching settings: passive declares.
    for args in [
        vec!["status", job.as_str(), "--json"],
        vec!["dead", "--json"],
        vec!["dead"],
    ] {
        let out = other_limit("volley", &args).output().await?;
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(out.stderr.is_empty(), "{}", describe(&out));
    }
    let status = other_limit("volley", &["status", &job, "--json"])
        .output()
        .await?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["total"], 250);
    // Writing to the job's queue with another limit is refused in one line that says what
    // to set (a new job's queue would simply be declared with this limit).
    let (spec, input) = (path_str(&spec)?, path_str(&input)?);
    for (name, args) in [(
        "volley-producer",
        vec!["--spec", spec, "--input", input, "--job-id", job.as_str()],
    )] {
        let out = other_limit(name, &args).output().await?;
        assert_eq!(out.status.code(), Some(78), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("without AOF"))
            .collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains(&format!(
                "queue {}.chunks.{job} was declared with x-delivery-limit 20, but delivery_limit (VOLLEY_DELIVERY_LIMIT) is 7 here: set VOLLEY_DELIVERY_LIMIT=20",
                env.ns
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("PRECONDITION"), "{stderr}");
    }
    assert_eq!(
        env.store()?.list_jobs().await?.len(),
        1,
        "nothing registered"
    );
    env.cleanup().await
}
