//! Every byte layout the store writes: record and ledger values, index keys and values,
//! counters. Nothing else in the store builds or parses bytes.
//!
//! Versioning: each value starts with a format byte and each index term with a scheme byte,
//! and decoding dispatches on it, so old and new encodings live side by side while `migrate`
//! rewrites a store one record per transaction:
//! - records: `1` = plain serde_json (stores made before encryption at rest), `2` = sealed:
//!   `2 || nonce || XChaCha20-Poly1305(json)` with the record id as associated data, so a
//!   sealed value moved under another record's key does not open; `3` (written today) =
//!   sealed and compressed: `3 || nonce || XChaCha20-Poly1305(zstd(json, dictionary v1))`
//!   (`compress`), the associated data naming the format too, so a value relabelled 2 or 3
//!   does not open. Compression comes before sealing (sealed bytes do not compress); what it
//!   reveals is a record's compressed length, no more than a sealed length revealed before;
//! - email / external_id / content terms: `1` = plain UTF-8 text, `2` = HMAC-SHA-256 under
//!   the index subkey (32 bytes), so equal terms still meet and upsert matching still works
//!   (a content term's text is the payload's canonical JSON);
//! - ledger values are not sealed: they hold a record id, a revision, a time, an HTTP status
//!   and a count, no customer field. `1` = JSON (stores before issue 18, still read), `2`
//!   (written today) = 39 fixed bytes, [`encode_ledger`]: a third of the JSON's size, and the
//!   ledger is most of a synced record's bytes once the record is compressed.
//!
//! [`Codec`] chooses the encodings: `Sealed` for every store, `Plain` only to build the
//! pre-encryption layout (migration tests) and to find old plain terms while migrating.
//!
//! Fixed-width parts (ids, states, times, counts) are big-endian so sled's byte order is the
//! order we want: record id order is queue order (UUIDv7), and due keys sort by time.
//! Decode errors never quote the bytes: they may hold customer data.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use zeroize::Zeroizing;

use super::compress;
use super::error::StoreError;
use super::index::TermIndex;
use super::pending::{PendingKind, PendingOp};
use super::record::{LedgerEntry, Payload, Record, RecordId, RecordState};
use crate::contract::canonical_json;
use crate::crypto::Crypto;

const VALUE_JSON_V1: u8 = 1;
const VALUE_SEALED_V2: u8 = 2;
const VALUE_SEALED_ZSTD_V3: u8 = 3;
const TERM_PLAIN_V1: u8 = 1;
const TERM_HMAC_V2: u8 = 2;
const ID_LEN: usize = 16;

pub type RecordKey = [u8; ID_LEN];
pub type StateKey = [u8; 1 + ID_LEN];
pub type DueKey = [u8; 8 + ID_LEN];

pub fn record_key(id: RecordId) -> RecordKey {
    *id.as_bytes()
}

/// The short-id index's key: the id's random tail ([`RecordId::short_bytes`]).
pub fn short_key(id: RecordId) -> [u8; 4] {
    id.short_bytes()
}

pub fn decode_record_key(key: &[u8]) -> Result<RecordId, StoreError> {
    let bytes: [u8; ID_LEN] = key.try_into().map_err(|_| StoreError::Corrupt {
        what: "record key",
        detail: format!("{} bytes instead of {ID_LEN}", key.len()),
    })?;
    Ok(RecordId(Uuid::from_bytes(bytes)))
}

fn encode_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![VALUE_JSON_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Encode {
        what,
        detail: format!("{:?}", e.classify()),
    })?;
    Ok(out)
}

fn decode_json<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VALUE_JSON_V1, json)) => serde_json::from_slice(json).map_err(|e| {
            // Only the category and position: serde's message can quote the value.
            StoreError::Corrupt {
                what,
                detail: format!("{:?} error at column {}", e.classify(), e.column()),
            }
        }),
        Some((format, _)) => Err(StoreError::Corrupt {
            what,
            detail: format!("unknown value format {format}"),
        }),
        None => Err(StoreError::Corrupt {
            what,
            detail: "empty value".into(),
        }),
    }
}

