//! Volley's RabbitMQ broker. Each job's chunks go to a durable quorum queue of the job's own
//! with an explicit delivery limit and dead-lettering; publishing uses confirms and
//! `mandatory` on a connection of its own; consuming uses one consumer per job, each with its
//! own prefetch, on another connection, and the reconnect loop is ours (lapin's
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

use volley_core::{Broker, BrokerError, JobId, OutgoingChunk};

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

    /// Connects once and declares the namespace's exchange and dead-letter queue (start-up
    /// check: fails fast with a clear error for a wrong URL or wrong credentials).
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn check(&self) -> Result<(), BrokerError> {
        self.declare(None).await
    }

    /// Declares the namespace's topology and `job`'s queue, if given, on a connection of its
    /// own.
    async fn declare(&self, job: Option<&JobId>) -> Result<(), BrokerError> {
        let conn = options::connect(&self.options, "check").await?;
        let channel = conn.create_channel().await.map_err(options::unavailable)?;
        let topology = self.topology();
        let mut declared = topology.declare(&channel).await;
        if let (Ok(()), Some(job)) = (&declared, job) {
            declared = topology
                .declare_job(&channel, job, self.options.delivery_limit)
                .await;
        }
        let _ = conn.close(200, "check done".into()).await;
        declared
    }

    /// Ready messages and consumers of the queues of `jobs`, summed (a queue nobody
    /// declared yet, or deleted once its job ended, counts zero), and the dead letters. A
    /// read-only look with passive declares: the reader's `delivery_limit` need not match the
    /// fleet's (a declare with another `x-delivery-limit` would fail with
    /// `PRECONDITION_FAILED`), and a mistyped namespace creates no queue.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn queue_counts(&self, jobs: &[JobId]) -> Result<QueueCounts, BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let mut channels = Vec::new();
        let counted = self.count_on(&conn, jobs, &mut channels).await;
        let _ = conn.close(200, "done".into()).await;
        counted
    }

    /// Counts on `conn`. The channels it opens are returned: dropped before the connection
    /// closes, lapin reports each as a connection error.
    async fn count_on(
        &self,
        conn: &lapin::Connection,
        jobs: &[JobId],
        channels: &mut Vec<lapin::Channel>,
    ) -> Result<QueueCounts, BrokerError> {
        let topology = self.topology();
        let mut counts = QueueCounts {
            chunks_ready: 0,
            consumers: 0,
            dead: 0,
        };
        // A passive declare of a missing queue closes its channel: one channel per queue.
        let queues = std::iter::once(topology.dead.clone())
            .chain(jobs.iter().map(|job| topology.job_queue(job)));
        for (i, queue) in queues.enumerate() {
            let channel = conn.create_channel().await.map_err(options::unavailable)?;
            let found = topology::passive_declare(&channel, &queue).await;
            channels.push(channel);
            match (i, found?) {
                (_, None) => {}
                (0, Some(dead)) => counts.dead = dead.message_count(),
                (_, Some(queue)) => {
                    counts.chunks_ready += queue.message_count();
                    counts.consumers += queue.consumer_count();
                }
            }
        }
        Ok(counts)
    }

    /// Deletes `job`'s queue when no chunk is ready in it and `still_ended`, asked after the
    /// count and just before the delete, says the job is still ended (a redrive reopens the
    /// job before it publishes, so a reopened job is seen and its queue kept). Returns
    /// whether the queue was deleted. On a connection of its own: a refused delete must not
    /// touch a consumer's.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn delete_ended_queue(
        &self,
        job: &JobId,
        still_ended: impl std::future::Future<Output = bool> + Send,
    ) -> Result<bool, BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let mut channels = Vec::new();
        let deleted = async {
            let counts = self
                .count_on(&conn, std::slice::from_ref(job), &mut channels)
                .await?;
            if counts.chunks_ready > 0 || !still_ended.await {
                return Ok(false);
            }
            let channel = conn.create_channel().await.map_err(options::unavailable)?;
            let deleted = self.topology().delete_job(&channel, job).await;
            channels.push(channel);
            deleted.map(|()| true)
        }
        .await;
        let _ = conn.close(200, "done".into()).await;
        deleted
    }

    /// Lists up to `limit` dead letters, leaving them in the queue.
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        dead::list(&self.options, limit).await
    }

    /// Moves dead letters (of `job`, or all) back to their jobs' queues, except those `settled`
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

    /// Deletes the queues of `jobs`, the dead-letter queue and the exchange (`volley
    /// namespace delete`, test clean-up), each part even when another fails.
    ///
    /// # Errors
    /// [`BrokerError`]: the first part that could not be deleted.
    pub async fn delete_topology(&self, jobs: &[JobId]) -> Result<(), BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let deleted = self.topology().delete(&conn, jobs).await;
        let _ = conn.close(200, "done".into()).await;
        deleted
    }

    /// Which of `jobs`' queues, the dead-letter queue and the exchange exist (`queue
    /// t-1.chunks.J`, `exchange t-1`).
    ///
    /// # Errors
    /// [`BrokerError`].
    pub async fn existing_topology(&self, jobs: &[JobId]) -> Result<Vec<String>, BrokerError> {
        let conn = options::connect(&self.options, "admin").await?;
        let found = self.topology().existing(&conn, jobs).await;
        let _ = conn.close(200, "done".into()).await;
        found
    }
}

impl Broker for AmqpBroker {
    type Consumer = AmqpConsumer;

    async fn declare_job(&self, job: &JobId) -> Result<(), BrokerError> {
        self.declare(Some(job)).await
    }

    async fn waiting(&self, jobs: &[JobId]) -> Result<u64, BrokerError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        Ok(u64::from(self.queue_counts(jobs).await?.chunks_ready))
    }

    async fn publish_confirmed(&self, batch: Vec<OutgoingChunk>) -> Result<(), BrokerError> {
        self.publisher.publish_confirmed(batch).await
    }

    async fn delete_ended_queue(
        &self,
        job: &JobId,
        still_ended: impl std::future::Future<Output = bool> + Send,
    ) -> Result<bool, BrokerError> {
        AmqpBroker::delete_ended_queue(self, job, still_ended).await
    }

    /// Each job's prefetch comes with [`volley_core::ChunkConsumer::follow`].
    async fn consume(&self, _prefetch: u16) -> Result<AmqpConsumer, BrokerError> {
        AmqpConsumer::start(self.options.clone()).await
    }
}

impl volley_core::schema::SchemaBroker for AmqpBroker {
    async fn apply_step(&self, step: &volley_core::schema::BrokerStep) -> Result<(), BrokerError> {
        let conn = options::connect(&self.options, "migrate").await?;
        let channel = conn.create_channel().await.map_err(options::unavailable)?;
        let declared = topology::declare_step(&channel, step).await;
        let _ = conn.close(200, "migrated".into()).await;
        declared
    }
}
