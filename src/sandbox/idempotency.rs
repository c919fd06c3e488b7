//! The sandbox's memory of Idempotency-Keys, per (organisation, key): which request first
//! used a key, whether it is still executing, and the stored success to replay.
//!
//! Pure data structure (the caller passes `now`). Memory stays bounded: every claim is also
//! pushed on a queue in first-use order, and each request purges the expired front of that
//! queue, so purging costs O(expired) and never scans live keys. Each claim carries a number,
//! so a stale queue item (of a key released and claimed again later) never removes the newer
//! claim, and a request whose key expired while it ran never writes over a newer claim.

use std::collections::{HashMap, VecDeque};

use axum::body::Bytes;
use chrono::{DateTime, Duration, Utc};

use crate::contract::{Fingerprint, IdempotencyKey, IDEMPOTENCY_TTL_SECONDS};

/// Identifies one claim of a key, so only its owner can complete or release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimId(u64);

/// What a key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryState {
    /// The first request is still executing.
    InProgress,
    /// The first request succeeded with this status and exact body.
    Done { status: u16, body: Bytes },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub fingerprint: Fingerprint,
    pub first_used_at: DateTime<Utc>,
    pub state: EntryState,
    claim: ClaimId,
}

/// What a request carrying a key must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is now held by this request: execute, then complete or release.
    Claimed(ClaimId),
    /// Replay this stored success verbatim.
    Replay { status: u16, body: Bytes },
    /// The key was first used with another body.
    Conflict,
    /// The first request with this key is still executing.
    InProgress,
}

type Scope = (String, IdempotencyKey);

#[derive(Debug, Default)]
pub struct IdempotencyTable {
    entries: HashMap<Scope, Entry>,
    expiry: VecDeque<(DateTime<Utc>, Scope, ClaimId)>,
    next_claim: u64,
}

fn ttl() -> Duration {
    Duration::seconds(IDEMPOTENCY_TTL_SECONDS)
}

impl IdempotencyTable {
    /// Looks `key` up for `org` and claims it when it is free (or expired).
    pub fn begin(
        &mut self,
        org: &str,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
    ) -> Begin {
        self.purge_expired(now);
        let scope = (org.to_string(), key.clone());
        if let Some(entry) = self.entries.get(&scope) {
            if entry.first_used_at + ttl() > now {
                return match (&entry.state, entry.fingerprint == fingerprint) {
                    (_, false) => Begin::Conflict,
                    (EntryState::InProgress, true) => Begin::InProgress,
                    (EntryState::Done { status, body }, true) => Begin::Replay {
                        status: *status,
                        body: body.clone(),
                    },
                };
            }
        }
        let claim = ClaimId(self.next_claim);
        self.next_claim += 1;
        self.expiry.push_back((now + ttl(), scope.clone(), claim));
        self.entries.insert(
            scope,
            Entry {
                fingerprint,
                first_used_at: now,
                state: EntryState::InProgress,
                claim,
            },
        );
        Begin::Claimed(claim)
    }

    fn held_by(&mut self, org: &str, key: &IdempotencyKey, claim: ClaimId) -> Option<&mut Entry> {
        self.entries
            .get_mut(&(org.to_string(), key.clone()))
            .filter(|e| e.claim == claim)
    }

    /// Stores the success of the claim's request for replay. False when the claim is gone
    /// (the key expired while the request ran).
    pub fn complete(
        &mut self,
        org: &str,
        key: &IdempotencyKey,
        claim: ClaimId,
        status: u16,
        body: Bytes,
    ) -> bool {
        match self.held_by(org, key, claim) {
            Some(entry) => {
                entry.state = EntryState::Done { status, body };
                true
            }
            None => false,
        }
    }

