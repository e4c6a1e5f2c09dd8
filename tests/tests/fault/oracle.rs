//! The oracle run after every scenario: the job ends, every record is in the results exactly
//! once, the counters equal the records, the API saw every record and was called no more
//! often than the scenario allows, the queue is drained.

use std::collections::BTreeSet;
use std::time::Duration;
use volley_core::{JobId, Store};
use volley_tests::support::{describe, export};
use volley_tests::{ResultsCheck, TestEnv, check_results};

/// How many requests the API may have received beyond the attempts the results record.
/// Every scenario states its own: commits are idempotent, so a chunk processed twice
/// leaves the results exact and only the API's request counter shows the duplicate.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ApiBound {
    /// Nothing is redelivered: the API saw exactly the attempts the results record.
    Exact,
    /// Up to `n` requests more than the results record, for the reason given (records a
    /// killed or cut-off worker had already called when its chunks went back to the queue).
    AtMost(u64, &'static str),
    /// Up to `chunks` whole chunks of `size` records called again, for the reason given (a
    /// killed or stopped worker's held chunks): the ids the API saw more often than their
    /// results say must lie in at most that many chunks, so a healthy worker's duplicated
    /// chunk still shows when the slack would hide its requests.
    Chunks {
        chunks: u64,
        size: u64,
        why: &'static str,
    },
    /// [`ApiBound::Chunks`] for work cut off once, at `cut_ms` (ms since the epoch, the
    /// mock's clock): a worker killed or stopped then. An id called more often than its
    /// results say must have been called before the cut (by the worker cut off) and again
    /// after it, so a chunk a healthy worker called twice shows even among the held ones.
    CutChunks {
        chunks: u64,
        size: u64,
        cut_ms: u64,
        why: &'static str,
    },
}

/// Now, in ms since the epoch: the mock stamps arrivals on the same clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the oracle saw.
pub(crate) struct Verdict {
    pub(crate) status: serde_json::Value,
    pub(crate) results: ResultsCheck,
}

impl Verdict {
    pub(crate) fn u64(&self, key: &str) -> u64 {
        self.status[key].as_u64().unwrap_or(0)
    }
}

/// Waits until the job has done at least `records`, or fails after `within`.
pub(crate) async fn wait_done(
    env: &TestEnv,
    job: &str,
    records: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let store = env.store()?;
    let id = JobId::parse(job).map_err(anyhow::Error::msg)?;
    volley_tests::eventually(within, || async {
        let done = store
            .job_status(&id)
            .await
            .ok()
            .flatten()
            .map_or(0, |s| s.done);
        if done >= records {
            Ok(())
        } else {
            Err(format!(
                "job {job} reached only {done} of {records} records"
            ))
        }
    })
    .await
}

/// O1–O6: terminal within `within`, exactly-once results, exact counters, every record seen
/// by the API, nothing left on the queue, `dead` messages in the dead-letter queue, and the
/// API called no more than `api` allows.
pub(crate) async fn oracle(
    env: &TestEnv,
    job: &str,
    ids: &BTreeSet<String>,
    dead: u32,
    api: ApiBound,
    within: Duration,
) -> anyhow::Result<Verdict> {
    let out = tokio::time::timeout(
        within,
        env.run("volley", &["status", job, "--wait", "--json"]),
    )
    .await
    .map_err(|_| anyhow::anyhow!("O1: job {job} not terminal within {within:?}"))??;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("O1: status printed no JSON ({e}): {}", describe(&out)))?;
    let state = status["state"].as_str().unwrap_or_default();
    anyhow::ensure!(
        ["completed", "completed_with_failures", "failed"].contains(&state),
        "O1: job ended {state}"
    );
    let expected_code = if state == "failed" { 3 } else { 0 };
    anyhow::ensure!(
        out.status.code() == Some(expected_code),
        "O1: exit {:?} for {state}",
        out.status.code()
    );
    let results = check_results(&export(env, job, &[]).await?, ids)
        .map_err(|e| anyhow::anyhow!("O2: {e}"))?;
    let n = ids.len() as u64;
    let num = |k: &str| status[k].as_u64().unwrap_or(u64::MAX);
    anyhow::ensure!(
        num("total") == n && num("done") == n && num("ok") + num("failed") == n,
        "O3: counters {status} for {n} records"
    );
    anyhow::ensure!(
        results.ok() as u64 == num("ok"),
        "O3: {} ok lines, counter says {}",
        results.ok(),
        num("ok")
    );
    anyhow::ensure!(
        num("chunks_done") == num("total_chunks") + num("redrive_chunks"),
        "O3: chunks_done {status}"
    );
    let stats = env.mock.stats();
    let per_id = &stats.per_id;
    let unseen: Vec<&String> = results
        .lines
        .iter()
        .filter(|l| l.attempts > 0 && !per_id.contains_key(&l.id))
        .map(|l| &l.id)
        .take(5)
        .collect();
    anyhow::ensure!(unseen.is_empty(), "O5: the API never saw {unseen:?}");
    check_api_bound(&results, &stats, api)?;
    let counts = env.queue_counts().await?;
    anyhow::ensure!(
        counts.chunks_ready == 0 && counts.dead == dead,
        "O4: queue not drained: {counts:?} (expected {dead} dead letters)"
    );
    Ok(Verdict { status, results })
}

