use std::collections::HashMap;
use volley_core::JobStatus;

fn num(map: &HashMap<String, String>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// Builds a status from the job's meta and counters hashes.
pub(crate) fn job_status(
    job: &str,
    meta: &HashMap<String, String>,
    counters: &HashMap<String, String>,
) -> JobStatus {
    let mut status = JobStatus {
        job: job.to_string(),
        name: meta.get("name").cloned().unwrap_or_default(),
        state: meta.get("state").cloned().unwrap_or_default(),
        total: num(meta, "total_records"),
        total_chunks: num(meta, "total_chunks"),
        published_chunks: num(meta, "published_chunks").unwrap_or(0),
        redrive_chunks: num(meta, "redrive_chunks").unwrap_or(0),
        published_records: num(meta, "published_records").unwrap_or(0),
        tolerated_failure_percent: meta
            .get("tolerated")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        created_ms: num(meta, "created_ms").unwrap_or(0),
        finished_ms: num(meta, "finished_ms"),
        error: meta.get("error").cloned(),
        input: meta.get("input").cloned().unwrap_or_default(),
        done: num(counters, "done").unwrap_or(0),
        ok: num(counters, "ok").unwrap_or(0),
        failed: num(counters, "failed").unwrap_or(0),
        retries: num(counters, "retries").unwrap_or(0),
        chunks_done: num(counters, "chunks_done").unwrap_or(0),
        latency_sum_ms: num(counters, "latency_sum_ms").unwrap_or(0),
        first_commit_ms: num(counters, "first_commit_ms"),
        last_commit_ms: num(counters, "last_commit_ms"),
        ..JobStatus::default()
    };
    for (field, value) in counters {
        // A redrive can take a status or error kind back to zero: leave those out.
        let Ok(n @ 1..) = value.parse::<u64>() else {
            continue;
        };
        if let Some(code) = field.strip_prefix("s:") {
            status.by_status.insert(code.to_string(), n);
        } else if let Some(kind) = field.strip_prefix("e:") {
            status.by_error.insert(kind.to_string(), n);
        } else if let Some(bucket) = field.strip_prefix("h:").and_then(|b| b.parse().ok()) {
            status.latency.insert(bucket, n);
        }
    }
    status
}
