//! In-memory broker and store: the embedded default (`volley run`, `volley demo`) and the
//! reference the contract tests hold the real adapters to.

mod broker;
mod store;

pub use broker::{MemoryBroker, MemoryConsumer, MemoryDelivery};
pub use store::MemoryStore;
