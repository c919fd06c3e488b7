//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map (dependencies point one way, downwards in this list):
//! - [`cli`]: the record commands, their flags and output, over the daemon or the store.
//! - [`config`]: settings from the TOML file, the environment and flags.
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.
//! - [`service`]: what each command does to the records, for the daemon and the CLI alike.
//! - [`store`]: the sled-backed record store, ledger and indexes; the only module naming sled.

pub mod cli;
pub mod config;
pub mod contract;
pub mod control;
pub mod sandbox;
pub mod service;
pub mod store;
