//! Waiting at start-up for a service that is not up yet. In containers and on Kubernetes a
//! worker often starts before RabbitMQ or Redis: it waits for them with backoff (as
//! Celery's `broker_connection_retry_on_startup` does) instead of exiting, logs once in a
//! while, and gives up after the start-up timeout. A refusal that waiting cannot cure (a
//! queue declared with other arguments) ends the wait at once.

use crate::chunk::STORE_BACKOFF;
use crate::options::WorkerOptions;
use crate::run::WorkerError;
use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use volley_core::patiently::Patiently;
use volley_core::{Broker, BrokerError};

/// How often a worker still waiting says so.
const STILL_WAITING_EVERY: Duration = Duration::from_secs(30);

/// A service still not reachable when the start-up timeout passed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{service} still not reachable after {} (the start-up timeout); last error: {last}",
    shown(*limit)
)]
pub struct NotUp {
    /// The service, named for people (`RabbitMQ at amqp://guest:***@host:5672/%2f`).
    pub service: String,
    /// The start-up timeout.
    pub limit: Duration,
    /// What the last attempt said.
    pub last: String,
}

/// Why waiting for a service ended without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitFailed<E> {
    /// The service answered with a refusal that waiting cannot cure.
    #[error(transparent)]
    Refused(E),
    /// The start-up timeout passed.
    #[error(transparent)]
    NotUp(NotUp),
}

/// Runs `attempt` until it succeeds, with backoff (100 ms doubling to 5 s), for at most
/// `limit` (`None`: for as long as it takes). Returns `Ok(None)` when `shutdown` fires first
/// (at once, also in the middle of an attempt).
///
/// # Errors
/// [`WaitFailed::Refused`] for an error `permanent` picks, [`WaitFailed::NotUp`] when the
/// limit passes.
pub async fn wait_until_up<T, E, Fut>(
    service: &str,
    limit: Option<Duration>,
    shutdown: &CancellationToken,
    permanent: impl Fn(&E) -> bool,
    attempt: impl FnMut() -> Fut,
) -> Result<Option<T>, WaitFailed<E>>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let deadline = limit.map(|limit| tokio::time::Instant::from_std(started + limit));
    let log = Mutex::new(WaitLog::new(service, limit, started));
    let said = || log.lock().unwrap_or_else(|p| p.into_inner());
    let waiting = Patiently::new(STORE_BACKOFF, shutdown).run(
        |e| !permanent(e),
        |r| said().failed(r.attempt, r.error.to_string()),
        attempt,
    );
    // The patient retry stops only at a wait; the start-up timeout and a stop signal also
    // cut an attempt short (a connect to a host that drops packets can hang).
    tokio::select! {
        biased;
        () = shutdown.cancelled() => Ok(None),
        () = until(deadline) => Err(not_up(service, limit, said().last.take())),
        answer = waiting => match answer {
            Ok(up) => {
                said().up();
                Ok(Some(up))
            }
            Err(gave_up) => gave_up.into_error().map_or(Ok(None), |e| Err(WaitFailed::Refused(e))),
        },
    }
}

/// What a wait says: the first failure at once, then a line every
/// [`STILL_WAITING_EVERY`], and when the service is up after all.
struct WaitLog<'a> {
    service: &'a str,
    limit: Option<Duration>,
    started: Instant,
    last_said: Instant,
    failures: u32,
    /// What the last attempt said, for the message when the timeout passes.
    last: Option<String>,
}

impl<'a> WaitLog<'a> {
    fn new(service: &'a str, limit: Option<Duration>, started: Instant) -> Self {
        Self {
            service,
            limit,
            started,
            last_said: started,
            failures: 0,
            last: None,
        }
    }

