use crate::delivery::AmqpDelivery;
use crate::options::{
    AmqpOptions, CLOSE_WAIT, CONNECT_FAILED, RECONNECT_BACKOFF, connect, unavailable,
    within_open_deadline,
};
use crate::topology::Topology;
use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use volley_core::patiently::Patiently;
use volley_core::{BrokerError, ChunkConsumer, Link};

struct Live {
    conn: Connection,
    channel: Channel,
    consumer: Consumer,
}

/// Consumes the chunk queue on a connection of its own, reconnecting with capped backoff
/// and jitter whenever the connection, the channel or the consumer goes away. Deliveries of
/// a lost channel are never acked on the new one: their acks report `false` and the broker
/// redelivers them.
pub struct AmqpConsumer {
    options: AmqpOptions,
    prefetch: u16,
    live: Option<Live>,
    /// Fired by [`ChunkConsumer::cancel`]: no delivery is taken, nor a reconnect tried, after.
    cancelled: CancellationToken,
    /// Up while consuming; down with the last failure while reconnecting.
    link: Arc<Link>,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("prefetch", &self.prefetch)
            .field("cancelled", &self.cancelled.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl AmqpConsumer {
    pub(crate) async fn start(options: AmqpOptions, prefetch: u16) -> Result<Self, BrokerError> {
        let mut consumer = Self {
            options,
            prefetch: prefetch.max(1),
            live: None,
            cancelled: CancellationToken::new(),
            link: Arc::new(Link::down_for("not connected yet")),
        };
        // The first connection fails fast, so a wrong URL or topology is reported at start-up.
        // Once connected, though, a refusal is retried a few times: RabbitMQ can close the
        // first consume on a quorum queue declared a moment before (`noproc`, 541) when
        // several workers start together.
        // Not on `Patiently`: it retries for a time, this at most 4 times (waits delay(1..=4)).
        let mut attempt = 0;
        consumer.live = Some(loop {
            match consumer.open().await {
                Ok(live) => break live,
                Err(BrokerError::Unavailable(e)) if attempt < 4 && !e.contains(CONNECT_FAILED) => {
                    attempt += 1;
                    tracing::warn!(attempt, error.message = %e, "consumer could not start; retrying");
                    tokio::time::sleep(RECONNECT_BACKOFF.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        });
        consumer.link.up();
        Ok(consumer)
    }

    /// Connects, declares and starts consuming, within one deadline.
    async fn open(&self) -> Result<Live, BrokerError> {
        within_open_deadline(&self.options, "consumer", self.open_now()).await
    }

    async fn open_now(&self) -> Result<Live, BrokerError> {
        let conn = connect(&self.options, "worker").await?;
        let channel = conn.create_channel().await.map_err(unavailable)?;
        Topology::new(&self.options.namespace)
            .declare(&channel, self.options.delivery_limit)
            .await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let consumer = channel
            .basic_consume(
                Topology::new(&self.options.namespace)
                    .chunks
                    .as_str()
                    .into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
        Ok(Live {
            conn,
            channel,
            consumer,
        })
    }

    /// Reconnects for as long as it takes. Nothing cancels it while it runs (`cancel` takes
    /// `&mut self`): the worker drops the `next()` it is part of when it stops.
    async fn reconnect(&mut self) {
        let mut failures = 0u32;
        let reconnected = Patiently::new(RECONNECT_BACKOFF, &self.cancelled)
            .run(
                |_: &BrokerError| true,
                |r| {
                    failures = r.attempt.saturating_add(1);
                    self.link.down(format!("not connected ({})", r.error));
                    tracing::warn!(attempt = r.attempt, error.message = %r.error, retry_in_ms = r.retry_in.as_millis() as u64, "consumer reconnect failed");
                },
                || self.open(),
            )
            .await;
        if let Ok(live) = reconnected {
            tracing::info!(attempt = failures, "consumer reconnected");
            self.live = Some(live);
            self.link.up();
        }
    }
}

impl ChunkConsumer for AmqpConsumer {
    type Delivery = AmqpDelivery;

    async fn next(&mut self) -> Option<AmqpDelivery> {
        loop {
            if self.cancelled.is_cancelled() {
                return None;
            }
            let Some(live) = self.live.as_mut() else {
                self.reconnect().await;
                continue;
            };
            match live.consumer.next().await {
                Some(Ok(delivery)) => return Some(AmqpDelivery::new(delivery)),
                Some(Err(e)) => {
                    tracing::warn!(error.message = %e, "consumer lost its channel; reconnecting");
                    self.link.down(format!("not connected (channel lost: {e})"));
                }
                None => {
                    tracing::warn!(
                        "consumer cancelled by the broker (queue deleted?); reconnecting"
                    );
                    self.link
                        .down("not consuming (cancelled by the broker; queue deleted?)");
                }
            }
            if let Some(old) = self.live.take() {
                // A dead peer never answers close: do not wait for it.
                let _ =
                    tokio::time::timeout(CLOSE_WAIT, old.conn.close(200, "reconnecting".into()))
                        .await;
            }
        }
    }

    async fn cancel(&mut self) {
        self.cancelled.cancel();
        if let Some(live) = &self.live {
            // The channel stays open so the deliveries already handed out can still be acked.
            let tag = live.consumer.tag();
            match tokio::time::timeout(
                CLOSE_WAIT,
                live.channel
                    .basic_cancel(tag, BasicCancelOptions::default()),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error.message = %e, "consumer cancel failed"),
                Err(_) => tracing::warn!("consumer cancel not answered; the broker may be gone"),
            }
        }
    }

    async fn close(mut self) {
        if let Some(live) = self.live.take() {
            let _ =
                tokio::time::timeout(CLOSE_WAIT, live.conn.close(200, "worker stopping".into()))
                    .await;
        }
    }

    fn is_connected(&self) -> bool {
        !self.cancelled.is_cancelled() && self.link.is_up()
    }

    fn link(&self) -> Arc<Link> {
        self.link.clone()
    }
}
