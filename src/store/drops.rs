//! What the store keeps about drop-folder files: each file's progress, keyed by the SHA-256
//! of its content, and a short history of recent files for the TUI. Both live in the `drops`
//! tree, which takes part in every store transaction, so a batch of a file's records and the
//! count of records it has committed change together or not at all: after a crash the file
//! resumes exactly after its last committed batch. Knows nothing of folders or parsers.
//!
//! The byte layout of this tree is here rather than in `codec` because it holds no customer
//! data (a file name, counts and times), so encryption at rest will not need to touch it.
//! Keys: `p` + 32 fingerprint bytes -> progress; `h` + big-endian millis + 16 id bytes ->
//! history entry (so history sorts by time). Values: a format byte (`1`) then JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;

use super::error::StoreError;
use super::record::{Origin, Payload, Record, RecordId};
use super::txn::{abort, TxResult};
use super::{edit_one, submit_one, Ahead, Durability, EditRefused, SealAhead, Store, Submitted};

/// How many recent files the history keeps.
pub const DROP_HISTORY_MAX: usize = 100;

const FORMAT_V1: u8 = 1;
const PROGRESS_PREFIX: u8 = b'p';
const HISTORY_PREFIX: u8 = b'h';

/// The SHA-256 of a file's bytes: what makes two drops "the same file".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// How far a file has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropStage {
    /// Batches are being committed; `records_done` of them are in.
    Ingesting,
    /// Every record is committed; the file and its reports still have to be moved.
    Ingested,
    /// Moved to `processed/`: the same content dropped again is a duplicate.
    Archived,
}

/// One file's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropProgress {
    /// The name it was dropped under.
    pub file: String,
    pub stage: DropStage,
    /// Records (valid or not, in file order) whose fate is committed: on restart reading
    /// resumes after them.
    pub records_done: u64,
    pub updated_at: DateTime<Utc>,
}

/// What became of a dropped file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropOutcome {
    /// Every record was queued.
    Processed,
    /// The valid records were queued; the others are in `rejected/` with a report.
    PartlyRejected,
    /// Nothing could be read (unsupported type, unparseable): the file is in `rejected/`.
    Rejected,
    /// The same content was processed before: nothing queued, archived with a note.
    Duplicate,
}

/// One line of the recent-files history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropFileEntry {
    /// The name it was dropped under.
    pub file: String,
    pub at: DateTime<Utc>,
    pub outcome: DropOutcome,
    pub accepted: u64,
    pub rejected: u64,
    /// Where it went, relative to the drop folder (`processed/x.csv`).
    pub archived_as: Option<String>,
    /// A report or note beside it, relative to the drop folder.
    pub report: Option<String>,
    /// The copy of its refused records to fix and drop again, relative to the drop folder
    /// (`rejected/x.rejected.csv`); absent when none were refused, and in older entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_copy: Option<String>,
    /// Why, for a rejected file or a duplicate.
    pub note: Option<String>,
    /// How it was read: format, encoding, delimiter, the export it was recognised as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
    /// Its columns that feed no field (names of columns, never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_imported: Vec<String>,
    /// Records changed on the way in in a way a person should know (see the report).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One record of a dropped file to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub payload: Payload,
    pub origin: Origin,
    /// The record the row names (an export's `_icsync_id`): the payload is applied to it as
    /// an edit. None, or a record that is gone: upsert matching, as for any row.
    pub edit_of: Option<RecordId>,
}

/// A batch of [`Submission`]s with the work done ahead of their transaction
/// ([`Store::prepare_drop_batch`]).
pub struct ReadyBatch {
    items: Vec<Submission>,
    ahead: Vec<Ahead>,
}

impl ReadyBatch {
    pub fn items(&self) -> &[Submission] {
        &self.items
    }
}

/// What one [`Submission`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropSubmitted<E> {
    pub submitted: Submitted,
    /// The record it named refused the edit (so it went through upsert matching instead),
    /// with why.
    pub edit_refused: Option<(RecordId, EditRefused<E>)>,
}

fn progress_key(fp: &Fingerprint) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(PROGRESS_PREFIX);
    key.extend_from_slice(&fp.0);
    key
}

fn history_key(at: DateTime<Utc>) -> Vec<u8> {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut key = Vec::with_capacity(25);
    key.push(HISTORY_PREFIX);
    key.extend_from_slice(&millis.to_be_bytes());
    key.extend_from_slice(uuid::Uuid::now_v7().as_bytes());
    key
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Encode {
        what,
        detail: format!("{:?}", e.classify()),
    })?;
    Ok(out)
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, json)) => serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
            what,
            detail: format!("{:?} error at column {}", e.classify(), e.column()),
        }),
        _ => Err(StoreError::Corrupt {
            what,
            detail: "unknown value format".into(),
        }),
    }
}

