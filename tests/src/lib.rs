//! The test kit: a [`TestEnv`] per test with its own namespace (queues and key prefix), a mock
//! API on `127.0.0.1:0`, a scratch directory, and helpers to run the real binaries against the
//! machine's RabbitMQ and Redis. Dropping the env deletes its queues and keys.

#![allow(missing_docs, unreachable_pub)]

mod bins;
pub mod chaos;
mod env;
mod eventually;
pub mod private;
mod records;
pub mod support;
pub mod tiny;

pub use bins::{bin, run_bin};
pub use env::{TestEnv, path_str};
pub use eventually::{Answer, eventually, eventually_every};
pub use records::{ResultsCheck, check_results, write_jsonl};
