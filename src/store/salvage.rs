//! Copying what is readable out of a damaged store, in the manner of `sqlite3 .recover`:
//! every record that can be read and authenticated is written into a fresh store through
//! the ordinary write path (so its indexes, counters and ledger entries are rebuilt), the
//! damaged store's ledger entries and drop-folder progress are copied where readable, and the
//! answer says how many records came back and how many are lost.
//!
//! A record is copied as it was: same id, same revision, same history. Its Idempotency-Key is
//! derived from those (see `sync::keys`), so a record that was already sent is sent again
//! with the same key and the server replays it instead of creating a duplicate. Records left
//! `sending` are re-queued by the engine at start, as after any crash.
//!
//! Two readers, in this order:
//! 1. the raw reader (`raw_salvage`): sled's files read directly, every sealed value that
//!    authenticates under its id taken, newest copy first. It goes first because it needs
//!    nothing from sled (a database sled refuses to open, or panics on, is read all the same)
//!    and because opening a damaged database with sled may rewrite its log's tail;
//! 2. sled itself, every step inside `guard::guarded`: a read that fails or panics is counted
//!    and skipped by seeking past it. It adds what the raw reader could not authenticate
//!    (nothing, normally), counts unreadable values, and copies the ledger and drop-folder
//!    progress (plain values the raw reader does not take). When sled cannot open the
//!    database this step is skipped and said so.
//!
//! Lost records are estimated as the largest of three counts of records the damaged store
//! held, minus those recovered: its floor file (`floor`), its counters (when sled opens it)
//! and the distinct record ids its intact log messages show (record and state-index keys).
//! A record none of these knew of cannot be counted.

use std::collections::HashSet;
use std::path::Path;

use super::codec::{self, Codec};
use super::error::StoreError;
use super::guard::guarded;
use super::raw_salvage::{self, RawReport};
use super::record::{Record, RecordId, RecordState};
use super::{Store, BATCH_CHUNK, DB_DIR};

/// Consecutive failed reads after which a tree is given up.
const SKIP_LIMIT: usize = 16;

/// What a salvage found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Records written into the fresh store.
    pub recovered: u64,
    /// Records whose stored value was found but could not be read or authenticated.
    pub unreadable: u64,
    /// Records the damaged store held: the largest of its counters, its floor file (see
    /// `floor`) and the record ids its log shows, when any could be read.
    pub expected: Option<u64>,
    /// Reads that failed and were skipped (each may hide any number of records).
    pub skipped_reads: u64,
    /// Ledger entries copied (those no recovered record's history rebuilt).
    pub ledger_copied: u64,
    /// Drop-folder progress entries copied.
    pub drops_copied: u64,
    /// Why the damaged database could not be opened, if it could not.
    pub open_error: Option<String>,
    /// What reading the database files directly found (None if they could not be read).
    pub raw: Option<RawReport>,
    /// Why the database files could not be read directly, if they could not.
    pub raw_error: Option<String>,
}

impl SalvageReport {
    /// Records known to be lost: unreadable ones, and those the counters expected beyond
    /// what was found.
    pub fn lost(&self) -> u64 {
        let found = self.recovered + self.unreadable;
        self.unreadable + self.expected.unwrap_or(0).saturating_sub(found)
    }
}

/// The smallest key greater than every key starting with `key[..=at]`'s prefix, i.e. `key`
/// truncated to `at + 1` bytes and incremented; None past the end of the key space.
fn skip_past(key: &[u8], at: usize) -> Option<Vec<u8>> {
    let mut next = key[..=at.min(key.len().saturating_sub(1))].to_vec();
    while let Some(last) = next.last_mut() {
        if *last == u8::MAX {
            next.pop();
        } else {
            *last += 1;
            return Some(next);
        }
    }
    None
}