/// How record values and index terms are encoded.
#[derive(Clone, Debug)]
pub enum Codec {
    /// The layout before encryption at rest (format 1, scheme 1).
    Plain,
    Sealed(Crypto),
    /// Sealed without compression (format 2): the layout before compression, only to build
    /// it (migration tests). Reads as `Sealed` does; terms are the same.
    SealedV2(Crypto),
}

fn record_aad(format: u8, id: RecordId) -> Vec<u8> {
    let mut aad = match format {
        VALUE_SEALED_V2 => b"icsync record v2 ".to_vec(),
        _ => b"icsync record v3 zstd-dict-1 ".to_vec(),
    };
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn record_json(record: &Record) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    serde_json::to_vec(record)
        .map(Zeroizing::new)
        .map_err(|e| StoreError::Encode {
            what: "record",
            detail: format!("{:?}", e.classify()),
        })
}

/// The format byte of a stored value (`None` for an empty one).
pub fn value_format(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// Whether a record value is sealed (format 2 or 3): a locked store cannot read it.
pub fn is_sealed(bytes: &[u8]) -> bool {
    matches!(
        value_format(bytes),
        Some(VALUE_SEALED_V2 | VALUE_SEALED_ZSTD_V3)
    )
}

/// Whether a record value is in the format written today (3): `migrate` rewrites the rest.
pub fn is_current(bytes: &[u8]) -> bool {
    value_format(bytes) == Some(VALUE_SEALED_ZSTD_V3)
}

impl Codec {
    pub fn encode_record(&self, record: &Record) -> Result<Vec<u8>, StoreError> {
        match self {
            Codec::Plain => encode_json("record", record),
            Codec::SealedV2(crypto) => {
                let json = record_json(record)?;
                let mut out = vec![VALUE_SEALED_V2];
                out.extend(crypto.seal(&record_aad(VALUE_SEALED_V2, record.id), &json));
                Ok(out)
            }
            Codec::Sealed(crypto) => {
                let json = record_json(record)?;
                let squeezed = compress::squeeze(&json).map_err(|e| StoreError::Encode {
                    what: "record",
                    detail: e.to_string(),
                })?;
                let aad = record_aad(VALUE_SEALED_ZSTD_V3, record.id);
                let mut out = vec![VALUE_SEALED_ZSTD_V3];
                out.extend(crypto.seal(&aad, &squeezed));
                Ok(out)
            }
        }
    }

    /// Decodes the value stored under `id`, whatever its format.
    pub fn decode_record(&self, id: RecordId, bytes: &[u8]) -> Result<Record, StoreError> {
        match (bytes.split_first(), self) {
            (
                Some((&format @ (VALUE_SEALED_V2 | VALUE_SEALED_ZSTD_V3), sealed)),
                Codec::Sealed(crypto) | Codec::SealedV2(crypto),
            ) => {
                let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt {
                    what: "sealed record",
                    detail: format!("record {id}: {e}"),
                };
                let opened = crypto
                    .open(&record_aad(format, id), sealed)
                    .map_err(|e| corrupt(&e))?;
                let json = if format == VALUE_SEALED_ZSTD_V3 {
                    compress::expand(&opened).map_err(|e| corrupt(&e))?
                } else {
                    opened
                };
                let mut framed = Vec::with_capacity(json.len() + 1);
                framed.push(VALUE_JSON_V1);
                framed.extend_from_slice(&json);
                let framed = Zeroizing::new(framed);
                decode_json("record", &framed)
            }
            (Some((&(VALUE_SEALED_V2 | VALUE_SEALED_ZSTD_V3), _)), Codec::Plain) => {
                Err(StoreError::KeyLocked)
            }
            _ => decode_json("record", bytes),
        }
    }

    /// The key of the external_id index for a payload's external_id (matched exactly).
    pub fn external_id_term(&self, external_id: &str) -> Vec<u8> {
        self.term(b"external_id", external_id)
    }

    /// The key of the email index; `normalized_email` comes from `contract::normalize_email`.
    pub fn email_term(&self, normalized_email: &str) -> Vec<u8> {
        self.term(b"email", normalized_email)
    }

    /// The key of the content index: the canonical JSON of the whole payload (keys sorted,
    /// as the API fingerprints a body), so equal payloads meet however they were written.
    pub fn content_term(&self, payload: &Payload) -> Vec<u8> {
        self.term(b"content", &canonical_json(&payload.to_value()))
    }

    fn term(&self, domain: &[u8], text: &str) -> Vec<u8> {
        match self {
            Codec::Plain => plain_term(text),
            Codec::Sealed(crypto) | Codec::SealedV2(crypto) => {
                let mut out = Vec::with_capacity(33);
                out.push(TERM_HMAC_V2);
                out.extend_from_slice(&crypto.term(domain, text.as_bytes()));
                out
            }
        }
    }
}

pub fn ledger_key(idempotency_key: &str) -> Vec<u8> {
    idempotency_key.as_bytes().to_vec()
}

const LEDGER_FIXED_V2: u8 = 2;
const LEDGER_FIXED_LEN: usize = 1 + ID_LEN + 4 + 8 + 4 + 2 + 4;

/// `2 || record id || revision (u32) || first use: seconds (i64), nanoseconds (u32) ||
/// last status (u16, 0 for none: no HTTP status is 0) || attempts (u32)`, big-endian.
pub fn encode_ledger(entry: &LedgerEntry) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(LEDGER_FIXED_LEN);
    out.push(LEDGER_FIXED_V2);
    out.extend_from_slice(entry.record.as_bytes());
    out.extend_from_slice(&entry.revision.to_be_bytes());
    out.extend_from_slice(&entry.first_used_at.timestamp().to_be_bytes());
    out.extend_from_slice(&entry.first_used_at.timestamp_subsec_nanos().to_be_bytes());
    out.extend_from_slice(&entry.last_status.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&entry.attempts.to_be_bytes());
    Ok(out)
}

