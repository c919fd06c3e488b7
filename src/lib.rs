//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map (dependencies point one way, downwards in this list):
//! - [`config`]: settings from the TOML file, the environment and flags.
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.
//! - [`store`]: the sled-backed record store, ledger and indexes; the only module naming sled.
//! - [`tui`]: the terminal front end (ratatui); reaches the daemon only through `control`.

pub mod config;
pub mod contract;
pub mod control;
pub mod sandbox;
pub mod store;
pub mod tui;
