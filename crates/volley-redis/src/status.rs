use std::collections::HashMap;
use volley_core::throughput::{Finished, RECENT_SECS, RecentSeconds};
use volley_core::{JobControls, JobState, JobStatus, StoreError};

fn num(map: &HashMap<String, String>, key: &str) -> Option<u64> {
    map.get(key).and_then(|v| v.parse().ok())
}

/// A state name as stored in a job's meta hash. Volley writes no other names: an unknown one
/// is data from another version or corrupt, and a store error naming the job and the value.
pub(crate) fn parse_state(job: &str, text: &str) -> Result<JobState, StoreError> {
    JobState::parse(text).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "job {job} has an unknown state '{}'",
            text.escape_default()
        ))
    })
}

/// The fields of the per-second ring, `s0` to `s119`, in the order [`recent_seconds`] reads.
pub(crate) fn ring_fields() -> Vec<String> {
    (0..RECENT_SECS).map(|slot| format!("s{slot}")).collect()
}

/// The ring's slots (`{second} {done} {failed}`) as seconds; slots not written yet, or
/// written by another version, are left out.
pub(crate) fn recent_seconds(slots: &[Option<String>]) -> RecentSeconds {
    let mut recent = RecentSeconds::default();
    for slot in slots.iter().flatten() {
        let mut parts = slot.split(' ').map(str::parse::<u64>);
        if let (Some(Ok(sec)), Some(Ok(done)), Some(Ok(failed))) =
            (parts.next(), parts.next(), parts.next())
        {
            recent.seconds.insert(sec, Finished { done, failed });
        }
    }
    recent
}

/// The per-minute buckets of the series hash (`m{minute}` → `{done} {failed}`), in order.
pub(crate) fn minutes(series: HashMap<String, String>) -> Vec<(u64, Finished)> {
    let mut out: Vec<(u64, Finished)> = series
        .into_iter()
        .filter_map(|(field, value)| {
            let minute = field.strip_prefix('m')?.parse().ok()?;
            let (done, failed) = value.split_once(' ')?;
            let finished = Finished {
                done: done.parse().ok()?,
                failed: failed.parse().ok()?,
            };
            Some((minute, finished))
        })
        .collect();
    out.sort_by_key(|(m, _)| *m);
    out
}

/// The meta fields holding a job's controls, in [`controls_of`]'s order.
pub(crate) const CONTROL_FIELDS: [&str; 4] =
    ["cancel_ms", "paused_ms", "limit_rate", "limit_concurrency"];

/// A job's controls from its meta fields ([`CONTROL_FIELDS`], absent or empty when unset).
pub(crate) fn controls_of(fields: &[Option<String>]) -> JobControls {
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(Option::as_deref)
            .filter(|v| !v.is_empty())
    };
    JobControls {
        cancel_ms: field(0).and_then(|v| v.parse().ok()),
        paused_ms: field(1).and_then(|v| v.parse().ok()),
        rate: field(2).and_then(|v| v.parse().ok()),
        concurrency: field(3).and_then(|v| v.parse().ok()),
    }
}

/// Builds a status from the job's meta and counters hashes.
///
/// # Errors
/// [`StoreError::Corrupt`] when the stored state is missing or not a state name.
pub(crate) fn job_status(
    job: &str,
    meta: &HashMap<String, String>,
    counters: &HashMap<String, String>,
) -> Result<JobStatus, StoreError> {
    let state = parse_state(job, meta.get("state").map_or("", String::as_str))?;
    let mut status = JobStatus {
        job: job.to_string(),
        name: meta.get("name").cloned().unwrap_or_default(),
        state,
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
        retention_secs: num(meta, "retention_secs").unwrap_or(0),
        done: num(counters, "done").unwrap_or(0),
        ok: num(counters, "ok").unwrap_or(0),
        failed: num(counters, "failed").unwrap_or(0),
        cancelled: num(counters, "cancelled").unwrap_or(0),
        controls: controls_of(&CONTROL_FIELDS.map(|f| meta.get(f).cloned())),
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
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: Option<&str>) -> HashMap<String, String> {
        let mut meta = HashMap::from([("name".to_string(), "enrich".to_string())]);
        if let Some(state) = state {
            meta.insert("state".into(), state.into());
        }
        meta
    }

    #[test]
    fn a_stored_state_name_is_parsed_once() {
        let status = job_status(
            "j-1",
            &meta(Some("completed_with_failures")),
            &HashMap::new(),
        )
        .expect("a known state");
        assert_eq!(status.state, JobState::CompletedWithFailures);
    }

    #[test]
    fn an_unknown_or_missing_stored_state_is_a_store_error_naming_job_and_value() {
        let err = job_status("j-1", &meta(Some("paused")), &HashMap::new())
            .expect_err("an unknown state");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("j-1") && text.contains("'paused'"), "{text}");
        let err = job_status("j-1", &meta(None), &HashMap::new()).expect_err("a missing state");
        assert!(err.to_string().contains("j-1"), "{err}");
    }
}