/// A ledger value of either format.
pub fn decode_ledger(bytes: &[u8]) -> Result<LedgerEntry, StoreError> {
    if bytes.first() != Some(&LEDGER_FIXED_V2) {
        return decode_json("ledger entry", bytes);
    }
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "ledger entry",
        detail,
    };
    let fixed: &[u8; LEDGER_FIXED_LEN] = bytes.try_into().map_err(|_| {
        corrupt(format!(
            "{} bytes instead of {LEDGER_FIXED_LEN}",
            bytes.len()
        ))
    })?;
    let (id, rest) = fixed[1..].split_at(ID_LEN);
    let be4 = |at: usize| -> [u8; 4] { [rest[at], rest[at + 1], rest[at + 2], rest[at + 3]] };
    let mut secs = [0u8; 8];
    secs.copy_from_slice(&rest[4..12]);
    let first_used_at =
        DateTime::from_timestamp(i64::from_be_bytes(secs), u32::from_be_bytes(be4(12)))
            .ok_or_else(|| corrupt("first use out of range".into()))?;
    let status = u16::from_be_bytes([rest[16], rest[17]]);
    Ok(LedgerEntry {
        record: decode_record_key(id)?,
        revision: u32::from_be_bytes(be4(0)),
        first_used_at,
        last_status: (status != 0).then_some(status),
        attempts: u32::from_be_bytes(be4(18)),
    })
}

fn plain_term(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + text.len());
    out.push(TERM_PLAIN_V1);
    out.extend_from_slice(text.as_bytes());
    out
}

/// The ids holding one index term, ascending: local rows may share an email (and, after an
/// edit or adoption, an external_id), so term indexes map to sets, not to one id.
pub fn encode_id_set(ids: &[RecordId]) -> Vec<u8> {
    ids.iter().flat_map(|id| *id.as_bytes()).collect()
}

pub fn decode_id_set(bytes: &[u8]) -> Result<Vec<RecordId>, StoreError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(ID_LEN) {
        return Err(StoreError::Corrupt {
            what: "index id set",
            detail: format!("{} bytes", bytes.len()),
        });
    }
    bytes.chunks_exact(ID_LEN).map(decode_record_key).collect()
}

pub fn state_key(state: RecordState, id: RecordId) -> StateKey {
    let mut key = [0u8; 1 + ID_LEN];
    key[0] = state.tag();
    key[1..].copy_from_slice(id.as_bytes());
    key
}

