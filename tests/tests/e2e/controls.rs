//! Steering a running job: `volley cancel` stops its requests within 2 s while another job
//! on the same workers runs on, and `volley retry` then sends each cancelled record once;
//! `volley pause` holds the API at zero requests through returned chunks and a worker
//! restart, and `volley resume` completes the job with one call per record; `volley limit
//! --rate` moves the fleet's per-second arrivals. The mock API's counters are the judge.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;
use volley_core::time::now_ms;
use volley_tests::support::{
    describe, send_signal, wait_exit, wait_for_job, wait_for_requests, wait_workers,
};
use volley_tests::{TestEnv, eventually_every};

/// Exit code of `status --wait` for a cancelled job.
const JOB_CANCELLED: i32 = volley_core::exit::JOB_CANCELLED as i32;

/// `n` records whose ids start with `prefix`, so two jobs' calls are told apart.
fn write_records(path: &Path, prefix: &str, n: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(file, r#"{{"id":"{prefix}{i:05}","n":{i}}}"#)?;
    }
    Ok(file.flush()?)
}

/// Calls per id of the ids starting with `prefix`.
fn calls(env: &TestEnv, prefix: &str) -> BTreeMap<String, u64> {
    env.mock
        .stats()
        .per_id
        .into_iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .collect()
}

/// Asserts the API saw each of the `n` ids of `prefix` exactly once.
fn each_called_once(env: &TestEnv, prefix: &str, n: u64) {
    let seen = calls(env, prefix);
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "ids called more than once: {twice:?}");
    assert_eq!(seen.len() as u64, n, "every {prefix} record called");
}

/// Runs a `volley` command that must succeed, and returns its stdout.
async fn volley_ok(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    let out = env.run("volley", args).await?;
    anyhow::ensure!(out.status.success(), "volley {args:?}: {}", describe(&out));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn status_json(env: &TestEnv, job: &str) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(
        &volley_ok(env, &["status", job, "--json"]).await?,
    )?)
}

/// Stops a worker with SIGTERM and waits for it.
async fn stop(worker: &mut tokio::process::Child) -> anyhow::Result<()> {
    if let Some(pid) = worker.id() {
        send_signal("-TERM", pid)?;
    }
    wait_exit(worker, Duration::from_secs(60)).await?;
    Ok(())
}

