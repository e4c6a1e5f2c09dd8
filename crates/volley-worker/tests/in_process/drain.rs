//! The drain timeout: on shutdown the worker waits that long for its chunks, then returns
//! the unfinished ones to the queue, none of them partly committed.

use crate::support::{Harness, eventually, rec};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn drain_timeout_returns_unfinished_chunks_with_nothing_committed() -> anyhow::Result<()> {
    let h = Harness::start(Default::default()).await?;
    let spec = format!(
        "name = \"w\"\n[request]\nurl = \"{}/users/{{id}}?delay_ms={{delay}}\"\ntimeout = \"1h\"\n",
        h.mock.base_url()
    );
    // One record of the chunk answers at once, the other only after ten minutes.
    let job = h
        .publish(
            &spec,
            &[vec![
                rec("fast", "\"delay\":0"),
                rec("slow", "\"delay\":600000"),
            ]],
        )
        .await?;
    let options = volley_worker::WorkerOptions {
        drain_timeout: Duration::from_secs(2),
        ..h.options()
    };
    let worker = h.spawn(options);
    eventually(Duration::from_secs(10), || async {
        let stats = h.mock.stats();
        (stats.requests == 2 && stats.in_flight == 1).then_some(())
    })
    .await?;
    let stopping = tokio::time::Instant::now();
    let report = worker.stop().await?;
    let took = stopping.elapsed();

    assert!(!report.drained, "{report:?}");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(3)).contains(&took),
        "stopped after the drain timeout, not the slow record: {took:?}"
    );
    assert_eq!(
        (h.broker.ready_len(), h.broker.unacked_len()),
        (1, 0),
        "the chunk is back on the queue"
    );
    let status = h.status(&job).await?;
    assert_eq!(
        (status.done, status.ok, status.chunks_done),
        (0, 0, 0),
        "the fast record's outcome is not committed on its own: {status:?}"
    );
    Ok(())
}
