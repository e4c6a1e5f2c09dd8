//! What every Volley process starts with, and which is not the domain: the layered
//! [`Settings`] (parsed once into typed values, from which the broker and store adapters
//! build themselves), the tracing set-up ([`telemetry`]), and the binaries' shared runtime
//! start-up ([`block_on`], [`unless_stdout_failed`]). `volley-core` does not depend on it;
//! the adapters, the binaries and the test kit do.

pub mod settings;
mod start;
pub mod telemetry;

pub use settings::{Settings, SettingsError};
pub use start::{block_on, stop_signal, unless_stdout_failed};
