//! `icsync daemon`: wires the store, the sync engine and the control socket together, and
//! owns the process-level concerns: one daemon per data dir, logs, signals, an orderly stop.
//! It holds no sync or record logic of its own.

pub mod lock;
pub mod logging;