fn put_progress(tree: &TransactionalTree, fp: &Fingerprint, p: &DropProgress) -> TxResult<()> {
    tree.insert(progress_key(fp), encode("drop progress", p).or_else(abort)?)?;
    Ok(())
}

impl Store {
    pub fn drop_progress(&self, fp: &Fingerprint) -> Result<Option<DropProgress>, StoreError> {
        match self.trees().drops.get(progress_key(fp))? {
            Some(bytes) => decode("drop progress", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Makes a batch of a dropped file's records ready to queue: what can be done before its
    /// transaction is done here ([`Store::prepare_new`]), on the caller's thread.
    pub fn prepare_drop_batch(
        &self,
        items: Vec<Submission>,
        seal: SealAhead,
        now: DateTime<Utc>,
    ) -> Result<ReadyBatch, StoreError> {
        let ahead = self.prepare_new(items.iter().map(|i| (&i.payload, &i.origin)), seal, now)?;
        Ok(ReadyBatch { items, ahead })
    }

    /// Queues one batch of a dropped file's records and records the file's progress in the
    /// same transaction (one transaction: keep batches to a few hundred records). An item
    /// naming a record (`edit_of`) is applied to it with `edit` (see [`Store::edit`]); one
    /// whose record is gone, or refuses, is matched like any other row.
    pub fn submit_drop_batch<E>(
        &self,
        batch: &ReadyBatch,
        fp: &Fingerprint,
        progress: &DropProgress,
        durability: Durability,
        now: DateTime<Utc>,
        edit: impl Fn(&mut Record, &Payload) -> Result<(), E>,
    ) -> Result<Vec<DropSubmitted<E>>, StoreError> {
        let done = self.transaction_deferring(|tx| {
            let done = batch
                .items
                .iter()
                .zip(&batch.ahead)
                .map(|(item, ahead)| {
                    let refused = match item.edit_of {
                        None => None,
                        Some(id) => match edit_one(tx, id, |r| edit(r, &item.payload))? {
                            Ok(edited) => {
                                return Ok(DropSubmitted {
                                    submitted: edited.submitted(),
                                    edit_refused: None,
                                })
                            }
                            Err(EditRefused::NotFound) => None,
                            Err(why) => Some((id, why)),
                        },
                    };
                    Ok(DropSubmitted {
                        submitted: submit_one(tx, &item.payload, &item.origin, now, Some(ahead))?,
                        edit_refused: refused,
                    })
                })
                .collect::<TxResult<Vec<_>>>()?;
            put_progress(tx.drops(), fp, progress)?;
            Ok(done)
        })?;
        if durability == Durability::Flush {
            self.flush()?;
        }
        Ok(done)
    }

    /// Records a file's progress, and a history line when one is given, in one transaction.
    pub fn set_drop_progress(
        &self,
        fp: &Fingerprint,
        progress: &DropProgress,
        entry: Option<&DropFileEntry>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let history = match entry {
            Some(e) => Some((history_key(e.at), encode("drop history entry", e)?)),
            None => None,
        };
        self.transaction(|tx| {
            put_progress(tx.drops(), fp, progress)?;
            if let Some((key, value)) = &history {
                tx.drops().insert(key.as_slice(), value.as_slice())?;
            }
            Ok(())
        })?;
        if history.is_some() {
            self.trim_drop_history()?;
        }
        if durability == Durability::Flush {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds a history line for a file that has no progress (rejected whole, duplicate).
    pub fn add_drop_history(&self, entry: &DropFileEntry) -> Result<(), StoreError> {
        let writing = self.write_gate();
        self.trees()
            .drops
            .insert(history_key(entry.at), encode("drop history entry", entry)?)?;
        self.trim_drop_history()?;
        drop(writing);
        self.flush()
    }

    fn trim_drop_history(&self) -> Result<(), StoreError> {
        let handles = self.trees();
        let tree = &handles.drops;
        let keys: Vec<sled::IVec> = tree
            .scan_prefix([HISTORY_PREFIX])
            .keys()
            .collect::<Result<_, _>>()?;
        if keys.len() > DROP_HISTORY_MAX {
            for key in &keys[..keys.len() - DROP_HISTORY_MAX] {
                tree.remove(key)?;
            }
        }
        Ok(())
    }

    /// The most recent drop-folder files, newest first, at most `limit`.
    pub fn recent_drop_files(&self, limit: usize) -> Result<Vec<DropFileEntry>, StoreError> {
        self.trees()
            .drops
            .scan_prefix([HISTORY_PREFIX])
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("drop history entry", &v?))
            .collect()
    }
}
