//! The local store: the only module that touches sled. It owns the records, the idempotency
//! ledger and the indexes, and keeps them consistent: every write of a record applies the
//! difference of its index entries in the same multi-tree sled transaction (see `txn`), so a
//! crash can never leave an index disagreeing with a record. It knows nothing of HTTP, the
//! engine's policy or the CLI; callers pass the clock in.
//!
//! Layout (one sled database in `<dir>/sled`):
//! - `records`: id -> record, history included. The history stays inside the record because
//!   it is read with the record (`show`) and written with it (an attempt and the state it leads
//!   to are one change); a separate tree would double the writes for no reader. It grows by
//!   one entry per attempt; backoff caps attempts per hour, and purge (issue 8) will trim it.
//! - `index.external_id`, `index.email`: term -> ids of the live records holding it. Sets, not
//!   single ids: two local rows may share an email (different external_ids), and edits can
//!   make two rows share an external_id; lookups take the oldest live holder.
//! - `index.content`: keyed hash of the canonical payload -> ids, only for live records with
//!   neither external_id nor email, so the same keyless row submitted again is found
//!   (`SubmitOutcome::Unchanged`). Records written before it existed have none (see `index`).
//! - `index.state`: (state, id) -> due millis for queued records. A record the engine is
//!   sending stays queued (only older versions wrote `sending`; see `sync::InFlight`). Queue
//!   order is id order (UUIDv7), so listing a state or finding due records walks this index
//!   in queue order and decodes only the records it returns; records backing off are skipped
//!   on the index value.
//! - `index.due`: (due millis, id) for queued records backing off (with a `next_attempt_at`):
//!   the earliest backoff is one seek. Two indexes because no single key order serves both
//!   "queue order" and "earliest time". Records due at once have no entry: `due` finds them
//!   on the state index's value, and an entry each would cost every new record an insert (and
//!   sled's page table memory) for no reader. Stores written before this held (0, id) entries;
//!   `open_locked` deletes them once (marker `due_backoff_only`).
//! - `index.short`: an id's last 4 bytes (its short id, [`RecordId::short`]) -> ids, for every
//!   record: a short id is one read. A new record draws another id when its tail is taken
//!   (`fresh_id`), so short ids are unique; stores from before are indexed at open.
//! - `index.pending`: sequence number -> the index terms a bulk transaction's new records
//!   add (and cancels of such terms), not yet in the term trees above; held in memory meanwhile
//!   and folded after a dropped file, past a bound, and at open (see `pending`).
//! - `index.runs`: folded terms, a run per fold (the two smallest merged past 16 an index)
//!   of blocks of (term, ids) by a hash bucket, each run followed by its bloom filter and
//!   named by a catalog entry (see `runs`). Every term lookup joins the term tree, the runs
//!   and the pending terms.
//! - `ledger`: Idempotency-Key -> [`LedgerEntry`], written from the attempts appended to a
//!   record's history in the same transaction.
//! - `counters`: state -> count, kept in the same transactions, so `counts` reads six keys.
//! - `drops`: drop-folder files' progress by content fingerprint and their recent history
//!   (see `drops`), in the same transactions as the records a file queues.
//!
//! - `meta` (outside `Trees`): `key_check` -> a value derived from the data key, so a store is
//!   never opened, or written, with another store's key; `all_sealed` once no record is left
//!   in the plain layout and `records_v3` once every record is compressed, so unlocking
//!   does not read every record again; `due_backoff_only` once the due index holds no
//!   due-at-once entry of the old layout; `last_sync_at`, when a record was last synced (for
//!   status after a restart).
//!
//! Every byte layout lives in `codec`, versioned. Records are compressed (`compress`) and
//! sealed, email / external_id terms are keyed hashes (docs/security.md); the data key comes
//! from the keyring beside the database (`<dir>/keyring.json`, see `crypto::keyring`). A store
//! can be open but locked (`open_locked`, `lock`): counts and ids stay readable, anything
//! touching a customer field answers [`StoreError::KeyLocked`]. `migrate` brings a store made
//! before encryption, or before compression, to today's format in place;
//! `retention` decides which synced records lose their customer data; `compact` rewrites the
//! database after either, so the old values leave the disk (the handle swaps its own sled
//! database: `Inner::handles`, with writes gated while it does).
//!
//! Durability: sled commits to memory and flushes its log every 500 ms. `submit` and
//! `submit_batch` (once, at the end) and `Durability::Flush` call `Db::flush` (an fsync)
//! before returning, so whatever a user is told is saved is on disk.

mod check;
mod codec;
mod compact;
mod compress;
mod drops;
mod error;
mod floor;
mod guard;
mod index;
mod ledger;
mod migrate;
mod pending;
mod raw;
mod raw_salvage;
mod record;
pub mod retention;
mod runs;
mod salvage;
mod txn;
mod upsert;

use std::cell::RefCell;
use std::collections::HashSet;
use std::ops::Bound;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::crypto::{Crypto, KeyConfig, KeySourceKind, Keyring, Passphrase};
pub use drops::{
    DropFileEntry, DropOutcome, DropProgress, DropStage, DropSubmitted, Fingerprint, ReadyBatch,
    Submission, DROP_HISTORY_MAX,
};

pub use compact::{Compacted, ABORT_AT_ENV as COMPACT_ABORT_ENV, STEPS as COMPACT_STEPS};
pub use error::{HandleKind, StoreError, MAX_HANDLE_CHARS, MIN_PREFIX_CHARS, RECOVER_HINT};
pub use raw_salvage::{counts as counts_from_files, RawReport};
pub use record::{
    merge_members, ActionKind, Attempt, ExistingCustomer, ExistingLookup, HistoryEntry,
    LedgerEntry, Origin, Payload, Record, RecordError, RecordId, RecordState, SHORT_ID_CHARS,
};
pub use salvage::SalvageReport;
pub use upsert::MatchKey;

use codec::Codec;
use index::TermIndex;
use txn::{Prepared, Trees, Tx, TxResult};

/// How long `open` waits for a lock that is being released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The sled database's directory inside the store directory.
const DB_DIR: &str = "sled";
/// Records per transaction in `submit_batch`: big enough to amortise the commit, small enough
/// that sled's global transaction lock is not held for long while the engine waits.
const BATCH_CHUNK: usize = 256;
/// How many candidates an ambiguous prefix error lists.
const AMBIGUOUS_CANDIDATES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub cache_capacity_bytes: u64,
}

impl Default for StoreOptions {
    /// 32 MiB: sled's own default (1 GiB) is far too much for a daemon on a field laptop.
    fn default() -> Self {
        StoreOptions {
            cache_capacity_bytes: 32 * 1024 * 1024,
        }
    }
}

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Returns only after `Db::flush` (fsync).
    Flush,
    /// On disk with sled's next periodic flush (at most about 500 ms later).
    Lazy,
}

/// What a submit did to the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitOutcome {
    /// No live record matched: a new one was made, queued.
    Created,
    /// A live record matched and the payload became its next revision, queued.
    Revised,
    /// A live record matched and the payload would not change it ([`Payload::absorbs`]; for
    /// a payload with neither external_id nor email, an equal one): no revision, no state
    /// change, nothing to send. A record waiting for a person (conflict, rejected) stays so.
    Unchanged,
}

/// The outcome of a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub id: RecordId,
    /// The record's newest revision (for `Unchanged`, the one it already had).
    pub revision: u32,
    pub outcome: SubmitOutcome,
}

impl Submitted {
    fn of(record: &Record, outcome: SubmitOutcome) -> Self {
        Submitted {
            id: record.id,
            revision: record.revision,
            outcome,
        }
    }

    /// Whether the submit changed a record (made or revised one).
    pub fn changed(&self) -> bool {
        self.outcome != SubmitOutcome::Unchanged
    }
}

/// Records per state, from the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    per_state: [u64; RecordState::ALL.len()],
    pub total: u64,
}

impl Counts {
    pub fn get(&self, state: RecordState) -> u64 {
        self.per_state[usize::from(state.tag())]
    }
}

/// One record's update prepared outside its transaction (see `Store::update_many`).
struct ReadyUpdate {
    /// The record as stored when the write was prepared: the write stands only if the
    /// transaction finds these same bytes.
    raw: sled::IVec,
    old: Record,
    new: Record,
    /// None when `f` changed nothing.
    prepared: Option<Prepared>,
}

