//! `volley retry`: failed records go out again as redrive chunks, and their new outcomes
//! replace the old ones where those are stored, so every record is counted once, as its
//! latest outcome.
//!
//! A round is registered in the store before its chunks are published and closed after
//! the last confirm; a round cut off in between is found and finished by the next call.

use crate::outcome::chunk_rows;
use crate::{
    Broker, BrokerError, CHUNK_FORMAT_VERSION, ChunkMessage, ChunkRecord, ErrorKind, FailedInput,
    JobId, JobState, OutgoingChunk, Redo, ResultLine, Store, StoreError, decode_row,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Chunks registered and published per store call.
const BATCH_CHUNKS: usize = 100;

/// Which failures to send again: all, or only some kinds and statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveFilter {
    kinds: Vec<ErrorKind>,
    statuses: Vec<u16>,
}

impl FromStr for RedriveFilter {
    type Err = String;

    /// `status=503,timeout,connect`: error kinds, or `status=CODE` for one HTTP status.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut filter = RedriveFilter::default();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if let Some(code) = token.strip_prefix("status=") {
                let code: u16 = code
                    .parse()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| format!("'{token}': status must be an HTTP code, 100-599"))?;
                filter.statuses.push(code);
            } else {
                let kind = ErrorKind::parse(token).ok_or_else(|| {
                    format!(
                        "'{token}' is not an error kind (timeout, connect, dns, tls, status, \
                         status=CODE, body_too_large, decode, template, redirect, request, \
                         panic, breaker, poison, cancelled)"
                    )
                })?;
                filter.kinds.push(kind);
            }
        }
        if filter.kinds.is_empty() && filter.statuses.is_empty() {
            return Err("--only needs at least one error kind or status=CODE".into());
        }
        Ok(filter)
    }
}

impl RedriveFilter {
    /// Only failures of these kinds.
    pub fn kinds(kinds: &[ErrorKind]) -> Self {
        RedriveFilter {
            kinds: kinds.to_vec(),
            statuses: Vec::new(),
        }
    }

    /// Whether a failed result line is selected.
    pub fn matches(&self, line: &ResultLine) -> bool {
        if line.ok {
            return false;
        }
        if self.kinds.is_empty() && self.statuses.is_empty() {
            return true;
        }
        let kind = line.error_kind();
        kind.is_some_and(|k| self.kinds.contains(&k))
            || (kind == Some(ErrorKind::Status)
                && line.status.is_some_and(|s| self.statuses.contains(&s)))
    }
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RedriveReport {
    /// Records sent again.
    pub records: u64,
    /// Redrive chunks published.
    pub chunks: u64,
    /// Chunks of an interrupted earlier round published again.
    pub resumed_chunks: u64,
    /// The job's state afterwards.
    pub state: JobState,
}

/// Why a redrive stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// The store failed or refused (e.g. the job is still running).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing failed; the round stays open and the next `volley retry` finishes it.
    #[error("{0}; run volley retry again to finish publishing")]
    Broker(#[from] BrokerError),
}

/// Sends a job's failed records (those `filter` selects) again in chunks of `chunk_size`.
///
/// # Errors
/// [`RedriveError`]; nothing is lost: a round cut off is finished by the next call.
pub async fn redrive<S: Store, B: Broker>(
    store: &S,
    broker: &B,
    job: &JobId,
    filter: &RedriveFilter,
    chunk_size: usize,
    now_ms: u64,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport {
        records: 0,
        chunks: 0,
        resumed_chunks: 0,
        state: JobState::default(),
    };
    let pending = store.pending_redrive(job).await?;
    if !pending.is_empty() {
        let mut batch = Vec::new();
        for (index, records) in pending {
            if !store.is_committed(job, index).await? {
                batch.push(outgoing(job, index, &records));
            }
        }
        report.resumed_chunks = batch.len() as u64;
        broker.publish_confirmed(batch).await?;
        report.state = store.end_redrive(job, now_ms).await?;
        return Ok(report);
    }
    let selected = select(store, job, filter).await?;
    if selected.is_empty() {
        // As every other store call of a redrive does, an unknown job is a conflict.
        report.state = store
            .job_status(job)
            .await?
            .map(|s| s.state)
            .ok_or_else(|| StoreError::Conflict(format!("unknown job {job}")))?;
        return Ok(report);
    }
    report.records = selected.len() as u64;
    let chunks: Vec<Vec<u8>> = selected
        .chunks(chunk_size.max(1))
        // A Vec of records serializes without fail.
        .map(|records| serde_json::to_vec(records).unwrap_or_default())
        .collect();
    for batch in chunks.chunks(BATCH_CHUNKS) {
        let first = store.add_redrive_chunks(job, batch, now_ms).await?;
        let outgoing: Vec<OutgoingChunk> = batch
            .iter()
            .zip(first..)
            .map(|(records, index)| outgoing(job, index, records))
            .collect();
        report.chunks += outgoing.len() as u64;
        broker.publish_confirmed(outgoing).await?;
    }
    report.state = store.end_redrive(job, now_ms).await?;
    Ok(report)
}

/// The failed records to send, with where their outcomes live, in input order.
async fn select<S: Store>(
    store: &S,
    job: &JobId,
    filter: &RedriveFilter,
) -> Result<Vec<ChunkRecord>, StoreError> {
    let mut inputs: Vec<FailedInput> = Vec::new();
    let mut cursor = 0;
    loop {
        let (next, page) = store.failed_inputs(job, cursor).await?;
        inputs.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    inputs.sort_by_key(|i| (i.chunk, i.pos));
    let mut rows: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut out = Vec::new();
    for input in inputs {
        if !rows.contains_key(&input.chunk) {
            let stored = store
                .chunk_results(job, input.chunk..input.chunk + 1)
                .await?
                .pop()
                .flatten()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("no stored results for chunk {}", input.chunk))
                })?;
            let parsed =
                chunk_rows(input.chunk, &stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // Chunks are visited in order: earlier ones are no longer needed.
            rows.clear();
            rows.insert(input.chunk, parsed);
        }
        let Some(row) = rows
            .get(&input.chunk)
            .and_then(|r| r.get(usize::try_from(input.pos).unwrap_or(usize::MAX)))
        else {
            return Err(StoreError::Corrupt(format!(
                "chunk {} has no record at position {}",
                input.chunk, input.pos
            )));
        };
        let Some(line) = decode_row(row) else {
            return Err(StoreError::Corrupt(format!("bad row {row}")));
        };
        if !filter.matches(&line) {
            continue;
        }
        let mut record: ChunkRecord = serde_json::from_slice(&input.input)
            .map_err(|e| StoreError::Corrupt(format!("kept input of {}: {e}", line.id)))?;
        record.redo = Some(Redo {
            chunk: input.chunk,
            pos: input.pos,
            was: row.clone(),
        });
        out.push(record);
    }
    Ok(out)
}

