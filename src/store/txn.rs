//! The store's trees and the writes done inside one sled transaction: reading a record,
//! writing it with its index difference, counters and ledger entries. Every record write in
//! the store goes through [`Tx::write_record`], which is what keeps indexes and records in
//! step: they change in the same multi-tree transaction or not at all.
//!
//! sled transactions offer only point reads and writes (no scans), which is why every index
//! the write path consults is keyed for point lookups (see `index`).

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::Tree;
use std::cell::Cell;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::codec::{self, Codec};
use super::error::StoreError;
use super::index::{self, IndexOp, KeyIndex, TermIndex};
use super::ledger;
use super::pending::{PendingTx, PendingView};
use super::record::{Record, RecordId, RecordState};
use super::runs::{self, Catalog};

pub type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// A store error inside a transaction aborts it (as [`abort`]), so helpers generic over the
/// error (`runs::extend_holders`) can use `?` in both.
impl From<StoreError> for ConflictableTransactionError<StoreError> {
    fn from(e: StoreError) -> Self {
        ConflictableTransactionError::Abort(e)
    }
}

/// The trees of the store, opened once.
#[derive(Clone)]
pub struct Trees {
    pub records: Tree,
    pub external_id: Tree,
    pub email: Tree,
    /// Keyed hash of the canonical payload -> ids, for live records with neither external_id
    /// nor email (see `index`).
    pub content: Tree,
    pub state: Tree,
    pub due: Tree,
    pub ledger: Tree,
    pub counters: Tree,
    /// Drop-folder files: progress by content fingerprint, and the recent-files history
    /// (see `drops`). In every transaction so a file's progress moves with its records.
    pub drops: Tree,
    /// A record id's random tail -> ids (see `index`): short ids.
    pub short: Tree,
    /// Terms of new records written in bulk, not yet in their term trees (see `pending`).
    pub pending: Tree,
    /// Folded terms of bulk writes, packed in runs (see `runs`), and the runs' catalog.
    pub runs: Tree,
    pub catalog: Arc<RwLock<Catalog>>,
}

impl Trees {
    /// The tree of a term index (outside a transaction; [`Tx`] has its own).
    pub fn term_tree(&self, index: TermIndex) -> &Tree {
        match index {
            TermIndex::ExternalId => &self.external_id,
            TermIndex::Email => &self.email,
            TermIndex::Content => &self.content,
            TermIndex::Short => &self.short,
        }
    }

    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Trees {
            records: db.open_tree("records")?,
            external_id: db.open_tree("index.external_id")?,
            email: db.open_tree("index.email")?,
            content: db.open_tree("index.content")?,
            state: db.open_tree("index.state")?,
            due: db.open_tree("index.due")?,
            ledger: db.open_tree("ledger")?,
            counters: db.open_tree("counters")?,
            drops: db.open_tree("drops")?,
            short: db.open_tree("index.short")?,
            pending: db.open_tree("index.pending")?,
            runs: db.open_tree("index.runs")?,
            catalog: Arc::default(),
        })
    }

    /// Reads the runs' catalog (see [`Catalog::load`]); once, when the store opens.
    pub fn load_runs(&self) -> Result<(), StoreError> {
        *self.catalog_mut() = Catalog::load(&self.runs)?;
        Ok(())
    }

    pub fn catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changed by folds only, which no transaction runs beside (they hold the pending terms).
    pub fn catalog_mut(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ids a term index holds for `term` outside a transaction: its tree and its runs
    /// (pending terms left out).
    pub fn term_holders(&self, index: TermIndex, term: &[u8]) -> Result<Vec<RecordId>, StoreError> {
        let mut ids = match self.term_tree(index).get(term)? {
            Some(bytes) => codec::decode_id_set(&bytes)?,
            None => Vec::new(),
        };
        runs::extend_holders(&self.catalog(), index, term, &mut ids, |key| {
            Ok::<_, StoreError>(self.runs.get(key)?)
        })?;
        Ok(ids)
    }

    /// Runs `f` in one transaction over every tree, encoding with `codec`. `f` may run more
    /// than once.
    pub fn transaction<T>(
        &self,
        codec: &Codec,
        f: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        self.transaction_noting(codec, &Cell::new(None), None, f)
    }

    /// [`Trees::transaction`], which also lowers `queued` to the lowest id the transaction
    /// put in the queue due at once (see [`Tx::queued_low`]). A run of `f` that was retried
    /// may have lowered it too: that only ever makes the note lower than it need be.
    ///
    /// With `pending` (the store's pending terms, held by the caller), term lookups see the
    /// pending terms too, and the terms this transaction adds or cancels there are written
    /// as its entry in `index.pending`; without it, a store with pending terms must not be
    /// written (salvage and migration run on stores with none).
    pub fn transaction_noting<T>(
        &self,
        codec: &Codec,
        queued: &Cell<Option<RecordId>>,
        pending: Option<&PendingTx<'_>>,
        f: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        let trees = [
            &self.records,
            &self.external_id,
            &self.email,
            &self.state,
            &self.due,
            &self.ledger,
            &self.counters,
            &self.drops,
            &self.content,
            &self.short,
            &self.pending,
            &self.runs,
        ];
        let catalog = self.catalog();
        let result = trees[..].transaction(|view: &Vec<TransactionalTree>| {
            if let Some(p) = pending {
                p.begin();
            }
            let tx = Tx {
                codec,
                records: &view[0],
                external_id: &view[1],
                email: &view[2],
                state: &view[3],
                due: &view[4],
                ledger: &view[5],
                counters: &view[6],
                drops: &view[7],
                content: &view[8],
                short: &view[9],
                queued,
                pending: pending.map(|p| p as &dyn PendingView),
                runs: &view[11],
                catalog: &catalog,
            };
            let out = f(&tx)?;
            if let Some((key, value)) = pending.and_then(PendingTx::entry) {
                view[10].insert(&key, value)?;
            }
            Ok(out)
        });
        if result.is_err() {
            if let Some(p) = pending {
                p.rollback();
            }
        }
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        })
    }
}

