//! Volley's Redis store: the job registry, the atomic chunk commit (one Lua call per chunk),
//! progress counters and the latency histogram, compact per-chunk results, and worker
//! heartbeats. Every key of a job carries the job's hash tag, so a job's commit touches one
//! slot and a move to Redis Cluster needs no key change.

mod active;
mod conn;
mod fleet;
mod keys;
mod schema;
mod scripts;
mod status;
mod store;

pub use conn::RedisOptions;
pub use fleet::RedisFleet;
pub use store::{Ledger, RedisStore, UNLINK_BATCH, WORKER_BEAT_KEPT_SECS};
