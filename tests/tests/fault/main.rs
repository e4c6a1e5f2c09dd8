//! The fault suite (docs/faults.md): real processes, real RabbitMQ and Redis, faults fired
//! on observed progress, and the oracle after every scenario. Scenarios that stop or fill a
//! server use private instances (`volley_tests::private`) and run one at a time.

mod amnesia;
mod api;
mod broker;
mod hold;
mod input;
mod kit;
mod limits;
mod network;
mod oracle;
mod poison;
mod probes;
mod producer;
mod security;
mod soak;
mod spec;
mod startup;
mod store;
mod tls;
mod workers;

/// Scenarios on private servers run one at a time (a private RabbitMQ costs seconds of both
/// cores to start). nextest runs each test in its own process, so its `fault` test group
/// (`.config/nextest.toml`) does the same there.
pub(crate) async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
