//! A chunk the broker hands out again after it was committed.

use crate::support::{Harness, rec};
use anyhow::Context as _;
use std::time::Duration;
use volley_core::time::now_ms;
use volley_core::{
    Broker, ChunkCommit, ChunkConsumer, ChunkDelivery, ChunkMessage, CommitStatus, RecordOutcome,
    Store,
};

#[tokio::test]
async fn redelivered_committed_chunk_is_acked_without_calls() -> anyhow::Result<()> {
    let h = Harness::start(Default::default()).await?;
    let spec = h.spec("/users/{id}", "");
    let job = h
        .publish(&spec, &[vec![rec("a", ""), rec("b", "")]])
        .await?;
    // A worker that committed the chunk and died before its ack: the commit is in the store,
    // the delivery goes back unacked and comes out again marked redelivered.
    {
        let mut consumer = h.broker.consume(1).await?;
        let delivery = consumer.next().await.context("the chunk is delivered")?;
        let message = ChunkMessage::decode(delivery.payload())?;
        let outcomes: Vec<RecordOutcome> = message
            .records
            .iter()
            .map(|r| RecordOutcome {
                id: r.id.clone(),
                line: r.line,
                status: Some(200),
                attempts: 1,
                latency_ms: 1,
                error: None,
                body: None,
            })
            .collect();
        let commit = ChunkCommit::build(&job, message.chunk, &message.records, &outcomes, now_ms())
            .context("a first-round chunk builds its commit")?;
        let status = h.store.commit_chunk(&commit).await?;
        assert!(matches!(status, CommitStatus::Committed(_)), "{status:?}");
    }
    let before = h.status(&job).await?;
    assert_eq!((before.done, before.ok, before.chunks_done), (2, 2, 1));

    let worker = h.spawn(h.options());
    h.until_settled(Duration::from_secs(10)).await?;
    let report = worker.stop().await?;

    assert_eq!(h.mock.stats().requests, 0, "no record was called again");
    assert_eq!(report.chunks_committed, 0, "{report:?}");
    assert!(
        h.broker.dead_letters().is_empty(),
        "acked, not dead-lettered"
    );
    assert_eq!(h.status(&job).await?, before, "no counter moved");
    Ok(())
}
