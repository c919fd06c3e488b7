//! Idempotency-Keys derived from (local id, revision).
//!
//! The key is a pure function of what is being sent, never a random value stored beside it.
//! So a crash between sending a request and recording its reply loses nothing: on restart the
//! record is still at the same revision, the same key is sent again, and the server replays
//! its stored answer instead of creating a second customer. A new revision is a different
//! body and gets a different key, so it is executed, not mistaken for a replay (which the
//! server would refuse as `idempotency_conflict`).

use crate::contract::IdempotencyKey;
use crate::store::RecordId;

pub fn idempotency_key(id: RecordId, revision: u32) -> IdempotencyKey {
    // A hyphenated UUID, a prefix and a u32 are visible ASCII and at most 55 characters, so
    // the contract's 1–255 rule always holds.
    IdempotencyKey::new(format!("icsync-{}-r{revision}", id.0.hyphenated()))
        .unwrap_or_else(|_| unreachable!("a derived key is always a valid Idempotency-Key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_same_record_and_revision_always_give_the_same_key() {
        let id = RecordId(Uuid::from_u128(0x0190_b0f2_7c1e_7000_8000_0000_0000_0001));
        assert_eq!(idempotency_key(id, 3), idempotency_key(id, 3));
        assert_eq!(
            idempotency_key(id, 3).as_str(),
            "icsync-0190b0f2-7c1e-7000-8000-000000000001-r3"
        );
    }

    #[test]
    fn a_new_revision_or_another_record_gets_a_new_key() {
        let a = RecordId(Uuid::from_u128(1));
        let b = RecordId(Uuid::from_u128(2));
        assert_ne!(idempotency_key(a, 1), idempotency_key(a, 2));
        assert_ne!(idempotency_key(a, 1), idempotency_key(b, 1));
        assert!(idempotency_key(a, u32::MAX).as_str().len() <= 255);
    }
}
