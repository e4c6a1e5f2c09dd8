use crate::JobId;
use crate::broker::{Broker, BrokerError, ChunkConsumer, ChunkDelivery, Follow, OutgoingChunk};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
struct Message {
    id: String,
    payload: Arc<[u8]>,
    deliveries: u64,
}

#[derive(Debug, Default)]
struct Queues {
    ready: VecDeque<Message>,
    dead: Vec<Message>,
    unacked: usize,
}

#[derive(Debug, Default)]
struct Inner {
    queues: Mutex<Queues>,
    ready: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock cannot leave the queues half-updated (each critical
        // section is a single push or pop), so a poisoned lock is still consistent.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A broker in process memory with the semantics Volley relies on: at-least-once delivery,
/// prefetch, requeue of unsettled deliveries, dead-lettering. It serves the embedded run,
/// one job at a time, so it keeps one queue: it has no other job to be fair to.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Messages waiting for a consumer.
    pub fn ready_len(&self) -> usize {
        self.inner.lock().ready.len()
    }

    /// Messages delivered and not yet settled.
    pub fn unacked_len(&self) -> usize {
        self.inner.lock().unacked
    }

    /// Message ids in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<String> {
        self.inner
            .lock()
            .dead
            .iter()
            .map(|m| m.id.clone())
            .collect()
    }

    /// Puts a raw message on the queue, as an outside publisher could.
    pub fn publish_raw(&self, id: &str, payload: &[u8]) {
        self.inner.lock().ready.push_back(Message {
            id: id.to_string(),
            payload: payload.into(),
            deliveries: 0,
        });
        self.inner.ready.notify_waiters();
    }
}

impl Broker for MemoryBroker {
    type Consumer = MemoryConsumer;

    /// One queue for every job: nothing to declare.
    async fn declare_job(&self, _job: &JobId) -> Result<(), BrokerError> {
        Ok(())
    }

    /// One queue for every job: nothing to delete.
    async fn delete_ended_queue(
        &self,
        _job: &JobId,
        _still_ended: impl std::future::Future<Output = bool> + Send,
    ) -> Result<bool, BrokerError> {
        Ok(false)
    }

    async fn waiting(&self, _jobs: &[JobId]) -> Result<u64, BrokerError> {
        Ok(self.ready_len() as u64)
    }

    async fn publish_confirmed(&self, batch: Vec<OutgoingChunk>) -> Result<(), BrokerError> {
        {
            let mut q = self.inner.lock();
            for chunk in batch {
                q.ready.push_back(Message {
                    id: chunk.message_id,
                    payload: chunk.payload.into(),
                    deliveries: 0,
                });
            }
        }
        self.inner.ready.notify_waiters();
        Ok(())
    }

    async fn consume(&self, prefetch: u16) -> Result<MemoryConsumer, BrokerError> {
        Ok(MemoryConsumer {
            inner: self.inner.clone(),
            credit: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
            cancelled: false,
        })
    }
}

/// A consumer of a [`MemoryBroker`].
#[derive(Debug)]
pub struct MemoryConsumer {
    inner: Arc<Inner>,
    credit: Arc<Semaphore>,
    cancelled: bool,
}

impl ChunkConsumer for MemoryConsumer {
    type Delivery = MemoryDelivery;

    /// One queue holds every chunk here, so every consumer follows it all.
    fn follow(&mut self, _jobs: Vec<Follow>) {}

    async fn next(&mut self) -> Option<MemoryDelivery> {
        if self.cancelled {
            return None;
        }
        let permit = self.credit.clone().acquire_owned().await.ok()?;
        loop {
            let notified = self.inner.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut q = self.inner.lock();
                if let Some(mut msg) = q.ready.pop_front() {
                    msg.deliveries += 1;
                    q.unacked += 1;
                    return Some(MemoryDelivery {
                        inner: self.inner.clone(),
                        message: msg,
                        permit: Mutex::new(Some(permit)),
                    });
                }
            }
            notified.await;
        }
    }

    async fn cancel(&mut self) {
        self.cancelled = true;
    }

    async fn close(self) {}

    fn is_connected(&self) -> bool {
        !self.cancelled
    }

    fn link(&self) -> Arc<crate::Link> {
        // In the process itself: never disconnected.
        Arc::new(crate::Link::up_now())
    }
}

/// A delivery from a [`MemoryBroker`]. Dropped without being settled, it is requeued, as
/// RabbitMQ requeues the deliveries of a closed channel.
#[derive(Debug)]
pub struct MemoryDelivery {
    inner: Arc<Inner>,
    message: Message,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Requeue,
    Dead,
}

impl MemoryDelivery {
    fn settle(&self, how: Settle) -> bool {
        let Some(permit) = self.permit.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return false;
        };
        {
            let mut q = self.inner.lock();
            q.unacked -= 1;
            match how {
                Settle::Ack => {}
                Settle::Requeue => q.ready.push_back(self.message.clone()),
                Settle::Dead => q.dead.push(self.message.clone()),
            }
        }
        drop(permit);
        if matches!(how, Settle::Requeue) {
            self.inner.ready.notify_waiters();
        }
        true
    }
}

impl Drop for MemoryDelivery {
    fn drop(&mut self) {
        self.settle(Settle::Requeue);
    }
}

impl ChunkDelivery for MemoryDelivery {
    fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    fn redelivered(&self) -> bool {
        self.message.deliveries > 1
    }

    fn delivery_count(&self) -> Option<u64> {
        Some(self.message.deliveries)
    }

    async fn ack(&self) -> Result<bool, BrokerError> {
        Ok(self.settle(Settle::Ack))
    }

    async fn requeue(&self) -> Result<bool, BrokerError> {
        Ok(self.settle(Settle::Requeue))
    }

    async fn dead_letter(&self) -> Result<bool, BrokerError> {
        Ok(self.settle(Settle::Dead))
    }
}
