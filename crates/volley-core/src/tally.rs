//! Per-chunk counter deltas and the latency histogram, summed by the atomic commit into the
//! job's counters. A dashboard reads the same fields.

use crate::RecordOutcome;
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

/// What one chunk adds to its job's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkTally {
    /// Records with an outcome.
    pub done: u64,
    /// Succeeded.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Sum of last-attempt latencies.
    pub latency_sum_ms: u64,
    /// Records per last HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Failed records per error kind.
    pub by_error: BTreeMap<&'static str, u64>,
    /// Records per latency bucket (requests only).
    pub latency: BTreeMap<u32, u64>,
}

impl ChunkTally {
    /// Tallies a chunk's outcomes.
    pub fn of(outcomes: &[RecordOutcome]) -> Self {
        let mut t = ChunkTally::default();
        for o in outcomes {
            t.done += 1;
            match &o.error {
                None => t.ok += 1,
                Some(e) => {
                    t.failed += 1;
                    *t.by_error.entry(e.kind.as_str()).or_default() += 1;
                }
            }
            t.retries += u64::from(o.attempts.saturating_sub(1));
            if let Some(s) = o.status {
                *t.by_status.entry(s).or_default() += 1;
            }
            if o.attempts > 0 {
                t.latency_sum_ms += u64::from(o.latency_ms);
                *t.latency.entry(latency_bucket(o.latency_ms)).or_default() += 1;
            }
        }
        t
    }

    /// The counter fields and deltas, as the store's hash holds them: `done`, `ok`, `failed`,
    /// `retries`, `latency_sum_ms`, `s:<status>`, `e:<kind>`, `h:<bucket>`.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut out = vec![
            ("done".to_string(), self.done),
            ("ok".to_string(), self.ok),
            ("failed".to_string(), self.failed),
            ("retries".to_string(), self.retries),
            ("latency_sum_ms".to_string(), self.latency_sum_ms),
        ];
        out.extend(self.by_status.iter().map(|(s, n)| (format!("s:{s}"), *n)));
        out.extend(self.by_error.iter().map(|(k, n)| (format!("e:{k}"), *n)));
        out.extend(self.latency.iter().map(|(b, n)| (format!("h:{b}"), *n)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