/// A record as it was read, with the stored bytes it was opened from: a write prepared from
/// it later ([`Store::update_read`]) need not read and open the record again, and stands
/// only if the record is still those same bytes.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    pub record: Record,
    raw: sled::IVec,
}

impl ReadRecord {
    pub fn into_record(self) -> Record {
        self.record
    }
}

/// Where the engine's walk of the queue resumes: the last record [`Store::due_from`] handed
/// out. Starts (and after a reset, restarts) at the head of the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCursor {
    after: Option<RecordId>,
}

impl QueueCursor {
    /// Back to the head of the queue: for a caller that let go of records it was handed
    /// without writing them (they are still queued, behind the cursor).
    pub fn reset(&mut self) {
        self.after = None;
    }
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The open database; `compact` swaps in the rewritten one (see `compact`).
    handles: RwLock<Arc<Handles>>,
    /// Held shared by every write, exclusively by `compact` while it copies and swaps, so no
    /// write lands in the database being replaced.
    writes: RwLock<()>,
    /// Held shared by every transaction, exclusively while the per-state counters are read
    /// (`read_counters`): a transaction moving records between states cannot commit between
    /// two of those reads, so no record is counted twice. Apart from `writes`, so a status
    /// asked during a compaction does not wait for it.
    counting: RwLock<()>,
    /// Held by a purge from its first read to its compaction, and by `unlock`'s compaction:
    /// a compaction run by one must not take the owed mark of another one still writing.
    maintenance: std::sync::Mutex<()>,
    options: StoreOptions,
    dir: PathBuf,
    /// None while locked.
    codec: RwLock<Option<Codec>>,
    /// Committed transactions since open: whoever keeps something derived from the records
    /// (the service's sorted views) compares it to know when that went stale.
    changes: AtomicU64,
    /// The lowest id a committed write has put in the queue due at once since the engine's
    /// last walk of the queue took it (see `due_from`).
    queued_low: std::sync::Mutex<Option<RecordId>>,
    /// The record count last written to the floor file (see `floor`).
    floor: AtomicU64,
    /// Held while the floor file is rewritten: clones flushing at once (the engine and a
    /// command) would otherwise share its temporary file, and one's rename would fail.
    floor_write: std::sync::Mutex<()>,
    /// The terms of new records written in bulk and not yet folded into the term trees,
    /// held by every transaction from start to commit and by a fold (see `pending`).
    pending: std::sync::Mutex<pending::Pending>,
}

/// One open sled database and its trees.
struct Handles {
    db: sled::Db,
    trees: Trees,
    meta: sled::Tree,
}

impl std::ops::Deref for Handles {
    type Target = Trees;

    fn deref(&self) -> &Trees {
        &self.trees
    }
}

const META_KEY_CHECK: &[u8] = b"key_check";
/// Present once `migrate` has found no plain record left (see `unlock`).
const META_ALL_SEALED: &[u8] = b"all_sealed";
/// Present once `migrate` has found every record in today's format (3: sealed, compressed).
const META_ALL_CURRENT: &[u8] = b"records_v3";
/// Present once the due index holds no (millis 0, id) entry of the old layout (see
/// `open_locked`).
const META_DUE_BACKOFF_ONLY: &[u8] = b"due_backoff_only";
/// When a record was last synced (RFC 3339, to the nanosecond), so "last sync" survives a
/// restart exactly as status gave it before.
const META_LAST_SYNC: &[u8] = b"last_sync_at";
/// Set once every record has its short-id entry (stores written before the index existed
/// get theirs at the next open).
const META_SHORT_INDEXED: &[u8] = b"short_indexed";

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StoreError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// sled creates its files with the process umask; the store's files hold customer data, so
/// they are narrowed to the owner. The directory is 0700 as well, which also covers files
/// sled creates later (snapshots, blobs).
fn restrict_tree(path: &Path) -> Result<(), StoreError> {
    let perm_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Permissions { path, source }
    };
    let meta = std::fs::symlink_metadata(path).map_err(perm_err(path))?;
    let mode = if meta.is_dir() { 0o700 } else { 0o600 };
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(perm_err(path))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(perm_err(path))? {
            restrict_tree(&entry.map_err(perm_err(path))?.path())?;
        }
    }
    Ok(())
}

/// Opens the sled database in `db_dir` (created 0700) and its trees, after the log check. A
/// database closed a moment ago may still be locked while sled's background threads let go
/// of it (in this process, or a daemon that is just exiting): waits briefly before reporting
/// it as in use.
fn open_handles(db_dir: &Path, options: StoreOptions) -> Result<Handles, StoreError> {
    create_private_dir(db_dir)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let db = loop {
        guard::check_log(db_dir)?;
        let opened = sled::Config::new()
            .path(db_dir)
            .cache_capacity(options.cache_capacity_bytes)
            .open()
            .map_err(|e| open_error(db_dir.to_owned(), e));
        match opened {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other?,
        }
    };
    restrict_tree(db_dir)?;
    let trees = Trees::open(&db).map_err(|e| open_error(db_dir.to_owned(), e))?;
    trees.load_runs()?;
    let meta = db
        .open_tree("meta")
        .map_err(|e| open_error(db_dir.to_owned(), e))?;
    Ok(Handles { db, trees, meta })
}

fn open_error(path: PathBuf, e: sled::Error) -> StoreError {
    match &e {
        // sled reports its exclusive file lock only as an io error with this text.
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked { path }
        }
        sled::Error::Corruption { .. } => StoreError::Damaged {
            detail: format!(
                "cannot open {}: {}",
                path.display(),
                error::sled_message(&e)
            ),
        },
        _ => match StoreError::from(e) {
            StoreError::Database(source) => StoreError::Open { path, source },
            other => other,
        },
    }
}

/// Records in the store, from the counters.
/// The per-state counters (indexed by state tag). Read key by key, so a caller with writers
/// running holds `Inner::counting` meanwhile (`Store::read_counters`): otherwise a write moving
/// records between states could commit between two reads and count them twice (seen: a
/// floor of 408 written for 400 records, and the store then refused as truncated). Not a
/// sled transaction: its commit writes to the log, which a full disk refuses.
fn read_counters(counters: &sled::Tree) -> Result<[u64; RecordState::ALL.len()], StoreError> {
    let mut per_state = [0u64; RecordState::ALL.len()];
    for state in RecordState::ALL {
        if let Some(bytes) = counters.get(codec::counter_key(state))? {
            per_state[usize::from(state.tag())] = codec::decode_u64(&bytes)?;
        }
    }
    Ok(per_state)
}

/// The number of records: the sum of the per-state counters.
fn sum(per_state: &[u64]) -> u64 {
    per_state
        .iter()
        .fold(0u64, |total, n| total.saturating_add(*n))
}

fn submit_one(
    tx: &Tx<'_>,
    payload: &Payload,
    origin: &Origin,
    now: DateTime<Utc>,
    ahead: Option<&Ahead>,
) -> TxResult<Submitted> {
    let computed;
    let (index, term) = match ahead {
        Some(a) => (a.index, a.term.as_slice()),
        None => {
            computed = match_term(tx.codec, payload);
            (computed.0, computed.1.as_slice())
        }
    };
    let mut matched = live_holder(tx, index, term)?;
    if index == TermIndex::Content {
        // Nothing to match on but the whole payload: the same keyless row is not taken twice.
        matched = matched.filter(|r| r.payload == *payload);
    }
    match matched {
        // Nothing to send: no revision, and a record waiting for a person stays waiting.
        Some(old) if old.payload.absorbs(payload) => {
            Ok(Submitted::of(&old, SubmitOutcome::Unchanged))
        }
        Some(old) => {
            let mut new = old.clone();
            upsert::revise(&mut new, payload.clone(), origin.clone(), now);
            tx.write_record(Some(&old), &new)?;
            Ok(Submitted::of(&new, SubmitOutcome::Revised))
        }
        None => {
            if let Some((new, prepared)) = ahead.and_then(|a| a.new.as_ref()) {
                // Taken unless its short id is held by now (see `fresh_id`).
                if tx
                    .holders(TermIndex::Short, &codec::short_key(new.id))?
                    .is_empty()
                {
                    tx.write_prepared(None, new, prepared)?;
                    return Ok(Submitted::of(new, SubmitOutcome::Created));
                }
            }
            let new = upsert::new_record(fresh_id(tx)?, payload.clone(), origin.clone(), now);
            tx.write_record(None, &new)?;
            Ok(Submitted::of(&new, SubmitOutcome::Created))
        }
    }
}