pub fn state_prefix(state: RecordState) -> [u8; 1] {
    [state.tag()]
}

pub fn decode_state(tag: u8) -> Result<RecordState, StoreError> {
    RecordState::ALL
        .into_iter()
        .find(|s| s.tag() == tag)
        .ok_or_else(|| StoreError::Corrupt {
            what: "state tag",
            detail: format!("unknown tag {tag}"),
        })
}

pub fn decode_state_key(key: &[u8]) -> Result<(RecordState, RecordId), StoreError> {
    match key.split_first() {
        Some((&tag, id)) => Ok((decode_state(tag)?, decode_record_key(id)?)),
        None => Err(StoreError::Corrupt {
            what: "state index key",
            detail: "empty key".into(),
        }),
    }
}

/// A record's `next_attempt_at` as index millis: 0 for none (due at once), otherwise the
/// instant rounded UP to the millisecond and at least 1. Rounding up means "index millis <=
/// now millis" never calls a record due early, and the instant `next_due_at` reports is never
/// before the real one, so an engine sleeping until it never wakes to an empty `due`.
pub fn due_millis(next_attempt_at: Option<DateTime<Utc>>) -> u64 {
    match next_attempt_at {
        None => 0,
        Some(t) => {
            let millis = t.timestamp_millis();
            let ceil = if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
                millis
            } else {
                millis.saturating_add(1)
            };
            u64::try_from(ceil).unwrap_or(0).max(1)
        }
    }
}

/// `now` as index millis, rounded down (the counterpart of [`due_millis`]).
pub fn now_millis(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp_millis()).unwrap_or(0)
}

pub fn millis_to_time(millis: u64) -> Option<DateTime<Utc>> {
    i64::try_from(millis)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

/// The state index's value: for a queued record its due millis (so `due` filters on the index
/// without decoding records), empty for every other state.
pub fn state_value(record: &Record) -> Vec<u8> {
    match record.state {
        RecordState::Queued => due_millis(record.next_attempt_at).to_be_bytes().to_vec(),
        _ => Vec::new(),
    }
}

pub fn decode_state_value(bytes: &[u8]) -> Result<Option<u64>, StoreError> {
    match bytes.len() {
        0 => Ok(None),
        8 => Ok(Some(decode_u64(bytes)?)),
        n => Err(StoreError::Corrupt {
            what: "state index value",
            detail: format!("{n} bytes"),
        }),
    }
}

pub fn due_key(millis: u64, id: RecordId) -> DueKey {
    let mut key = [0u8; 8 + ID_LEN];
    key[..8].copy_from_slice(&millis.to_be_bytes());
    key[8..].copy_from_slice(id.as_bytes());
    key
}

pub fn decode_due_key(key: &[u8]) -> Result<(u64, RecordId), StoreError> {
    if key.len() != 8 + ID_LEN {
        return Err(StoreError::Corrupt {
            what: "due index key",
            detail: format!("{} bytes", key.len()),
        });
    }
    Ok((decode_u64(&key[..8])?, decode_record_key(&key[8..])?))
}

pub fn counter_key(state: RecordState) -> [u8; 1] {
    [state.tag()]
}

pub fn encode_count(count: u64) -> [u8; 8] {
    count.to_be_bytes()
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let fixed: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "counter",
        detail: format!("{} bytes instead of 8", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(fixed))
}

/// The key of a pending-terms entry (see `pending`): its sequence number, so entries are
/// read back in the order they were written.
pub fn pending_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The version byte of a pending-terms entry.
const PENDING_V1: u8 = 1;
const PENDING_ADD: u8 = 1;
const PENDING_CANCEL: u8 = 2;

/// A pending-terms entry: a version byte, then per op its kind, its index's tag, the term's
/// length (u32, big-endian), the term and the record id.
pub fn encode_pending(ops: &[PendingOp]) -> Vec<u8> {
    let size: usize = ops.iter().map(|op| 6 + op.term.len() + ID_LEN).sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(PENDING_V1);
    for op in ops {
        out.push(match op.kind {
            PendingKind::Add => PENDING_ADD,
            PendingKind::Cancel => PENDING_CANCEL,
        });
        out.push(op.index.tag());
        // Keyed hashes of 33 bytes; in the plain legacy layout, text under a record's bound.
        let len = u32::try_from(op.term.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&op.term[..op.term.len().min(len as usize)]);
        out.extend_from_slice(op.id.as_bytes());
    }
    out
}

#[cfg(test)]
pub fn decode_pending(bytes: &[u8]) -> Result<Vec<PendingOp>, StoreError> {
    let mut ops = Vec::new();
    for_each_pending_op(bytes, |kind, index, term, id| {
        ops.push(PendingOp {
            kind,
            index,
            term: term.to_vec(),
            id,
        })
    })?;
    Ok(ops)
}

/// Calls `f` with each op of a pending-terms entry, in order, copying nothing.
pub fn for_each_pending_op(
    bytes: &[u8],
    mut f: impl FnMut(PendingKind, TermIndex, &[u8], RecordId),
) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "pending index terms",
        detail,
    };
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Err(corrupt("empty".into()));
    };
    if version != PENDING_V1 {
        return Err(corrupt(format!("unknown version {version}")));
    }
    while !rest.is_empty() {
        let [kind, tag, l0, l1, l2, l3, tail @ ..] = rest else {
            return Err(corrupt("an op cut short".into()));
        };
        let kind = match *kind {
            PENDING_ADD => PendingKind::Add,
            PENDING_CANCEL => PendingKind::Cancel,
            other => return Err(corrupt(format!("unknown op {other}"))),
        };
        let index =
            TermIndex::from_tag(*tag).ok_or_else(|| corrupt(format!("unknown index {tag}")))?;
        let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        if tail.len() < len.saturating_add(ID_LEN) {
            return Err(corrupt("an op cut short".into()));
        }
        let (term, tail) = tail.split_at(len);
        let (id, tail) = tail.split_at(ID_LEN);
        f(kind, index, term, decode_record_key(id)?);
        rest = tail;
    }
    Ok(())
}

