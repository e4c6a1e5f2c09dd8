//! Volley's worker: consumes chunk messages, runs their records through the job's HTTP
//! processor under one per-worker concurrency bound (records of several chunks in flight at
//! once), commits each chunk to the store in one atomic step, and only then acks it.
//!
//! [`run_worker`] is generic over the broker and the store: the `volley-worker` binary runs it
//! on RabbitMQ and Redis, `volley run` on the in-memory adapters.
//!
//! - `run`: the main loop (consume, one task per delivery, heartbeat, drain on shutdown);
//! - `chunk`: one delivery's life, as `plan` (what the delivery calls for) then `settle`
//!   (outcomes, one commit, then ack, dead-letter or requeue);
//! - `jobs`: the job specs this worker has loaded, one processor per job;
//! - `state`: the worker's live counters and readiness, read by the heartbeat, the idle
//!   check and the probes;
//! - `readiness`: what `/readyz` and `/livez` answer from;
//! - `probes`: the HTTP endpoints (`/livez`, `/readyz`, `/metrics`);
//! - `healthcheck`: `volley-worker healthcheck`, the client of those endpoints;
//! - `startup`: waiting for RabbitMQ and Redis at start-up;
//! - `options`: how a worker runs (drain timeout, prefetch, heartbeat, hold limit).

mod chunk;
mod controls;
mod follow;
pub mod healthcheck;
mod hold;
mod jobs;
mod options;
mod probes;
mod readiness;
mod run;
pub mod startup;
mod state;

pub use options::{DEFAULT_STARTUP_TIMEOUT, WorkerOptions};
pub use probes::serve_probes;
pub use readiness::{Liveness, Readiness};
pub use run::{WorkerError, WorkerReport, run_worker};
pub use state::WorkerState;
