use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use volley_core::schema::{ArgValue, BrokerStep};
use volley_core::{BrokerError, JobId, Namespace};

/// Routing key of dead letters.
const DEAD_KEY: &str = "dead";

/// The names under one namespace: exchange `{ns}`, one chunk queue per job
/// (`{ns}.chunks.{job}`, routing key `chunks.{job}`) and the dead-letter queue `{ns}.dead`.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: Namespace,
    /// The direct exchange.
    pub exchange: String,
    /// The dead-letter queue.
    pub dead: String,
}

/// Ready messages and consumers of job queues, and the dead letters. A passive declare
/// tells no more: the delivered, unacknowledged messages are known only to the consumers
/// holding them (for Volley, the workers, which report them in their heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// The jobs' chunk messages waiting (not counting unacked ones).
    pub chunks_ready: u32,
    /// Consumers on the jobs' queues (a worker has one per job it follows).
    pub consumers: u32,
    /// Dead letters (of every job of the namespace: they share one queue).
    pub dead: u32,
}

impl Topology {
    /// The names for a namespace.
    pub fn new(ns: &Namespace) -> Self {
        Self {
            namespace: ns.clone(),
            exchange: ns.to_string(),
            dead: format!("{ns}.dead"),
        }
    }

    /// The queue holding `job`'s chunks.
    pub fn job_queue(&self, job: &JobId) -> String {
        format!("{}.chunks.{job}", self.exchange)
    }

    /// The routing key of `job`'s chunks on the exchange.
    pub fn job_key(job: &JobId) -> String {
        format!("chunks.{job}")
    }

    /// The job a queue of this namespace holds chunks of, if it is a job queue.
    pub fn job_of_queue(&self, queue: &str) -> Option<JobId> {
        let job = queue
            .strip_prefix(&self.exchange)?
            .strip_prefix(".chunks.")?;
        JobId::parse(job).ok()
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

    /// Declares (idempotently) the exchange and the dead-letter queue with its binding: what
    /// every process of the namespace needs before any job's queue. These are the broker
    /// steps of the migrations (`migrations/`), so the on-the-fly declaration and `volley
    /// migrate` make the same topology.
    ///
    /// # Errors
    /// [`BrokerError::Topology`] when the dead-letter queue exists with other arguments.
    pub async fn declare(&self, channel: &Channel) -> Result<(), BrokerError> {
        for migration in volley_core::schema::migrations() {
            for step in &migration.broker {
                declare_step(channel, &step.resolve(&self.namespace)).await?;
            }
        }
        Ok(())
    }

    /// Declares (idempotently) `job`'s chunk queue, quorum with the delivery limit and
    /// dead-lettering, bound to the exchange under the job's key. Everything that publishes a
    /// job's chunks calls it first: workers delete the queue once the job has ended, and a
    /// redrive or a republish of the job brings it back.
    ///
    /// # Errors
    /// [`BrokerError::Topology`] when the queue exists with other arguments (for instance
    /// another delivery limit), naming what differs.
    pub async fn declare_job(
        &self,
        channel: &Channel,
        job: &JobId,
        delivery_limit: u32,
    ) -> Result<(), BrokerError> {
        let queue = self.job_queue(job);
        channel
            .queue_declare(
                queue.as_str().into(),
                durable(),
                self.chunk_args(delivery_limit),
            )
            .await
            .map_err(|e| self.mismatch(e, &queue))?;
        self.bind(channel, &queue, &Self::job_key(job)).await
    }

    async fn bind(&self, channel: &Channel, queue: &str, key: &str) -> Result<(), BrokerError> {
        channel
            .queue_bind(
                queue.into(),
                self.exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.mismatch(e, queue))
    }

    fn mismatch(&self, e: lapin::Error, queue: &str) -> BrokerError {
        let text = e.to_string();
        if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
            BrokerError::Topology(describe_mismatch(&text, queue))
        } else {
            BrokerError::Unavailable(text)
        }
    }

    /// Deletes `job`'s queue, whatever it holds. Quorum queues refuse `if_empty` (with a
    /// connection error, 540): callers count the queue first, on a connection of its own.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn delete_job(&self, channel: &Channel, job: &JobId) -> Result<(), BrokerError> {
        channel
            .queue_delete(
                self.job_queue(job).as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await
            .map(drop)
            .map_err(|e| BrokerError::Unavailable(e.to_string()))
    }

    /// Deletes the queues of `jobs`, the dead-letter queue and the exchange, each on a
    /// channel of its own: a refusal closes its channel, and the other parts are still
    /// deleted. The first error is returned.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn delete(
        &self,
        conn: &lapin::Connection,
        jobs: &[JobId],
    ) -> Result<(), BrokerError> {
        let unavailable = |e: lapin::Error| BrokerError::Unavailable(e.to_string());
        let mut first = None;
        let queues = jobs.iter().map(|job| self.job_queue(job));
        for queue in queues.chain([self.dead.clone()]) {
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

    /// Which of `jobs`' queues, the dead-letter queue and the exchange exist, found with passive declares
    /// (a channel each: a missing one closes its channel).
    ///
    /// # Errors
    /// [`BrokerError::Unavailable`].
    pub async fn existing(
        &self,
        conn: &lapin::Connection,
        jobs: &[JobId],
    ) -> Result<Vec<String>, BrokerError> {
        let unavailable = |e: lapin::Error| BrokerError::Unavailable(e.to_string());
        let mut out = Vec::new();
        let queues = jobs.iter().map(|job| self.job_queue(job));
        for queue in queues.chain([self.dead.clone()]) {
            let channel = conn.create_channel().await.map_err(unavailable)?;
            if passive_declare(&channel, &queue).await?.is_some() {
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

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
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

/// Declares one broker step of a migration on `channel` (idempotent: what exists alike is
/// left as it is).
///
/// # Errors
/// [`BrokerError::Topology`] when it exists with other arguments, naming them.
pub(crate) async fn declare_step(channel: &Channel, step: &BrokerStep) -> Result<(), BrokerError> {
    let mismatch = |e: lapin::Error, name: &str| {
        let text = e.to_string();
        if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
            BrokerError::Topology(describe_mismatch(&text, name))
        } else {
            BrokerError::Unavailable(text)
        }
    };
    match step {
        BrokerStep::Exchange { name, kind } => {
            let kind = match kind.as_str() {
                "direct" => ExchangeKind::Direct,
                "topic" => ExchangeKind::Topic,
                "fanout" => ExchangeKind::Fanout,
                "headers" => ExchangeKind::Headers,
                other => ExchangeKind::Custom(other.to_string()),
            };
            channel
                .exchange_declare(
                    name.as_str().into(),
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| mismatch(e, name))
        }
        BrokerStep::Queue { name, arguments } => {
            let mut args = FieldTable::default();
            for (k, v) in arguments {
                let value = match v {
                    ArgValue::Text(t) => AMQPValue::LongString(t.as_str().into()),
                    ArgValue::Int(n) => match i32::try_from(*n) {
                        Ok(n) => AMQPValue::LongInt(n),
                        Err(_) => AMQPValue::LongLongInt(*n),
                    },
                };
                args.insert(k.as_str().into(), value);
            }
            channel
                .queue_declare(name.as_str().into(), durable(), args)
                .await
                .map(drop)
                .map_err(|e| mismatch(e, name))
        }
        BrokerStep::Binding {
            queue,
            exchange,
            routing_key,
        } => channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| mismatch(e, queue)),
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
