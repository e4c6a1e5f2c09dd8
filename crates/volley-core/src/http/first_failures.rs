//! The early warning of a job whose every call fails the same way (a dead port, a wrong
//! path, a bad token): said once, within the first few attempts, with what to check, instead
//! of leaving the user to find it in the results minutes later.

use crate::{ErrorKind, RecordError};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Attempts that must all have failed the same way before the warning.
pub(crate) const SAMPLE: u32 = 5;

/// Watches one job's first attempts on this worker.
#[derive(Debug, Default)]
pub(crate) struct FirstFailures {
    /// Set once there is nothing more to say (a success, a different failure, or the warning
    /// given): the hot path reads only this flag.
    settled: AtomicBool,
    /// The way the first attempts failed, and how many did.
    seen: Mutex<Option<(ErrorKind, Option<u16>, u32)>>,
}

impl FirstFailures {
    /// An attempt succeeded: the job's calls do not all fail.
    pub(crate) fn success(&self) {
        if !self.settled.load(Ordering::Relaxed) {
            self.settled.store(true, Ordering::Relaxed);
        }
    }

    /// An attempt failed; returns whether this failure completed the sample (the warning is
    /// logged then, naming the host, the error and what to check).
    pub(crate) fn failure(&self, host: &str, error: &RecordError, status: Option<u16>) -> bool {
        if self.settled.load(Ordering::Relaxed) {
            return false;
        }
        // A failure, not the hot path: the lock is taken only until the sample is settled.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let count = match &mut *seen {
            None => {
                *seen = Some((error.kind, status, 1));
                1
            }
            Some((kind, code, n)) if *kind == error.kind && *code == status => {
                *n += 1;
                *n
            }
            Some(_) => {
                self.settled.store(true, Ordering::Relaxed);
                return false;
            }
        };
        if count < SAMPLE || self.settled.swap(true, Ordering::Relaxed) {
            return false;
        }
        tracing::warn!(
            host = %host,
            error = %error,
            check = what_to_check(error.kind, status),
            "the first {SAMPLE} calls to {host} all failed the same way"
        );
        true
    }
}

/// What a user should look at for a failure that every call meets.
fn what_to_check(kind: ErrorKind, status: Option<u16>) -> &'static str {
    match (kind, status) {
        (ErrorKind::Connect, _) => {
            "is the API running, and do the host and port of request.url point to it?"
        }
        (ErrorKind::Dns, _) => "does the host name of request.url resolve from this machine?",
        (ErrorKind::Tls, _) => {
            "does the host speak TLS (https, not http) with a certificate this machine trusts?"
        }
        (ErrorKind::Timeout, _) => {
            "is the API reachable from this machine, and does it answer within request.timeout?"
        }
        (ErrorKind::Status, Some(401 | 403)) => {
            "are the credentials in request.headers right (and their ${env:…} values set)?"
        }
        (ErrorKind::Status, Some(404 | 405)) => {
            "are the path of request.url and request.method right?"
        }
        (ErrorKind::Status, Some(429)) => {
            "the API is throttling: lower concurrency.per_worker or set concurrency.rate_limit"
        }
        (ErrorKind::Status, Some(s)) if s >= 500 => {
            "the API is failing or down: check its health and logs"
        }
        (ErrorKind::Status, _) => {
            "does the request match what the API expects? result.body = \"text\" keeps the API's reason"
        }
        (ErrorKind::Redirect, _) => "request.url redirects to another origin: use the final URL",
        (ErrorKind::BodyTooLarge | ErrorKind::Decode, _) => {
            "does the response match result.body and result.max_body_bytes?"
        }
        _ => "is request.url right, and does the API accept the request?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(kind: ErrorKind) -> RecordError {
        RecordError {
            kind,
            message: "tcp connect error: Connection refused (os error 111)".into(),
        }
    }

    #[test]
    fn warns_once_when_the_first_attempts_all_fail_the_same_way() {
        let watch = FirstFailures::default();
        let refused = error(ErrorKind::Connect);
        let warned: Vec<bool> = (0..SAMPLE + 3)
            .map(|_| watch.failure("http://127.0.0.1:9", &refused, None))
            .collect();
        assert_eq!(warned.iter().filter(|w| **w).count(), 1, "{warned:?}");
        assert!(warned[SAMPLE as usize - 1], "at the {SAMPLE}th failure");
    }

    #[test]
    fn a_success_or_another_failure_settles_it_without_a_warning() {
        let watch = FirstFailures::default();
        watch.failure("h", &error(ErrorKind::Status), Some(500));
        watch.success();
        assert!((0..SAMPLE * 2).all(|_| !watch.failure("h", &error(ErrorKind::Status), Some(500))));
        let mixed = FirstFailures::default();
        mixed.failure("h", &error(ErrorKind::Status), Some(500));
        mixed.failure("h", &error(ErrorKind::Status), Some(404));
        assert!((0..SAMPLE * 2).all(|_| !mixed.failure("h", &error(ErrorKind::Status), Some(500))));
    }
}
