//! The job's `concurrency.per_worker` bound while the worker holds many chunks.

use crate::support::{Harness, rec};
use std::time::Duration;

#[tokio::test]
async fn per_worker_bounds_requests_in_flight_across_prefetched_chunks() -> anyhow::Result<()> {
    let h = Harness::start(Default::default()).await?;
    let spec = h.spec("/users/{id}?delay_ms=30", "[concurrency]\nper_worker = 3\n");
    let chunks: Vec<_> = (0..12)
        .map(|c| vec![rec(&format!("r{c}a"), ""), rec(&format!("r{c}b"), "")])
        .collect();
    let job = h.publish(&spec, &chunks).await?;
    // The worker's own bound (64) and its prefetch (8 chunks, 16 records) are well above
    // the job's: only the job's bound can hold the API at 3.
    let worker = h.spawn(h.options());
    let status = h.until_ended(&job, Duration::from_secs(20)).await?;
    worker.stop().await?;

    assert_eq!(status.ok, 24, "{status:?}");
    assert_eq!(
        h.mock.stats().in_flight_max,
        3,
        "per_worker is the most at once, and is reached"
    );
    Ok(())
}