/// The index a payload is matched on, and its term there (see `upsert::match_key`).
fn match_term(codec: &Codec, payload: &Payload) -> (TermIndex, Vec<u8>) {
    match upsert::match_key(payload) {
        MatchKey::ExternalId(x) => (TermIndex::ExternalId, codec.external_id_term(&x)),
        MatchKey::Email(e) => (TermIndex::Email, codec.email_term(&e)),
        MatchKey::None => (TermIndex::Content, codec.content_term(payload)),
    }
}

/// Which rows get their new record sealed before the transaction ([`Store::prepare_new`]).
/// The seal is wasted on a row that turns out to match a stored record (it becomes that
/// record's revision, or changes nothing), so a caller that cannot afford an index read says
/// what it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealAhead {
    /// Each row whose match term no record holds, by one index read. sled's reads wait
    /// while any transaction commits, so on a thread beside a committing one this read
    /// makes the two take turns (the drop folder's reader, measured: no gain at all).
    IfUnheld,
    /// Every row: for a thread beside the committer while most rows are new.
    Always,
    /// None: while most rows match stored records (a file exported again).
    Never,
}

impl SealAhead {
    /// For the next chunk, from whether most rows of the last one committed were new
    /// ([`SealAhead::mostly_new`]): the guess of a preparing thread that never reads the
    /// store (`submit_batch`, the drop folder).
    pub fn after(mostly_new: bool) -> SealAhead {
        if mostly_new {
            SealAhead::Always
        } else {
            SealAhead::Never
        }
    }

    /// Whether a committed chunk was mostly new: `created` new records of its `rows`, at
    /// least half.
    pub fn mostly_new(created: usize, rows: usize) -> bool {
        created * 2 >= rows
    }
}

/// One submission's work done before its transaction ([`Store::prepare_new`]): its match
/// term and, as [`SealAhead`] said, its new record made, sealed and indexed. The
/// transaction matches again; the new record is written only if nothing matches by then,
/// and its short id is still free.
struct Ahead {
    index: TermIndex,
    term: Vec<u8>,
    new: Option<(Record, Prepared)>,
}

/// Why an edit of one record (see [`Store::edit`]) was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditRefused<E> {
    #[error("no such record")]
    NotFound,
    /// The change itself refused (wrong state, invalid payload).
    #[error(transparent)]
    Action(E),
    /// The change would give the record an external_id or email that another live record
    /// holds: each customer is one row.
    #[error(
        "record {0} already holds this external_id or email; edit or discard that record instead"
    )]
    Taken(RecordId),
}

/// A record after an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub record: Record,
    /// The payload changed: a new revision was made.
    pub revised: bool,
}

impl Edited {
    /// The edit as a submit's outcome: `Revised`, or `Unchanged` when no revision was made.
    pub fn submitted(&self) -> Submitted {
        let outcome = if self.revised {
            SubmitOutcome::Revised
        } else {
            SubmitOutcome::Unchanged
        };
        Submitted::of(&self.record, outcome)
    }
}

/// Applies `f` to record `id` inside `tx`: refused when `f` refuses, or when the payload it
/// leaves would take an external_id or email that another live record holds (the one rule
/// every edit keeps, checked in the same transaction as the write).
fn edit_one<E>(
    tx: &Tx<'_>,
    id: RecordId,
    f: impl FnOnce(&mut Record) -> Result<(), E>,
) -> TxResult<Result<Edited, EditRefused<E>>> {
    let Some(old) = tx.record(id)? else {
        return Ok(Err(EditRefused::NotFound));
    };
    let mut new = old.clone();
    if let Err(e) = f(&mut new) {
        return Ok(Err(EditRefused::Action(e)));
    }
    if new.payload != old.payload {
        if let Some(other) = other_holder(tx, id, &new.payload)? {
            return Ok(Err(EditRefused::Taken(other)));
        }
    }
    if new != old {
        tx.write_record(Some(&old), &new)?;
    }
    Ok(Ok(Edited {
        revised: new.revision != old.revision,
        record: new,
    }))
}

/// How many ids `fresh_id` draws before it takes one whose short id another record has.
const SHORT_ID_DRAWS: usize = 8;

/// A new record id whose short id ([`RecordId::short`]) no record in the store has, so a
/// short id names one record. Its 32 random bits collide once in about 4 billion pairs;
/// another draw is a new UUIDv7 (same instant, next counter), so queue order is kept.
fn fresh_id(tx: &Tx<'_>) -> TxResult<RecordId> {
    let mut id = RecordId::new();
    for _ in 1..SHORT_ID_DRAWS {
        if tx
            .holders(TermIndex::Short, &codec::short_key(id))?
            .is_empty()
        {
            break;
        }
        id = RecordId::new();
    }
    Ok(id)
}

/// The live record other than `id` holding `payload`'s external_id or, failing that, its
/// email.
fn other_holder(tx: &Tx<'_>, id: RecordId, payload: &Payload) -> TxResult<Option<RecordId>> {
    let mut holder = match payload.external_id() {
        Some(x) => live_holder(tx, TermIndex::ExternalId, &tx.codec.external_id_term(x))?,
        None => None,
    };
    if holder.is_none() {
        if let Some(e) = payload.email() {
            let term = tx.codec.email_term(&crate::contract::normalize_email(e));
            holder = live_holder(tx, TermIndex::Email, &term)?;
        }
    }
    Ok(holder.map(|r| r.id).filter(|other| *other != id))
}

/// The oldest live record holding `term`. Discarded records are unindexed, so the state check
/// only guards against an index that drifted.
fn live_holder(tx: &Tx<'_>, index: TermIndex, term: &[u8]) -> TxResult<Option<Record>> {
    for id in tx.holders(index, term)? {
        if let Some(record) = tx.record(id)? {
            if record.state != RecordState::Discarded {
                return Ok(Some(record));
            }
        }
    }
    Ok(None)
}

/// The bytes a short id spells, when `handle` is one: exactly [`SHORT_ID_CHARS`] hex digits.
fn short_id_bytes(handle: &str) -> Option<[u8; SHORT_ID_CHARS / 2]> {
    let mut bytes = [0u8; SHORT_ID_CHARS / 2];
    (handle.len() == SHORT_ID_CHARS && hex::decode_to_slice(handle, &mut bytes).is_ok())
        .then_some(bytes)
}

