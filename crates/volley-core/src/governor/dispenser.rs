use super::fleet::FleetState;
use crate::StoreError;
use crate::time::now_ms;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::Mutex;

/// Hands out the tokens of one shared bucket to this process's requests, reserving them from
/// the fleet state in small batches: Redis sees one round trip per batch, not per request,
/// and each token keeps its own time, so a batch never becomes a burst.
pub(crate) struct Dispenser {
    key: String,
    rate: f64,
    burst: u32,
    batch: u32,
    /// Times (ms, this process's clock) of reserved, unused tokens. The lock is held across
    /// the reservation on purpose: one refill at a time, the other takers queue behind it.
    slots: Mutex<VecDeque<f64>>,
}

impl Dispenser {
    pub(crate) fn new(key: String, rate: f64, burst: u32) -> Self {
        // About 50 ms of the fleet's budget per reservation: few round trips, little lost
        // when a worker stops holding reserved tokens.
        let batch = ((rate / 20.0).ceil() as u32).clamp(1, burst.max(1));
        Self {
            key,
            rate,
            burst,
            batch,
            slots: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn matches(&self, rate: f64, burst: u32) -> bool {
        (self.rate - rate).abs() < f64::EPSILON && self.burst == burst
    }

    /// Waits for the next token.
    pub(crate) async fn take(&self, fleet: &dyn FleetState) -> Result<(), StoreError> {
        let at = {
            let mut slots = self.slots.lock().await;
            if slots.is_empty() {
                let r = fleet
                    .reserve(&self.key, self.batch, self.rate, self.burst)
                    .await?;
                slots.extend((0..self.batch).map(|i| r.at(i)));
            }
            slots.pop_front().unwrap_or(0.0)
        };
        let wait = at - now_ms() as f64;
        if wait > 0.5 {
            tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
        }
        Ok(())
    }
}
