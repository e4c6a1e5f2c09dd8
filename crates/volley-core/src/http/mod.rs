//! The HTTP processor: renders one record's request, sends it with the job's deadline and
//! retry policy, and keeps what the spec asks of the response.

mod adaptive;
mod classify;
mod client;
mod first_failures;
mod processor;
mod response;
mod slots;

pub use classify::{AttemptClass, HostSignal};
pub use client::{ClientOptions, build_client, proxy_from_env};
pub use processor::HttpProcessor;