/// `index.runs` (see `runs`). A run's catalog entry is `0 || tag || run (u32)`, a block of
/// it `tag || run (u32) || bucket (u32)`, and a piece of its filter `tag || run (u32) ||
/// FFFFFFFF || piece (u16)`, all big-endian: index tags start at 1, so the catalog sorts
/// before every block; a run's blocks sort by bucket (buckets stay below 2^24), and its
/// filter after them, so a run is written in key order and its pages hold nothing else.
pub fn run_catalog_key(index: TermIndex, run: u32) -> [u8; 6] {
    let mut key = [0u8; 6];
    key[1] = index.tag();
    key[2..].copy_from_slice(&run.to_be_bytes());
    key
}

/// The first key of a run's blocks (and, with `run + 1`, the end of its range).
pub fn run_blocks_start(index: TermIndex, run: u32) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[0] = index.tag();
    key[1..].copy_from_slice(&run.to_be_bytes());
    key
}

pub fn run_block_key(index: TermIndex, run: u32, bucket: u32) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..5].copy_from_slice(&run_blocks_start(index, run));
    key[5..].copy_from_slice(&bucket.to_be_bytes());
    key
}

/// The first key of a run's filter (and the end of its blocks' range).
pub fn run_filter_start(index: TermIndex, run: u32) -> [u8; 9] {
    run_block_key(index, run, u32::MAX)
}

pub fn run_filter_key(index: TermIndex, run: u32, piece: u16) -> [u8; 11] {
    let mut key = [0u8; 11];
    key[..9].copy_from_slice(&run_filter_start(index, run));
    key[9..].copy_from_slice(&piece.to_be_bytes());
    key
}

fn corrupt_run(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "index run",
        detail: detail.into(),
    }
}

/// (index, run) of a catalog key.
pub fn decode_run_catalog_key(key: &[u8]) -> Result<(TermIndex, u32), StoreError> {
    match key {
        [0, tag, r0, r1, r2, r3] => Ok((
            TermIndex::from_tag(*tag).ok_or_else(|| corrupt_run(format!("index {tag}")))?,
            u32::from_be_bytes([*r0, *r1, *r2, *r3]),
        )),
        _ => Err(corrupt_run(format!("a catalog key of {} bytes", key.len()))),
    }
}

