//! Index terms of new records written in bulk, kept apart until they are folded into the term
//! indexes (issue 18's "pending-term batches").
//!
//! A dropped file or an import makes many new records at once. Giving each of their terms
//! (external_id, email, content, short id) its own entry in a term tree inside the
//! transaction costs about one record insert apiece, a random key each time: measured on a
//! 100k-row drop, those inserts were more than half of ingest's time, two thirds of its disk
//! and a third of its memory. So a bulk transaction (see `Store::transaction_deferring`)
//! writes instead ONE `index.pending` entry holding every term its new records add, and
//! [`fold`] later writes them as a run of each index (see `runs`), when the file is done (the
//! drop folder), when an import's requests stop (the daemon) or it ends (a local import),
//! when the pending terms pass [`FOLD_AT_RECORDS`], and at open (after a crash).
//!
//! Until folded, the terms are answered from memory: [`Pending`] maps each (index, term) to
//! the ids the pending entries add, so a term lookup is the tree's set joined with the map's
//! ([`PendingTx::extend_holders`]). Every store transaction holds `Pending` from its start to
//! its commit (the store's mutex), so a term added by one is seen by the next, and the map
//! changes only with a commit: a run of a transaction that does not commit is undone.
//!
//! Removing an id from a term (an edit, a discard) removes it from the tree as before and,
//! when the id is still pending under that term, cancels it: a `Cancel` op in the
//! transaction's own entry, so the fold, which replays the entries in order, never writes it.
//!
//! The map is keyed by 96 bits of two SipHash hashes of (index, term), with keys drawn per
//! process: a false match needs two pending terms to agree in all 96 bits (about 10^-16 with
//! three million terms pending), and nothing on disk depends on it.
//!
//! Owns: what a pending entry means, the in-memory map, the fold. Must not: decide what
//! matches (`submit_one`, `upsert`), write records, or know sled's transactions beyond the
//! one tree it is given; every byte layout is in `codec`.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use super::codec;
use super::error::StoreError;
use super::index::{self, TermIndex};
use super::record::RecordId;
use super::runs;
use super::txn::Trees;

/// Pending records past which the store folds after a commit: bounds the map and a fold's
/// sorted terms (about 250 B a record between them). A 1M-row drop peaked at 160-167 MB with
/// 131,072 and at 126-131 MB with this, in the same time: a fold writes a run of its own
/// (see `runs`), so smaller folds cost no more in all.
pub const FOLD_AT_RECORDS: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// The id holds the term.
    Add,
    /// An earlier pending `Add` of this id and term no longer holds.
    Cancel,
}

/// One op of a pending entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOp {
    pub kind: PendingKind,
    pub index: TermIndex,
    pub term: Vec<u8>,
    pub id: RecordId,
}

/// A pending term's place in the map: 96 bits of two keyed hashes of (index, term).
type Key = [u8; 12];

/// The map's hasher: keys are keyed hashes already, so their first bytes are the hash.
#[derive(Default)]
struct KeyBytes(u64);

impl Hasher for KeyBytes {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyMap<V> = HashMap<Key, V, std::hash::BuildHasherDefault<KeyBytes>>;

/// A map value saying the term has several pending ids, in `Pending::many`.
const MANY: u32 = u32::MAX;

/// The terms of the pending entries, net of their cancels, in memory: about 40 bytes a
/// record (three terms of 17 bytes in the map, its id once in `slots`), so the bound of
/// [`FOLD_AT_RECORDS`] holds the map to a few MB.
#[derive(Debug)]
pub struct Pending {
    hashers: (RandomState, RandomState),
    /// Term -> the slot of its one pending id, or [`MANY`].
    map: KeyMap<u32>,
    /// The terms with several pending ids (a file whose rows share an email).
    many: KeyMap<Vec<RecordId>>,
    /// The pending records' ids; a record's terms share its slot.
    slots: Vec<RecordId>,
    /// New records whose terms are pending (their short ids counted).
    records: usize,
    /// The key of the next entry, and so the count of entries written since the last fold
    /// (those holding only cancels included): a fold removes every entry, and the store
    /// folds at open, so keys start again from 0 each time.
    next_seq: u64,
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes")
    }
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            hashers: (RandomState::new(), RandomState::new()),
            map: KeyMap::default(),
            many: KeyMap::default(),
            slots: Vec::new(),
            records: 0,
            next_seq: 0,
        }
    }
}

