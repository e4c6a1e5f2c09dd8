//! Volley's producer: streams the record file in constant memory, registers the job before
//! the first publish, and publishes chunk messages with publisher confirms, recording after
//! each confirmed batch how far it got, so a re-run with the same job id continues there.
//!
//! [`produce`] is generic over the broker and the store: the `volley-producer` binary runs it
//! on RabbitMQ and Redis, `volley run` on the in-memory adapters.

#![warn(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "stdout and stderr go through volley_core::outln! and errln!, which never panic on a closed pipe"
)]

mod digest;
mod duplicates;
mod missing;
mod produce;
mod reader;
mod skip;

pub use duplicates::{Duplicate, DuplicateReport};
pub use missing::{CheckError, Verdict, check_missing};
pub use produce::{JobStart, ProduceError, ProduceReport, ProduceRequest, produce};
pub use skip::DoneRecords;