/// O6: the API's request counter against the attempts the results record (one per record
/// that was called once) plus what `api` allows. On a breach, names a few ids the API saw
/// more often than their results say.
pub(crate) fn check_api_bound(
    results: &ResultsCheck,
    stats: &volley_mockapi::Stats,
    api: ApiBound,
) -> anyhow::Result<()> {
    let attempts: u64 = results.lines.iter().map(|l| u64::from(l.attempts)).sum();
    let (allowed, why) = match api {
        ApiBound::Exact => (0, "nothing is redelivered"),
        ApiBound::AtMost(n, why) => (n, why),
        ApiBound::Chunks { chunks, size, why }
        | ApiBound::CutChunks {
            chunks, size, why, ..
        } => (chunks * size, why),
    };
    let repeated_lines: Vec<&volley_core::ResultLine> = results
        .lines
        .iter()
        .filter(|l| stats.per_id.get(&l.id).copied().unwrap_or(0) > u64::from(l.attempts))
        .collect();
    if let ApiBound::CutChunks { cut_ms, why, .. } = api {
        let not_cut: Vec<(&String, &[u64])> = repeated_lines
            .iter()
            .map(|l| {
                let times = stats
                    .per_id_times_ms
                    .get(&l.id)
                    .map_or(&[][..], Vec::as_slice);
                (&l.id, times)
            })
            .filter(|(_, times)| {
                !(times.iter().any(|t| *t <= cut_ms) && times.iter().any(|t| *t > cut_ms))
            })
            .take(5)
            .collect();
        anyhow::ensure!(
            not_cut.is_empty(),
            "O6: ids called more often than recorded, not before and after the cut at {cut_ms} ({why}): {not_cut:?}"
        );
    }
    if let ApiBound::Chunks { chunks, size, why }
    | ApiBound::CutChunks {
        chunks, size, why, ..
    } = api
    {
        // JSONL input without a header: line n is record n - 1.
        let repeated_chunks: BTreeSet<u64> = repeated_lines
            .iter()
            .map(|l| l.line.saturating_sub(1) / size)
            .collect();
        anyhow::ensure!(
            repeated_chunks.len() as u64 <= chunks,
            "O6: records of {} chunks were called more often than recorded, more than the \
             {chunks} allowed ({why}): chunks {repeated_chunks:?}",
            repeated_chunks.len()
        );
    }
    if stats.requests <= attempts + allowed {
        return Ok(());
    }
    let repeated: Vec<(&String, u64)> = repeated_lines
        .iter()
        .map(|l| (&l.id, stats.per_id.get(&l.id).copied().unwrap_or(0)))
        .collect();
    let most = repeated.iter().map(|(_, seen)| *seen).max().unwrap_or(0);
    anyhow::bail!(
        "O6: the API got {} requests for {attempts} recorded attempts, more than the {allowed} \
         extra allowed ({why}); {} ids seen more often than recorded (up to {most} times), \
         e.g. {:?}",
        stats.requests,
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    )
}
