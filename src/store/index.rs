//! Which index entries a record owns, and the difference between a record's old and new
//! entries as a list of operations. Pure: the transaction layer applies the operations, so a
//! write of a record and of its index changes is one sled transaction, and this logic is
//! tested without a database.
//!
//! The indexes (all keys and values built by `codec`):
//! - `external_id` and `email`: term -> set of record ids, for live (not discarded) records;
//! - `content`: the keyed hash of the whole canonical payload -> set of ids, only for live
//!   records whose payload has neither external_id nor email (nothing else to match them
//!   on), so the same keyless row taken again is recognised. Records written before this
//!   index existed have no entry (no backfill: it would need a decrypting pass over every
//!   record); the first new copy of such a row is taken once more and then indexed;
//! - `state`: (state tag, id) -> for queued records their due millis, else empty. List by
//!   state and `due` walk it in queue order;
//! - `due`: (due millis, id) for queued records backing off (a `next_attempt_at`), so the
//!   earliest backoff is one seek. Records due at once (millis 0) get no entry: `due` finds
//!   them on the state index's value and `next_due_at` seeks past millis 0, so such an entry
//!   would serve no reader and cost an insert per new record;
//! - `short`: the id's random tail (its short id, [`RecordId::short`]) -> set of ids, for
//!   every record, so a short id is one read. Sets, though the store keeps short ids unique
//!   (see `submit_one`): stores written before this index existed may hold a pair, which
//!   then both answer;
//! - counters: per state, so `counts` reads six keys instead of scanning.

use super::codec::{self, Codec};
use super::record::{Record, RecordId, RecordState};
use super::upsert::{indexed_email, is_keyless};

/// An index mapping a term to a set of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermIndex {
    ExternalId,
    Email,
    Content,
    Short,
}

impl TermIndex {
    pub const ALL: [TermIndex; 4] = [
        TermIndex::ExternalId,
        TermIndex::Email,
        TermIndex::Content,
        TermIndex::Short,
    ];

    /// The index's byte in a pending-terms entry (see `pending`).
    pub fn tag(self) -> u8 {
        match self {
            TermIndex::ExternalId => 1,
            TermIndex::Email => 2,
            TermIndex::Content => 3,
            TermIndex::Short => 4,
        }
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.tag() == tag)
    }
}

/// An index with one key per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIndex {
    State,
    Due,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOp {
    AddId {
        index: TermIndex,
        term: Vec<u8>,
        id: RecordId,
    },
    RemoveId {
        index: TermIndex,
        term: Vec<u8>,
        id: RecordId,
    },
    Put {
        index: KeyIndex,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        index: KeyIndex,
        key: Vec<u8>,
    },
    Count {
        state: RecordState,
        delta: i64,
    },
}

/// The index entries one record owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntries {
    pub id: RecordId,
    pub external_id: Option<Vec<u8>>,
    pub email: Option<Vec<u8>>,
    /// Only for a live record with neither external_id nor email.
    pub content: Option<Vec<u8>>,
    /// For every record: its id's random tail. Not a keyed hash (ids are not customer
    /// data), so it is built even without the terms.
    pub short: Vec<u8>,
    pub state_key: Vec<u8>,
    pub state_value: Vec<u8>,
    /// Only for a queued record with a `next_attempt_at` (its millis are then at least 1).
    pub due_key: Option<Vec<u8>>,
    pub state: RecordState,
}

impl IndexEntries {
    pub fn of(codec: &Codec, record: &Record) -> Self {
        Self::build(codec, record, true)
    }

    /// `with_terms: false` leaves the term entries out: they are keyed hashes (an HMAC each),
    /// the dearest part, and `diff` knows they cannot have changed when neither the payload
    /// nor liveness did.
    fn build(codec: &Codec, record: &Record, with_terms: bool) -> Self {
        let live = with_terms && record.state != RecordState::Discarded;
        let backing_off = record.state == RecordState::Queued && record.next_attempt_at.is_some();
        IndexEntries {
            id: record.id,
            external_id: live
                .then(|| {
                    record
                        .payload
                        .external_id()
                        .map(|x| codec.external_id_term(x))
                })
                .flatten(),
            email: live
                .then(|| indexed_email(record).map(|e| codec.email_term(&e)))
                .flatten(),
            content: (live && is_keyless(&record.payload))
                .then(|| codec.content_term(&record.payload)),
            short: codec::short_key(record.id).to_vec(),
            state_key: codec::state_key(record.state, record.id).to_vec(),
            state_value: codec::state_value(record),
            due_key: backing_off.then(|| {
                codec::due_key(codec::due_millis(record.next_attempt_at), record.id).to_vec()
            }),
            state: record.state,
        }
    }
}

