//! The fleet-wide politeness of the HTTP engine, per target host: pauses asked for by
//! `Retry-After`, the circuit breaker, and rate limits (a job's own and a host's fleet-level
//! one). A [`Governor`] per worker process decides when a request may go; the shared state
//! lives behind [`FleetState`] (Redis for a fleet, memory for the embedded default), and
//! changes reach every worker as [`FleetEvent`]s.

mod breaker;
mod dispenser;
mod fleet;
mod gate;
mod local_breaker;
mod memory;

pub use breaker::{BreakerPhase, StoredBreaker};
pub use fleet::{FleetEvent, FleetState, HostLimit, Reservation, gcra_reserve};
pub use gate::{Admission, Governor, JobLimits, Observation};
pub use memory::MemoryFleet;

/// A request's target: `scheme://host:port`, the key of pauses, breakers and host limits.
pub fn host_key(url: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
