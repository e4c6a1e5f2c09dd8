//! Job controls: what `volley cancel`, `pause`, `resume` and `limit` store with a job, and
//! the live copy each worker's processor of the job reads before every request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// A job's controls as stored with its keys (the same hash tag and expiry). Every field is
/// absent until an operator sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobControls {
    /// When `volley cancel` was asked (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_ms: Option<u64>,
    /// Since when the job is paused (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
    /// The fleet rate limit (requests/s) replacing the spec's `concurrency.rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The per-worker in-flight limit replacing the spec's `concurrency.per_worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// One operator command on a job's controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControlChange {
    /// `volley cancel`: no new request; unsent records settle `cancelled`.
    Cancel,
    /// `volley pause`: records wait without sending.
    Pause,
    /// `volley resume`.
    Resume,
    /// `volley limit`: replaces the given limits, keeps the others.
    Limit {
        /// New fleet rate, requests/s.
        rate: Option<f64>,
        /// New per-worker in-flight limit.
        concurrency: Option<u32>,
    },
    /// `volley limit --clear`: back to the spec's limits.
    ClearLimits,
}

impl ControlChange {
    /// The command's name, as `--json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Limit { .. } => "limit",
            Self::ClearLimits => "clear_limits",
        }
    }

    /// The controls after this change at `now_ms`. Pausing a paused job keeps the first
    /// `paused_ms`; cancelling twice keeps the first `cancel_ms`.
    pub fn apply(self, mut controls: JobControls, now_ms: u64) -> JobControls {
        match self {
            Self::Cancel => {
                controls.cancel_ms.get_or_insert(now_ms);
            }
            Self::Pause => {
                controls.paused_ms.get_or_insert(now_ms);
            }
            Self::Resume => controls.paused_ms = None,
            Self::Limit { rate, concurrency } => {
                controls.rate = rate.or(controls.rate);
                controls.concurrency = concurrency.or(controls.concurrency);
            }
            Self::ClearLimits => {
                controls.rate = None;
                controls.concurrency = None;
            }
        }
        controls
    }
}

/// What a control command found.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlReply {
    /// Stored; the job's controls now.
    Applied(JobControls),
    /// No such job.
    Unknown,
    /// The job has ended in this state: there is nothing left to steer.
    Ended(crate::JobState),
}

/// A worker's live view of one job's controls, shared by all its records: read without a
/// lock on every admission, changed by the worker's control watcher.
#[derive(Debug, Default)]
pub struct LiveControls {
    cancelled: AtomicBool,
    paused: AtomicBool,
    /// The stored controls last applied, to tell a change from a re-read.
    stored: Mutex<JobControls>,
    changed: Notify,
}

impl LiveControls {
    /// Whether the job is cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Whether the job is paused (and not cancelled: a cancel ends every wait).
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed) && !self.cancelled()
    }

    /// Takes stored controls; returns the previous ones when they changed.
    pub fn set(&self, controls: JobControls) -> Option<JobControls> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if *stored == controls {
            return None;
        }
        let before = std::mem::replace(&mut *stored, controls);
        drop(stored);
        self.cancelled
            .store(controls.cancel_ms.is_some(), Ordering::Relaxed);
        self.paused
            .store(controls.paused_ms.is_some(), Ordering::Relaxed);
        self.changed.notify_waiters();
        Some(before)
    }

    /// The stored controls last applied.
    pub fn get(&self) -> JobControls {
        *self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the controls change (or a short tick passes: a waiter re-checks then).
    pub async fn changed(&self) {
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            self.changed.notified(),
        )
        .await;
    }

    /// Waits until the job is cancelled.
    pub async fn until_cancelled(&self) {
        while !self.cancelled() {
            self.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_keep_the_first_cancel_and_pause_and_limits_merge() {
        let c = ControlChange::Pause.apply(JobControls::default(), 10);
        let c = ControlChange::Pause.apply(c, 20);
        assert_eq!(c.paused_ms, Some(10), "paused since the first pause");
        let c = ControlChange::Limit {
            rate: Some(40.0),
            concurrency: None,
        }
        .apply(c, 30);
        let c = ControlChange::Limit {
            rate: None,
            concurrency: Some(3),
        }
        .apply(c, 40);
        assert_eq!((c.rate, c.concurrency), (Some(40.0), Some(3)));
        let c = ControlChange::Resume.apply(c, 50);
        assert_eq!(c.paused_ms, None);
        let c = ControlChange::Cancel.apply(ControlChange::Cancel.apply(c, 60), 70);
        assert_eq!(c.cancel_ms, Some(60));
        let c = ControlChange::ClearLimits.apply(c, 80);
        assert_eq!((c.rate, c.concurrency), (None, None));
    }

    #[test]
    fn a_cancel_overrides_a_pause_in_the_live_view() {
        let live = LiveControls::default();
        assert!(
            live.set(JobControls {
                paused_ms: Some(1),
                ..JobControls::default()
            })
            .is_some()
        );
        assert!(live.paused() && !live.cancelled());
        assert!(live.set(live.get()).is_none(), "a re-read is no change");
        live.set(JobControls {
            paused_ms: Some(1),
            cancel_ms: Some(2),
            ..JobControls::default()
        });
        assert!(live.cancelled() && !live.paused());
    }
}
