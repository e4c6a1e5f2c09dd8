//! Per-chunk counter deltas and the latency histogram, summed by the atomic commit into the
//! job's counters. A dashboard reads the same fields.

use crate::{ErrorKind, RecordOutcome, ResultLine};
use std::collections::BTreeMap;

/// Histogram bucket growth: each bucket is about 10% wider than the last, so a percentile read
/// from the buckets is within 10% of the true value whatever the scale.
const GROWTH: f64 = 1.1;

/// The histogram bucket holding a latency.
pub fn latency_bucket(ms: u32) -> u32 {
    if ms == 0 {
        return 0;
    }
    // The result is small (under 300 for any u32), so the cast cannot truncate.
    ((f64::from(ms)).ln() / GROWTH.ln()).ceil() as u32 + 1
}

/// The upper bound of a bucket, in milliseconds.
pub fn bucket_upper_ms(bucket: u32) -> f64 {
    if bucket == 0 {
        return 0.0;
    }
    GROWTH.powi(i32::try_from(bucket - 1).unwrap_or(i32::MAX))
}

/// Reads a percentile (0–100) from bucket counts.
pub fn percentile_ms(buckets: &BTreeMap<u32, u64>, percent: f64) -> Option<f64> {
    let total: u64 = buckets.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((percent / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in buckets {
        seen += count;
        if seen >= rank {
            return Some(bucket_upper_ms(*bucket));
        }
    }
    buckets.keys().last().map(|b| bucket_upper_ms(*b))
}

/// What one chunk adds to its job's counters. Signed: a redriven record takes its old
/// outcome out of the counters as it puts its new one in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkTally {
    /// Records with an outcome.
    pub done: i64,
    /// Succeeded.
    pub ok: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled before sending (`volley cancel`): neither ok nor failed.
    pub cancelled: i64,
    /// Attempts beyond the first (never taken back: they were made).
    pub retries: i64,
    /// Sum of last-attempt latencies.
    pub latency_sum_ms: i64,
    /// Records per last HTTP status.
    pub by_status: BTreeMap<u16, i64>,
    /// Failed records per error kind.
    pub by_error: BTreeMap<&'static str, i64>,
    /// Records per latency bucket (requests only).
    pub latency: BTreeMap<u32, i64>,
}

impl ChunkTally {
    /// Tallies a chunk's outcomes.
    pub fn of(outcomes: &[RecordOutcome]) -> Self {
        let mut t = ChunkTally::default();
        for o in outcomes {
            t.add(
                o.error.as_ref().map(|e| e.kind),
                o.status,
                o.attempts,
                o.latency_ms,
                1,
            );
            t.retries += i64::from(o.attempts.saturating_sub(1));
        }
        t
    }

    /// Takes a record's earlier outcome out of the counters (its retries stay counted).
    pub fn remove(&mut self, old: &ResultLine) {
        let kind = if old.ok {
            None
        } else {
            Some(old.error_kind().unwrap_or(ErrorKind::Request))
        };
        self.add(kind, old.status, old.attempts, old.latency_ms, -1);
    }

    fn add(
        &mut self,
        error: Option<ErrorKind>,
        status: Option<u16>,
        attempts: u32,
        latency_ms: u32,
        sign: i64,
    ) {
        self.done += sign;
        match error {
            None => self.ok += sign,
            Some(ErrorKind::Cancelled) => self.cancelled += sign,
            Some(kind) => {
                self.failed += sign;
                *self.by_error.entry(kind.as_str()).or_default() += sign;
            }
        }
        if let Some(s) = status {
            *self.by_status.entry(s).or_default() += sign;
        }
        if attempts > 0 {
            self.latency_sum_ms += sign * i64::from(latency_ms);
            *self.latency.entry(latency_bucket(latency_ms)).or_default() += sign;
        }
    }

    /// The counter fields and deltas, as the store's hash holds them: `done`, `ok`, `failed`,
    /// `cancelled`, `retries`, `latency_sum_ms`, `s:<status>`, `e:<kind>`, `h:<bucket>`. Zero deltas are
    /// left out.
    pub fn fields(&self) -> Vec<(String, i64)> {
        let mut out = vec![
            ("done".to_string(), self.done),
            ("ok".to_string(), self.ok),
            ("failed".to_string(), self.failed),
            ("cancelled".to_string(), self.cancelled),
            ("retries".to_string(), self.retries),
            ("latency_sum_ms".to_string(), self.latency_sum_ms),
        ];
        out.extend(self.by_status.iter().map(|(s, n)| (format!("s:{s}"), *n)));
        out.extend(self.by_error.iter().map(|(k, n)| (format!("e:{k}"), *n)));
        out.extend(self.latency.iter().map(|(b, n)| (format!("h:{b}"), *n)));
        out.retain(|(_, n)| *n != 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecordError, decode_chunk_results, encode_chunk_results};

    #[test]
    fn a_redriven_outcome_takes_the_old_one_out_and_keeps_its_retries() {
        let old = RecordOutcome {
            id: "r".into(),
            line: 1,
            status: Some(503),
            attempts: 3,
            latency_ms: 40,
            error: Some(RecordError {
                kind: ErrorKind::Status,
                message: "HTTP 503".into(),
            }),
            body: None,
        };
        let line = decode_chunk_results(0, &encode_chunk_results(std::slice::from_ref(&old)))
            .unwrap()
            .remove(0);
        let new = RecordOutcome {
            status: Some(200),
            attempts: 1,
            latency_ms: 10,
            error: None,
            ..old.clone()
        };
        let mut t = ChunkTally::of(&[new]);
        t.remove(&line);
        let fields: BTreeMap<String, i64> = t.fields().into_iter().collect();
        assert_eq!(fields.get("done"), None, "still one record");
        assert_eq!(fields["ok"], 1);
        assert_eq!(fields["failed"], -1);
        assert_eq!(fields["s:503"], -1);
        assert_eq!(fields["s:200"], 1);
        assert_eq!(fields["e:status"], -1);
        assert_eq!(fields["latency_sum_ms"], -30);
        assert_eq!(fields.get("retries"), None, "the old attempts were made");
    }

    #[test]
    fn a_cancelled_record_is_neither_ok_nor_failed_and_its_redrive_takes_it_back() {
        let cancelled = RecordOutcome {
            id: "r".into(),
            line: 1,
            status: None,
            attempts: 0,
            latency_ms: 0,
            error: Some(RecordError {
                kind: ErrorKind::Cancelled,
                message: "job cancelled".into(),
            }),
            body: None,
        };
        let fields: BTreeMap<String, i64> = ChunkTally::of(std::slice::from_ref(&cancelled))
            .fields()
            .into_iter()
            .collect();
        assert_eq!(
            fields,
            BTreeMap::from([("done".to_string(), 1), ("cancelled".to_string(), 1)]),
            "no failure, no error kind, no latency: it was never sent"
        );
        let line = decode_chunk_results(0, &encode_chunk_results(std::slice::from_ref(&cancelled)))
            .unwrap()
            .remove(0);
        assert!(line.cancelled() && !line.ok);
        let ok = RecordOutcome {
            status: Some(200),
            attempts: 1,
            latency_ms: 5,
            error: None,
            ..cancelled
        };
        let mut redrive = ChunkTally::of(&[ok]);
        redrive.remove(&line);
        assert_eq!(
            (redrive.done, redrive.ok, redrive.cancelled, redrive.failed),
            (0, 1, -1, 0)
        );
    }

    #[test]
    fn percentiles_are_within_ten_percent() {
        let mut buckets = BTreeMap::new();
        for ms in 1..=1000u32 {
            *buckets.entry(latency_bucket(ms)).or_default() += 1;
        }
        let p50 = percentile_ms(&buckets, 50.0).unwrap();
        let p99 = percentile_ms(&buckets, 99.0).unwrap();
        assert!((500.0..=550.0).contains(&p50), "p50 {p50}");
        assert!((990.0..=1090.0).contains(&p99), "p99 {p99}");
        assert!(bucket_upper_ms(latency_bucket(37)) >= 37.0);
    }
}
