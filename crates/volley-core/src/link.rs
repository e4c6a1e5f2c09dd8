//! Whether a connection to a service is up, and why not: written by whoever holds the
//! connection (the broker's consumer as it reconnects, the worker as the store answers or
//! fails), read by the readiness probe while that work goes on.

use std::sync::Mutex;

/// The state of one connection, shared: `up`, or down with a one-line reason.
#[derive(Debug)]
pub struct Link {
    /// `None` while up; the reason otherwise. Written on connects and failures only, never
    /// per record.
    down: Mutex<Option<String>>,
}

impl Link {
    /// A link that is down for `reason` until told otherwise.
    pub fn down_for(reason: impl Into<String>) -> Self {
        Self {
            down: Mutex::new(Some(reason.into())),
        }
    }

    /// A link that is up.
    pub fn up_now() -> Self {
        Self {
            down: Mutex::new(None),
        }
    }

    /// Marks the link up.
    pub fn up(&self) {
        *self.lock() = None;
    }

    /// Marks the link down, for `reason` (one line; no secrets).
    pub fn down(&self, reason: impl Into<String>) {
        let reason: String = reason.into();
        *self.lock() = Some(reason.replace('\n', " "));
    }

    /// Why the link is down, or `None` while it is up.
    pub fn reason(&self) -> Option<String> {
        self.lock().clone()
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.lock().is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // An assignment cannot be left half-done: a poisoned lock still holds a whole value.
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_says_why_it_is_down_on_one_line() {
        let link = Link::up_now();
        assert!(link.is_up());
        link.down("not connected\n(refused)");
        assert_eq!(link.reason().as_deref(), Some("not connected (refused)"));
        link.up();
        assert_eq!(link.reason(), None);
    }
}
