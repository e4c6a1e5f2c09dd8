//! Volley's RabbitMQ broker. Chunks go to a durable quorum queue with an explicit delivery
//! limit and dead-lettering; publishing uses confirms and `mandatory` on a connection of its
//! own; consuming uses prefetch on another connection, and the reconnect loop is ours (lapin's
//! auto-recovery has open reports of never recovering after a broker restart).

mod consumer;
mod dead;
mod delivery;
mod options;
mod publisher;
mod topology;

pub use consumer::AmqpConsumer;
pub use dead::{DeadLetter, RequeueReport};
pub use delivery::AmqpDelivery;
pub use options::AmqpOptions;
pub use topology::{QueueCounts, Topology};

use volley_core::{Broker, BrokerError, OutgoingChunk};

/// The RabbitMQ broker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AmqpBroker {
    options: AmqpOptions,
    publisher: std::sync::Arc<publisher::Publisher>,
}

impl AmqpBroker {
    /// A broker for these options; connects lazily.
    pub fn new(options: AmqpOptions) -> Self {
        Self {
            publisher: std::sync::Arc::new(publisher::Publisher::new(options.clone())),
            options,
        }
    }

    /// The queue and exchange names.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.options.namespace)
    }

    /// Connects once and declares the topology (start-up check: fails fast with a clear error
    /// for a wrong URL, wrong credentials or a queue declared with other arguments).
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn check(&self) -> Result<(), BrokerError> {
        let conn = options::connect(&self.options, "check").await?;
        let channel = conn.create_channel().await.map_err(options::unavailable)?;
        self.topology()
            .declare(&channel, self.options.delivery_limit)
            .await?;
        let _ = conn.close(200, "check done".into()).await;
        Ok(())
    }

    /// Message counts of the chunk and dead-letter queues.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn queue_counts(&self) -> Result<QueueCounts, BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let channel = conn.create_channel().await.map_err(options::unavailable)?;
        let counts = self.topology().counts(&channel).await;
        let _ = conn.close(200, "done".into()).await;
        counts
    }

    /// Lists up to `limit` dead letters, leaving them in the queue.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        dead::list(&self.options, limit).await
    }

    /// Moves dead letters (of `job`, or all) back to the chunk queue, except those `settled`
    /// picks: they are removed and returned.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn requeue_dead(
        &self,
        job: Option<&str>,
        settled: &dyn Fn(&DeadLetter) -> bool,
    ) -> Result<RequeueReport, BrokerError> {
        dead::requeue(&self.options, job, settled).await
    }

    /// Deletes the namespace's queues and exchange (`volley namespace delete`, test
    /// clean-up), each part even when another fails.
    ///
    /// # Errors
    /// [`BrokerError`]: the first part that could not be deleted.
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let deleted = self.topology().delete(&conn).await;
        let _ = conn.close(200, "done".into()).await;
        deleted
    }

    /// The namespace's queues and exchange that exist (`queue t-1.chunks`, `exchange t-1`).
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn existing_topology(&self) -> Result<Vec<String>, BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let found = self.topology().existing(&conn).await;
        let _ = conn.close(200, "done".into()).await;
        found
    }
}

impl Broker for AmqpBroker {
    type Consumer = AmqpConsumer;

    async fn waiting(&self) -> Result<u64, BrokerError> {
        Ok(u64::from(self.queue_counts().await?.chunks_ready))
    }

    async fn publish_confirmed(&self, batch: Vec<OutgoingChunk>) -> Result<(), BrokerError> {
        self.publisher.publish_confirmed(batch).await
    }

    async fn consume(&self, prefetch: u16) -> Result<AmqpConsumer, BrokerError> {
        AmqpConsumer::start(self.options.clone(), prefetch).await
    }
}
