//! Sending records to the API: which key, what each outcome means, how a record's state
//! moves, what to send next, and the tokio engine that does it.
//!
//! Everything except `engine`, `existing`'s task and `meter` (a CPU clock) is pure (no clock,
//! no randomness, no I/O) and unit-tested on its own; the engine only executes what they
//! decide. This module reads and writes records only through `store::Store` and talks to the
//! API only through `api::ApiClient`.

pub mod engine;
pub mod existing;
pub mod inflight;
pub mod keys;
pub mod meter;
pub mod planner;
pub mod policy;
pub mod transition;

pub use engine::{Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, EngineStatus};
pub use existing::EnricherConfig;
pub use inflight::InFlight;
pub use keys::idempotency_key;
pub use meter::Work;
pub use planner::{Gate, Offline};
pub use policy::{backoff, classify, retry_delay, Disposition};
pub use transition::{finish_attempt, recover_sending, send_plan, SendPlan};