/// A record id prefix as hex digits, lowercased: hyphens must sit where the hyphenated text
/// has them.
fn prefix_digits(prefix: &str) -> Result<String, StoreError> {
    const HYPHENS: [usize; 4] = [8, 13, 18, 23];
    let invalid = || StoreError::PrefixInvalid {
        prefix: prefix.to_owned(),
    };
    if prefix.chars().count() < MIN_PREFIX_CHARS {
        return Err(StoreError::PrefixTooShort {
            prefix: prefix.to_owned(),
        });
    }
    if prefix.len() > 36 {
        return Err(invalid());
    }
    let mut digits = String::with_capacity(32);
    for (i, c) in prefix.chars().enumerate() {
        match c {
            '-' if HYPHENS.contains(&i) => {}
            c if c.is_ascii_hexdigit() && !HYPHENS.contains(&i) => {
                digits.push(c.to_ascii_lowercase())
            }
            _ => return Err(invalid()),
        }
    }
    Ok(digits)
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, created mode 0700, unlocked with the
    /// default key file (`ICSYNC_KEY_FILE`, else `data.key` in the user's config dir; created
    /// with a new store). A second process opening the same store gets
    /// [`StoreError::Locked`].
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Self::open_with_key(dir, options, &KeyConfig::from_env()?, None)
    }

    /// Opens the store and unlocks it (see [`Store::unlock`]).
    pub fn open_with_key(
        dir: &Path,
        options: StoreOptions,
        keys: &KeyConfig,
        passphrase: Option<&Passphrase>,
    ) -> Result<Store, StoreError> {
        let store = Self::open_locked(dir, options)?;
        store.unlock(keys, passphrase)?;
        Ok(store)
    }

    /// The pre-encryption layout (plain values and terms), to build the stores `migrate`
    /// upgrades in tests. Never use it for real data.
    #[doc(hidden)]
    pub fn open_legacy_plain(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let store = Self::open_locked(dir, options)?;
        // Plain records may follow: the next unlock must look for them again.
        store.trees().meta.remove(META_ALL_SEALED)?;
        store.trees().meta.remove(META_ALL_CURRENT)?;
        *store.codec_slot() = Some(Codec::Plain);
        Ok(store)
    }

    /// Opens a store that writes records sealed but not compressed (format 2), as stores did
    /// before compression: the next ordinary unlock compresses them. Tests only.
    #[doc(hidden)]
    pub fn open_legacy_uncompressed(
        dir: &Path,
        options: StoreOptions,
        keys: &KeyConfig,
    ) -> Result<Store, StoreError> {
        let store = Self::open_with_key(dir, options, keys, None)?;
        store.trees().meta.remove(META_ALL_CURRENT)?;
        let crypto = match store.codec()? {
            Codec::Sealed(crypto) | Codec::SealedV2(crypto) => crypto,
            Codec::Plain => return Err(StoreError::KeyLocked),
        };
        *store.codec_slot() = Some(Codec::SealedV2(crypto));
        Ok(store)
    }

    /// Empties the short-id index and forgets it was filled, as a store written before short
    /// ids looks. Tests only.
    #[doc(hidden)]
    pub fn forget_short_ids(&self) -> Result<(), StoreError> {
        self.fold_pending()?;
        let trees = self.trees();
        trees.short.clear()?;
        runs::clear(&trees.runs, &mut trees.catalog_mut(), TermIndex::Short)?;
        trees.meta.remove(META_SHORT_INDEXED)?;
        self.flush()
    }

    /// Gives every queued record due at once the (millis 0, id) due-index entry older
    /// versions wrote, and forgets that they were cleaned up, as a store written before the
    /// due index became backoff-only looks (or one whose clean-up was interrupted). Tests
    /// only. Returns how many entries it wrote.
    #[doc(hidden)]
    pub fn plant_legacy_due_entries(&self) -> Result<usize, StoreError> {
        let mut planted = 0;
        for kv in self
            .trees()
            .state
            .scan_prefix(codec::state_prefix(RecordState::Queued))
        {
            let (key, value) = kv?;
            if codec::decode_state_value(&value)?.unwrap_or(0) == 0 {
                let (_, id) = codec::decode_state_key(&key)?;
                self.trees().due.insert(codec::due_key(0, id), &[])?;
                planted += 1;
            }
        }
        self.trees().meta.remove(META_DUE_BACKOFF_ONLY)?;
        self.flush()?;
        Ok(planted)
    }

    /// Opens the store without its key: counts and ids can be read, nothing else until
    /// [`Store::unlock`].
    pub fn open_locked(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        guard::guarded("opening the store", || {
            create_private_dir(dir)?;
            let db_dir = dir.join(DB_DIR);
            // A compaction cut short (kill -9, power loss) is finished or rolled back first,
            // under the lock a running compaction holds (see `compact`).
            let opened = compact::with_swap_lock(dir, LOCK_WAIT, || {
                compact::finish_interrupted(dir)?;
                open_handles(&db_dir, options)
            })?;
            let Handles { db, trees, meta } = opened;
            // Done on open, not unlock: due keys hold no customer data, so a store opened locked
            // (the daemon waiting for a passphrase) gets it too. sled's file lock means no other
            // process writes meanwhile, and this handle is not shared yet. The deletions are on
            // disk before the marker; a crash in between only repeats the (idempotent) scan.
            if meta.get(META_DUE_BACKOFF_ONLY)?.is_none() {
                let removed = migrate::drop_due_at_once(&trees.due)?;
                if removed > 0 {
                    tracing::info!(
                        entries = removed,
                        "removed the due index's due-at-once entries"
                    );
                    db.flush()?;
                }
                meta.insert(META_DUE_BACKOFF_ONLY, &[1u8])?;
                db.flush()?;
            }
            // Pending terms left by a crash go into their trees before anything reads them;
            // a store from before pending terms has none.
            let folded = pending::fold(&trees, &mut pending::Pending::default())?;
            if folded > 0 {
                tracing::info!(terms = folded, "indexed the terms left pending");
                db.flush()?;
            }
            // Short ids are ids, not customer data: filled on open too, before any write.
            if meta.get(META_SHORT_INDEXED)?.is_none() {
                let added = migrate::fill_short_index(&trees)?;
                if added > 0 {
                    tracing::info!(records = added, "indexed the records' short ids");
                    db.flush()?;
                }
                meta.insert(META_SHORT_INDEXED, &[1u8])?;
                db.flush()?;
            }
            // sled replays what is left of a truncated file as a smaller (often empty)
            // database without a word; the count kept beside it tells.
            // No writer yet: the counters can be read without the counting gate.
            let total = sum(&read_counters(&trees.counters)?);
            let floor = floor::read(dir);
            if total < floor {
                return Err(StoreError::Damaged {
                    detail: format!(
                        "the database in {} holds {total} records but held at least {floor}: \
                         its file was truncated or replaced",
                        db_dir.display()
                    ),
                });
            }
            Ok(Store {
                inner: Arc::new(Inner {
                    handles: RwLock::new(Arc::new(Handles { db, trees, meta })),
                    writes: RwLock::new(()),
                    counting: RwLock::new(()),
                    maintenance: std::sync::Mutex::new(()),
                    options,
                    dir: dir.to_owned(),
                    codec: RwLock::new(None),
                    changes: AtomicU64::new(0),
                    queued_low: std::sync::Mutex::new(None),
                    floor: AtomicU64::new(floor),
                    floor_write: std::sync::Mutex::new(()),
                    pending: std::sync::Mutex::new(pending::Pending::default()),
                }),
            })
        })
    }

    /// The open database's trees (and `db`, `meta`): a clone of the current handles, so a
    /// compaction swapping them meanwhile leaves this caller's reads intact.
    fn trees(&self) -> Arc<Handles> {
        self.inner
            .handles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Held by a write for its duration (see `Inner::writes`). Never taken twice on one
    /// thread: a compaction waiting in between would deadlock it.
    fn write_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.inner
            .writes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn codec_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<Codec>> {
        // A panic elsewhere while holding the lock leaves a valid Option behind.
        self.inner
            .codec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The codec to read and write customer data with, or `KeyLocked`.
    fn codec(&self) -> Result<Codec, StoreError> {
        self.inner
            .codec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::KeyLocked)
    }

    fn transaction<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T, StoreError> {
        self.transaction_with(false, f).map(|(out, _)| out)
    }

    /// [`Store::transaction`] for a bulk write: the terms of the new records it makes go
    /// pending, one entry for the transaction, folded into the term trees later (see
    /// `pending`).
    fn transaction_deferring<T>(
        &self,
        f: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        let (out, pending) = self.transaction_with(true, f)?;
        if pending >= pending::FOLD_AT_RECORDS {
            self.fold_pending()?;
        }
        Ok(out)
    }

    fn pending_terms(&self) -> std::sync::MutexGuard<'_, pending::Pending> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A transaction, and the records whose terms are pending after it.
    fn transaction_with<T>(
        &self,
        defer_new: bool,
        f: impl Fn(&Tx<'_>) -> TxResult<T>,
    ) -> Result<(T, usize), StoreError> {
        guard::guarded("writing", || {
            let codec = self.codec()?;
            let _writing = self.write_gate();
            let _counted = self
                .inner
                .counting
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let queued = std::cell::Cell::new(None);
            let mut held = self.pending_terms();
            let pending = pending::PendingTx::new(&mut held, defer_new);
            let out = self
                .trees()
                .transaction_noting(&codec, &queued, Some(&pending), f)?;
            let pending = pending.commit();
            drop(held);
            self.inner.changes.fetch_add(1, Ordering::Release);
            if let Some(id) = queued.get() {
                let mut low = self.queued_low();
                if low.is_none_or(|low| id < low) {
                    *low = Some(id);
                }
            }
            Ok((out, pending))
        })
    }

    fn queued_low(&self) -> std::sync::MutexGuard<'_, Option<RecordId>> {
        self.inner
            .queued_low
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A number that grows with every committed write (records, indexes, drop progress)
    /// made through this handle since the store was opened; equal numbers mean nothing
    /// changed in between. Not persisted.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Acquire)
    }

    /// Notes that records were synced at `at`: one key, written lazily just after the
    /// outcomes that synced them (sled's log is ordered, so it never reaches the disk before
    /// they do). Readable while the store is locked: a time, no customer data.
    pub fn note_last_sync(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let text = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        self.trees().meta.insert(META_LAST_SYNC, text.as_bytes())?;
        Ok(())
    }

    /// When a record was last synced, by any run of the engine on this store.
    pub fn last_sync_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(bytes) = self.trees().meta.get(META_LAST_SYNC)? else {
            return Ok(None);
        };
        let at = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(|| StoreError::Corrupt {
                what: "last sync time",
                detail: "not an RFC 3339 time".into(),
            })?;
        Ok(Some(at.with_timezone(&Utc)))
    }

    pub fn keyring_path(&self) -> PathBuf {
        Keyring::path_in(&self.inner.dir)
    }

    /// How this store's data key is wrapped: the keyring's own record when it has one, else
    /// what `keys` would create.
    pub fn key_source(&self, keys: &KeyConfig) -> Result<KeySourceKind, StoreError> {
        Ok(Keyring::load(&self.keyring_path())?
            .map(|k| k.source())
            .unwrap_or(keys.source))
    }

    pub fn is_locked(&self) -> bool {
        self.inner.codec.read().map(|c| c.is_none()).unwrap_or(true)
    }

    /// Unwraps the data key (creating the keyring for a new store), checks it is this
    /// store's key, encrypts any record still in the old plain layout, and makes customer data
    /// readable. On any error the store stays locked: nothing is half-decrypted.
    pub fn unlock(
        &self,
        keys: &KeyConfig,
        passphrase: Option<&Passphrase>,
    ) -> Result<(), StoreError> {
        guard::guarded("unlocking the store", || {
            let path = self.keyring_path();
            let check = self.trees().meta.get(META_KEY_CHECK)?;
            let data_key = match Keyring::load(&path)? {
                Some(ring) => ring.unwrap(&keys.wrapping(ring.source(), passphrase)?, &path)?,
                None if check.is_some() => {
                    return Err(StoreError::KeyringMissing {
                        path: self.inner.dir.clone(),
                        keyring: path,
                    })
                }
                None => {
                    let key = crate::crypto::DataKey::generate();
                    Keyring::wrap(&key, &keys.wrapping(keys.source, passphrase)?)?.save(&path)?;
                    key
                }
            };
            let crypto = Crypto::new(&data_key);
            match check {
                Some(stored) if stored.as_ref() != crypto.key_check() => {
                    return Err(StoreError::WrongDataKey { keyring: path })
                }
                Some(_) => {}
                None => {
                    self.trees()
                        .meta
                        .insert(META_KEY_CHECK, &crypto.key_check())?;
                    self.flush()?;
                }
            }
            let codec = Codec::Sealed(crypto);
            // Looking for records in an older format reads every record (2.8 GB for 1M
            // records of format 2): through sled's page cache that left a daemon holding ~80 MB
            // per 200k records for good. It is done once; the marker says every record is
            // current, and only the `open_legacy_*` hooks (tests) can write an old one again,
            // which removes the marker. The compaction owed takes the old values off the disk
            // (plain ones must go; uncompressed ones are most of the file).
            if self.trees().meta.get(META_ALL_CURRENT)?.is_none() {
                let writing = self.write_gate();
                migrate::run(&self.trees(), &codec, || self.owe_compaction())?;
                self.trees().meta.insert(META_ALL_SEALED, &[1u8])?;
                self.trees().meta.insert(META_ALL_CURRENT, &[1u8])?;
                drop(writing);
            }
            self.flush()?;
            // The plain values a migration overwrote (or a purge cut short) leave the disk
            // before customer data is served.
            self.compact_if_owed(&self.maintenance())?;
            *self.codec_slot() = Some(codec);
            Ok(())
        })
    }

    /// Drops the key: customer data is unreadable until the next `unlock`. Operations already
    /// running finish with the key they started with.
    pub fn lock(&self) {
        *self.codec_slot() = None;
    }

    /// A record's stored bytes, undecoded (tests check they are sealed and unchanged).
    #[doc(hidden)]
    pub fn raw_record(&self, id: RecordId) -> Result<Option<Vec<u8>>, StoreError> {
        guard::guarded("reading a record", || {
            Ok(self
                .trees()
                .records
                .get(codec::record_key(id))?
                .map(|v| v.to_vec()))
        })
    }

    /// The local mirror of the upsert rules (see `upsert`): a payload whose external_id (or,
    /// with none, normalised email) matches a live record becomes its next revision, queued,
    /// unless it would not change that record ([`SubmitOutcome::Unchanged`]: nothing is
    /// written); otherwise a new record is made. On disk before returning.
    pub fn submit(
        &self,
        payload: Payload,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Result<Submitted, StoreError> {
        let submitted = self.transaction(|tx| submit_one(tx, &payload, &origin, now, None))?;
        if submitted.changed() {
            self.flush()?;
        }
        Ok(submitted)
    }

    /// `submit` for many, with group commit: chunks of records per transaction and one flush
    /// at the end. Items are applied in order, so an item matching an earlier one of the same
    /// batch becomes its next revision. On error, the chunks before the failing one stay
    /// committed (and are flushed before the error is returned); the failing chunk is not.
    pub fn submit_batch(
        &self,
        items: Vec<(Payload, Origin)>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Submitted>, StoreError> {
        let mut out = Vec::with_capacity(items.len());
        // Two threads, as the drop folder's: one makes the next chunk ready (its match terms
        // and, while most rows are new, its new records sealed: the CPU work) while this one
        // commits the last. The preparing thread never reads the store (a read waits for
        // every commit, so the two would take turns): it seals every row while most rows of
        // the last chunk committed made new records, and none while most matched.
        let mostly_new = AtomicBool::new(true);
        let committed = std::thread::scope(|scope| -> Result<(), StoreError> {
            let (ready, received) = std::sync::mpsc::sync_channel(1);
            let (mostly_new, items) = (&mostly_new, &items);
            scope.spawn(move || {
                for chunk in items.chunks(BATCH_CHUNK) {
                    let seal = SealAhead::after(mostly_new.load(Ordering::Relaxed));
                    let ahead = self.prepare_new(chunk.iter().map(|(p, o)| (p, o)), seal, now);
                    // Stopped early: the committing side has returned its error.
                    if ready.send(ahead).is_err() {
                        return;
                    }
                }
            });
            for (chunk, ahead) in items.chunks(BATCH_CHUNK).zip(received) {
                let ahead = ahead?;
                let done = self.transaction_deferring(|tx| {
                    chunk
                        .iter()
                        .zip(&ahead)
                        .map(|((payload, origin), a)| submit_one(tx, payload, origin, now, Some(a)))
                        .collect::<TxResult<Vec<_>>>()
                })?;
                let created = done
                    .iter()
                    .filter(|s| s.outcome == SubmitOutcome::Created)
                    .count();
                mostly_new.store(
                    SealAhead::mostly_new(created, done.len()),
                    Ordering::Relaxed,
                );
                out.extend(done);
            }
            Ok(())
        });
        if let Err(e) = committed {
            self.flush()?;
            return Err(e);
        }
        // The new records' terms stay pending (folded past the bound only): `icsync import`
        // sends a file as many calls of 1,000 records, and a fold after each would rewrite
        // the term trees' pages once per call (docs/benchmarks.md). Whoever ends the bulk
        // write folds: the daemon once the calls stop (`daemon::fold_when_quiet`), a local
        // import at its end (`Backend::settle`).
        self.flush()?;
        Ok(out)
    }

    /// The CPU work of submitting `items` done before their transaction, so that sled's
    /// lock, which a transaction holds against every other read and write, is held only for
    /// the lookups and writes (and so that a caller can do it on another thread): for each,
    /// its match term and, as `seal` says, its new record made, sealed and indexed, for the
    /// transaction to take if nothing matches the row by then.
    fn prepare_new<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a Payload, &'a Origin)>,
        seal: SealAhead,
        now: DateTime<Utc>,
    ) -> Result<Vec<Ahead>, StoreError> {
        guard::guarded("preparing a write", || {
            let codec = self.codec()?;
            items
                .into_iter()
                .map(|(payload, origin)| {
                    let (index, term) = match_term(&codec, payload);
                    let seal = match seal {
                        SealAhead::Always => true,
                        SealAhead::Never => false,
                        SealAhead::IfUnheld => self.term_holders(index, &term)?.is_empty(),
                    };
                    let new = if seal {
                        let new = upsert::new_record(
                            RecordId::new(),
                            payload.clone(),
                            origin.clone(),
                            now,
                        );
                        let prepared = Prepared::new(&codec, None, &new)?;
                        Some((new, prepared))
                    } else {
                        None
                    };
                    Ok(Ahead { index, term, new })
                })
                .collect()
        })
    }

    pub fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        Ok(self.read(id)?.map(ReadRecord::into_record))
    }

    /// [`Store::get`] with the bytes the record was opened from, for a later
    /// [`Store::update_read`].
    pub fn read(&self, id: RecordId) -> Result<Option<ReadRecord>, StoreError> {
        guard::guarded("reading a record", || {
            let codec = self.codec()?;
            match self.trees().records.get(codec::record_key(id))? {
                Some(raw) => Ok(Some(ReadRecord {
                    record: codec.decode_record(id, &raw)?,
                    raw,
                })),
                None => Ok(None),
            }
        })
    }

    /// The record whose id's hyphenated text starts with `prefix` (case-insensitive, at least
    /// [`MIN_PREFIX_CHARS`] characters).
    pub fn resolve_prefix(&self, prefix: &str) -> Result<RecordId, StoreError> {
        guard::guarded("looking up a record id", || {
            let digits = prefix_digits(prefix)?;
            let whole = digits.len() / 2;
            let mut lower =
                hex::decode(&digits[..whole * 2]).map_err(|_| StoreError::PrefixInvalid {
                    prefix: prefix.to_owned(),
                })?;
            let nibble = digits[whole * 2..]
                .chars()
                .next()
                .and_then(|c| c.to_digit(16))
                .map(|d| d as u8);
            if let Some(n) = nibble {
                lower.push(n << 4);
            }
            let mut found = Vec::new();
            for kv in self.trees().records.range(lower.clone()..) {
                let (key, _) = kv?;
                let matches = key.starts_with(&lower[..whole])
                    && nibble.is_none_or(|n| key.get(whole).map(|b| b >> 4) == Some(n));
                if !matches {
                    break;
                }
                found.push(codec::decode_record_key(&key)?);
                if found.len() >= AMBIGUOUS_CANDIDATES {
                    break;
                }
            }
            match found.as_slice() {
                [] => Err(StoreError::NoMatch {
                    prefix: prefix.to_owned(),
                }),
                [id] => Ok(*id),
                _ => Err(StoreError::Ambiguous {
                    prefix: prefix.to_owned(),
                    candidates: found,
                }),
            }
        })
    }

    /// The record a person names by `handle` (`icsync show`, `edit`, `resolve`, and the
    /// control protocol's `show`, `edit` and `resolve`), tried in this order:
    /// 1. the exact external_id of a live record, looked up by its keyed-hash index term (one
    ///    read, no scan; skipped while the store is locked, as the term needs the key);
    /// 2. a short id: exactly [`SHORT_ID_CHARS`] hex digits, the id's random tail
    ///    ([`RecordId::short`]), one read of the short-id index;
    /// 3. a record id prefix of at least [`MIN_PREFIX_CHARS`] characters.
    ///
    /// A handle matching several records at the first step that matches at all is refused
    /// with the candidates' ids ([`StoreError::AmbiguousHandle`]); one matching nothing is
    /// [`StoreError::NoRecord`].
    pub fn resolve_handle(&self, handle: &str) -> Result<RecordId, StoreError> {
        if handle.is_empty() || handle.chars().count() > MAX_HANDLE_CHARS {
            return Err(StoreError::HandleInvalid);
        }
        let ambiguous = |by, candidates| StoreError::AmbiguousHandle {
            handle: handle.to_owned(),
            by,
            candidates,
        };
        let locked = match self.codec() {
            Ok(codec) => {
                let term = codec.external_id_term(handle);
                let holders = self.live_holders(TermIndex::ExternalId, &term)?;
                match holders.as_slice() {
                    [] => false,
                    [id] => return Ok(*id),
                    _ => return Err(ambiguous(HandleKind::ExternalId, holders)),
                }
            }
            Err(StoreError::KeyLocked) => true,
            Err(e) => return Err(e),
        };
        if let Some(tail) = short_id_bytes(handle) {
            let ids = guard::guarded("reading the short-id index", || {
                self.term_holders(TermIndex::Short, &tail)
            })?;
            match ids.as_slice() {
                [] => {}
                [id] => return Ok(*id),
                _ => return Err(ambiguous(HandleKind::ShortId, ids)),
            }
        }
        match self.resolve_prefix(handle) {
            Ok(id) => Ok(id),
            Err(StoreError::Ambiguous { candidates, .. }) => {
                Err(ambiguous(HandleKind::IdPrefix, candidates))
            }
            Err(
                StoreError::PrefixTooShort { .. }
                | StoreError::PrefixInvalid { .. }
                | StoreError::NoMatch { .. },
            ) if locked => Err(StoreError::KeyLocked),
            Err(
                StoreError::PrefixTooShort { .. }
                | StoreError::PrefixInvalid { .. }
                | StoreError::NoMatch { .. },
            ) => Err(StoreError::NoRecord {
                handle: handle.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    /// An edit of one record in one transaction: `f` changes a fresh copy (it may run more
    /// than once, on transaction retry) or refuses; a change that would give the record an
    /// external_id or email another live record holds is refused too ([`EditRefused::Taken`]).
    /// Written only when something changed, and flushed with `Durability::Flush`.
    pub fn edit<E>(
        &self,
        id: RecordId,
        durability: Durability,
        f: impl Fn(&mut Record) -> Result<(), E>,
    ) -> Result<Result<Edited, EditRefused<E>>, StoreError> {
        let edited = self.transaction(|tx| edit_one(tx, id, &f))?;
        if durability == Durability::Flush && edited.is_ok() {
            self.flush()?;
        }
        Ok(edited)
    }

    /// Atomic read-modify-write of one record; indexes, counters and the ledger change in the
    /// same transaction. `f` may run more than once (transaction retry), each time on a fresh
    /// copy. `None` when the id is unknown. Refused: changing the id, rewriting history.
    pub fn update<T>(
        &self,
        id: RecordId,
        durability: Durability,
        mut f: impl FnMut(&mut Record) -> T,
    ) -> Result<Option<T>, StoreError> {
        let out = self.update_many(&[id], durability, |_, r| f(r))?;
        Ok(out.into_iter().next().flatten())
    }

    /// [`Store::update`] for many records in ONE transaction: all of them change or none.
    /// `f` is called with each id's position in `ids` and a fresh copy of its record, in
    /// order; the answer has one entry per id (`None` for an unknown one). `f` may run more
    /// than once per record (transaction retry). An id given twice sees its first change.
    ///
    /// The engine records a whole wave of attempts, or of outcomes, with one call: one
    /// transaction costs the same fixed setup as one record, so the per-record cost of the
    /// sync loop falls with the wave's size. Each record is opened, changed and sealed before
    /// the transaction (sled's transaction lock makes every other read wait); a record that
    /// changed meanwhile is changed again inside it, so `f` then runs twice for it.
    pub fn update_many<T>(
        &self,
        ids: &[RecordId],
        durability: Durability,
        f: impl FnMut(usize, &mut Record) -> T,
    ) -> Result<Vec<Option<T>>, StoreError> {
        self.update_many_from(ids, Vec::new(), durability, f)
    }

    /// [`Store::update_many`] for records read earlier ([`Store::read`], [`Store::due_from`]):
    /// each write is prepared from the record as it was read, not read and opened again. A
    /// record that changed since it was read is changed again inside the transaction from
    /// what is stored then, as `update_many` does for one that changed while its write was
    /// prepared; so `f` always sees the record as it is when the write stands.
    pub fn update_read<T>(
        &self,
        read: Vec<ReadRecord>,
        durability: Durability,
        f: impl FnMut(usize, &mut Record) -> T,
    ) -> Result<Vec<Option<T>>, StoreError> {
        let ids: Vec<RecordId> = read.iter().map(|r| r.record.id).collect();
        self.update_many_from(&ids, read.into_iter().map(Some).collect(), durability, f)
    }

    /// `update_many` with, for each id, the record as read earlier if the caller has it
    /// (`read` is empty or as long as `ids`).
    fn update_many_from<T>(
        &self,
        ids: &[RecordId],
        read: Vec<Option<ReadRecord>>,
        durability: Durability,
        f: impl FnMut(usize, &mut Record) -> T,
    ) -> Result<Vec<Option<T>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let f = RefCell::new(f);
        // The CPU work first, outside the transaction: a sled transaction holds a lock that
        // every other read of the database waits on (the engine's walk of the queue, a
        // `status`), so opening, changing and sealing each record inside it would stall them
        // all. The transaction checks that each record is still the one its write was
        // prepared from, and does the change again inside for any that is not.
        let (ready, values) = self.prepare_updates(ids, read, &f)?;
        let values = RefCell::new(values);
        let present = self.transaction(|tx| {
            let mut present = Vec::with_capacity(ids.len());
            for (i, (&id, ready)) in ids.iter().zip(&ready).enumerate() {
                let Some(raw) = tx.raw_record(id)? else {
                    present.push(false);
                    continue;
                };
                match ready {
                    Some(ready) if ready.raw == raw => {
                        if let Some(prepared) = &ready.prepared {
                            tx.write_prepared(Some(&ready.old), &ready.new, prepared)?;
                        }
                    }
                    _ => {
                        let old = tx.codec.decode_record(id, &raw).or_else(txn::abort)?;
                        let mut new = old.clone();
                        let value = (f.borrow_mut())(i, &mut new);
                        if new != old {
                            tx.write_record(Some(&old), &new)?;
                        }
                        values.borrow_mut()[i] = Some(value);
                    }
                }
                present.push(true);
            }
            Ok(present)
        })?;
        let mut values = values.into_inner();
        let out: Vec<Option<T>> = present
            .iter()
            .enumerate()
            .map(|(i, &here)| if here { values[i].take() } else { None })
            .collect();
        if durability == Durability::Flush && out.iter().any(Option::is_some) {
            self.flush()?;
        }
        Ok(out)
    }

    /// `update_many`'s work ahead of its transaction: each record read as stored and opened
    /// (unless the caller read it already: `read`), changed by `f`, and its write prepared
    /// when it changed; with `f`'s values.
    #[allow(clippy::type_complexity)]
    fn prepare_updates<T>(
        &self,
        ids: &[RecordId],
        read: Vec<Option<ReadRecord>>,
        f: &RefCell<impl FnMut(usize, &mut Record) -> T>,
    ) -> Result<(Vec<Option<ReadyUpdate>>, Vec<Option<T>>), StoreError> {
        guard::guarded("preparing a write", || {
            let codec = self.codec()?;
            let mut ready = Vec::with_capacity(ids.len());
            let mut values = Vec::with_capacity(ids.len());
            let mut read = read.into_iter();
            for (i, &id) in ids.iter().enumerate() {
                let known = read.next().flatten().filter(|r| r.record.id == id);
                let (raw, old) = match known {
                    Some(ReadRecord { record, raw }) => (raw, record),
                    None => match self.trees().records.get(codec::record_key(id))? {
                        Some(raw) => {
                            let old = codec.decode_record(id, &raw)?;
                            (raw, old)
                        }
                        None => {
                            ready.push(None);
                            values.push(None);
                            continue;
                        }
                    },
                };
                let mut new = old.clone();
                values.push(Some((f.borrow_mut())(i, &mut new)));
                let prepared = if new == old {
                    None
                } else {
                    Some(Prepared::new(&codec, Some(&old), &new)?)
                };
                ready.push(Some(ReadyUpdate {
                    raw,
                    old,
                    new,
                    prepared,
                }));
            }
            Ok((ready, values))
        })
    }

    /// Erases the customer data of every synced record unchanged since `cutoff` (see
    /// `retention`), one transaction each; with `dry_run`, only lists them. Returns their ids.
    /// Then, before returning, the database is compacted (see `compact`), so the old values
    /// are gone from disk, not just unreachable; a compaction an earlier purge owes (it was
    /// cut short) is done even when nothing is left to purge.
    pub fn purge(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<RecordId>, StoreError> {
        let maintenance = self.maintenance();
        let synced = self.in_state(RecordState::Synced)?;
        // Noted on disk before any value is overwritten, so a purge cut short still leaves a
        // compaction owed; taken back below when nothing was purged.
        let owed_before = self.compaction_owed()?;
        if !dry_run && !owed_before && !synced.is_empty() {
            self.owe_compaction()?;
        }
        let mut purged = Vec::new();
        for id in synced {
            let done = self.transaction(|tx| {
                let Some(old) = tx.record(id)? else {
                    return Ok(false);
                };
                if !retention::purgeable(&old, cutoff) {
                    return Ok(false);
                }
                if dry_run {
                    return Ok(true);
                }
                let mut new = old.clone();
                retention::erase(&mut new, now);
                if !retention::is_purge_of(&old, &new) {
                    return txn::abort(StoreError::InvalidUpdate {
                        id,
                        reason: "a purge may only erase history details",
                    });
                }
                // No attempt is appended, so the ledger stays as it is.
                tx.write_indexed(Some(&old), &new)?;
                Ok(true)
            })?;
            if done {
                purged.push(id);
            }
        }
        if !dry_run {
            if purged.is_empty() && !owed_before {
                self.forgive_compaction()?;
            } else {
                self.flush()?;
                self.compact_if_owed(&maintenance)?;
            }
        }
        Ok(purged)
    }

    /// Counts per state from the counters: six reads, whatever the store's size.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        guard::guarded("reading the counts", || {
            let per_state = self.read_counters()?;
            Ok(Counts {
                per_state,
                total: sum(&per_state),
            })
        })
    }

    /// Records in queue order (id order), optionally of one state, starting after `after`.
    pub fn list(
        &self,
        state: Option<RecordState>,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        guard::guarded("listing records", || {
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(out);
            }
            let codec = self.codec()?;
            let Some(state) = state else {
                let start = match after {
                    Some(a) => Bound::Excluded(codec::record_key(a).to_vec()),
                    None => Bound::Unbounded,
                };
                for kv in self
                    .trees()
                    .records
                    .range((start, Bound::Unbounded))
                    .take(limit)
                {
                    let (key, value) = kv?;
                    out.push(codec.decode_record(codec::decode_record_key(&key)?, &value)?);
                }
                return Ok(out);
            };
            let prefix = codec::state_prefix(state);
            let start = match after {
                Some(a) => Bound::Excluded(codec::state_key(state, a).to_vec()),
                None => Bound::Included(prefix.to_vec()),
            };
            for kv in self.trees().state.range((start, Bound::Unbounded)) {
                let (key, _) = kv?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let (_, id) = codec::decode_state_key(&key)?;
                // Re-checked: the record may have moved since the index was read.
                if let Some(record) = self.get(id)?.filter(|r| r.state == state) {
                    out.push(record);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Queued records due at `now` (no `next_attempt_at`, or one not after `now`), in queue
    /// order, at most `limit`, skipping `exclude`. Walks the state index's queued section and
    /// filters on its values; only returned records are decoded.
    pub fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        exclude: &HashSet<RecordId>,
    ) -> Result<Vec<Record>, StoreError> {
        let due = self.due_from(now, limit, exclude, &mut QueueCursor::default())?;
        Ok(due.into_iter().map(ReadRecord::into_record).collect())
    }

    /// [`Store::due`] for the engine, which calls it for every free slot: the walk resumes
    /// after the last record `cursor` handed out, rather than walking again over the records
    /// at the head of the queue that are in flight. It starts from the head again when a
    /// record it may have passed became due: a write put one in the queue due at once with a
    /// lower id (an edit, a retry, an import that drew its ids earlier), or a backoff ended;
    /// and when the walk reaches the end of the queue with slots still free, it wraps round
    /// to where it began. So every due record is still found; only the order in which the
    /// records behind the cursor are reached can differ from strict queue order. One cursor
    /// per store: a second caller would take the first's notes (its records would then wait
    /// for the wrap, not be lost).
    pub fn due_from(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        exclude: &HashSet<RecordId>,
        cursor: &mut QueueCursor,
    ) -> Result<Vec<ReadRecord>, StoreError> {
        guard::guarded("finding due records", || {
            let mut out = Vec::new();
            if limit == 0 {
                return Ok(out);
            }
            let low = self.queued_low().take();
            if let Some(after) = cursor.after {
                let passed = low.is_some_and(|low| low <= after)
                    || self.next_due_at()?.is_some_and(|at| at <= now);
                if passed {
                    cursor.after = None;
                }
            }
            let now_ms = codec::now_millis(now);
            let prefix = codec::state_prefix(RecordState::Queued);
            let head = prefix.to_vec();
            let tail = vec![prefix[0] + 1];
            let walks = match cursor.after {
                None => vec![(Bound::Included(head), Bound::Excluded(tail))],
                Some(after) => {
                    let at = codec::state_key(RecordState::Queued, after).to_vec();
                    vec![
                        (Bound::Excluded(at.clone()), Bound::Excluded(tail)),
                        (Bound::Included(head), Bound::Included(at)),
                    ]
                }
            };
            for range in walks {
                self.due_in(range, now_ms, limit, exclude, &mut out)?;
                if out.len() >= limit {
                    break;
                }
            }
            cursor.after = out.last().map(|r| r.record.id);
            Ok(out)
        })
    }

    /// The due records of one stretch of the queued section, added to `out` up to `limit`.
    fn due_in(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        now_ms: u64,
        limit: usize,
        exclude: &HashSet<RecordId>,
        out: &mut Vec<ReadRecord>,
    ) -> Result<(), StoreError> {
        for kv in self.trees().state.range(range) {
            let (key, value) = kv?;
            let (_, id) = codec::decode_state_key(&key)?;
            let due_ms = codec::decode_state_value(&value)?.unwrap_or(0);
            if due_ms > now_ms || exclude.contains(&id) {
                continue;
            }
            let fresh = self.read(id)?.filter(|r| {
                let r = &r.record;
                r.state == RecordState::Queued && codec::due_millis(r.next_attempt_at) <= now_ms
            });
            if let Some(record) = fresh {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The earliest `next_attempt_at` among queued records that have one, rounded up to the
    /// millisecond (never earlier than the real instant). Queued records without one are due
    /// at once and are `due`'s business, not this one's.
    pub fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        guard::guarded("reading the due index", || {
            let start = codec::due_key(1, RecordId(uuid::Uuid::nil()));
            match self.trees().due.range(start.to_vec()..).next() {
                Some(kv) => {
                    let (millis, _) = codec::decode_due_key(&kv?.0)?;
                    Ok(codec::millis_to_time(millis))
                }
                None => Ok(None),
            }
        })
    }

    /// Ids of the records in `state`, in queue order.
    pub fn in_state(&self, state: RecordState) -> Result<Vec<RecordId>, StoreError> {
        guard::guarded("reading the state index", || {
            self.trees()
                .state
                .scan_prefix(codec::state_prefix(state))
                .map(|kv| Ok(codec::decode_state_key(&kv?.0)?.1))
                .collect()
        })
    }

    pub fn ledger_entry(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        guard::guarded("reading the ledger", || {
            match self.trees().ledger.get(codec::ledger_key(key))? {
                Some(bytes) => codec::decode_ledger(&bytes).map(Some),
                None => Ok(None),
            }
        })
    }

    fn find_live(&self, index: TermIndex, term: &[u8]) -> Result<Option<RecordId>, StoreError> {
        Ok(self.live_holders(index, term)?.first().copied())
    }

    /// The ids a term index lists for `term`, pending terms included, ascending.
    fn term_holders(&self, index: TermIndex, term: &[u8]) -> Result<Vec<RecordId>, StoreError> {
        // Held while the tree is read: a fold moving the term from memory to the tree
        // meanwhile would otherwise hide it from both reads.
        let held = self.pending_terms();
        let mut ids = self.trees().term_holders(index, term)?;
        held.extend_holders(index, term, &mut ids);
        Ok(ids)
    }

    /// The live records a term index lists for `term`, oldest first. Discarded records are
    /// unindexed, so the state check only guards against an index that drifted.
    fn live_holders(&self, index: TermIndex, term: &[u8]) -> Result<Vec<RecordId>, StoreError> {
        guard::guarded("reading an index", || {
            let mut live = Vec::new();
            for id in self.term_holders(index, term)? {
                if self
                    .get(id)?
                    .is_some_and(|r| r.state != RecordState::Discarded)
                {
                    live.push(id);
                    if live.len() >= AMBIGUOUS_CANDIDATES {
                        break;
                    }
                }
            }
            Ok(live)
        })
    }

    /// The oldest live record whose payload has exactly this external_id.
    pub fn find_by_external_id(&self, external_id: &str) -> Result<Option<RecordId>, StoreError> {
        self.find_live(
            TermIndex::ExternalId,
            &self.codec()?.external_id_term(external_id),
        )
    }

    /// The oldest live record whose payload's email equals `email` once both are normalised.
    pub fn find_by_email(&self, email: &str) -> Result<Option<RecordId>, StoreError> {
        let normalized = crate::contract::normalize_email(email);
        self.find_live(TermIndex::Email, &self.codec()?.email_term(&normalized))
    }

    /// The per-state counters as of one moment: no transaction commits while they are read.
    fn read_counters(&self) -> Result<[u64; RecordState::ALL.len()], StoreError> {
        let _alone = self
            .inner
            .counting
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read_counters(&self.trees().counters)
    }

    /// Writes everything to disk (fsync); then a record count grown since the last flush is
    /// kept in the floor file, so a database that later loses records is noticed at open.
    pub fn flush(&self) -> Result<(), StoreError> {
        guard::guarded("flushing to disk", || {
            self.trees().db.flush()?;
            let _writing = self
                .inner
                .floor_write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let total = sum(&self.read_counters()?);
            if total > self.inner.floor.load(Ordering::Acquire) {
                floor::write(&self.inner.dir, total)?;
                self.inner.floor.store(total, Ordering::Release);
            }
            Ok(())
        })
    }

    /// Every way the indexes, counters and ledger disagree with the records, one line each
    /// (ids and index names only, never customer fields). Reads the trees one after another,
    /// so run it on a quiet store (`doctor`, tests): concurrent writes show up as problems.
    pub fn check_consistency(&self) -> Result<Vec<String>, StoreError> {
        guard::guarded("checking consistency", || {
            let codec = self.codec()?;
            // The pending terms belong in the term trees: they are checked there.
            self.fold_pending()?;
            check::check(&self.trees(), &codec)
        })
    }

    /// Writes the pending terms of new records made in bulk into the term trees (see
    /// `pending`). The drop folder calls it when a file is done, the store itself when many
    /// are pending; lookups give the same answers before and after. Lazy: a fold lost to a
    /// crash is done again at the next open. Returns the terms written.
    pub fn fold_pending(&self) -> Result<u64, StoreError> {
        guard::guarded("indexing new records", || {
            let _writing = self.write_gate();
            let mut held = self.pending_terms();
            if held.is_empty() {
                return Ok(0);
            }
            let started = std::time::Instant::now();
            let records = held.records();
            let written = pending::fold(&self.trees(), &mut held)?;
            tracing::debug!(
                records,
                terms = written,
                ms = started.elapsed().as_millis() as u64,
                "folded pending index terms"
            );
            Ok(written)
        })
    }

    /// Records whose index terms are pending (see `pending`).
    pub fn pending_records(&self) -> usize {
        self.pending_terms().records()
    }
}

#[cfg(test)]
mod tests {
    use super::SealAhead;

    #[test]
    fn rows_are_sealed_ahead_while_at_least_half_of_the_last_chunk_was_new() {
        assert!(SealAhead::mostly_new(128, 256), "half is mostly new");
        assert!(!SealAhead::mostly_new(127, 256));
        assert!(
            SealAhead::mostly_new(0, 0),
            "an empty chunk keeps sealing ahead"
        );
        assert_eq!(SealAhead::after(true), SealAhead::Always);
        assert_eq!(SealAhead::after(false), SealAhead::Never);
    }
}
