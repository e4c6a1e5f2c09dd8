use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use volley_core::{BrokerError, Namespace};

/// Routing key of chunk messages.
pub(crate) const CHUNK_KEY: &str = "chunks";
/// Routing key of dead letters.
const DEAD_KEY: &str = "dead";

/// The names under one namespace: exchange `{ns}`, queues `{ns}.chunks` and `{ns}.dead`.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The direct exchange.
    pub exchange: String,
    /// The chunk queue (quorum, delivery limit, dead-lettering).
    pub chunks: String,
    /// The dead-letter queue.
    pub dead: String,
}

/// Ready messages and consumers of the two queues. A passive declare tells no more: the
/// delivered, unacknowledged messages are known only to the consumers holding them (for
/// Volley, the workers, which report them in their heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// Chunk messages waiting (not counting unacked ones).
    pub chunks_ready: u32,
    /// Consumers on the chunk queue.
    pub consumers: u32,
    /// Dead letters.
    pub dead: u32,
}

impl Topology {
    /// The names for a namespace.
    pub fn new(ns: &Namespace) -> Self {
        Self {
            exchange: ns.to_string(),
            chunks: format!("{ns}.chunks"),
            dead: format!("{ns}.dead"),
        }
    }

    fn chunk_args(&self, delivery_limit: u32) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(delivery_limit).unwrap_or(i32::MAX)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.exchange.as_str().into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(DEAD_KEY.into()),
        );
        args
    }

    /// Declares (idempotently) the exchange, both queues and their bindings.
    ///
    /// # Errors
    /// [`BrokerError::Topology`] when a queue exists with other arguments (for instance
    /// another delivery limit), naming what differs.
    pub async fn declare(&self, channel: &Channel, delivery_limit: u32) -> Result<(), BrokerError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.mismatch(e))?;
        let mut dead_args = FieldTable::default();
        dead_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        channel
            .queue_declare(self.dead.as_str().into(), durable, dead_args)
            .await
            .map_err(|e| self.mismatch(e))?;
        channel
            .queue_declare(
                self.chunks.as_str().into(),
                durable,
                self.chunk_args(delivery_limit),
            )
            .await
            .map_err(|e| self.mismatch(e))?;
        for (queue, key) in [(&self.chunks, CHUNK_KEY), (&self.dead, DEAD_KEY)] {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.mismatch(e))?;
        }
        Ok(())
    }

    fn mismatch(&self, e: lapin::Error) -> BrokerError {
        let text = e.to_string();
        if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
            BrokerError::Topology(format!(
                "{text}: queue {} was declared earlier with other arguments; use the same settings (delivery limit) or migrate the queue",
                self.chunks
            ))
        } else {
            BrokerError::Unavailable(text)
        }
    }

    /// Counts messages with passive declares.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn counts(
        &self,
        channel: &Channel,
        delivery_limit: u32,
    ) -> Result<QueueCounts, BrokerError> {
        self.declare(channel, delivery_limit).await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let chunks = channel
            .queue_declare(self.chunks.as_str().into(), passive, FieldTable::default())
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        let dead = channel
            .queue_declare(self.dead.as_str().into(), passive, FieldTable::default())
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        Ok(QueueCounts {
            chunks_ready: chunks.message_count(),
            consumers: chunks.consumer_count(),
            dead: dead.message_count(),
        })
    }

    /// Deletes both queues and the exchange.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn delete(&self, channel: &Channel) -> Result<(), BrokerError> {
        for queue in [&self.chunks, &self.dead] {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        }
        channel
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        Ok(())
    }
}
