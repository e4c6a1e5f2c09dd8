//! The end-to-end suite: one test binary, one module per area. Every test talks to the real
//! RabbitMQ and Redis in a namespace of its own and cleans up after itself.

mod adaptive;
mod bound;
mod cli;
mod contract;
mod controls;
mod dashboard;
mod docs;
mod embedded;
mod errors;
mod export;
mod fairness;
mod fleet;
mod http;
mod input;
mod job_end;
mod migrate;
mod operator;
mod probes;
mod redelivery;
mod transport;
mod watch;
mod worker_settings;