fn term_diff(
    ops: &mut Vec<IndexOp>,
    index: TermIndex,
    id: RecordId,
    old: Option<&Vec<u8>>,
    new: Option<&Vec<u8>>,
) {
    if old == new {
        return;
    }
    if let Some(term) = old {
        ops.push(IndexOp::RemoveId {
            index,
            term: term.clone(),
            id,
        });
    }
    if let Some(term) = new {
        ops.push(IndexOp::AddId {
            index,
            term: term.clone(),
            id,
        });
    }
}

fn key_diff(
    ops: &mut Vec<IndexOp>,
    index: KeyIndex,
    old: Option<(&Vec<u8>, &Vec<u8>)>,
    new: Option<(&Vec<u8>, &Vec<u8>)>,
) {
    if old == new {
        return;
    }
    if let Some((key, _)) = old {
        if new.map(|(k, _)| k) != Some(key) {
            ops.push(IndexOp::Delete {
                index,
                key: key.clone(),
            });
        }
    }
    if let Some((key, value)) = new {
        ops.push(IndexOp::Put {
            index,
            key: key.clone(),
            value: value.clone(),
        });
    }
}

/// The operations that turn `old`'s index entries into `new`'s (none for a missing record).
/// Only what changed is touched, so an update that moves nothing indexed writes only the record.
pub fn diff(codec: &Codec, old: Option<&Record>, new: Option<&Record>) -> Vec<IndexOp> {
    // A state change (the sync engine's every write) keeps the payload: its terms are equal
    // on both sides, so they are not computed at all.
    let with_terms = match (old, new) {
        (Some(o), Some(n)) => {
            o.payload != n.payload
                || (o.state == RecordState::Discarded) != (n.state == RecordState::Discarded)
        }
        _ => true,
    };
    let old = old.map(|r| IndexEntries::build(codec, r, with_terms));
    let new = new.map(|r| IndexEntries::build(codec, r, with_terms));
    let Some(id) = new.as_ref().or(old.as_ref()).map(|e| e.id) else {
        return Vec::new();
    };
    let mut ops = Vec::new();
    term_diff(
        &mut ops,
        TermIndex::ExternalId,
        id,
        old.as_ref().and_then(|e| e.external_id.as_ref()),
        new.as_ref().and_then(|e| e.external_id.as_ref()),
    );
    term_diff(
        &mut ops,
        TermIndex::Email,
        id,
        old.as_ref().and_then(|e| e.email.as_ref()),
        new.as_ref().and_then(|e| e.email.as_ref()),
    );
    term_diff(
        &mut ops,
        TermIndex::Content,
        id,
        old.as_ref().and_then(|e| e.content.as_ref()),
        new.as_ref().and_then(|e| e.content.as_ref()),
    );
    term_diff(
        &mut ops,
        TermIndex::Short,
        id,
        old.as_ref().map(|e| &e.short),
        new.as_ref().map(|e| &e.short),
    );
    key_diff(
        &mut ops,
        KeyIndex::State,
        old.as_ref().map(|e| (&e.state_key, &e.state_value)),
        new.as_ref().map(|e| (&e.state_key, &e.state_value)),
    );
    let empty = Vec::new();
    key_diff(
        &mut ops,
        KeyIndex::Due,
        old.as_ref()
            .and_then(|e| e.due_key.as_ref())
            .map(|k| (k, &empty)),
        new.as_ref()
            .and_then(|e| e.due_key.as_ref())
            .map(|k| (k, &empty)),
    );
    let old_state = old.as_ref().map(|e| e.state);
    let new_state = new.as_ref().map(|e| e.state);
    if old_state != new_state {
        if let Some(state) = old_state {
            ops.push(IndexOp::Count { state, delta: -1 });
        }
        if let Some(state) = new_state {
            ops.push(IndexOp::Count { state, delta: 1 });
        }
    }
    ops
}

/// Adds `id` to an ascending id set; false when it was already there.
pub fn set_insert(ids: &mut Vec<RecordId>, id: RecordId) -> bool {
    match ids.binary_search(&id) {
        Ok(_) => false,
        Err(at) => {
            ids.insert(at, id);
            true
        }
    }
}

