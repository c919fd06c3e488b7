//! The records the engine has in flight: requests sent, or finished but not yet recorded.
//! Kept in memory only, never written to the store: a record being sent stays `queued` on
//! disk at its revision, so after a crash it is sent again with the same derived key
//! (`keys`) and the server replays its answer. The service reads it for the "sending"
//! counts and to refuse an operator's action on a record in flight; the lock orders that
//! check against the engine taking records (see [`InFlight::lock`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::RecordId;

/// A shared set of record ids; clones see the same set.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<RecordId>>>);

impl InFlight {
    /// The set, held. The engine holds it from reading due records to adding them, and an
    /// operator's action holds it from its check to its commit, so an action never applies
    /// to a record the engine read before the action changed it, nor the reverse. Never held
    /// across an await or an fsync.
    pub fn lock(&self) -> MutexGuard<'_, HashSet<RecordId>> {
        // The set stays valid whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn contains(&self, id: RecordId) -> bool {
        self.lock().contains(&id)
    }

    /// The ids in flight, in queue order (id order).
    pub fn ids(&self) -> Vec<RecordId> {
        let mut ids: Vec<RecordId> = self.lock().iter().copied().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn clones_share_one_set_and_ids_come_in_queue_order() {
        let a = InFlight::default();
        let b = a.clone();
        b.lock().insert(RecordId(Uuid::from_u128(2)));
        b.lock().insert(RecordId(Uuid::from_u128(1)));
        assert_eq!(a.len(), 2);
        assert!(a.contains(RecordId(Uuid::from_u128(1))));
        assert_eq!(
            a.ids(),
            vec![RecordId(Uuid::from_u128(1)), RecordId(Uuid::from_u128(2))]
        );
        a.lock().clear();
        assert!(b.is_empty());
    }
}
