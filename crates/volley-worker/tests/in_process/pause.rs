//! The fleet-wide pause of a `Retry-After` (README "Fleet-wide backoff"): after a 429 with
//! `Retry-After: 1`, no request reaches the host for that second, from any record.

use crate::support::{Harness, rec};
use std::time::Duration;
use volley_mockapi::MockConfig;

#[tokio::test]
async fn retry_after_pauses_every_record_of_the_host() -> anyhow::Result<()> {
    let h = Harness::start(MockConfig {
        track_times: true,
        ..MockConfig::default()
    })
    .await?;
    // `fail_first=0` never fails: only record `a` gets the 429.
    let spec = h.spec(
        "/users/{id}?fail_first={ff}&status=429&retry_after=1",
        "[concurrency]\nper_worker = 1\n[retry]\nbase_delay = \"10ms\"\n",
    );
    let records: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| rec(id, if *id == "a" { "\"ff\":1" } else { "\"ff\":0" }))
        .collect();
    let job = h.publish(&spec, &[records]).await?;
    let worker = h.spawn(h.options());
    let status = h.until_ended(&job, Duration::from_secs(10)).await?;
    worker.stop().await?;

    assert_eq!((status.ok, status.retries), (5, 1), "{status:?}");
    let stats = h.mock.stats();
    let [refused] = stats.failures_ms[..] else {
        anyhow::bail!("one 429 expected: {stats:?}");
    };
    let at = stats
        .times_ms
        .iter()
        .rposition(|t| *t == refused)
        .unwrap_or_default();
    let during: Vec<_> = stats.times_ms[at + 1..]
        .iter()
        .filter(|t| **t < refused + 1000)
        .collect();
    assert!(
        during.is_empty(),
        "requests within the second after the 429 at {refused}: {during:?}"
    );
    assert_eq!(stats.times_ms.len(), 6, "five records and one retry");
    Ok(())
}
