//! Probe accounting (README "Circuit breaker"): a failed probe tells about the host, so it
//! does not spend an attempt of the record that carried it.

use crate::support::{Harness, eventually, rec};
use std::time::Duration;

#[tokio::test]
async fn a_failed_probe_does_not_spend_the_records_attempts() -> anyhow::Result<()> {
    let h = Harness::start(Default::default()).await?;
    let spec = h.spec(
        "/users/{id}",
        "[retry]\nmax_attempts = 2\nbase_delay = \"10ms\"\nmax_delay = \"20ms\"\n\
         [breaker]\nmin_calls = 2\nfailure_percent = 50\nwindow = \"10s\"\n\
         cooldown = \"100ms\"\nramp = \"100ms\"\nmax_wait = \"1m\"\n",
    );
    h.mock.set_outage(Some(503));
    let records: Vec<_> = ["a", "b", "c", "d"].iter().map(|id| rec(id, "")).collect();
    let job = h.publish(&spec, &[records]).await?;
    let worker = h.spawn(h.options());
    // Four first attempts fail and open the breaker; then three probes fail, one per
    // cool-down. With probes counted, the record carrying the first would have used up its
    // two attempts and failed.
    eventually(Duration::from_secs(10), || async {
        (h.mock.stats().requests >= 4 + 3).then_some(())
    })
    .await?;
    h.mock.set_outage(None);
    let status = h.until_ended(&job, Duration::from_secs(10)).await?;
    worker.stop().await?;

    assert_eq!((status.ok, status.failed), (4, 0), "{status:?}");
    assert!(
        status.retries >= 3,
        "the failed probes are counted as attempts in the results: {status:?}"
    );
    Ok(())
}
