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
            BrokerError::Topology(describe_mismatch(&text, &self.chunks))
        } else {
            BrokerError::Unavailable(text)
        }
    }

    /// Counts messages with passive declares. A read-only look declares nothing with
    /// arguments: the reader's `delivery_limit` need not match the fleet's to count (a
    /// declare with another `x-delivery-limit` would fail with `PRECONDITION_FAILED`), and
    /// a mistyped namespace must not create queues. Queues nobody declared yet count zero.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn counts(&self, channel: &Channel) -> Result<QueueCounts, BrokerError> {
        let Some(chunks) = passive_declare(channel, &self.chunks).await? else {
            return Ok(QueueCounts {
                chunks_ready: 0,
                consumers: 0,
                dead: 0,
            });
        };
        let dead = passive_declare(channel, &self.dead).await?;
        Ok(QueueCounts {
            chunks_ready: chunks.message_count(),
            consumers: chunks.consumer_count(),
            dead: dead.map_or(0, |q| q.message_count()),
        })
    }

    /// Deletes both queues and the exchange, each on a channel of its own: a refusal closes
    /// its channel, and the other parts are still deleted. The first error is returned.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn delete(&self, conn: &lapin::Connection) -> Result<(), BrokerError> {
        let unavailable = |e: lapin::Error| BrokerError::Unavailable(e.to_string());
        let mut first = None;
        for queue in [&self.chunks, &self.dead] {
            let step = async {
                let channel = conn.create_channel().await.map_err(unavailable)?;
                channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await
                    .map_err(unavailable)
            };
            if let Err(e) = step.await {
                first.get_or_insert(e);
            }
        }
        let step = async {
            let channel = conn.create_channel().await.map_err(unavailable)?;
            channel
                .exchange_delete(
                    self.exchange.as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await
                .map_err(unavailable)
        };
        if let Err(e) = step.await {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// The queues and the exchange of the namespace that exist, found with passive declares
    /// (a channel each: a missing one closes its channel).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`].
    pub async fn existing(&self, conn: &lapin::Connection) -> Result<Vec<String>, BrokerError> {
        let unavailable = |e: lapin::Error| BrokerError::Unavailable(e.to_string());
        let mut out = Vec::new();
        for queue in [&self.chunks, &self.dead] {
            let channel = conn.create_channel().await.map_err(unavailable)?;
            if passive_declare(&channel, queue).await?.is_some() {
                out.push(format!("queue {queue}"));
            }
        }
        let channel = conn.create_channel().await.map_err(unavailable)?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        match channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                passive,
                FieldTable::default(),
            )
            .await
        {
            Ok(()) => out.push(format!("exchange {}", self.exchange)),
            Err(e) if e.to_string().contains("NOT_FOUND") => {}
            Err(e) => return Err(unavailable(e)),
        }
        Ok(out)
    }
}

/// Declares `queue` passively: its state, or `None` when it does not exist (the broker then
/// closes the channel).
///
/// # Errors
/// [`BrokerError::Unavailable`].
pub(crate) async fn passive_declare(
    channel: &Channel,
    queue: &str,
) -> Result<Option<lapin::Queue>, BrokerError> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
    {
        Ok(q) => Ok(Some(q)),
        Err(e) if e.to_string().contains("NOT_FOUND") => Ok(None),
        Err(e) => Err(BrokerError::Unavailable(e.to_string())),
    }
}

/// One line for a queue that exists with other arguments than these settings declare,
/// naming the setting to change. `text` is the broker's refusal: `PRECONDITION_FAILED -
/// inequivalent arg 'x-delivery-limit' for queue 'ns.chunks' in vhost '/': received '7' but
/// current is '20'`.
fn describe_mismatch(text: &str, default_queue: &str) -> String {
    let quoted = |after: &str| {
        let start = text.find(after)? + after.len();
        let len = text[start..].find('\'')?;
        Some(&text[start..start + len])
    };
    let queue = quoted("for queue '").unwrap_or(default_queue);
    let (Some(arg), Some(ours), Some(theirs)) = (
        quoted("inequivalent arg '"),
        quoted("received '"),
        quoted("current is '"),
    ) else {
        return format!(
            "queue {queue} was declared earlier with other arguments than these settings declare ({text}); use the fleet's settings (delivery_limit / VOLLEY_DELIVERY_LIMIT) or delete the queue when it is empty"
        );
    };
    if arg == "x-delivery-limit" {
        format!(
            "queue {queue} was declared with x-delivery-limit {theirs}, but delivery_limit (VOLLEY_DELIVERY_LIMIT) is {ours} here: set VOLLEY_DELIVERY_LIMIT={theirs} (or delivery_limit = {theirs} in the settings file) as the rest of the fleet has it, or delete the queue when it is empty to change the limit"
        )
    } else {
        format!(
            "queue {queue} exists with {arg} {theirs}, where Volley declares {ours}: it was not declared by Volley; delete it or use another namespace (VOLLEY_NAMESPACE)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::describe_mismatch;

    #[test]
    fn delivery_limit_mismatch_names_the_setting_and_the_queue_value() {
        let text = "protocol error: AMQP soft error: PRECONDITION-FAILED: PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'ns.chunks' in vhost '/': received '7' but current is '20'";
        let line = describe_mismatch(text, "fallback.chunks");
        assert!(line.starts_with("queue ns.chunks was declared with x-delivery-limit 20, but delivery_limit (VOLLEY_DELIVERY_LIMIT) is 7 here: set VOLLEY_DELIVERY_LIMIT=20"), "{line}");
        assert!(!line.contains("PRECONDITION"), "{line}");
    }
}