#[tokio::test]
async fn a_cancelled_job_stops_sending_ends_cancelled_and_its_retry_calls_each_record_once()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (slow_input, quick_input) = (env.path("slow.jsonl"), env.path("quick.jsonl"));
    write_records(&slow_input, "a", 600)?;
    write_records(&quick_input, "b", 200)?;
    let slow = env.write_spec(
        "slow",
        "/users/{id}?delay_ms=200",
        "[chunking]\nsize = 20\n[concurrency]\nper_worker = 8\n[result]\nbody = \"none\"\n",
    )?;
    let quick = env.write_spec(
        "quick",
        "/users/{id}?delay_ms=150",
        "[chunking]\nsize = 20\n[concurrency]\nper_worker = 2\n[result]\nbody = \"none\"\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &["--prefetch", "4"])?;
    let mut w2 = env.spawn_worker("w2", &["--prefetch", "4"])?;
    wait_workers(&env, &["w1", "w2"]).await?;
    let a = env.produce(&slow, &slow_input, &[]).await?;
    let b = env.produce(&quick, &quick_input, &[]).await?;
    eventually_every(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let n = calls(&env, "a").len();
            if n >= 100 {
                Ok(())
            } else {
                Err(format!("{n} calls of the slow job"))
            }
        },
    )
    .await?;
    let cancelled_at = now_ms();
    let said: serde_json::Value =
        serde_json::from_str(&volley_ok(&env, &["cancel", &a, "--json"]).await?)?;
    assert_eq!(said["action"], "cancel", "{said}");
    assert!(said["controls"]["cancel_ms"].is_u64(), "{said}");
    let seen = status_json(&env, &a).await?;
    assert!(
        seen["cancelling"] == true || seen["state"] == "cancelled",
        "status shows the cancel under way: {seen}"
    );

    let fin = wait_for_job(&env, &a).await?;
    assert_eq!(fin.state(), "cancelled", "{}", fin.json);
    assert_eq!(
        fin.code, JOB_CANCELLED,
        "status --wait has the cancel's own code"
    );
    let (ok, failed, cancelled) = (fin.u64("ok"), fin.u64("failed"), fin.u64("cancelled"));
    assert_eq!(
        ok + failed + cancelled,
        600,
        "every record accounted for: {}",
        fin.json
    );
    assert_eq!(fin.u64("done"), 600);
    assert!(cancelled > 0 && ok > 0, "cancelled half way: {}", fin.json);
    // No request of the cancelled job started later than 2 s after the cancel.
    let last = env
        .mock
        .stats()
        .per_id_times_ms
        .iter()
        .filter(|(id, _)| id.starts_with('a'))
        .flat_map(|(_, times)| times.iter().copied())
        .max()
        .unwrap_or(0);
    assert!(
        last <= cancelled_at + 2_000,
        "a request of the cancelled job arrived {} ms after the cancel",
        last.saturating_sub(cancelled_at)
    );
    assert_eq!(
        calls(&env, "a").len() as u64,
        ok + failed,
        "cancelled records were not sent"
    );

    // The export has every record once, the cancelled ones recognisable.
    let path = env.path("a.results.jsonl");
    volley_ok(
        &env,
        &["results", &a, "--out", volley_tests::path_str(&path)?],
    )
    .await?;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let ids: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(
        (lines.len(), ids.len()),
        (600, 600),
        "each record exported once"
    );
    let marked = lines
        .iter()
        .filter(|l| {
            l["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cancelled: "))
        })
        .count() as u64;
    assert_eq!(marked, cancelled, "the cancelled records say so");
    // A cancelled job's accounting adds up: cancelled rows are neither ok nor failed, and
    // their inputs are kept for the retry.
    let verified = volley_ok(&env, &["verify", &a]).await?;
    assert!(
        verified.contains(&format!("cancelled {cancelled} = done 600 = total 600")),
        "{verified}"
    );

    // The other job ran on, untouched.
    let other = wait_for_job(&env, &b).await?;
    assert_eq!(other.state(), "completed", "{}", other.json);
    each_called_once(&env, "b", 200);

    // Sending the cancelled records again completes the job, one call per record in all.
    volley_ok(&env, &["retry", &a, "--only", "cancelled"]).await?;
    let again = wait_for_job(&env, &a).await?;
    assert_eq!(again.state(), "completed", "{}", again.json);
    assert_eq!(
        (again.code, again.u64("cancelled"), again.u64("ok")),
        (0, 0, 600)
    );
    each_called_once(&env, "a", 600);
    stop(&mut w1).await?;
    stop(&mut w2).await?;
    env.cleanup().await?;
    Ok(())
}

