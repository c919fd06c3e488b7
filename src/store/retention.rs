//! Retention: which records may lose their customer data, and what is left of them. Pure:
//! the store applies it in transactions (`Store::purge`).
//!
//! A record is purged once it is synced, its newest revision is the one the server
//! acknowledged, and it has not changed since the cutoff. Queued, sending, conflict, rejected
//! and discarded records are never purged: they still need the data (or a person). The stub
//! keeps the local id, the server's customer id, timestamps, state and the attempt history
//! (keys, times, statuses, latencies), so the audit trail survives; payload, server customer,
//! errors, the existing customer of an old conflict and free-text details go.

use chrono::{DateTime, Utc};

use super::record::{ActionKind, HistoryEntry, Payload, Record, RecordState};

/// Whether retention erases `record` when everything synced before `cutoff` goes.
pub fn purgeable(record: &Record, cutoff: DateTime<Utc>) -> bool {
    record.state == RecordState::Synced
        && record.synced_revision == Some(record.revision)
        && record.updated_at <= cutoff
        && !record.payload.is_erased()
}

/// Erases the customer data of `record`, leaving the stub.
pub fn erase(record: &mut Record, now: DateTime<Utc>) {
    record.linked_customer_id = record.remote_id();
    record.remote = None;
    record.existing = None;
    record.payload = Payload::erased();
    record.last_error = None;
    for entry in &mut record.history {
        match entry {
            HistoryEntry::Attempt(a) => a.error = None,
            HistoryEntry::Action { detail, .. } => *detail = None,
        }
    }
    record.history.push(HistoryEntry::Action {
        at: now,
        action: ActionKind::Purged,
        revision: record.revision,
        detail: None,
    });
}

/// The history of a purge is the old history with details erased and one entry appended:
/// the same attempts (keys, times, statuses) in the same places.
pub fn is_purge_of(old: &Record, new: &Record) -> bool {
    new.history.len() == old.history.len() + 1
        && old
            .history
            .iter()
            .zip(&new.history)
            .all(|(a, b)| match (a, b) {
                (HistoryEntry::Attempt(a), HistoryEntry::Attempt(b)) => {
                    a.key == b.key && a.at == b.at && a.status == b.status
                }
                (
                    HistoryEntry::Action {
                        action: x, at: s, ..
                    },
                    HistoryEntry::Action {
                        action: y, at: t, ..
                    },
                ) => x == y && s == t,
                _ => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Attempt, Origin, RecordId};
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn synced() -> Record {
        let p = Payload::parse(&json!({"full_name": "Ada", "email": "ada@x.io"})).unwrap();
        let mut r = Record::new(RecordId::new(), p, Origin::Cli, t(0));
        r.history.push(HistoryEntry::Attempt(Attempt {
            at: t(1),
            revision: 1,
            key: "k1".into(),
            status: Some(201),
            latency_ms: 5,
            replayed: false,
            error: Some("ada@x.io taken".into()),
        }));
        r.state = RecordState::Synced;
        r.synced_revision = Some(1);
        r.linked_customer_id = Some(uuid::Uuid::new_v4());
        r.updated_at = t(1);
        r
    }

    #[test]
    fn only_synced_unchanged_records_past_the_cutoff_are_purged() {
        let r = synced();
        assert!(purgeable(&r, t(1)));
        assert!(!purgeable(&r, t(0)));
        for state in [
            RecordState::Queued,
            RecordState::Sending,
            RecordState::Conflict,
            RecordState::Rejected,
            RecordState::Discarded,
        ] {
            let mut other = r.clone();
            other.state = state;
            assert!(!purgeable(&other, t(9)), "{state}");
        }
        let mut newer = r.clone();
        newer.revision = 2;
        assert!(!purgeable(&newer, t(9)));
    }

    #[test]
    fn the_stub_keeps_ids_times_and_attempts_and_nothing_of_the_customer() {
        let old = synced();
        let mut r = old.clone();
        erase(&mut r, t(5));
        assert!(r.payload.is_erased());
        assert_eq!(r.remote_id(), old.remote_id());
        // Not "ada" alone: random hex ids may hold those letters.
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("ada@") && !text.contains("Ada"), "{text}");
        assert!(is_purge_of(&old, &r));
        assert!(!purgeable(&r, t(9)));
        let mut rewritten = r.clone();
        rewritten.history.remove(1);
        assert!(!is_purge_of(&old, &rewritten));
    }
}