/// Every readable (key, value) of `tree`, in order, handed to `each`. A read that fails is
/// skipped by seeking past the last good key, more coarsely after each consecutive failure.
fn walk(
    tree: &sled::Tree,
    skipped: &mut u64,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut from: Vec<u8> = Vec::new();
    let mut last_good: Option<Vec<u8>> = None;
    let mut failures = 0usize;
    loop {
        let batch = guarded("reading a damaged tree", || {
            let mut out = Vec::new();
            for kv in tree.range(from.clone()..).take(BATCH_CHUNK) {
                let (k, v) = kv?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        });
        match batch {
            Ok(items) if items.is_empty() => return Ok(()),
            Ok(items) => {
                failures = 0;
                for (k, v) in &items {
                    each(k, v)?;
                }
                let last = items.last().map(|(k, _)| k.clone()).unwrap_or_default();
                from = last.clone();
                from.push(0);
                last_good = Some(last);
            }
            Err(e) if e.is_damaged() || matches!(e, StoreError::Database(_)) => {
                *skipped += 1;
                failures += 1;
                if failures > SKIP_LIMIT {
                    return Ok(());
                }
                // Seek past the damaged part: first the next key, then ever shorter prefixes.
                let base = last_good.clone().unwrap_or_else(|| from.clone());
                let base = if base.is_empty() { vec![0] } else { base };
                let at = base.len().saturating_sub(failures);
                match skip_past(&base, at) {
                    Some(next) => from = next,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl Store {
    /// Copies every readable record (with its ledger entries and the drop-folder progress)
    /// from the damaged store in `damaged_dir` into this store, which must be new and unlocked
    /// with the damaged store's data key (its `keyring.json` copied beside it).
    pub fn salvage_from(&self, damaged_dir: &Path) -> Result<SalvageReport, StoreError> {
        let codec = self.codec()?;
        // The floor file knows of records a damaged database no longer counts.
        let floor = super::floor::read(damaged_dir);
        let mut report = SalvageReport {
            expected: (floor > 0).then_some(floor),
            ..SalvageReport::default()
        };
        let mut recovered: HashSet<RecordId> = HashSet::new();
        let mut pending: Vec<Record> = Vec::new();
        let raw = raw_salvage::scan(&damaged_dir.join(DB_DIR), &codec, |record| {
            recovered.insert(record.id);
            pending.push(record);
            if pending.len() >= BATCH_CHUNK {
                report.recovered += self.write_salvaged(&codec, std::mem::take(&mut pending))?;
            }
            Ok(())
        });
        report.recovered += self.write_salvaged(&codec, std::mem::take(&mut pending))?;
        match raw {
            Ok(raw) => {
                report.expected = report.expected.max(Some(raw.known_ids));
                report.raw = Some(raw);
            }
            Err(StoreError::KeyLocked) => return Err(StoreError::KeyLocked),
            Err(e) => report.raw_error = Some(e.to_string()),
        }
        let opened = guarded("opening the damaged store", || {
            // sled would zero the log after a damaged message: keep the kept store intact.
            super::guard::check_log(&damaged_dir.join(DB_DIR))?;
            Ok(sled::Config::new()
                .path(damaged_dir.join(DB_DIR))
                .cache_capacity(8 << 20)
                .open()?)
        });
        let db = match opened {
            Ok(db) => db,
            Err(e) => {
                report.open_error = Some(match e {
                    StoreError::Damaged { detail } => detail,
                    other => other.to_string(),
                });
                self.flush()?;
                return Ok(report);
            }
        };
        let tree =
            |name: &'static str| guarded("opening a damaged tree", || Ok(db.open_tree(name)?));
        if let Ok(counters) = tree("counters") {
            let counted = guarded("reading the damaged counts", || {
                let mut total = 0u64;
                for state in RecordState::ALL {
                    if let Some(bytes) = counters.get(codec::counter_key(state))? {
                        total += codec::decode_u64(&bytes)?;
                    }
                }
                Ok(total)
            });
            if let Ok(n) = counted {
                report.expected = report.expected.max(Some(n));
            }
        }
        let mut skipped = 0;
        let records = tree("records");
        if records.is_err() {
            skipped += 1;
        }
        for records in records.iter() {
            walk(records, &mut skipped, |key, value| {
                let id = match codec::decode_record_key(key) {
                    Ok(id) if recovered.contains(&id) => return Ok(()),
                    Ok(id) => id,
                    Err(_) => {
                        report.unreadable += 1;
                        return Ok(());
                    }
                };
                match codec.decode_record(id, value) {
                    Ok(record) => {
                        recovered.insert(id);
                        pending.push(record);
                    }
                    Err(StoreError::KeyLocked) => return Err(StoreError::KeyLocked),
                    Err(_) => report.unreadable += 1,
                }
                if pending.len() >= BATCH_CHUNK {
                    report.recovered +=
                        self.write_salvaged(&codec, std::mem::take(&mut pending))?;
                }
                Ok(())
            })?;
        }
        report.recovered += self.write_salvaged(&codec, pending)?;
        if let Ok(ledger) = tree("ledger") {
            let target = &self.trees().ledger;
            walk(&ledger, &mut skipped, |key, value| {
                if codec::decode_ledger(value).is_ok() && target.get(key)?.is_none() {
                    target.insert(key, value)?;
                    report.ledger_copied += 1;
                }
                Ok(())
            })?;
        }
        if let Ok(drops) = tree("drops") {
            let target = &self.trees().drops;
            walk(&drops, &mut skipped, |key, value| {
                target.insert(key, value)?;
                report.drops_copied += 1;
                Ok(())
            })?;
        }
        report.skipped_reads = skipped;
        self.flush()?;
        Ok(report)
    }

    /// Writes salvaged records as new ones (indexes, counters and ledger rebuilt); a record
    /// whose write is refused (its id already copied) is not counted twice.
    fn write_salvaged(&self, codec: &Codec, records: Vec<Record>) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        self.trees().transaction(codec, |tx| {
            let mut written = 0;
            for record in &records {
                if tx.raw_record(record.id)?.is_none() {
                    tx.write_record(None, record)?;
                    written += 1;
                }
            }
            Ok(written)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_past_increments_a_prefix_and_carries() {
        assert_eq!(skip_past(&[1, 2, 3], 2), Some(vec![1, 2, 4]));
        assert_eq!(skip_past(&[1, 2, 3], 1), Some(vec![1, 3]));
        assert_eq!(skip_past(&[1, 255, 3], 1), Some(vec![2]));
        assert_eq!(skip_past(&[255, 255], 1), None);
    }

    #[test]
    fn lost_counts_unreadable_records_and_those_the_counters_expected() {
        let r = SalvageReport {
            recovered: 290,
            unreadable: 3,
            expected: Some(300),
            ..SalvageReport::default()
        };
        assert_eq!(r.lost(), 10);
        let unknown = SalvageReport {
            recovered: 5,
            ..SalvageReport::default()
        };
        assert_eq!(unknown.lost(), 0);
    }
}
