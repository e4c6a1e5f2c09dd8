//! A job's fixed in-flight bound on one worker (`concurrency.per_worker`), resizable while
//! records wait on it (`volley limit --concurrency`).

use std::sync::Arc;
use std::sync::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A semaphore whose size can change under load: growing adds permits at once; shrinking
/// forgets permits as they come back, so requests in flight finish and none is cut off.
pub(crate) struct ResizableSlots {
    semaphore: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl ResizableSlots {
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        }
    }

    /// Waits for a slot; `None` once the semaphore is closed (never, today).
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// Sets the size to `size` (at least 1).
    pub(crate) fn resize(&self, size: usize) {
        let size = size.max(1);
        let mut current = self.size.lock().unwrap_or_else(|p| p.into_inner());
        let before = std::mem::replace(&mut *current, size);
        drop(current);
        if size > before {
            self.semaphore.add_permits(size - before);
        } else if size < before {
            let surplus = before - size;
            let forgotten = self.semaphore.forget_permits(surplus);
            let owed = u32::try_from(surplus - forgotten).unwrap_or(u32::MAX);
            if owed > 0 {
                // The rest are held by requests in flight: take them as they come back.
                let semaphore = self.semaphore.clone();
                tokio::spawn(async move {
                    if let Ok(permits) = semaphore.acquire_many_owned(owed).await {
                        permits.forget();
                    }
                });
            }
        }
    }

    #[cfg(test)]
    fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shrinking_under_load_takes_permits_as_they_return_and_growing_adds_them() {
        let slots = ResizableSlots::new(4);
        let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| slots.acquire())).await;
        slots.resize(2);
        assert_eq!(slots.available(), 0, "the free one is forgotten at once");
        drop(held);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.available(), 2, "two of the three returned are owed");
        slots.resize(5);
        assert_eq!(slots.available(), 5);
        let five: Vec<_> = futures_util::future::join_all((0..5).map(|_| slots.acquire())).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slots.acquire())
                .await
                .is_err(),
            "never more than the size"
        );
        drop(five);
    }
}