#[tokio::test]
async fn a_paused_job_sends_nothing_through_returned_chunks_and_a_restart_then_resumes_once()
-> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_records(&input, "p", 300)?;
    let spec = env.write_spec(
        "paused",
        "/users/{id}?delay_ms=100",
        "[chunking]\nsize = 50\n[concurrency]\nper_worker = 5\n[result]\nbody = \"none\"\n",
    )?;
    // Chunks are returned every 3 s, paused or not: what a returned chunk had finished must
    // never be sent again.
    let args = [
        "--prefetch",
        "2",
        "--max-hold",
        "3s",
        "--drain-timeout",
        "1s",
    ];
    let mut worker = env.spawn_worker("w1", &args)?;
    let job = env.produce(&spec, &input, &[]).await?;
    wait_for_requests(&env, 30, Duration::from_secs(30)).await?;
    volley_ok(&env, &["pause", &job]).await?;
    // Requests in flight at the pause finish (100 ms each).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let held = env.mock.stats().requests;
    let seen = status_json(&env, &job).await?;
    assert_eq!(seen["paused"], true, "{seen}");
    assert!(seen["controls"]["paused_ms"].is_u64(), "{seen}");
    let text = volley_ok(&env, &["status", &job]).await?;
    assert!(text.contains("paused for"), "{text}");

    // Half way through the pause the worker is replaced: the new one starts paused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = std::fs::read_to_string(env.path("w1.log"))?;
    assert!(
        log.contains("returning"),
        "the chunks held at the pause were returned at --max-hold:\n{log}"
    );
    stop(&mut worker).await?;
    let mut worker = env.spawn_worker("w2", &args)?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        env.mock.stats().requests,
        held,
        "the API saw requests during the pause"
    );
    // A paused job's queue is not consumed: its chunks wait there, not in a worker.
    let counts = env.queue_counts().await?;
    assert!(counts.chunks_ready > 0, "{counts:?}");
    assert_eq!(
        counts.consumers, 0,
        "nobody consumes a paused job: {counts:?}"
    );
    let log = std::fs::read_to_string(env.path("w2.log"))?;
    assert!(
        !log.contains("returning"),
        "the worker started during the pause took no chunk of it:\n{log}"
    );

    volley_ok(&env, &["resume", &job]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(fin.state(), "completed", "{}", fin.json);
    assert_eq!(fin.u64("ok"), 300);
    each_called_once(&env, "p", 300);
    assert_eq!(env.mock.stats().requests, 300, "one request per record");
    stop(&mut worker).await?;
    env.cleanup().await?;
    Ok(())
}

/// Requests that arrived in each whole second of `[from, to)` (ms since the epoch).
fn per_second(times: &[u64], from: u64, to: u64) -> Vec<usize> {
    (from..to)
        .step_by(1_000)
        .map(|start| {
            times
                .iter()
                .filter(|t| (start..start + 1_000).contains(*t))
                .count()
        })
        .collect()
}

#[tokio::test]
async fn a_live_rate_change_moves_the_fleets_arrivals_within_two_seconds() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let input = env.path("records.jsonl");
    write_records(&input, "l", 2_000)?;
    let spec = env.write_spec(
        "limited",
        "/users/{id}",
        "[chunking]\nsize = 20\n[concurrency]\nper_worker = 20\nrate_limit = 10.0\n[result]\nbody = \"none\"\n",
    )?;
    let mut w1 = env.spawn_worker("w1", &[])?;
    let mut w2 = env.spawn_worker("w2", &[])?;
    wait_workers(&env, &["w1", "w2"]).await?;
    let job = env.produce(&spec, &input, &[]).await?;
    wait_for_requests(&env, 1, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let changed_at = now_ms();
    volley_ok(&env, &["limit", &job, "--rate", "40"]).await?;
    let seen = status_json(&env, &job).await?;
    assert_eq!(seen["controls"]["rate"], 40.0, "{seen}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let times = env.mock.stats().times_ms;
    let before = per_second(&times, changed_at - 3_000, changed_at);
    let after = per_second(&times, changed_at + 2_000, changed_at + 5_000);
    assert!(
        before.iter().all(|n| (5..=16).contains(n)),
        "about 10 a second before: {before:?}"
    );
    assert!(
        after.iter().all(|n| (28..=52).contains(n)),
        "about 40 a second from 2 s after the change: {after:?}"
    );
    // Cancel ends it: the rest is settled without calls.
    volley_ok(&env, &["cancel", &job]).await?;
    let fin = wait_for_job(&env, &job).await?;
    assert_eq!(
        (fin.state(), fin.code),
        ("cancelled", JOB_CANCELLED),
        "{}",
        fin.json
    );
    assert_eq!(fin.u64("ok") + fin.u64("cancelled"), 2_000, "{}", fin.json);
    stop(&mut w1).await?;
    stop(&mut w2).await?;
    env.cleanup().await?;
    Ok(())
}
