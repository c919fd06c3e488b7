//! Brings a store's records to the format written today, in place (`codec`: format 3, sealed
//! and compressed). A record in the plain layout of stores made before encryption at rest
//! (format 1) is sealed and its plain email / external_id terms are replaced by keyed ones; a
//! record sealed before compression (format 2) is compressed, its terms unchanged. Records
//! are rewritten [`CHUNK`] to a transaction. A crash (kill -9 included) leaves each record
//! wholly in its old format or wholly in the new one with matching index entries, so running
//! it again finishes the job; current records are skipped. States, due times, counters and
//! the ledger do not change. Progress goes to the log and to stderr, since a large store
//! takes a while.
//!
//! It also owns the one layout clean-up since: stores written before the due index became
//! backoff-only hold a (millis 0, id) entry for every queued record due at once, which no
//! reader uses; [`drop_due_at_once`] deletes them. Stores written before short ids had no
//! short-id index; [`fill_short_index`] builds it. None touches the records' contents.

use super::codec::{self, Codec};
use super::error::StoreError;
use super::index::{IndexEntries, IndexOp, TermIndex};
use super::record::RecordId;
use super::txn::{abort, Trees, Tx, TxResult};

/// A progress line every this many records.
const PROGRESS_EVERY: usize = 1000;
/// Records rewritten in one transaction: one commit each would make a store of a million
/// records take minutes; a chunk's values and index changes stay small in memory. Divides
/// `PROGRESS_EVERY`, so each progress line falls on a chunk's end.
const CHUNK: usize = 125;
/// Due-index keys deleted per sled batch: bounds one batch's memory on a store of millions.
const DUE_CLEANUP_BATCH: usize = 4096;

/// The records not in today's format, and whether any of them is plain.
fn outdated_ids(trees: &Trees) -> Result<(Vec<RecordId>, bool), StoreError> {
    let mut ids = Vec::new();
    let mut plain = false;
    for kv in trees.records.iter() {
        let (key, value) = kv?;
        if !codec::is_current(&value) {
            plain |= !codec::is_sealed(&value);
            ids.push(codec::decode_record_key(&key)?);
        }
    }
    Ok((ids, plain))
}

fn term_ops(
    index: TermIndex,
    id: RecordId,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
) -> Vec<IndexOp> {
    let mut ops = Vec::new();
    if let Some(term) = old {
        ops.push(IndexOp::RemoveId { index, term, id });
    }
    if let Some(term) = new {
        ops.push(IndexOp::AddId { index, term, id });
    }
    ops
}

/// Rewrites every record not in today's format with `codec` (which must be `Sealed`).
/// Returns how many. `before` runs once before the first record is rewritten (the store
/// notes that a compaction is owed, so the old values leave the disk).
pub fn run(
    trees: &Trees,
    codec: &Codec,
    before: impl FnOnce() -> Result<(), StoreError>,
) -> Result<usize, StoreError> {
    let (todo, any_plain) = outdated_ids(trees)?;
    let total = todo.len();
    if total == 0 {
        return Ok(0);
    }
    before()?;
    // What a user sees: encryption is the news when there is plain data to seal.
    let doing = if any_plain {
        "encrypting the store"
    } else {
        "compressing the store"
    };
    tracing::info!(records = total, "{doing} in place");
    eprintln!("icsync: {doing}: 0/{total} records");
    let mut done = 0;
    for chunk in todo.chunks(CHUNK) {
        trees.transaction(codec, |tx| {
            for &id in chunk {
                rewrite(tx, codec, id)?;
            }
            Ok(())
        })?;
        done += chunk.len();
        if done % PROGRESS_EVERY == 0 || done == total {
            tracing::info!(done, total, "{doing}");
            eprintln!("icsync: {doing}: {done}/{total} records");
        }
    }
    Ok(total)
}

/// One record in today's format, with its terms re-keyed if it was plain.
fn rewrite(tx: &Tx<'_>, codec: &Codec, id: RecordId) -> TxResult<()> {
    let Some(raw) = tx.raw_record(id)? else {
        return Ok(());
    };
    if codec::is_current(&raw) {
        return Ok(());
    }
    if !codec::is_sealed(&raw) {
        let record = Codec::Plain.decode_record(id, &raw).or_else(abort)?;
        let old = IndexEntries::of(&Codec::Plain, &record);
        let new = IndexEntries::of(codec, &record);
        let mut ops = term_ops(TermIndex::ExternalId, id, old.external_id, new.external_id);
        ops.extend(term_ops(TermIndex::Email, id, old.email, new.email));
        ops.extend(term_ops(TermIndex::Content, id, old.content, new.content));
        tx.apply_ops(ops)?;
        return tx.put_record(&record);
    }
    let record = codec.decode_record(id, &raw).or_else(abort)?;
    tx.put_record(&record)
}

/// Adds every record's short-id entry (its id's random tail -> ids) from the record keys
/// alone (nothing is decrypted), in batches; entries already there are kept, so an
/// interrupted run is finished by running it again. Returns how many records it read.
pub fn fill_short_index(trees: &Trees) -> Result<usize, StoreError> {
    let mut read = 0;
    let mut keys = trees.records.iter().keys();
    loop {
        let mut chunk: std::collections::BTreeMap<[u8; 4], Vec<RecordId>> = Default::default();
        for key in keys.by_ref().take(DUE_CLEANUP_BATCH) {
            let id = codec::decode_record_key(&key?)?;
            super::index::set_insert(chunk.entry(codec::short_key(id)).or_default(), id);
            read += 1;
        }
        if chunk.is_empty() {
            return Ok(read);
        }
        let mut batch = sled::Batch::default();
        for (tail, mut ids) in chunk {
            if let Some(held) = trees.short.get(tail)? {
                for id in codec::decode_id_set(&held)? {
                    super::index::set_insert(&mut ids, id);
                }
            }
            batch.insert(&tail, codec::encode_id_set(&ids));
        }
        trees.short.apply_batch(batch)?;
    }
}

/// Deletes every (millis 0, id) entry of the due index, one range of keys at the front of
/// the tree, in batches. No current write makes such an entry (records due at once have none),
/// so deleting them all is right whatever state their records are in, and an interrupted run
/// is finished by running it again. Returns how many were deleted.
pub fn drop_due_at_once(due: &sled::Tree) -> Result<usize, StoreError> {
    let start = codec::due_key(0, RecordId(uuid::Uuid::nil())).to_vec();
    let end = codec::due_key(1, RecordId(uuid::Uuid::nil())).to_vec();
    let mut removed = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in due
            .range(start.clone()..end.clone())
            .keys()
            .take(DUE_CLEANUP_BATCH)
        {
            batch.remove(key?);
            n += 1;
        }
        if n == 0 {
            return Ok(removed);
        }
        due.apply_batch(batch)?;
        removed += n;
    }
}