impl Pending {
    fn key(&self, index: TermIndex, term: &[u8]) -> Key {
        let hash = |state: &RandomState| {
            let mut h = state.build_hasher();
            index.tag().hash(&mut h);
            term.hash(&mut h);
            h.finish().to_le_bytes()
        };
        let (a, b) = (hash(&self.hashers.0), hash(&self.hashers.1));
        let mut key = [0u8; 12];
        key[..8].copy_from_slice(&a);
        key[8..].copy_from_slice(&b[..4]);
        key
    }

    /// Pending records (for the fold bound).
    pub fn records(&self) -> usize {
        self.records
    }

    /// Nothing to fold: no entry written since the last fold. An entry holding only cancels
    /// counts, though it leaves nothing in memory: the fold is what removes it from disk.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Adds the ids pending under `term` to `ids`, an ascending set.
    pub fn extend_holders(&self, index: TermIndex, term: &[u8], ids: &mut Vec<RecordId>) {
        let key = self.key(index, term);
        match self.map.get(&key) {
            None => {}
            Some(&MANY) => {
                for id in self.many.get(&key).into_iter().flatten() {
                    index::set_insert(ids, *id);
                }
            }
            Some(&slot) => {
                if let Some(id) = self.slots.get(slot as usize) {
                    index::set_insert(ids, *id);
                }
            }
        }
    }

    /// The slot of `id`: the last one when the record's previous term took it.
    fn slot(&mut self, id: RecordId) -> u32 {
        if self.slots.last() != Some(&id) {
            self.slots.push(id);
        }
        // Folds come long before 4 billion records.
        u32::try_from(self.slots.len() - 1).unwrap_or(MANY - 1)
    }

    fn insert(&mut self, key: Key, id: RecordId) -> bool {
        match self.map.get(&key).copied() {
            None => {
                let slot = self.slot(id);
                self.map.insert(key, slot);
                true
            }
            Some(MANY) => index::set_insert(self.many.entry(key).or_default(), id),
            Some(slot) => {
                let one = self.slots[slot as usize];
                if one == id {
                    return false;
                }
                let mut ids = vec![one];
                index::set_insert(&mut ids, id);
                self.many.insert(key, ids);
                self.map.insert(key, MANY);
                true
            }
        }
    }

    fn remove(&mut self, key: Key, id: RecordId) -> bool {
        match self.map.get(&key).copied() {
            None => false,
            Some(MANY) => {
                let Some(ids) = self.many.get_mut(&key) else {
                    return false;
                };
                if !index::set_remove(ids, id) {
                    return false;
                }
                if ids.is_empty() {
                    self.many.remove(&key);
                    self.map.remove(&key);
                }
                true
            }
            Some(slot) => {
                if self.slots.get(slot as usize) != Some(&id) {
                    return false;
                }
                self.map.remove(&key);
                true
            }
        }
    }

    /// Forgets every pending term: they were folded.
    fn clear(&mut self) {
        self.map = KeyMap::default();
        self.many = KeyMap::default();
        self.slots = Vec::new();
        self.records = 0;
        self.next_seq = 0;
    }
}

/// What one run of a transaction did to the map, to undo when it does not commit.
#[derive(Debug)]
enum Undo {
    Added { key: Key, id: RecordId, short: bool },
    Removed { key: Key, id: RecordId },
}

/// What a transaction asks of the pending terms (see [`PendingTx`]); a trait so the
/// transaction can hold it without the map's lifetime.
pub trait PendingView {
    /// Whether new records' terms go pending (bulk writes) or straight into the trees.
    fn defers_new(&self) -> bool;
    /// Adds the ids pending under `term` to `ids`, an ascending set.
    fn extend_holders(&self, index: TermIndex, term: &[u8], ids: &mut Vec<RecordId>);
    /// A new record's term, pending.
    fn add(&self, index: TermIndex, term: &[u8], id: RecordId);
    /// Cancels `id`'s pending hold of `term`, if it has one.
    fn cancel(&self, index: TermIndex, term: &[u8], id: RecordId);
}

/// The map as one transaction sees and changes it: its changes are kept (with the entry it
/// writes) only when it commits.
pub struct PendingTx<'a> {
    held: std::cell::RefCell<&'a mut Pending>,
    undo: std::cell::RefCell<Vec<Undo>>,
    ops: std::cell::RefCell<Vec<PendingOp>>,
    /// Whether new records' terms go pending (bulk writes) or straight into the trees.
    defer_new: bool,
}

