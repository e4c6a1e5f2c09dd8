//! A configurable fake API for the demo, the tests and the benchmarks: `GET /users/{id}` and
//! `POST /users` answer one of 50 users, with query knobs for latency, jitter, failures and
//! `Retry-After`; `GET /stats` counts requests (per id and with arrival times when asked to) and
//! those in flight (`in_flight` now, `in_flight_max` the most at once).
//!
//! Query knobs of the user routes (see `Knobs` in `knobs.rs` for details):
//! `delay_ms`, `jitter_ms`, `fail_pct`, `status`, `retry_after`, `retry_after_date=SECS`
//! (an HTTP-date SECS seconds ahead), `fail_first=N` (the first N requests per id fail,
//! default 503), `body_bytes=N`, `endless=true` (a body that never ends), `capacity=N` (N served
//! at once, the rest queue) and `overload_above=N` (429 while more than N are in flight).
//!
//! Admin routes: `POST /admin/outage?status=503` makes every user route answer that status
//! until `DELETE /admin/outage` ([`MockServer::set_outage`] from Rust); `POST /stats/reset`
//! zeroes the counters (the in-flight maximum restarts from what is in flight).

mod knobs;
mod routes;
mod server;
mod stats;
mod users;

pub use server::{MockConfig, MockServer, serve};
pub use stats::Stats;
