//! The broker capability: publish chunk messages with confirmation, consume them with
//! prefetch, and settle each delivery. Implemented for RabbitMQ (`volley-amqp`) and in memory.
//! Each job's chunks wait in a queue of their own, so a consumer follows the jobs it is
//! told to, each with its own prefetch: a small job never waits behind a large one's backlog.

use crate::JobId;
use std::future::Future;

/// A chunk message ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingChunk {
    /// The job whose queue it goes to.
    pub job: JobId,
    /// `{job}:{chunk}`.
    pub message_id: String,
    /// The encoded chunk.
    pub payload: Vec<u8>,
}

/// A broker failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker could not be reached or the connection broke.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused a message (negative confirm, unroutable, too large).
    #[error("broker refused message {message_id}: {reason}")]
    Refused {
        /// The refused message.
        message_id: String,
        /// What the broker said.
        reason: String,
    },
    /// The broker's topology does not match what this process expects.
    #[error("broker topology mismatch: {0}")]
    Topology(String),
}

/// Publishing and consuming chunks.
pub trait Broker: Send + Sync + 'static {
    /// The consumer type.
    type Consumer: ChunkConsumer;

    /// Publishes every message of `batch` as persistent and waits until the broker has
    /// confirmed each one. Returns only when all are confirmed.
    ///
    /// # Errors
    /// [`BrokerError`] when any message is not confirmed; the caller republishes the batch
    /// (consumers absorb the duplicates).
    fn publish_confirmed(
        &self,
        batch: Vec<OutgoingChunk>,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Declares `job`'s queue (idempotently): what publishes a job's chunks calls it once the
    /// job is registered, so that a queue declared with other arguments is refused before
    /// anything is published.
    ///
    /// # Errors
    /// [`BrokerError::Topology`] for a queue declared with other arguments, naming the
    /// setting; [`BrokerError::Unavailable`].
    fn declare_job(&self, job: &JobId) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Chunk messages waiting in the queues of `jobs` (not counting delivered, unsettled
    /// ones), as the broker sees it now: a worker about to leave as idle asks first, since a
    /// partition looks like an empty queue from the consumer's side.
    ///
    /// # Errors
    /// [`BrokerError`] when the broker cannot be asked.
    fn waiting(&self, jobs: &[JobId]) -> impl Future<Output = Result<u64, BrokerError>> + Send;

    /// Deletes the queue of `job`, which ended, when no chunk is ready in it and
    /// `still_ended` (asked after that count, just before the delete) confirms the job has
    /// not been reopened meanwhile. Returns whether it was deleted. Whatever publishes to
    /// the job again declares its queue again.
    ///
    /// # Errors
    /// [`BrokerError`] when the broker cannot be asked.
    fn delete_ended_queue(
        &self,
        job: &JobId,
        still_ended: impl Future<Output = bool> + Send,
    ) -> impl Future<Output = Result<bool, BrokerError>> + Send;

    /// Starts a consumer that follows no job until [`ChunkConsumer::follow`] names some.
    /// `prefetch` bounds the unsettled deliveries where the broker has one queue (in
    /// memory); a broker with a queue per job takes each job's from [`Follow::prefetch`].
    ///
    /// # Errors
    /// [`BrokerError`] when the consumer cannot start.
    fn consume(
        &self,
        prefetch: u16,
    ) -> impl Future<Output = Result<Self::Consumer, BrokerError>> + Send;
}

/// A job whose queue a consumer takes chunks from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    /// The job.
    pub job: JobId,
    /// Its chunks held at once (unsettled deliveries), at least 1.
    pub prefetch: u16,
}

/// A stream of deliveries that survives connection loss (the adapter reconnects, and
/// follows the same jobs again).
pub trait ChunkConsumer: Send + 'static {
    /// The delivery type.
    type Delivery: ChunkDelivery;

    /// Consumes exactly these jobs' queues from now on: starts the new ones, stops those left
    /// out (their deliveries already handed out can still be settled) and restarts one whose
    /// prefetch changed. Returns at once; the broker is told in the background.
    fn follow(&mut self, jobs: Vec<Follow>);

    /// Why the consumer stopped by itself, if it did (its `next()` returned `None` without a
    /// `cancel`): a refusal that retrying cannot cure, such as a job's queue declared with
    /// other arguments.
    fn failure(&mut self) -> Option<BrokerError> {
        None
    }

    /// The next delivery; `None` once the consumer is cancelled. Cancel-safe.
    fn next(&mut self) -> impl Future<Output = Option<Self::Delivery>> + Send;

    /// Stops new deliveries; the ones already handed out can still be settled.
    fn cancel(&mut self) -> impl Future<Output = ()> + Send;

    /// Closes the consumer's connection; deliveries not yet settled go back to the queue.
    fn close(self) -> impl Future<Output = ()> + Send;

    /// Whether the consumer is currently connected and consuming (for health).
    fn is_connected(&self) -> bool;

    /// The consumer's connection state, shared: the readiness probe reads it (with the
    /// reason while down) while `next` holds the consumer.
    fn link(&self) -> std::sync::Arc<crate::Link>;
}

/// One delivered chunk message, to be settled exactly once.
pub trait ChunkDelivery: Send + Sync + 'static {
    /// The message body.
    fn payload(&self) -> &[u8];
    /// Whether the broker says it delivered this message before (a hint only).
    fn redelivered(&self) -> bool;
    /// Deliveries so far, when the broker reports it (`x-delivery-count`).
    fn delivery_count(&self) -> Option<u64>;
    /// Acknowledges: the message is done. `Ok(false)` when the channel it came on is gone,
    /// so the ack was not sent and the broker will redeliver.
    fn ack(&self) -> impl Future<Output = Result<bool, BrokerError>> + Send;
    /// Returns the message to the queue for another delivery.
    fn requeue(&self) -> impl Future<Output = Result<bool, BrokerError>> + Send;
    /// Rejects the message without requeue: it goes to the dead-letter queue.
    fn dead_letter(&self) -> impl Future<Output = Result<bool, BrokerError>> + Send;
}
