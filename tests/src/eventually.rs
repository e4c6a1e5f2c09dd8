//! Waiting for a condition: one `eventually(within, check)` instead of a deadline loop in
//! every test. A check answers `bool`, `Option<T>` or `Result<T, E>`; the error after `within`
//! carries the last answer that was not yet good (a `Result`'s error says what was seen).

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] asks.
const EVERY: Duration = Duration::from_millis(50);

/// What a check answers: ready with a value, or not yet, saying what it saw.
pub trait Answer {
    type Value;
    /// `Err` holds the observed state, for the message of a wait that ran out.
    fn ready(self) -> Result<Self::Value, String>;
}

impl Answer for bool {
    type Value = ();
    fn ready(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Answer for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".into())
    }
}

impl<T, E: Display> Answer for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Asks `check` every 50 ms until it is ready, and returns its value; fails after `within`
/// with the last answer. Add the wait's meaning with `.context(..)`.
///
/// # Errors
/// When `check` is not ready within `within`.
pub async fn eventually<A, F, Fut>(within: Duration, check: F) -> anyhow::Result<A::Value>
where
    A: Answer,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    eventually_every(within, EVERY, check).await
}

/// [`eventually`], asking every `every` (for checks that cost a process or a round trip).
///
/// # Errors
/// When `check` is not ready within `within`.
pub async fn eventually_every<A, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<A::Value>
where
    A: Answer,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match check().await.ready() {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        anyhow::ensure!(
            Instant::now() < deadline,
            "not within {within:?}; last seen: {last}"
        );
        tokio::time::sleep(every).await;
    }
}