    fn failed(&mut self, failures_before: u32, error: String) {
        self.failures = failures_before + 1;
        let service = self.service;
        let error = self.last.insert(error).as_str();
        if failures_before == 0 {
            let limit = self.limit.map_or_else(|| "none".into(), shown);
            tracing::warn!(service, error.message = %error, limit = %limit, "{service} not reachable yet; waiting for it");
        } else if self.last_said.elapsed() >= STILL_WAITING_EVERY {
            tracing::warn!(service, error.message = %error, waited_secs = self.started.elapsed().as_secs(), "still waiting for {service}");
        } else {
            return;
        }
        self.last_said = Instant::now();
    }

    fn up(&self) {
        if self.failures > 0 {
            let service = self.service;
            tracing::info!(
                service,
                waited_secs = self.started.elapsed().as_secs(),
                "{service} is up"
            );
        }
    }
}

/// A duration for people: whole seconds from a second up (what is left of a shared
/// start-up timeout is not worth its nanoseconds), milliseconds below.
fn shown(d: Duration) -> String {
    let d = if d >= Duration::from_secs(1) {
        Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
    } else {
        Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    humantime::format_duration(d).to_string()
}

/// Starts consuming once the broker is up (see above); `None` when stopped
/// first. A topology mismatch is not "not up yet": it fails at once.
pub(crate) async fn consume_when_up<B: Broker>(
    broker: &B,
    options: &WorkerOptions,
    shutdown: &CancellationToken,
) -> Result<Option<B::Consumer>, WorkerError> {
    wait_until_up(
        &options.broker_name,
        options.startup_timeout,
        shutdown,
        |e| matches!(e, BrokerError::Topology(_)),
        || broker.consume(options.prefetch),
    )
    .await
    .map_err(|failed| match failed {
        WaitFailed::Refused(e) => WorkerError::Broker(e),
        WaitFailed::NotUp(not_up) => WorkerError::NotUp(not_up),
    })
}

/// Resolves at `deadline`, never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn not_up<E>(service: &str, limit: Option<Duration>, last: Option<String>) -> WaitFailed<E> {
    WaitFailed::NotUp(NotUp {
        service: service.to_string(),
        limit: limit.unwrap_or_default(),
        last: last.unwrap_or_else(|| "no answer yet".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn waits_through_failures_until_the_service_answers() {
        let calls = AtomicU32::new(0);
        let up = wait_until_up(
            "svc",
            Some(Duration::from_secs(30)),
            &CancellationToken::new(),
            |_: &String| false,
            || async {
                match calls.fetch_add(1, Ordering::Relaxed) {
                    0..3 => Err("connection refused".to_string()),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert!(matches!(up, Ok(Some(3))));
    }

    #[tokio::test]
    async fn a_permanent_refusal_ends_the_wait_at_once() {
        let calls = AtomicU32::new(0);
        let refused = wait_until_up(
            "svc",
            None,
            &CancellationToken::new(),
            |e: &String| e.contains("PRECONDITION_FAILED"),
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>("PRECONDITION_FAILED".to_string())
            },
        )
        .await;
        assert!(matches!(refused, Err(WaitFailed::Refused(_))));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_limit_ends_the_wait_naming_the_service_and_the_last_error() {
        let failed = wait_until_up(
            "Redis at redis://127.0.0.1:1",
            Some(Duration::from_millis(300)),
            &CancellationToken::new(),
            |_: &String| false,
            || async { Err::<(), _>("connection refused".to_string()) },
        )
        .await;
        let Err(WaitFailed::NotUp(not_up)) = failed else {
            panic!("expected the limit to pass");
        };
        assert_eq!(
            not_up.to_string(),
            "Redis at redis://127.0.0.1:1 still not reachable after 300ms (the start-up timeout); last error: connection refused"
        );
    }

    #[tokio::test]
    async fn a_stop_signal_ends_the_wait_at_once() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let stopped = wait_until_up(
            "svc",
            None,
            &shutdown,
            |_: &String| false,
            std::future::pending::<Result<(), String>>,
        )
        .await;
        assert!(matches!(stopped, Ok(None)));
    }
}
