//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map (dependencies point one way, downwards in this list):
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.

pub mod contract;
pub mod sandbox;