fn outgoing(job: &JobId, index: u64, records: &[u8]) -> OutgoingChunk {
    let mut payload = Vec::with_capacity(records.len() + 64);
    payload.extend_from_slice(
        format!("{{\"v\":{CHUNK_FORMAT_VERSION},\"job\":\"{job}\",\"chunk\":{index},\"records\":")
            .as_bytes(),
    );
    payload.extend_from_slice(records);
    payload.push(b'}');
    OutgoingChunk {
        job: job.clone(),
        message_id: ChunkMessage::message_id(job, index),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryBroker, MemoryStore};

    fn line(error: Option<&str>, status: Option<u16>) -> ResultLine {
        ResultLine {
            id: "r".into(),
            line: 1,
            ok: error.is_none(),
            status,
            attempts: 1,
            latency_ms: 1,
            error: error.map(str::to_string),
            body: None,
        }
    }

    #[test]
    fn filters_select_kinds_and_statuses() {
        let f: RedriveFilter = "status=503, timeout".parse().unwrap();
        assert!(f.matches(&line(Some("status: HTTP 503"), Some(503))));
        assert!(!f.matches(&line(Some("status: HTTP 500"), Some(500))));
        assert!(f.matches(&line(Some("timeout: after 5s"), None)));
        assert!(!f.matches(&line(Some("connect: refused"), None)));
        assert!(!f.matches(&line(None, Some(200))));
        let all = RedriveFilter::default();
        assert!(all.matches(&line(Some("connect: refused"), None)));
        assert!(!all.matches(&line(None, Some(200))));
        let any_status: RedriveFilter = "status".parse().unwrap();
        assert!(any_status.matches(&line(Some("status: HTTP 500"), Some(500))));
    }

    #[test]
    fn bad_filters_name_the_token() {
        let e = "timeout,slow".parse::<RedriveFilter>().unwrap_err();
        assert!(e.starts_with("'slow' is not an error kind"), "{e}");
        let e = "status=99".parse::<RedriveFilter>().unwrap_err();
        assert!(e.contains("HTTP code"), "{e}");
        assert!("".parse::<RedriveFilter>().is_err());
    }

    #[test]
    fn a_report_prints_its_state_by_name() {
        let report = RedriveReport {
            records: 2,
            chunks: 1,
            resumed_chunks: 0,
            state: JobState::Running,
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"records":2,"chunks":1,"resumed_chunks":0,"state":"running"}"#
        );
    }

    #[tokio::test]
    async fn a_redrive_of_an_unknown_job_is_a_conflict() {
        let (store, broker) = (MemoryStore::new(), MemoryBroker::new());
        let job = JobId::parse("no-such-job").unwrap();
        let result = redrive(&store, &broker, &job, &RedriveFilter::default(), 10, 0).await;
        assert!(
            matches!(&result, Err(RedriveError::Store(StoreError::Conflict(m))) if m.contains("no-such-job")),
            "{result:?}"
        );
    }
}
