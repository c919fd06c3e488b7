//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map (dependencies point one way, downwards in this list):
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.
//! - [`store`]: the sled-backed record store, ledger and indexes; the only module naming sled.
//! - [`api`]: the reqwest client for the two API endpoints; depends on `contract` only.
//! - [`sync`]: retry keys, outcome policy, state transitions and planning (pure) plus the tokio engine.

pub mod api;
pub mod contract;
pub mod sandbox;
pub mod store;
pub mod sync;
