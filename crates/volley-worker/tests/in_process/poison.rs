//! Poison: bytes that are no chunk, and a chunk that keeps coming back (README "Poison never
//! blocks the queue").

use crate::support::{Harness, rec};
use anyhow::Context as _;
use std::time::Duration;
use volley_core::{Broker, ChunkConsumer, ChunkDelivery, ChunkMessage, JobState};

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_queue_moves_on() -> anyhow::Result<()> {
    let h = Harness::start(Default::default()).await?;
    h.broker.publish_raw("junk", b"not a chunk");
    let spec = h.spec("/users/{id}", "");
    let job = h
        .publish(&spec, &[vec![rec("a", ""), rec("b", "")]])
        .await?;

    let worker = h.spawn(h.options());
    let status = h.until_ended(&job, Duration::from_secs(10)).await?;
    h.until_settled(Duration::from_secs(5)).await?;
    worker.stop().await?;

    assert_eq!(h.broker.dead_letters(), vec!["junk".to_string()]);
    assert_eq!((status.state, status.ok), (JobState::Completed, 2));
    assert_eq!(h.mock.stats().requests, 2);
    Ok(())
}

#[tokio::test]
async fn a_chunk_at_the_poison_limit_is_settled_as_poison_and_dead_lettered() -> anyhow::Result<()>
{
    let h = Harness::start(Default::default()).await?;
    let spec = h.spec("/users/{id}", "");
    let job = h
        .publish(
            &spec,
            &[
                vec![rec("p1", ""), rec("p2", "")],
                vec![rec("ok1", ""), rec("ok2", "")],
            ],
        )
        .await?;
    // Workers that died holding them: chunk 0 taken three times, chunk 1 twice.
    let mut consumer = h.broker.consume(1).await?;
    let mut taken = Vec::new();
    for _ in 0..5 {
        let delivery = consumer.next().await.context("a delivery")?;
        let message = ChunkMessage::decode(delivery.payload())?;
        taken.push((message.chunk, delivery.delivery_count()));
    }
    drop(consumer);
    let counts: Vec<_> = [(0, 1), (1, 1), (0, 2), (1, 2), (0, 3)]
        .into_iter()
        .map(|(chunk, n)| (chunk, Some(n)))
        .collect();
    assert_eq!(taken, counts);

    let options = volley_worker::WorkerOptions {
        settle_poison_at: Some(4),
        ..h.options()
    };
    let worker = h.spawn(options);
    let status = h.until_ended(&job, Duration::from_secs(10)).await?;
    h.until_settled(Duration::from_secs(5)).await?;
    worker.stop().await?;

    // Chunk 0, on its fourth delivery, is settled without a call; chunk 1, on its third,
    // runs.
    assert_eq!(status.by_error.get("poison"), Some(&2), "{status:?}");
    assert_eq!((status.ok, status.failed, status.done), (2, 2, 4));
    assert_eq!(
        status.state,
        JobState::Failed,
        "the job ends, failed past its tolerance"
    );
    assert_eq!(
        h.broker.dead_letters(),
        vec![ChunkMessage::message_id(&job, 0)],
        "the settled chunk is dead-lettered, for `volley dead`"
    );
    assert_eq!(
        h.mock.stats().requests,
        2,
        "the poison chunk's records were not called"
    );
    Ok(())
}