    /// Frees the key after an error, so a retry with it executes again. Only an in-progress
    /// claim is released; a completed one stays.
    pub fn release(&mut self, org: &str, key: &IdempotencyKey, claim: ClaimId) {
        let scope = (org.to_string(), key.clone());
        if self
            .entries
            .get(&scope)
            .is_some_and(|e| e.claim == claim && e.state == EntryState::InProgress)
        {
            self.entries.remove(&scope);
        }
    }

    /// Forgets every key first used 24 hours or more before `now`; returns how many.
    pub fn purge_expired(&mut self, now: DateTime<Utc>) -> usize {
        let mut purged = 0;
        while let Some((expires_at, _, _)) = self.expiry.front() {
            if *expires_at > now {
                break;
            }
            if let Some((_, scope, claim)) = self.expiry.pop_front() {
                if self.entries.get(&scope).is_some_and(|e| e.claim == claim) {
                    self.entries.remove(&scope);
                    purged += 1;
                }
            }
        }
        purged
    }

    /// How many keys are remembered (held or stored).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stored successes, for the state file.
    pub fn done_entries(&self) -> impl Iterator<Item = (&str, &IdempotencyKey, &Entry)> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.state, EntryState::Done { .. }))
            .map(|((org, key), e)| (org.as_str(), key, e))
    }

    /// The entry `org` holds under `key`.
    pub fn entry(&self, org: &str, key: &IdempotencyKey) -> Option<&Entry> {
        self.entries.get(&(org.to_string(), key.clone()))
    }

    /// Rebuilds a table from stored successes (from the state file), in first-use order.
    pub fn restore(
        stored: impl IntoIterator<
            Item = (
                String,
                IdempotencyKey,
                Fingerprint,
                DateTime<Utc>,
                u16,
                Bytes,
            ),
        >,
    ) -> Self {
        let mut stored: Vec<_> = stored.into_iter().collect();
        stored.sort_by_key(|s| s.3);
        let mut table = IdempotencyTable::default();
        for (org, key, fingerprint, first_used_at, status, body) in stored {
            let claim = ClaimId(table.next_claim);
            table.next_claim += 1;
            let scope = (org, key);
            table
                .expiry
                .push_back((first_used_at + ttl(), scope.clone(), claim));
            table.entries.insert(
                scope,
                Entry {
                    fingerprint,
                    first_used_at,
                    state: EntryState::Done { status, body },
                    claim,
                },
            );
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::fingerprint;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }
    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::new(s).unwrap()
    }
    fn fp(n: i64) -> Fingerprint {
        fingerprint(&json!({ "n": n }))
    }
    fn claimed(b: Begin) -> ClaimId {
        match b {
            Begin::Claimed(c) => c,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn same_body_replays_other_body_conflicts_running_is_in_progress() {
        let mut tab = IdempotencyTable::default();
        let c = claimed(tab.begin("o", &key("k"), fp(1), t(0)));
        assert_eq!(tab.begin("o", &key("k"), fp(1), t(1)), Begin::InProgress);
        assert_eq!(tab.begin("o", &key("k"), fp(2), t(1)), Begin::Conflict);
        assert!(tab.complete("o", &key("k"), c, 201, Bytes::from_static(b"{}")));
        assert_eq!(
            tab.begin("o", &key("k"), fp(1), t(2)),
            Begin::Replay {
                status: 201,
                body: Bytes::from_static(b"{}")
            }
        );
        assert_eq!(tab.begin("o", &key("k"), fp(2), t(2)), Begin::Conflict);
    }

    #[test]
    fn keys_are_scoped_per_org() {
        let mut tab = IdempotencyTable::default();
        claimed(tab.begin("a", &key("k"), fp(1), t(0)));
        claimed(tab.begin("b", &key("k"), fp(2), t(0)));
    }

    #[test]
    fn a_released_key_runs_again_and_a_completed_one_is_not_released() {
        let mut tab = IdempotencyTable::default();
        let c = claimed(tab.begin("o", &key("k"), fp(1), t(0)));
        tab.release("o", &key("k"), c);
        let c2 = claimed(tab.begin("o", &key("k"), fp(2), t(1)));
        assert!(tab.complete("o", &key("k"), c2, 200, Bytes::new()));
        tab.release("o", &key("k"), c2);
        assert!(matches!(
            tab.begin("o", &key("k"), fp(2), t(2)),
            Begin::Replay { .. }
        ));
    }

    #[test]
    fn keys_expire_exactly_24_hours_after_first_use() {
        let mut tab = IdempotencyTable::default();
        let c = claimed(tab.begin("o", &key("k"), fp(1), t(0)));
        tab.complete("o", &key("k"), c, 201, Bytes::new());
        let day = IDEMPOTENCY_TTL_SECONDS;
        assert!(matches!(
            tab.begin("o", &key("k"), fp(1), t(day - 1)),
            Begin::Replay { .. }
        ));
        claimed(tab.begin("o", &key("k"), fp(2), t(day)));
    }

    #[test]
    fn purge_removes_only_the_expired_front_and_keeps_memory_bounded() {
        let mut tab = IdempotencyTable::default();
        for i in 0..1000 {
            let c = claimed(tab.begin("o", &key(&format!("k{i}")), fp(i), t(i)));
            tab.complete("o", &key(&format!("k{i}")), c, 201, Bytes::new());
        }
        assert_eq!(tab.len(), 1000);
        let day = IDEMPOTENCY_TTL_SECONDS;
        assert_eq!(tab.purge_expired(t(day + 499)), 500);
        assert_eq!(tab.len(), 500);
        assert_eq!(tab.expiry.len(), 500);
        assert_eq!(tab.purge_expired(t(2 * day)), 500);
        assert!(tab.is_empty());
        assert!(tab.expiry.is_empty());
    }

    #[test]
    fn a_stale_queue_item_never_removes_a_newer_claim() {
        let mut tab = IdempotencyTable::default();
        let c = claimed(tab.begin("o", &key("k"), fp(1), t(0)));
        tab.release("o", &key("k"), c);
        let c2 = claimed(tab.begin("o", &key("k"), fp(1), t(100)));
        tab.complete("o", &key("k"), c2, 201, Bytes::new());
        // The first claim's queue item expires first but must not take the second claim.
        assert_eq!(tab.purge_expired(t(IDEMPOTENCY_TTL_SECONDS)), 0);
        assert!(matches!(
            tab.begin("o", &key("k"), fp(1), t(IDEMPOTENCY_TTL_SECONDS)),
            Begin::Replay { .. }
        ));
    }

    #[test]
    fn a_claim_that_expired_while_running_cannot_complete_over_a_new_one() {
        let mut tab = IdempotencyTable::default();
        let old = claimed(tab.begin("o", &key("k"), fp(1), t(0)));
        let new = claimed(tab.begin("o", &key("k"), fp(2), t(IDEMPOTENCY_TTL_SECONDS)));
        assert!(!tab.complete("o", &key("k"), old, 201, Bytes::new()));
        tab.release("o", &key("k"), old);
        assert_eq!(
            tab.begin("o", &key("k"), fp(2), t(IDEMPOTENCY_TTL_SECONDS + 1)),
            Begin::InProgress
        );
        assert!(tab.complete("o", &key("k"), new, 201, Bytes::new()));
    }

    #[test]
    fn restore_keeps_first_use_order_for_expiry() {
        let day = IDEMPOTENCY_TTL_SECONDS;
        let mut tab = IdempotencyTable::restore([
            ("o".into(), key("late"), fp(1), t(10), 201, Bytes::new()),
            ("o".into(), key("early"), fp(2), t(0), 200, Bytes::new()),
        ]);
        assert_eq!(tab.done_entries().count(), 2);
        assert_eq!(tab.purge_expired(t(day)), 1);
        assert!(matches!(
            tab.begin("o", &key("late"), fp(1), t(day)),
            Begin::Replay { status: 201, .. }
        ));
    }
}
