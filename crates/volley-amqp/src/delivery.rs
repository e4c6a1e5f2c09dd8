use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::types::AMQPValue;
use lapin::{Acker, Channel};
use std::sync::Arc;
use volley_core::{BrokerError, ChunkDelivery};

/// A job consumer's channel, closed once its consumer has ended and every delivery it
/// handed out is settled (each delivery holds it: closing earlier would return them).
#[derive(Debug)]
pub(crate) struct ChannelHold(Channel);

impl ChannelHold {
    pub(crate) fn new(channel: Channel) -> Self {
        Self(channel)
    }
}

impl Drop for ChannelHold {
    fn drop(&mut self) {
        let channel = self.0.clone();
        if channel.status().connected()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(
                    crate::options::CLOSE_WAIT,
                    channel.close(200, "job consumer done".into()),
                )
                .await;
            });
        }
    }
}

/// A chunk delivered by RabbitMQ.
#[derive(Debug)]
pub struct AmqpDelivery {
    data: Vec<u8>,
    redelivered: bool,
    delivery_count: Option<u64>,
    acker: Acker,
    /// Keeps the delivery's channel open until it is settled (or dropped).
    _channel: Arc<ChannelHold>,
}

impl AmqpDelivery {
    pub(crate) fn new(delivery: Delivery, channel: Arc<ChannelHold>) -> Self {
        let delivery_count = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-delivery-count"))
            .and_then(|v| match v {
                AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
                AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
                AMQPValue::LongUInt(n) => Some(u64::from(*n)),
                AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
                _ => None,
            });
        Self {
            redelivered: delivery.redelivered,
            delivery_count,
            acker: delivery.acker,
            data: delivery.data,
            _channel: channel,
        }
    }
}

fn settled(result: lapin::Result<bool>) -> Result<bool, BrokerError> {
    result.map_err(|e| BrokerError::Unavailable(e.to_string()))
}

impl ChunkDelivery for AmqpDelivery {
    fn payload(&self) -> &[u8] {
        &self.data
    }

    fn redelivered(&self) -> bool {
        self.redelivered
    }

    fn delivery_count(&self) -> Option<u64> {
        self.delivery_count
    }

    async fn ack(&self) -> Result<bool, BrokerError> {
        settled(self.acker.ack(BasicAckOptions::default()).await)
    }

    async fn requeue(&self) -> Result<bool, BrokerError> {
        settled(
            self.acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await,
        )
    }

    async fn dead_letter(&self) -> Result<bool, BrokerError> {
        settled(
            self.acker
                .reject(BasicRejectOptions { requeue: false })
                .await,
        )
    }
}
