//! T27: Redis forgets its last seconds after RabbitMQ saw those chunks acked (an older copy
//! of its data restored, which is what an fsync lost to an OS crash looks like). The job
//! must not report success; `volley status` names the missing chunks and
//! `volley-producer --job-id JOB --missing` publishes them again from the input.

use crate::oracle::{ApiBound, oracle, wait_done};
use std::process::Command;
use std::time::Duration;
use volley_tests::private::PrivateRedis;
use volley_tests::support::{describe, wait_exit};
use volley_tests::{TestEnv, write_jsonl};

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {sig} {pid} failed");
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status()?;
    anyhow::ensure!(status.success(), "cp -a {} failed", from.display());
    Ok(())
}

#[tokio::test]
async fn chunks_acked_then_forgotten_by_redis_are_reported_and_republished() -> anyhow::Result<()> {
    let mut pr = PrivateRedis::start(&[])?;
    let env = TestEnv::new().await?.with_servers(None, Some(pr.url()));
    let input = env.path("records.jsonl");
    let ids = write_jsonl(&input, 10_000)?;
    let spec = env.write_spec(
        "amnesia",
        "/users/{id}?delay_ms=5",
        "[result]\nbody = \"none\"\n[concurrency]\nper_worker = 32\n",
    )?;
    let job = env.produce(&spec, &input, &[]).await?;
    let worker_args = ["--prefetch", "2", "--exit-when-idle", "3s"];
    let mut w1 = env.spawn_worker("w1", &worker_args)?;
    let mut w2 = env.spawn_worker("w2", &worker_args)?;
    wait_done(&env, &job, 2_500, Duration::from_secs(60)).await?;

    // Snapshot the data directory while Redis is frozen, let more commits land (and their
    // chunks be acked), then crash it and bring it back from the snapshot.
    let pid = pr
        .pid()
        .ok_or_else(|| anyhow::anyhow!("private Redis not running"))?;
    let snapshot = pr.dir.with_extension("snap");
    signal(pid, "-STOP")?;
    let copied = copy_dir(&pr.dir, &snapshot);
    signal(pid, "-CONT")?;
    copied?;
    wait_done(&env, &job, 5_000, Duration::from_secs(60)).await?;
    pr.kill();
    std::fs::remove_dir_all(&pr.dir)?;
    std::fs::rename(&snapshot, &pr.dir)?;
    pr.restart()?;

    // The workers finish the queue and leave; the chunks acked in the lost window never
    // come back, so the job cannot finish, and `status --wait` says why.
    for w in [&mut w1, &mut w2] {
        assert!(wait_exit(w, Duration::from_secs(120)).await?.success());
    }
    let out = env
        .run("volley", &["status", &job, "--wait", "--timeout", "120s"])
        .await?;
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("missing") && text.contains("--missing"),
        "{text}"
    );
    let out = env.run("volley", &["status", &job, "--json"]).await?;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        status["state"], "running",
        "not reported as finished: {status}"
    );
    let missing = status["missing_chunks"].as_array().map_or(0, Vec::len);
    assert!(missing > 0, "missing chunks listed: {status}");
    let done = status["chunks_done"].as_u64().unwrap_or(0);
    assert_eq!(
        done + missing as u64,
        100,
        "every other chunk is committed: {status}"
    );
    let republish = [
        "--spec",
        spec.to_str().unwrap_or_default(),
        "--input",
        input.to_str().unwrap_or_default(),
        "--job-id",
        &job,
        "--missing",
    ];

    let out = env.run("volley-producer", &republish).await?;
    assert!(out.status.success(), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("republished {missing} missing chunks")),
        "{said}"
    );
    let mut w3 = env.spawn_worker("w3", &worker_args)?;
    // The records of the chunks Redis forgot were called once before the loss and once
    // more after `--missing` (the results keep only the second): `missing` chunks of 100.
    let lost = ApiBound::Chunks {
        chunks: missing as u64,
        size: 100,
        why: "the forgotten chunks, called again after --missing",
    };
    let verdict = oracle(&env, &job, &ids, 0, lost, Duration::from_secs(120)).await?;
    assert_eq!(verdict.status["state"], "completed");
    assert_eq!(verdict.u64("ok"), 10_000);
    assert!(wait_exit(&mut w3, Duration::from_secs(60)).await?.success());

    // Nothing is missing any more: a second run publishes nothing.
    let out = env.run("volley-producer", &republish).await?;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing published"));
    Ok(())
}
