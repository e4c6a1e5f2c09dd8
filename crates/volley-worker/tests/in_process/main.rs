//! The worker's behaviour, tested in this process: `run_worker` on the in-memory broker,
//! store and fleet (as `volley run` runs it) against the mock API, each test seconds long or
//! less. The suites in `tests/` cover the same worker on RabbitMQ and Redis, as processes.

mod bound;
mod breaker;
mod drain;
mod pause;
mod poison;
mod redelivery;
mod support;