/// The run of a block or filter key.
pub fn decode_run_block_key(key: &[u8]) -> Result<u32, StoreError> {
    match key {
        [_, r0, r1, r2, r3, _, _, _, _] | [_, r0, r1, r2, r3, _, _, _, _, _, _] => {
            Ok(u32::from_be_bytes([*r0, *r1, *r2, *r3]))
        }
        _ => Err(corrupt_run(format!("a block key of {} bytes", key.len()))),
    }
}

const RUN_CATALOG_V1: u8 = 1;
const RUN_BLOCK_V1: u8 = 1;

/// What a run's catalog entry says: its bucket bits, its terms, and its filter's shape (the
/// bloom filter's probes and words; the words are in the run's filter pieces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHeader {
    pub bits: u8,
    pub terms: u64,
    pub probes: u8,
    pub words: u32,
}

/// A catalog entry: version, bucket bits, terms (u64), probes, filter words (u32).
pub fn encode_run_header(header: &RunHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(15);
    out.push(RUN_CATALOG_V1);
    out.push(header.bits);
    out.extend_from_slice(&header.terms.to_be_bytes());
    out.push(header.probes);
    out.extend_from_slice(&header.words.to_be_bytes());
    out
}

pub fn decode_run_header(bytes: &[u8]) -> Result<RunHeader, StoreError> {
    let [version, bits, t0, t1, t2, t3, t4, t5, t6, t7, probes, w0, w1, w2, w3] = bytes else {
        return Err(corrupt_run("a catalog entry of the wrong length"));
    };
    if *version != RUN_CATALOG_V1 {
        return Err(corrupt_run(format!("unknown catalog version {version}")));
    }
    let words = u32::from_be_bytes([*w0, *w1, *w2, *w3]);
    if *bits > 24 || words == 0 || *probes == 0 {
        return Err(corrupt_run("a catalog entry of the wrong shape"));
    }
    Ok(RunHeader {
        bits: *bits,
        terms: u64::from_be_bytes([*t0, *t1, *t2, *t3, *t4, *t5, *t6, *t7]),
        probes: *probes,
        words,
    })
}

/// A piece of a run's filter: its words, big-endian.
pub fn encode_filter_words(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

pub fn decode_filter_words(bytes: &[u8], into: &mut Vec<u64>) -> Result<(), StoreError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return Err(corrupt_run("a filter piece of the wrong length"));
    }
    into.extend(
        bytes
            .chunks_exact(8)
            .map(|w| u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])),
    );
    Ok(())
}

/// A run's block: a version byte, then per term (ascending) its length (u32), the term,
/// its ids' count (u32) and the ids.
pub fn encode_run_block<T: AsRef<[u8]>>(entries: &[(T, Vec<RecordId>)]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(term, ids)| 8 + term.as_ref().len() + ID_LEN * ids.len())
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(RUN_BLOCK_V1);
    for (term, ids) in entries {
        let term = term.as_ref();
        out.extend_from_slice(&(term.len() as u32).to_be_bytes());
        out.extend_from_slice(term);
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            out.extend_from_slice(id.as_bytes());
        }
    }
    out
}

/// A block's term and its ids' bytes (see [`decode_id_set`]).
pub type BlockEntry<'a> = (&'a [u8], &'a [u8]);

/// The (term, ids) of a block, in its order, without copying; an error for damage.
pub fn run_block_entries(
    bytes: &[u8],
) -> Result<impl Iterator<Item = Result<BlockEntry<'_>, StoreError>> + '_, StoreError> {
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Err(corrupt_run("an empty block"));
    };
    if version != RUN_BLOCK_V1 {
        return Err(corrupt_run(format!("unknown block version {version}")));
    }
    if rest.is_empty() {
        // A block left empty is deleted, never written.
        return Err(corrupt_run("a block with no terms"));
    }
    Ok(std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let entry = (|| {
            let (len, tail) = split_u32(rest)?;
            let (term, tail) = split(tail, len)?;
            let (count, tail) = split_u32(tail)?;
            let (ids, tail) = split(tail, count.checked_mul(ID_LEN).ok_or(())?)?;
            rest = tail;
            Ok::<_, ()>((term, ids))
        })();
        match entry {
            Ok(entry) if !entry.1.is_empty() => Some(Ok(entry)),
            _ => {
                rest = &[];
                Some(Err(corrupt_run("a block cut short")))
            }
        }
    }))
}

