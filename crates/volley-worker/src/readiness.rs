//! What `/readyz` and `/livez` answer from: the worker's phase (starting, consuming,
//! draining), the broker consumer's [`Link`] and the store's, and a stamp the runtime moves
//! every second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use volley_core::Link;

/// Where the worker is in its life, as readiness sees it.
#[derive(Debug)]
enum Phase {
    /// Not consuming yet: the reason says what it waits for.
    Starting(String),
    /// Consuming through a consumer whose link says whether it is connected.
    Consuming {
        broker_name: String,
        link: Arc<Link>,
    },
    /// A stop signal came: no new chunks are taken.
    Draining,
}

/// Whether the worker should be sent work, and why not.
#[derive(Debug)]
pub struct Readiness {
    phase: Mutex<Phase>,
    /// The store as the worker last found it (heartbeats and commits write it).
    store: Link,
}

impl Readiness {
    pub(crate) fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Starting("starting".into())),
            store: Link::up_now(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // Assignments only: a poisoned lock still holds a whole phase.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker waits for `what` at start-up (e.g. `Redis at redis://…`).
    pub fn waiting_for(&self, what: &str) {
        *self.phase() = Phase::Starting(format!("waiting for {what} at start-up"));
    }

    /// The worker consumes from the broker named `broker_name`, connected while `link` is up.
    pub(crate) fn consuming(&self, broker_name: &str, link: Arc<Link>) {
        *self.phase() = Phase::Consuming {
            broker_name: broker_name.to_string(),
            link,
        };
    }

    /// The worker stopped taking chunks.
    pub(crate) fn draining(&self) {
        *self.phase() = Phase::Draining;
    }

    /// The store answered.
    pub(crate) fn store_answered(&self) {
        self.store.up();
    }

    /// The store failed: `reason` names it and says how (one line, no secrets).
    pub(crate) fn store_failed(&self, reason: String) {
        self.store.down(reason);
    }

    /// `Ok` when the worker is ready for work; else the one-line reason it is not.
    ///
    /// # Errors
    /// The reason: `draining`, what it waits for at start-up, or the service that is down.
    pub fn check(&self) -> Result<(), String> {
        match &*self.phase() {
            Phase::Draining => return Err("draining".into()),
            Phase::Starting(reason) => return Err(reason.clone()),
            Phase::Consuming { broker_name, link } => {
                if let Some(reason) = link.reason() {
                    return Err(format!("{broker_name}: {reason}"));
                }
            }
        }
        self.store.reason().map_or(Ok(()), Err)
    }
}

/// A stamp the runtime moves on a timer: stale when the runtime stops making progress.
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    /// Milliseconds after `started` of the last stamp.
    stamped_ms: AtomicU64,
}

/// How often the stamp moves.
pub(crate) const STAMP_EVERY: Duration = Duration::from_secs(1);

/// How old a stamp may get before the worker counts as stuck: a few missed ticks, so a
/// busy machine that runs the timer late is not restarted.
const STALE_AFTER: Duration = Duration::from_secs(10);

impl Liveness {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            stamped_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves the stamp to now.
    pub(crate) fn stamp(&self) {
        self.stamped_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// `Ok` while the stamp is fresh.
    ///
    /// # Errors
    /// How long the stamp has not moved.
    pub fn check(&self) -> Result<(), String> {
        let age = Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.stamped_ms.load(Ordering::Relaxed)),
        );
        if age > STALE_AFTER {
            return Err(format!(
                "runtime stuck: no progress for {}",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_missing() {
        let ready = Readiness::new();
        ready.waiting_for("RabbitMQ at amqp://guest:***@localhost:5672/%2f");
        assert_eq!(
            ready.check(),
            Err("waiting for RabbitMQ at amqp://guest:***@localhost:5672/%2f at start-up".into())
        );
        let link = Arc::new(Link::up_now());
        ready.consuming("RabbitMQ at x", link.clone());
        assert_eq!(ready.check(), Ok(()));
        link.down("not connected (refused)");
        assert_eq!(
            ready.check(),
            Err("RabbitMQ at x: not connected (refused)".into())
        );
        link.up();
        ready.store_failed("Redis at y: timed out".into());
        assert_eq!(ready.check(), Err("Redis at y: timed out".into()));
        ready.store_answered();
        ready.draining();
        assert_eq!(ready.check(), Err("draining".into()));
    }
}
