//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map (dependencies point one way, downwards in this list):
//! - [`config`]: settings from the TOML file, the environment and flags.
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.
//! - [`ingest`]: streaming file parsers (json, ndjson, csv) and the export writers.
//! - [`store`]: the sled-backed record store, ledger and indexes; the only module naming sled.

pub mod config;
pub mod contract;
pub mod control;
pub mod ingest;
pub mod sandbox;
pub mod store;
