//! Retention on a clock the test controls: which records lose their customer data, what the
//! stub keeps, and that the ledger and indexes stay consistent.

use chrono::{DateTime, Duration, Utc};
use icsync::crypto::{KdfParams, KeyConfig, KeySourceKind};
use icsync::store::{
    ActionKind, Attempt, Durability, HistoryEntry, Origin, Payload, RecordId, RecordState, Store,
    StoreOptions,
};
use serde_json::json;
use uuid::Uuid;

fn t(days: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
}

fn open(dir: &std::path::Path) -> Store {
    let keys = KeyConfig {
        source: KeySourceKind::File,
        key_file: dir.join("data.key"),
        kdf: KdfParams::default(),
    };
    Store::open_with_key(&dir.join("store"), StoreOptions::default(), &keys, None).unwrap()
}

fn add(store: &Store, name: &str, email: &str, day: i64) -> RecordId {
    let p = Payload::parse(&json!({"full_name": name, "email": email})).unwrap();
    store.submit(p, Origin::Cli, t(day)).unwrap().id
}

/// What the engine records for a 201: an attempt, the state, the server's id.
fn mark_synced(store: &Store, id: RecordId, day: i64) -> Uuid {
    let remote = Uuid::new_v4();
    store
        .update(id, Durability::Flush, |r| {
            r.history.push(HistoryEntry::Attempt(Attempt {
                at: t(day),
                revision: r.revision,
                key: format!("icsync-{}-r{}", r.id, r.revision),
                status: Some(201),
                latency_ms: 7,
                replayed: false,
                error: None,
            }));
            r.state = RecordState::Synced;
            r.synced_revision = Some(r.revision);
            r.linked_customer_id = Some(remote);
            r.updated_at = t(day);
        })
        .unwrap();
    remote
}

#[test]
fn only_records_synced_and_unchanged_past_the_cutoff_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let old = add(&store, "Old Synced", "old@x.io", 0);
    let remote = mark_synced(&store, old, 1);
    let recent = add(&store, "Recent Synced", "recent@x.io", 0);
    mark_synced(&store, recent, 40);
    let queued = add(&store, "Still Queued", "queued@x.io", 0);
    let conflict = add(&store, "In Conflict", "conflict@x.io", 0);
    store
        .update(conflict, Durability::Flush, |r| {
            r.state = RecordState::Conflict
        })
        .unwrap();

    let now = t(45);
    let cutoff = now - Duration::days(30);
    assert_eq!(store.purge(cutoff, now, true).unwrap(), vec![old]);
    assert_eq!(
        store.get(old).unwrap().unwrap().payload.full_name(),
        "Old Synced"
    );

    assert_eq!(store.purge(cutoff, now, false).unwrap(), vec![old]);
    let stub = store.get(old).unwrap().unwrap();
    assert!(stub.payload.as_map().is_empty());
    assert_eq!(stub.state, RecordState::Synced);
    assert_eq!(stub.remote_id(), Some(remote));
    assert_eq!(stub.created_at, t(0));
    let attempts: Vec<_> = stub
        .history
        .iter()
        .filter_map(|h| match h {
            HistoryEntry::Attempt(a) => Some(a.key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(attempts.len(), 1);
    assert!(store.ledger_entry(&attempts[0]).unwrap().is_some());
    assert!(matches!(
        stub.history.last(),
        Some(HistoryEntry::Action {
            action: ActionKind::Purged,
            ..
        })
    ));
    // The email no longer matches the stub; a new capture makes a new local record.
    assert_eq!(store.find_by_email("old@x.io").unwrap(), None);
    for id in [recent, queued, conflict] {
        assert!(!store.get(id).unwrap().unwrap().payload.as_map().is_empty());
    }
    assert!(store.check_consistency().unwrap().is_empty());
    // Purging again finds nothing; a later clock takes the recent one too.
    assert!(store.purge(cutoff, now, false).unwrap().is_empty());
    assert_eq!(store.purge(t(40), t(40), false).unwrap(), vec![recent]);
    // 0 days: everything synced goes at once; queued and conflict never.
    assert!(store.purge(t(99), t(99), false).unwrap().is_empty());
    let counts = store.counts().unwrap();
    assert_eq!(counts.get(RecordState::Synced), 2);
    assert_eq!(counts.total, 4);
}

#[test]
fn an_edit_after_the_sync_protects_a_record_until_it_is_synced_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = add(&store, "Edited", "edited@x.io", 0);
    mark_synced(&store, id, 1);
    add(&store, "Edited Again", "edited@x.io", 2);
    assert!(store.purge(t(50), t(50), false).unwrap().is_empty());
    mark_synced(&store, id, 3);
    assert_eq!(store.purge(t(50), t(50), false).unwrap(), vec![id]);
}