fn split_u32(bytes: &[u8]) -> Result<(usize, &[u8]), ()> {
    let (head, tail) = split(bytes, 4)?;
    Ok((
        u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize,
        tail,
    ))
}

fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), ()> {
    (bytes.len() >= n).then(|| bytes.split_at(n)).ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{Origin, Payload};
    use serde_json::json;

    fn record() -> Record {
        let payload = Payload::parse(&json!({
            "full_name": "Ada Lovelace", "email": "ada@x.io", "phone": null
        }))
        .unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        super::super::upsert::new_record(RecordId::new(), payload, Origin::Cli, now)
    }

    fn sealed() -> Codec {
        Codec::Sealed(Crypto::generate())
    }

    #[test]
    fn record_round_trips_and_keeps_null_apart_from_absent() {
        for codec in [Codec::Plain, sealed()] {
            let r = record();
            let bytes = codec.encode_record(&r).unwrap();
            let back = codec.decode_record(r.id, &bytes).unwrap();
            assert_eq!(back, r);
            assert!(back.payload.as_map().contains_key("phone"));
            assert!(!back.payload.as_map().contains_key("external_id"));
        }
    }

    #[test]
    fn sealed_records_hide_every_field_and_do_not_open_under_another_id() {
        let codec = sealed();
        let r = record();
        let bytes = codec.encode_record(&r).unwrap();
        assert_eq!(bytes[0], VALUE_SEALED_ZSTD_V3);
        assert!(is_sealed(&bytes) && is_current(&bytes));
        for needle in [&b"Ada"[..], b"ada@x.io", b"full_name", b"queued"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        let err = codec.decode_record(RecordId::new(), &bytes).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        assert!(matches!(
            Codec::Plain.decode_record(r.id, &bytes),
            Err(StoreError::KeyLocked)
        ));
        // A sealed store still reads a plain value (a store being migrated).
        let plain = Codec::Plain.encode_record(&r).unwrap();
        assert_eq!(plain[0], VALUE_JSON_V1);
        assert_eq!(codec.decode_record(r.id, &plain).unwrap(), r);
    }

    #[test]
    fn records_sealed_before_compression_still_open_and_formats_cannot_be_swapped() {
        let crypto = Crypto::generate();
        let (today, before) = (Codec::Sealed(crypto.clone()), Codec::SealedV2(crypto));
        let r = record();
        let old = before.encode_record(&r).unwrap();
        assert_eq!(old[0], VALUE_SEALED_V2);
        assert!(is_sealed(&old) && !is_current(&old));
        assert_eq!(today.decode_record(r.id, &old).unwrap(), r);
        let new = today.encode_record(&r).unwrap();
        // Compressed: a third smaller at least, even for this small record.
        assert!(
            new.len() * 3 < old.len() * 2,
            "{} vs {}",
            new.len(),
            old.len()
        );
        // A value relabelled with the other format byte does not open (the associated data
        // names the format), so nothing is ever decompressed that was not compressed.
        for (bytes, other) in [(&old, VALUE_SEALED_ZSTD_V3), (&new, VALUE_SEALED_V2)] {
            let mut swapped = bytes.clone();
            swapped[0] = other;
            let err = today.decode_record(r.id, &swapped).unwrap_err();
            assert!(err.to_string().contains("does not open"), "{err}");
        }
    }

    #[test]
    fn unknown_format_and_garbage_are_corrupt_without_quoting_data() {
        let r = record();
        let mut bytes = Codec::Plain.encode_record(&r).unwrap();
        bytes[0] = 9;
        let err = sealed()
            .decode_record(r.id, &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown value format 9"), "{err}");
        let err = Codec::Plain
            .decode_record(r.id, b"\x01{\"id\": \"ada@x.io\"}")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ada"), "{err}");
        assert!(Codec::Plain.decode_record(r.id, b"").is_err());
    }

    #[test]
    fn ledger_entries_round_trip_in_39_bytes_and_json_ones_still_read() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        for last_status in [None, Some(201), Some(503)] {
            let entry = LedgerEntry {
                record: RecordId::new(),
                revision: 7,
                first_used_at: at,
                last_status,
                attempts: 3,
            };
            let bytes = encode_ledger(&entry).unwrap();
            assert_eq!(bytes.len(), 39);
            assert_eq!(decode_ledger(&bytes).unwrap(), entry);
            let json = encode_json("ledger entry", &entry).unwrap();
            assert!(json.len() > 3 * bytes.len() - 20, "{}", json.len());
            assert_eq!(decode_ledger(&json).unwrap(), entry);
            assert!(decode_ledger(&bytes[..38]).is_err());
        }
    }

    #[test]
    fn id_sets_round_trip_and_reject_partial_ids() {
        let ids = vec![RecordId::new(), RecordId::new()];
        assert_eq!(decode_id_set(&encode_id_set(&ids)).unwrap(), ids);
        assert!(decode_id_set(&[1, 2, 3]).is_err());
        assert!(decode_id_set(&[]).is_err());
    }

    #[test]
    fn state_and_due_keys_sort_by_state_then_id_and_by_time_then_id() {
        let a = RecordId::new();
        let b = RecordId::new();
        assert!(a < b);
        assert!(state_key(RecordState::Queued, b) < state_key(RecordState::Sending, a));
        assert!(state_key(RecordState::Queued, a) < state_key(RecordState::Queued, b));
        assert_eq!(
            decode_state_key(&state_key(RecordState::Conflict, a)).unwrap(),
            (RecordState::Conflict, a)
        );
        assert!(due_key(5, b) < due_key(6, a));
        assert!(due_key(0, b) < due_key(1, a));
        assert_eq!(decode_due_key(&due_key(77, a)).unwrap(), (77, a));
        assert!(decode_state(200).is_err());
    }

    #[test]
    fn due_millis_rounds_up_and_keeps_zero_for_none() {
        assert_eq!(due_millis(None), 0);
        let exact = DateTime::from_timestamp_millis(1_000).unwrap();
        assert_eq!(due_millis(Some(exact)), 1_000);
        let between = DateTime::from_timestamp(1, 500_001).unwrap();
        assert_eq!(due_millis(Some(between)), 1_001);
        assert_eq!(now_millis(between), 1_000);
        // Before the epoch is "long due", never confused with "none".
        let old = DateTime::from_timestamp(-5, 0).unwrap();
        assert_eq!(due_millis(Some(old)), 1);
        assert_eq!(millis_to_time(1_000), Some(exact));
    }

    #[test]
    fn terms_are_versioned_and_exact() {
        let plain = Codec::Plain;
        assert_eq!(plain.external_id_term("crm-1"), b"\x01crm-1".to_vec());
        assert_ne!(
            plain.external_id_term("CRM-1"),
            plain.external_id_term("crm-1")
        );
        assert_eq!(plain.email_term("a@x.io")[0], TERM_PLAIN_V1);
        let keyed = sealed();
        let t = keyed.email_term("a@x.io");
        assert_eq!((t[0], t.len()), (TERM_HMAC_V2, 33));
        assert_eq!(t, keyed.email_term("a@x.io"));
        assert_ne!(t, keyed.external_id_term("a@x.io"));
        assert_ne!(
            keyed.external_id_term("CRM-1"),
            keyed.external_id_term("crm-1")
        );
    }

    #[test]
    fn counters_and_state_values_round_trip() {
        assert_eq!(decode_u64(&encode_count(42)).unwrap(), 42);
        assert!(decode_u64(&[1]).is_err());
        let mut r = record();
        assert_eq!(decode_state_value(&state_value(&r)).unwrap(), Some(0));
        r.state = RecordState::Synced;
        assert_eq!(decode_state_value(&state_value(&r)).unwrap(), None);
        assert!(decode_state_value(&[1, 2]).is_err());
    }
}
