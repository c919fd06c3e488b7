//! icsync: local-first sync of customer records into Instant Compliance.
//!
//! Module map, lowest first (dependencies point one way: a module uses only those above it):
//! - [`contract`]: the API's types, validation, fingerprint and upsert rules (pure).
//! - [`sandbox`]: the local implementation of the API (axum); depends on `contract` only.
//! - [`config`]: settings from the TOML file, the environment and flags.
//! - [`crypto`]: the data key, sealing, keyed index terms and the keyring (no sled, no I/O
//!   beyond the key and keyring files).
//! - [`store`]: the sled-backed record store, ledger and indexes; the only module naming sled.
//! - [`ingest`]: streaming JSON / NDJSON / CSV parsers and export writers (pure over readers).
//! - [`api`]: the reqwest client for the two API endpoints; depends on `contract` only.
//! - [`sync`]: retry keys, outcome policy, state transitions and planning (pure) plus the
//!   tokio engine.
//! - [`control`]: the daemon's Unix-socket protocol, server and client.
//! - [`service`]: what each command does to the records, for the daemon and the CLI alike.
//! - [`dropdir`]: the watched drop folder: whole files in, records queued with their file
//!   progress, files archived and bad records reported.
//! - [`daemon`]: wires store, engine and control socket; signals, locking, logs.
//! - [`tui`]: the terminal front end; reaches the daemon only through `control`.
//! - [`ops`]: installing and operating: service units, `doctor`, the version string.
//! - [`cli`]: the record commands, their flags and output, over the daemon or the store.

pub mod api;
pub mod cli;
pub mod config;
pub mod contract;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod dropdir;
pub mod ingest;
pub mod ops;
pub mod sandbox;
pub mod service;
pub mod store;
pub mod sync;
pub mod tui;
