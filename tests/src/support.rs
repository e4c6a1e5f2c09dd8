//! Helpers both test binaries use: waiting on `volley status --wait --json` and on
//! `volley workers --json`, exporting results, signals, a worker's exit and its exit line.

use crate::{TestEnv, eventually_every};
use anyhow::Context as _;
use std::process::Output;
use std::time::Duration;

/// The final figures of `volley status --wait --json`.
pub struct Final {
    pub code: i32,
    pub json: serde_json::Value,
}

impl Final {
    pub fn u64(&self, key: &str) -> u64 {
        self.json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("status has no {key}: {}", self.json))
    }
    pub fn state(&self) -> &str {
        self.json["state"].as_str().unwrap_or("")
    }
}

pub async fn wait_for_job(env: &TestEnv, job: &str) -> anyhow::Result<Final> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        env.run("volley", &["status", job, "--wait", "--json"]),
    )
    .await??;
    let json = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("status --json printed no JSON ({e}): {}", describe(&out)))?;
    Ok(Final {
        code: out.status.code().unwrap_or(-1),
        json,
    })
}

pub async fn export(env: &TestEnv, job: &str, extra: &[&str]) -> anyhow::Result<String> {
    let path = env.path(&format!("{job}.results.jsonl"));
    let path_s = path.to_str().unwrap_or_default().to_string();
    let mut args = vec!["results", job, "--out", &path_s];
    args.extend_from_slice(extra);
    let out = env.run("volley", &args).await?;
    anyhow::ensure!(out.status.success(), "results failed: {}", describe(&out));
    Ok(std::fs::read_to_string(path)?)
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub async fn wait_exit(
    child: &mut tokio::process::Child,
    within: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    Ok(tokio::time::timeout(within, child.wait()).await??)
}

/// The usual end of a test: `worker` (idle, with `--exit-when-idle`) leaves with exit 0
/// within `within`. What the API saw is the test's own assertion, after this.
///
/// # Errors
/// When the worker has not exited within `within`.
pub async fn finish_ok(worker: &mut tokio::process::Child, within: Duration) -> anyhow::Result<()> {
    let status = wait_exit(worker, within)
        .await
        .with_context(|| format!("the worker did not exit within {within:?}"))?;
    assert!(status.success(), "the worker exits 0, got {status}");
    Ok(())
}

/// Sends `signal` (`-INT`, `-TERM`) to a process.
pub fn send_signal(signal: &str, pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
    Ok(())
}

/// `GET path` on `addr` over a plain connection (no client of its own to trust): the status
/// code and the body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let (code, _, body) = http_get_with_head(addr, path).await?;
    Ok((code, body))
}

/// As [`http_get`], with the response's head (status line and headers) too.
pub async fn http_get_with_head(addr: &str, path: &str) -> anyhow::Result<(u16, String, String)> {
    http_request(addr, "GET", path, &[], "").await
}

/// One HTTP/1.1 request with `headers` and `body` over a plain connection: the status code,
/// the head and the body of the answer.
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP answer: {answer:?}"))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status line: {head:?}"))?;
    Ok((code, head.to_string(), body.to_string()))
}

/// Polls the mock until it has seen at least `n` requests.
pub async fn wait_for_requests(env: &TestEnv, n: u64, within: Duration) -> anyhow::Result<()> {
    eventually_every(within, Duration::from_millis(20), || async {
        let seen = env.mock.stats().requests;
        if seen >= n {
            Ok(())
        } else {
            Err(format!("the API saw {seen} requests, not {n}"))
        }
    })
    .await
}

/// The records a worker reports having done in its exit line (`worker stopped chunks=N
/// records=M`), read from its log; `None` when it never wrote that line.
pub fn records_done_in_log(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("worker stopped"))?;
    let (_, after) = line.split_once(" records=")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Asserts that the worker whose log is `label.log` did records (its exit line counts more
/// than 0), so a check that needs every worker busy cannot pass with an idle one.
pub fn assert_worker_did_records(env: &TestEnv, label: &str) -> anyhow::Result<u64> {
    let log = std::fs::read_to_string(env.path(&format!("{label}.log")))?;
    let done = records_done_in_log(&log);
    assert!(
        done.is_some_and(|n| n > 0),
        "{label} did no records (exit line: {done:?}):\n{log}"
    );
    Ok(done.unwrap_or_default())
}

/// `volley workers --json`: one object per worker the fleet knows of.
pub async fn workers(env: &TestEnv) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = env.run("volley", &["workers", "--json"]).await?;
    anyhow::ensure!(out.status.success(), "workers: {}", describe(&out));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Waits until `volley workers` lists every one of `names` (each has sent a heartbeat, so
/// it is connected and consuming).
pub async fn wait_workers(env: &TestEnv, names: &[&str]) -> anyhow::Result<()> {
    wait_worker(env, names, |_| true, Duration::from_secs(15)).await
}

/// Waits until every worker of `names` is listed with a heartbeat for which `holds` is true
/// (e.g. `chunks_held > 0`), or fails after `within`.
pub async fn wait_worker(
    env: &TestEnv,
    names: &[&str],
    holds: impl Fn(&serde_json::Value) -> bool,
    within: Duration,
) -> anyhow::Result<()> {
    eventually_every(within, Duration::from_millis(100), || async {
        let listed = workers(env).await?;
        let ready = |name: &&str| listed.iter().any(|w| w["id"] == **name && holds(w));
        if names.iter().all(ready) {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "workers {names:?} not listed as expected: {listed:?}"
            ))
        }
    })
    .await
}
