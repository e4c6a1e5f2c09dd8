//! Retrying a call while what it needs is unavailable: the one loop behind the producer's
//! store and broker calls through an outage and the worker's job look-ups and commits.
//! Each caller says which errors are worth waiting for, what to log or count on a failure,
//! and for how long to keep trying; the waits stop at once when its token is cancelled.

use crate::Backoff;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a call is retried: with which backoff, for how long, until which token fires.
#[derive(Debug, Clone)]
pub struct Patiently<'a> {
    backoff: Backoff,
    patience: Option<Duration>,
    cancel: &'a CancellationToken,
}

/// A failure that will be retried, as shown to the caller's `on_retry`.
#[derive(Debug)]
pub struct Retrying<'e, E> {
    /// Failures before this one (0 for the first).
    pub attempt: u32,
    /// What the call said.
    pub error: &'e E,
    /// How long until the next try.
    pub retry_in: Duration,
}

/// Why retrying ended without a success.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GaveUp<E> {
    /// The token was cancelled while waiting to try again.
    Cancelled,
    /// An error not worth waiting for, or the last one once the patience ran out.
    Failed(E),
}

impl<E> GaveUp<E> {
    /// The error, `None` when cancelled.
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Cancelled => None,
            Self::Failed(e) => Some(e),
        }
    }
}

impl<'a> Patiently<'a> {
    /// Retries for as long as it takes, waiting `backoff` between tries, until `cancel`
    /// fires.
    pub fn new(backoff: Backoff, cancel: &'a CancellationToken) -> Self {
        Self {
            backoff,
            patience: None,
            cancel,
        }
    }

    /// Gives up on a failure that comes back once `patience` has passed since the first
    /// try. A try already started is never cut short, nor a wait.
    pub fn for_at_most(self, patience: Duration) -> Self {
        Self {
            patience: Some(patience),
            ..self
        }
    }

    /// Calls `call` until it succeeds, retrying the errors `transient` picks; `on_retry`
    /// sees each failure about to be retried (to log or count it). A call in progress is
    /// not interrupted by the token (a commit must return its answer); only the waits are.
    ///
    /// # Errors
    /// [`GaveUp::Failed`] with an error `transient` refuses or the last one when the
    /// patience ran out; [`GaveUp::Cancelled`] when the token fired during a wait.
    pub async fn run<T, E, Fut>(
        self,
        transient: impl Fn(&E) -> bool,
        mut on_retry: impl FnMut(&Retrying<'_, E>),
        mut call: impl FnMut() -> Fut,
    ) -> Result<T, GaveUp<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let patient = self.patience.is_none_or(|p| started.elapsed() < p);
            if !patient || !transient(&error) {
                return Err(GaveUp::Failed(error));
            }
            let retry_in = self.backoff.delay(attempt);
            on_retry(&Retrying {
                attempt,
                error: &error,
                retry_in,
            });
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(GaveUp::Cancelled),
                () = tokio::time::sleep(retry_in) => {}
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(1));

    /// A call failing `failures` times with "down", then answering with its try count.
    fn flaky(failures: u32, calls: &AtomicU32) -> impl Future<Output = Result<u32, String>> {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            if n < failures {
                Err("down".to_string())
            } else {
                Ok(n)
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_through_failures_waiting_the_backoff_between_tries() {
        let token = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let mut waits = Vec::new();
        let started = Instant::now();
        let answer = Patiently::new(BACKOFF, &token)
            .run(
                |_: &String| true,
                |r| waits.push((r.attempt, r.retry_in.as_millis())),
                || flaky(5, &calls),
            )
            .await;
        assert_eq!(answer, Ok(5));
        assert_eq!(waits, [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000)]);
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_not_worth_waiting_for_ends_at_once() {
        let token = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let answer = Patiently::new(BACKOFF, &token)
            .run(|e: &String| e != "down", |_| {}, || flaky(5, &calls))
            .await;
        assert_eq!(answer, Err(GaveUp::Failed("down".to_string())));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_patience_ends_with_the_last_error_without_cutting_a_wait_short() {
        let token = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let answer = Patiently::new(BACKOFF, &token)
            .for_at_most(Duration::from_millis(250))
            .run(|_: &String| true, |_| {}, || flaky(u32::MAX, &calls))
            .await;
        assert_eq!(answer, Err(GaveUp::Failed("down".to_string())));
        // Tries at 0, 100 and 300 ms: the third failure came after the patience.
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_ends_a_wait_at_once() {
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            stop.cancel();
        });
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let answer = Patiently::new(BACKOFF, &token)
            .run(|_: &String| true, |_| {}, || flaky(u32::MAX, &calls))
            .await;
        assert_eq!(answer, Err(GaveUp::Cancelled));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_progress_is_not_cut_short_by_the_token() {
        let token = CancellationToken::new();
        token.cancel();
        let answer: Result<u32, GaveUp<String>> = Patiently::new(BACKOFF, &token)
            .run(
                |_| true,
                |_| {},
                || async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(7)
                },
            )
            .await;
        assert_eq!(answer, Ok(7));
    }
}