impl<'a> PendingTx<'a> {
    pub fn new(held: &'a mut Pending, defer_new: bool) -> Self {
        PendingTx {
            held: std::cell::RefCell::new(held),
            undo: std::cell::RefCell::new(Vec::new()),
            ops: std::cell::RefCell::new(Vec::new()),
            defer_new,
        }
    }

    /// Starts a run of the transaction's closure: whatever an earlier run did is undone.
    pub fn begin(&self) {
        self.rollback();
    }

    /// Undoes this transaction's changes to the map (it did not commit).
    pub fn rollback(&self) {
        let mut held = self.held.borrow_mut();
        for undo in self.undo.borrow_mut().drain(..).rev() {
            match undo {
                Undo::Added { key, id, short } => {
                    held.remove(key, id);
                    if short {
                        held.records = held.records.saturating_sub(1);
                    }
                }
                Undo::Removed { key, id } => {
                    held.insert(key, id);
                }
            }
        }
        self.ops.borrow_mut().clear();
    }

    /// The entry this run writes, if it changed anything pending: (key, value).
    pub fn entry(&self) -> Option<([u8; 8], Vec<u8>)> {
        let ops = self.ops.borrow();
        (!ops.is_empty()).then(|| {
            (
                codec::pending_key(self.held.borrow().next_seq),
                codec::encode_pending(&ops),
            )
        })
    }

    /// The transaction committed: its changes stay. Returns the records now pending.
    pub fn commit(self) -> usize {
        let wrote = !self.ops.borrow().is_empty();
        let held = self.held.into_inner();
        if wrote {
            held.next_seq += 1;
        }
        held.records
    }
}

impl PendingView for PendingTx<'_> {
    fn defers_new(&self) -> bool {
        self.defer_new
    }

    fn extend_holders(&self, index: TermIndex, term: &[u8], ids: &mut Vec<RecordId>) {
        self.held.borrow().extend_holders(index, term, ids);
    }

    fn add(&self, index: TermIndex, term: &[u8], id: RecordId) {
        let mut held = self.held.borrow_mut();
        let key = held.key(index, term);
        if held.insert(key, id) {
            let short = index == TermIndex::Short;
            if short {
                held.records += 1;
            }
            self.undo.borrow_mut().push(Undo::Added { key, id, short });
        }
        self.ops.borrow_mut().push(PendingOp {
            kind: PendingKind::Add,
            index,
            term: term.to_vec(),
            id,
        });
    }

    fn cancel(&self, index: TermIndex, term: &[u8], id: RecordId) {
        let mut held = self.held.borrow_mut();
        let key = held.key(index, term);
        if held.remove(key, id) {
            self.undo.borrow_mut().push(Undo::Removed { key, id });
            self.ops.borrow_mut().push(PendingOp {
                kind: PendingKind::Cancel,
                index,
                term: term.to_vec(),
                id,
            });
        }
    }
}

