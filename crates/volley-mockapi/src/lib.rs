//! A configurable fake API for the demo, the tests and the benchmarks: `GET /users/{id}` and
//! `POST /users` answer one of 50 users, with query knobs for latency, jitter, failures and
//! `Retry-After`; `GET /stats` counts requests (per id when asked to).

mod knobs;
mod routes;
mod server;
mod stats;
mod users;

pub use server::{MockConfig, MockServer, serve};
pub use stats::Stats;