/// Removes `id` from an ascending id set; false when it was not there.
pub fn set_remove(ids: &mut Vec<RecordId>, id: RecordId) -> bool {
    match ids.binary_search(&id) {
        Ok(at) => {
            ids.remove(at);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Origin, Payload};
    use crate::store::upsert::new_record;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn record(body: serde_json::Value) -> Record {
        new_record(
            RecordId::new(),
            Payload::parse(&body).unwrap(),
            Origin::Cli,
            t(0),
        )
    }

    #[test]
    fn a_new_record_adds_every_entry_and_counts_once() {
        let r = record(json!({"full_name": "A", "external_id": "x1", "email": "A@x.io"}));
        let ops = diff(&Codec::Plain, None, Some(&r));
        assert!(ops.contains(&IndexOp::AddId {
            index: TermIndex::ExternalId,
            term: Codec::Plain.external_id_term("x1"),
            id: r.id
        }));
        assert!(ops.contains(&IndexOp::AddId {
            index: TermIndex::Email,
            term: Codec::Plain.email_term("a@x.io"),
            id: r.id
        }));
        assert!(ops.contains(&IndexOp::Put {
            index: KeyIndex::State,
            key: codec::state_key(RecordState::Queued, r.id).to_vec(),
            value: 0u64.to_be_bytes().to_vec()
        }));
        assert!(ops.contains(&IndexOp::Count {
            state: RecordState::Queued,
            delta: 1
        }));
        // Due at once: the state index's value says so, the due index is for backoffs only.
        assert!(!ops.iter().any(|op| matches!(
            op,
            IndexOp::Put {
                index: KeyIndex::Due,
                ..
            }
        )));
        assert!(ops.contains(&IndexOp::AddId {
            index: TermIndex::Short,
            term: r.id.short_bytes().to_vec(),
            id: r.id
        }));
        assert_eq!(ops.len(), 5);
    }

    #[test]
    fn an_unchanged_index_view_writes_nothing() {
        let r = record(json!({"full_name": "A", "email": "a@x.io"}));
        let mut same = r.clone();
        same.history.clear();
        same.payload = Payload::parse(&json!({"full_name": "B", "email": "A@X.IO"})).unwrap();
        assert_eq!(diff(&Codec::Plain, Some(&r), Some(&same)), vec![]);
    }

    #[test]
    fn leaving_queued_moves_state_and_the_count() {
        let r = record(json!({"full_name": "A"}));
        let mut sent = r.clone();
        sent.state = RecordState::Synced;
        let ops = diff(&Codec::Plain, Some(&r), Some(&sent));
        assert_eq!(
            ops,
            vec![
                IndexOp::Delete {
                    index: KeyIndex::State,
                    key: codec::state_key(RecordState::Queued, r.id).to_vec()
                },
                IndexOp::Put {
                    index: KeyIndex::State,
                    key: codec::state_key(RecordState::Synced, r.id).to_vec(),
                    value: vec![]
                },
                IndexOp::Count {
                    state: RecordState::Queued,
                    delta: -1
                },
                IndexOp::Count {
                    state: RecordState::Synced,
                    delta: 1
                },
            ]
        );
    }

    #[test]
    fn backoff_rewrites_the_state_value_in_place_and_adds_a_due_key() {
        let r = record(json!({"full_name": "A"}));
        let mut later = r.clone();
        later.next_attempt_at = Some(t(30));
        let ms = codec::due_millis(Some(t(30)));
        assert_eq!(
            diff(&Codec::Plain, Some(&r), Some(&later)),
            vec![
                IndexOp::Put {
                    index: KeyIndex::State,
                    key: codec::state_key(RecordState::Queued, r.id).to_vec(),
                    value: ms.to_be_bytes().to_vec()
                },
                IndexOp::Put {
                    index: KeyIndex::Due,
                    key: codec::due_key(ms, r.id).to_vec(),
                    value: vec![]
                },
            ]
        );

        // Backing off again moves the entry; being due at once again (a revision, a retry
        // now) or leaving the queue removes it.
        let mut later_still = later.clone();
        later_still.next_attempt_at = Some(t(90));
        let ms2 = codec::due_millis(Some(t(90)));
        let ops = diff(&Codec::Plain, Some(&later), Some(&later_still));
        assert!(ops.contains(&IndexOp::Delete {
            index: KeyIndex::Due,
            key: codec::due_key(ms, r.id).to_vec()
        }));
        assert!(ops.contains(&IndexOp::Put {
            index: KeyIndex::Due,
            key: codec::due_key(ms2, r.id).to_vec(),
            value: vec![]
        }));
        let due_delete = IndexOp::Delete {
            index: KeyIndex::Due,
            key: codec::due_key(ms, r.id).to_vec(),
        };
        let mut now_due = later.clone();
        now_due.next_attempt_at = None;
        let ops = diff(&Codec::Plain, Some(&later), Some(&now_due));
        assert!(ops.contains(&due_delete), "{ops:?}");
        assert!(!ops.iter().any(|op| matches!(
            op,
            IndexOp::Put {
                index: KeyIndex::Due,
                ..
            }
        )));
        let mut synced = later.clone();
        synced.state = RecordState::Synced;
        assert!(diff(&Codec::Plain, Some(&later), Some(&synced)).contains(&due_delete));
        assert!(diff(&Codec::Plain, Some(&later), None).contains(&due_delete));
    }

    #[test]
    fn discarding_unindexes_external_id_and_email() {
        let r = record(json!({"full_name": "A", "external_id": "x1", "email": "a@x.io"}));
        let mut gone = r.clone();
        gone.state = RecordState::Discarded;
        let ops = diff(&Codec::Plain, Some(&r), Some(&gone));
        for index in [TermIndex::ExternalId, TermIndex::Email] {
            assert!(
                ops.iter()
                    .any(|op| matches!(op, IndexOp::RemoveId { index: i, .. } if *i == index)),
                "{index:?} not removed"
            );
        }
        assert!(!ops.iter().any(|op| matches!(op, IndexOp::AddId { .. })));
    }

    #[test]
    fn only_live_keyless_records_hold_a_content_term() {
        let content = |ops: &[IndexOp]| -> Vec<IndexOp> {
            ops.iter()
                .filter(|op| {
                    matches!(
                        op,
                        IndexOp::AddId {
                            index: TermIndex::Content,
                            ..
                        } | IndexOp::RemoveId {
                            index: TermIndex::Content,
                            ..
                        }
                    )
                })
                .cloned()
                .collect()
        };
        let r = record(json!({"full_name": "A", "phone": "+44 1"}));
        let term = Codec::Plain.content_term(&r.payload);
        assert_eq!(
            content(&diff(&Codec::Plain, None, Some(&r))),
            vec![IndexOp::AddId {
                index: TermIndex::Content,
                term: term.clone(),
                id: r.id
            }]
        );
        let removed = vec![IndexOp::RemoveId {
            index: TermIndex::Content,
            term,
            id: r.id,
        }];
        // Gaining an email: matched on that from now on.
        let mut keyed = r.clone();
        keyed.payload = Payload::parse(&json!({"full_name": "A", "email": "a@x.io"})).unwrap();
        assert_eq!(
            content(&diff(&Codec::Plain, Some(&r), Some(&keyed))),
            removed
        );
        let mut gone = r.clone();
        gone.state = RecordState::Discarded;
        assert_eq!(
            content(&diff(&Codec::Plain, Some(&r), Some(&gone))),
            removed
        );
        let mut purged = r.clone();
        purged.payload = Payload::erased();
        assert_eq!(
            content(&diff(&Codec::Plain, Some(&r), Some(&purged))),
            removed
        );
        assert!(content(&diff(&Codec::Plain, None, Some(&keyed))).is_empty());
    }

    #[test]
    fn changing_the_external_id_moves_it_between_terms() {
        let r = record(json!({"full_name": "A", "external_id": "x1"}));
        let mut edited = r.clone();
        edited.payload = Payload::parse(&json!({"full_name": "A", "external_id": "x2"})).unwrap();
        assert_eq!(
            diff(&Codec::Plain, Some(&r), Some(&edited)),
            vec![
                IndexOp::RemoveId {
                    index: TermIndex::ExternalId,
                    term: Codec::Plain.external_id_term("x1"),
                    id: r.id
                },
                IndexOp::AddId {
                    index: TermIndex::ExternalId,
                    term: Codec::Plain.external_id_term("x2"),
                    id: r.id
                },
            ]
        );
    }

    #[test]
    fn removing_a_record_undoes_creating_it() {
        let r = record(json!({"full_name": "A", "email": "a@x.io"}));
        let ops = diff(&Codec::Plain, Some(&r), None);
        // Email, short id, state entry, counter: a record due at once has no due entry.
        assert_eq!(ops.len(), 4);
        assert!(ops.contains(&IndexOp::Count {
            state: RecordState::Queued,
            delta: -1
        }));
        assert_eq!(diff(&Codec::Plain, None, None), vec![]);
    }

    #[test]
    fn id_sets_stay_sorted_and_unique() {
        let (a, b, c) = (RecordId::new(), RecordId::new(), RecordId::new());
        let mut ids = vec![];
        assert!(set_insert(&mut ids, c));
        assert!(set_insert(&mut ids, a));
        assert!(set_insert(&mut ids, b));
        assert!(!set_insert(&mut ids, b));
        assert_eq!(ids, vec![a, b, c]);
        assert!(set_remove(&mut ids, b));
        assert!(!set_remove(&mut ids, b));
        assert_eq!(ids, vec![a, c]);
    }
}