/// Writes the terms of every pending entry as a new run of each index (see `runs`), then
/// removes the entries, and empties `pending`. The caller holds `pending` and the write gate,
/// so no transaction runs meanwhile; the writes are not one transaction, because a fold cut
/// short (kill -9, power loss) is simply done again at the next open: a run no catalog
/// entry names is deleted then, and a term written twice only lists its ids twice over, a
/// union. Returns the terms written.
pub fn fold(trees: &Trees, pending: &mut Pending) -> Result<u64, StoreError> {
    let mut written = 0;
    let mut last = None;
    let mut new_runs = Vec::new();
    for index in TermIndex::ALL {
        // Per index, so only one index's terms are in memory at once.
        let mut ops = Vec::new();
        for kv in trees.pending.iter() {
            let (key, value) = kv?;
            last = Some(key);
            codec::for_each_pending_op(&value, |kind, op_index, term, id| {
                if op_index == index {
                    ops.push((term.to_vec(), id, kind == PendingKind::Add));
                }
            })?;
        }
        // A run of their own (see `runs`): written in its blocks' order, reading nothing.
        let mut catalog = trees.catalog_mut();
        if let Some(run) = runs::write_ops(&trees.runs, &mut catalog, index, ops)? {
            written += run.terms;
            new_runs.push((index, run));
        }
    }
    // The runs join the catalog once all are written: a crash before leaves blocks that the
    // next open deletes, and the pending entries, so the fold is done again.
    runs::publish(&trees.runs, &mut trees.catalog_mut(), new_runs)?;
    // Only the entries read: none is written meanwhile (the caller holds `pending`).
    if let Some(last) = last {
        let mut batch = sled::Batch::default();
        for kv in trees.pending.range(..=last) {
            batch.remove(kv?.0);
        }
        trees.pending.apply_batch(batch)?;
    }
    pending.clear();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RecordId {
        RecordId::new()
    }

    fn holders(p: &Pending, term: &[u8]) -> Vec<RecordId> {
        let mut ids = Vec::new();
        p.extend_holders(TermIndex::Email, term, &mut ids);
        ids
    }

    #[test]
    fn a_run_that_does_not_commit_leaves_the_map_as_it_was() {
        let (a, b) = (id(), id());
        let mut pending = Pending::default();
        let tx = PendingTx::new(&mut pending, true);
        tx.add(TermIndex::Email, b"t", a);
        tx.add(TermIndex::Short, b"s", a);
        tx.commit();
        assert_eq!(pending.records(), 1);

        let tx = PendingTx::new(&mut pending, true);
        tx.add(TermIndex::Email, b"t", b);
        tx.cancel(TermIndex::Email, b"t", a);
        tx.add(TermIndex::Short, b"s2", b);
        assert!(tx.entry().is_some());
        // A retried run starts from the committed map.
        tx.begin();
        assert!(tx.entry().is_none());
        tx.add(TermIndex::Email, b"t", b);
        tx.rollback();
        drop(tx);
        assert_eq!(holders(&pending, b"t"), vec![a]);
        assert_eq!(pending.records(), 1);
        assert_eq!(pending.next_seq, 1);
    }

    #[test]
    fn entries_whose_terms_were_all_cancelled_still_ask_for_a_fold() {
        let a = id();
        let mut pending = Pending::default();
        assert!(pending.is_empty());
        let tx = PendingTx::new(&mut pending, true);
        tx.add(TermIndex::Email, b"t", a);
        tx.commit();
        let tx = PendingTx::new(&mut pending, true);
        tx.cancel(TermIndex::Email, b"t", a);
        assert!(tx.entry().is_some());
        tx.commit();
        // Nothing is left in memory, but both entries are on disk until a fold removes them.
        assert!(holders(&pending, b"t").is_empty());
        assert!(!pending.is_empty());
        pending.clear();
        assert!(pending.is_empty());
    }

    #[test]
    fn holders_join_the_pending_ids_in_order_and_a_cancel_takes_one_out() {
        let (a, b, c) = (id(), id(), id());
        let mut pending = Pending::default();
        let tx = PendingTx::new(&mut pending, true);
        tx.add(TermIndex::Email, b"t", c);
        tx.add(TermIndex::Email, b"t", a);
        tx.cancel(TermIndex::Email, b"t", b); // not pending: nothing to cancel
        let (_, value) = tx.entry().unwrap();
        tx.commit();
        let mut ids = vec![b];
        pending.extend_holders(TermIndex::Email, b"t", &mut ids);
        assert_eq!(ids, vec![a, b, c]);
        let mut other = Vec::new();
        pending.extend_holders(TermIndex::ExternalId, b"t", &mut other);
        assert!(other.is_empty(), "another index's term is another key");

        let ops = codec::decode_pending(&value).unwrap();
        assert_eq!(ops.len(), 2);
        assert!(ops.iter().all(|op| op.kind == PendingKind::Add));

        let tx = PendingTx::new(&mut pending, true);
        tx.cancel(TermIndex::Email, b"t", c);
        let (_, value) = tx.entry().unwrap();
        tx.commit();
        assert_eq!(holders(&pending, b"t"), vec![a]);
        let ops = codec::decode_pending(&value).unwrap();
        assert_eq!(
            ops,
            vec![PendingOp {
                kind: PendingKind::Cancel,
                index: TermIndex::Email,
                term: b"t".to_vec(),
                id: c
            }]
        );
    }

    #[test]
    fn entries_refuse_damage_with_an_error() {
        let op = PendingOp {
            kind: PendingKind::Add,
            index: TermIndex::ExternalId,
            term: vec![7; 33],
            id: id(),
        };
        let bytes = codec::encode_pending(std::slice::from_ref(&op));
        assert_eq!(codec::decode_pending(&bytes).unwrap(), vec![op]);
        for cut in 0..bytes.len() {
            if cut == 1 {
                continue; // a version byte alone is an empty entry
            }
            assert!(
                codec::decode_pending(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[2] = 9;
        assert!(codec::decode_pending(&bad).is_err());
    }
}
