//! The local store: the only module that touches sled.

mod record;

pub use record::{
    ActionKind, Attempt, HistoryEntry, Origin, Payload, Record, RecordError, RecordId, RecordState,
};