pub struct Tx<'a> {
    pub codec: &'a Codec,
    records: &'a TransactionalTree,
    external_id: &'a TransactionalTree,
    email: &'a TransactionalTree,
    state: &'a TransactionalTree,
    due: &'a TransactionalTree,
    ledger: &'a TransactionalTree,
    counters: &'a TransactionalTree,
    drops: &'a TransactionalTree,
    content: &'a TransactionalTree,
    short: &'a TransactionalTree,
    /// The lowest id this transaction put in the queue due at once (see `Store::due_from`).
    queued: &'a Cell<Option<RecordId>>,
    /// The store's pending terms, when the caller holds them (see `pending`).
    pending: Option<&'a dyn PendingView>,
    /// Folded terms of bulk writes (see `runs`).
    runs: &'a TransactionalTree,
    catalog: &'a Catalog,
}

impl Tx<'_> {
    /// The drop-folder tree, for `drops` to write a file's progress beside its records.
    pub fn drops(&self) -> &TransactionalTree {
        self.drops
    }

    pub fn record(&self, id: RecordId) -> TxResult<Option<Record>> {
        match self.records.get(codec::record_key(id))? {
            Some(bytes) => self
                .codec
                .decode_record(id, &bytes)
                .map(Some)
                .or_else(abort),
            None => Ok(None),
        }
    }

    fn term_tree(&self, index: TermIndex) -> &TransactionalTree {
        match index {
            TermIndex::ExternalId => self.external_id,
            TermIndex::Email => self.email,
            TermIndex::Content => self.content,
            TermIndex::Short => self.short,
        }
    }

    fn key_tree(&self, index: KeyIndex) -> &TransactionalTree {
        match index {
            KeyIndex::State => self.state,
            KeyIndex::Due => self.due,
        }
    }

    /// The ids holding `term` in a term index, ascending (sees this transaction's writes),
    /// pending terms included.
    pub fn holders(&self, index: TermIndex, term: &[u8]) -> TxResult<Vec<RecordId>> {
        let mut ids = self.tree_holders(index, term)?;
        if let Some(p) = self.pending {
            p.extend_holders(index, term, &mut ids);
        }
        Ok(ids)
    }

    /// The ids the term tree and the runs hold for `term`, pending terms left out.
    fn tree_holders(&self, index: TermIndex, term: &[u8]) -> TxResult<Vec<RecordId>> {
        let mut ids = self.base_holders(index, term)?;
        runs::extend_holders(self.catalog, index, term, &mut ids, |key| -> TxResult<_> {
            Ok(self.runs.get(key)?)
        })?;
        Ok(ids)
    }

    /// The ids the term tree itself holds for `term`.
    fn base_holders(&self, index: TermIndex, term: &[u8]) -> TxResult<Vec<RecordId>> {
        match self.term_tree(index).get(term)? {
            Some(bytes) => codec::decode_id_set(&bytes).or_else(abort),
            None => Ok(Vec::new()),
        }
    }

    /// Takes `id` out of `term` in the runs that hold it (their blocks rewritten).
    fn remove_from_runs(&self, index: TermIndex, term: &[u8], id: RecordId) -> TxResult<()> {
        for key in self.catalog.blocks_for(index, term) {
            let Some(block) = self.runs.get(key)? else {
                continue;
            };
            match runs::remove_from_block(&block, term, id).or_else(abort)? {
                None => {}
                Some(None) => {
                    self.runs.remove(&key)?;
                }
                Some(Some(rest)) => {
                    self.runs.insert(&key, rest)?;
                }
            }
        }
        Ok(())
    }

    fn update_set(
        &self,
        index: TermIndex,
        term: &[u8],
        change: impl FnOnce(&mut Vec<RecordId>) -> bool,
    ) -> TxResult<()> {
        let mut ids = self.base_holders(index, term)?;
        if !change(&mut ids) {
            // Already as wanted; `check_consistency` reports how it got that way.
            return Ok(());
        }
        let tree = self.term_tree(index);
        if ids.is_empty() {
            tree.remove(term)?;
        } else {
            tree.insert(term, codec::encode_id_set(&ids))?;
        }
        Ok(())
    }

    fn add_count(&self, state: RecordState, delta: i64) -> TxResult<()> {
        let key = codec::counter_key(state);
        let current = match self.counters.get(key)? {
            Some(bytes) => codec::decode_u64(&bytes).or_else(abort)?,
            None => 0,
        };
        // Saturating: a counter that drifted is reported by `check_consistency`; refusing the
        // write would stop the sync over a statistic.
        let next = current.saturating_add_signed(delta);
        self.counters.insert(&key, &codec::encode_count(next))?;
        Ok(())
    }

    /// Applies one index operation. `new_record`: the write makes a new record, whose terms
    /// go pending in a bulk transaction (see `pending`).
    fn apply(&self, op: &IndexOp, new_record: bool) -> TxResult<()> {
        match op {
            IndexOp::AddId { index, term, id } => match self.pending {
                Some(p) if new_record && p.defers_new() => {
                    p.add(*index, term, *id);
                    Ok(())
                }
                _ => self.update_set(*index, term, |ids| index::set_insert(ids, *id)),
            },
            IndexOp::RemoveId { index, term, id } => {
                if let Some(p) = self.pending {
                    p.cancel(*index, term, *id);
                }
                self.remove_from_runs(*index, term, *id)?;
                self.update_set(*index, term, |ids| index::set_remove(ids, *id))
            }
            IndexOp::Put { index, key, value } => {
                if *index == KeyIndex::State {
                    self.note_queued(key, value);
                }
                self.key_tree(*index)
                    .insert(key.as_slice(), value.as_slice())?;
                Ok(())
            }
            IndexOp::Delete { index, key } => {
                self.key_tree(*index).remove(key.as_slice())?;
                Ok(())
            }
            IndexOp::Count { state, delta } => self.add_count(*state, *delta),
        }
    }

    /// Notes a state-index entry that puts a record in the queue due at once: a record the
    /// engine's walk of the queue may already have passed (see `Store::due_from`).
    fn note_queued(&self, key: &[u8], value: &[u8]) {
        let due_at_once = matches!(codec::decode_state_value(value), Ok(None | Some(0)));
        if let Ok((RecordState::Queued, id)) = codec::decode_state_key(key) {
            if due_at_once && self.queued.get().is_none_or(|low| id < low) {
                self.queued.set(Some(id));
            }
        }
    }

    /// Writes `new` (whose previous version is `old`) with its index difference and, for the
    /// attempts appended to its history, its ledger entries.
    pub fn write_record(&self, old: Option<&Record>, new: &Record) -> TxResult<()> {
        let prepared = Prepared::new(self.codec, old, new).or_else(abort)?;
        self.write_prepared(old, new, &prepared)
    }

    /// [`Tx::write_record`] with the sealed value and index difference computed before the
    /// transaction ([`Prepared::new`]), so the transaction, which holds sled's lock on every
    /// other read and write of the database, does only the writes.
    pub fn write_prepared(
        &self,
        old: Option<&Record>,
        new: &Record,
        prepared: &Prepared,
    ) -> TxResult<()> {
        let attempts = match old {
            Some(old) if old.id != new.id => {
                return abort(StoreError::InvalidUpdate {
                    id: old.id,
                    reason: "a record's id cannot change",
                })
            }
            Some(old) => match ledger::appended_attempts(old, new) {
                Some(attempts) => attempts,
                None => {
                    return abort(StoreError::InvalidUpdate {
                        id: old.id,
                        reason: "history is append-only",
                    })
                }
            },
            None => ledger::attempts(new),
        };
        for attempt in attempts {
            let key = codec::ledger_key(&attempt.key);
            let existing = match self.ledger.get(&key)? {
                Some(bytes) => Some(codec::decode_ledger(&bytes).or_else(abort)?),
                None => None,
            };
            let entry = ledger::after_attempt(existing, new.id, attempt);
            self.ledger
                .insert(key, codec::encode_ledger(&entry).or_else(abort)?)?;
        }
        for op in &prepared.ops {
            self.apply(op, old.is_none())?;
        }
        self.records
            .insert(&codec::record_key(new.id), prepared.value.as_slice())?;
        Ok(())
    }

    /// Writes `new` and its index difference, without ledger entries: for a rewrite that
    /// appends no attempt (purge, migration), whose history checks are the caller's.
    pub fn write_indexed(&self, old: Option<&Record>, new: &Record) -> TxResult<()> {
        for op in &index::diff(self.codec, old, Some(new)) {
            self.apply(op, false)?;
        }
        self.put_record(new)
    }

    /// Applies index operations computed by the caller (migration: old plain terms out).
    pub fn apply_ops(&self, ops: Vec<IndexOp>) -> TxResult<()> {
        for op in &ops {
            self.apply(op, false)?;
        }
        Ok(())
    }

    /// The stored bytes of a record, undecoded.
    pub fn raw_record(&self, id: RecordId) -> TxResult<Option<sled::IVec>> {
        Ok(self.records.get(codec::record_key(id))?)
    }

    /// Every record write ends here or in [`Prepared::new`], which is where a conflict's
    /// existing-customer lookup is dropped once the record has left that conflict.
    pub fn put_record(&self, new: &Record) -> TxResult<()> {
        let value = encode_clean(self.codec, new).or_else(abort)?;
        self.records.insert(&codec::record_key(new.id), value)?;
        Ok(())
    }
}

/// A record write's CPU work done ahead of its transaction: the sealed (compressed, keyed)
/// value and the index difference. Valid only for the `old` it was computed from; the
/// caller checks in the transaction that the stored record is still that one.
pub struct Prepared {
    ops: Vec<IndexOp>,
    value: Vec<u8>,
}

impl Prepared {
    pub fn new(codec: &Codec, old: Option<&Record>, new: &Record) -> Result<Self, StoreError> {
        Ok(Prepared {
            ops: index::diff(codec, old, Some(new)),
            value: encode_clean(codec, new)?,
        })
    }
}

/// The sealed value of `new`, with a conflict's existing-customer lookup dropped once the
/// record has left that conflict (`Record::drop_stale_existing`): one place, whichever
/// transition moved it. Only a stale record is copied.
fn encode_clean(codec: &Codec, new: &Record) -> Result<Vec<u8>, StoreError> {
    if new.existing_is_stale() {
        let mut copy = new.clone();
        copy.drop_stale_existing();
        codec.encode_record(&copy)
    } else {
        codec.encode_record(new)
    }
}
