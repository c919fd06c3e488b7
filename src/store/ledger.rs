//! The idempotency ledger's rules, pure: which attempts an update appended, and what the
//! ledger entry of a key becomes after one more attempt. The store writes the entries in the
//! same transaction as the record, so a key in a record's history is always in the ledger.
//!
//! A record's history is append-only: an update that rewrites or drops an existing entry is
//! refused, which is what lets "entries past the old length" be exactly the new attempts.

use super::record::{Attempt, HistoryEntry, LedgerEntry, Record, RecordId};

/// The attempts `new` appended to `old`'s history, or `None` when the history was rewritten.
pub fn appended_attempts<'a>(old: &Record, new: &'a Record) -> Option<Vec<&'a Attempt>> {
    let kept = new.history.get(..old.history.len())?;
    if kept != old.history.as_slice() {
        return None;
    }
    Some(attempts_in(&new.history[old.history.len()..]))
}

/// Every attempt in a record's history, oldest first.
pub fn attempts(record: &Record) -> Vec<&Attempt> {
    attempts_in(&record.history)
}

fn attempts_in(history: &[HistoryEntry]) -> Vec<&Attempt> {
    history
        .iter()
        .filter_map(|entry| match entry {
            HistoryEntry::Attempt(a) => Some(a),
            HistoryEntry::Action { .. } => None,
        })
        .collect()
}

/// The ledger entry for `attempt.key` once `attempt` is recorded.
pub fn after_attempt(
    existing: Option<LedgerEntry>,
    record: RecordId,
    attempt: &Attempt,
) -> LedgerEntry {
    match existing {
        Some(entry) => LedgerEntry {
            last_status: attempt.status,
            attempts: entry.attempts.saturating_add(1),
            ..entry
        },
        None => LedgerEntry {
            record,
            revision: attempt.revision,
            first_used_at: attempt.at,
            last_status: attempt.status,
            attempts: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{ActionKind, Origin, Payload};
    use crate::store::upsert::new_record;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn attempt(at: i64, status: Option<u16>) -> Attempt {
        Attempt {
            at: t(at),
            revision: 1,
            key: "k1".into(),
            status,
            latency_ms: 12,
            replayed: false,
            error: None,
        }
    }

    fn record() -> Record {
        let p = Payload::parse(&json!({"full_name": "A"})).unwrap();
        new_record(RecordId::new(), p, Origin::Cli, t(0))
    }

    #[test]
    fn only_appended_attempts_are_reported() {
        let old = record();
        let mut new = old.clone();
        new.history.push(HistoryEntry::Attempt(attempt(1, None)));
        new.history.push(HistoryEntry::Action {
            at: t(2),
            action: ActionKind::Retry,
            revision: 1,
            detail: None,
        });
        new.history
            .push(HistoryEntry::Attempt(attempt(3, Some(200))));
        let got = appended_attempts(&old, &new).unwrap();
        assert_eq!(got, vec![&attempt(1, None), &attempt(3, Some(200))]);
        assert_eq!(
            appended_attempts(&new, &new).unwrap(),
            Vec::<&Attempt>::new()
        );
    }

    #[test]
    fn rewritten_or_shortened_history_is_detected() {
        let old = record();
        let mut shorter = old.clone();
        shorter.history.clear();
        assert_eq!(appended_attempts(&old, &shorter), None);
        let mut rewritten = old.clone();
        rewritten.history[0] = HistoryEntry::Attempt(attempt(0, None));
        assert_eq!(appended_attempts(&old, &rewritten), None);
    }

    #[test]
    fn repeated_key_keeps_first_use_and_counts_attempts() {
        let id = RecordId::new();
        let first = after_attempt(None, id, &attempt(1, None));
        assert_eq!(
            first,
            LedgerEntry {
                record: id,
                revision: 1,
                first_used_at: t(1),
                last_status: None,
                attempts: 1
            }
        );
        let second = after_attempt(Some(first), id, &attempt(5, Some(201)));
        assert_eq!(second.first_used_at, t(1));
        assert_eq!(second.last_status, Some(201));
        assert_eq!(second.attempts, 2);
    }
}
