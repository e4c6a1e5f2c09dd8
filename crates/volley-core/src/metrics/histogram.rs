//! A histogram of durations kept in atomics: `prometheus-client`'s own histogram takes a
//! mutex on every observation, and this one is observed once per request on every worker
//! thread at once.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts of durations per bucket (upper bounds in seconds), their sum and their count;
/// clones share them (the registry keeps one to encode).
#[derive(Debug, Clone)]
pub(crate) struct DurationHistogram {
    inner: Arc<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    bounds: &'static [f64],
    /// One per bound, then the `+Inf` bucket; not cumulative (the encoder adds them up).
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        let inner = Arc::new(Buckets {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        });
        Self { inner }
    }

    pub(crate) fn observe(&self, took: Duration) {
        let this = &self.inner;
        let seconds = took.as_secs_f64();
        let slot = this
            .bounds
            .iter()
            .position(|&upper| seconds <= upper)
            .unwrap_or(this.bounds.len());
        if let Some(bucket) = this.buckets.get(slot) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        this.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let this = &self.inner;
        let buckets: Vec<(f64, u64)> = this
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(this.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // Read apart from the buckets: a scrape during traffic may see a count and a sum a
        // request or two apart, as with any lock-free histogram.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = Duration::from_nanos(this.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let histogram = DurationHistogram::new(&[0.1, 1.0]);
        histogram.observe(Duration::from_millis(100));
        histogram.observe(Duration::from_millis(500));
        histogram.observe(Duration::from_secs(3));
        let counts: Vec<u64> = histogram
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, [1, 1, 1]);
        assert_eq!(
            histogram.inner.sum_nanos.load(Ordering::Relaxed),
            3_600_000_000
        );
    }
}
