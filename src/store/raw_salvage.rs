//! Finding every record a damaged sled database still holds by reading its files directly
//! (see `raw` for the format), for `recover`, whether or not sled can open them.
//!
//! A record is accepted only if its sealed value opens under its id: the id is the AEAD's
//! associated data (`codec`), so a value paired with the wrong id, a damaged value and
//! anything the parser misread all fail authentication, and nothing is invented. The ids come
//! from the log itself:
//! - a node message stores its keys without the node's prefix, but the prefix is its `lo`
//!   key's first `prefix_len` bytes, in the same message: those keys are exact;
//! - a link message stores only the key's suffix; the prefix is that of a node message of the
//!   same page id (each is tried), else a capped set of prefixes seen anywhere in the log
//!   (record ids are UUIDv7, so ids made together share their leading bytes).
//!
//! Several copies of a record are in the log (every rewrite of its page); the newest that
//! authenticates, by log sequence number, is kept, which is what sled itself would replay.
//! Candidates are tried newest first and an id is tried no more once one of its copies has
//! opened, so a record costs about one decryption.
//!
//! The ids the log shows to have existed (record keys and the state index's keys, from
//! messages whose CRC holds) are counted too, so a record whose every copy is damaged is
//! still counted as lost.
//!
//! Memory: the scan holds one segment at a time and, per candidate value, its position and
//! key (not the value); values are read again one at a time to be opened.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::codec::{self, Codec};
use super::error::StoreError;
use super::raw::{self, Key, Message};
use super::record::{Record, RecordId, RecordState};
use super::Counts;

/// The length of a record key (a UUID).
const ID_LEN: usize = 16;
/// The shortest sealed value: format byte, 24-byte nonce, 16-byte tag.
const SEALED_MIN: usize = 1 + 24 + 16;
/// Prefixes tried for a link whose page's node was not found.
const FALLBACK_PREFIXES_MAX: usize = 4096;
/// Blob files larger than this are not read (sled writes one per large node).
const BLOB_MAX: u64 = 64 << 20;

/// What the raw scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawReport {
    /// Log messages whose CRC held.
    pub intact_messages: u64,
    /// Damaged stretches of the log (see `raw::ScanStats`) and blob files that failed their
    /// CRC; each was read as far as it parsed.
    pub damaged_messages: u64,
    /// Distinct record ids the intact log shows to have existed, recovered or not.
    pub known_ids: u64,
    /// Records whose sealed value authenticated.
    pub authenticated: u64,
}

/// Where a candidate value is.
#[derive(Debug)]
enum Loc {
    /// In the `db` file.
    Db { offset: u64, len: usize },
    /// Copied out of a blob file.
    Bytes(Vec<u8>),
}

#[derive(Debug)]
enum CandidateKey {
    Full(RecordId),
    Suffix { pid: Option<u64>, suffix: Vec<u8> },
}

#[derive(Debug)]
struct Candidate {
    lsn: u64,
    key: CandidateKey,
    loc: Loc,
}

/// The shape of a UUIDv7: version nibble 7, RFC 4122 variant.
fn looks_like_id(bytes: &[u8]) -> Option<RecordId> {
    let id: [u8; ID_LEN] = bytes.try_into().ok()?;
    (id[6] >> 4 == 7 && id[8] >> 6 == 0b10).then(|| RecordId(uuid::Uuid::from_bytes(id)))
}

/// Everything collected from the messages, before any value is opened.
#[derive(Default)]
struct Collected {
    candidates: Vec<Candidate>,
    /// Page id -> the prefixes its node messages named.
    prefixes: HashMap<u64, HashSet<Vec<u8>>>,
    /// Every prefix of at most 16 bytes seen, for links whose page is unknown.
    all_prefixes: HashSet<Vec<u8>>,
    known: HashSet<RecordId>,
}

impl Collected {
    /// Takes what a message holds; `locate` says where a value (a slice of the message) is.
    fn take<'a>(&mut self, m: &Message<'a>, locate: impl Fn(&'a [u8]) -> Loc) {
        if let Some(prefix) = m.prefix.filter(|p| p.len() <= ID_LEN) {
            if let Some(pid) = m.pid {
                self.prefixes
                    .entry(pid)
                    .or_default()
                    .insert(prefix.to_vec());
            }
            if self.all_prefixes.len() < FALLBACK_PREFIXES_MAX {
                self.all_prefixes.insert(prefix.to_vec());
            }
        }
        for pair in &m.pairs {
            let sealed = pair.value.len() >= SEALED_MIN && codec::is_sealed(pair.value);
            let key = match &pair.key {
                Key::Full(full) => {
                    if m.trusted {
                        self.note_known(full, sealed);
                    }
                    match looks_like_id(full) {
                        Some(id) if sealed => CandidateKey::Full(id),
                        _ => continue,
                    }
                }
                Key::Suffix(suffix) if sealed && suffix.len() <= ID_LEN => CandidateKey::Suffix {
                    pid: m.pid,
                    suffix: suffix.to_vec(),
                },
                Key::Suffix(_) => continue,
            };
            self.candidates.push(Candidate {
                lsn: m.lsn,
                key,
                loc: locate(pair.value),
            });
        }
    }

    /// A record key (16 bytes, sealed value) or a state index key (state tag and id) read
    /// whole from an intact message names a record that existed.
    fn note_known(&mut self, key: &[u8], sealed: bool) {
        let id = match key.len() {
            ID_LEN if sealed => looks_like_id(key),
            17 if codec::decode_state(key[0]).is_ok() => looks_like_id(&key[1..]),
            _ => None,
        };
        if let Some(id) = id {
            self.known.insert(id);
        }
    }

    /// The ids a candidate may have, most likely first.
    fn ids_for(&self, key: &CandidateKey, done: &HashSet<RecordId>) -> Vec<RecordId> {
        let (pid, suffix) = match key {
            CandidateKey::Full(id) => return vec![*id],
            CandidateKey::Suffix { pid, suffix } => (pid, suffix),
        };
        let need = ID_LEN - suffix.len();
        let join = |prefix: &[u8]| {
            let mut full = prefix.get(..need)?.to_vec();
            full.extend_from_slice(suffix);
            looks_like_id(&full)
        };
        let own = pid.and_then(|p| self.prefixes.get(&p));
        let mut ids: Vec<RecordId> = own.into_iter().flatten().filter_map(|p| join(p)).collect();
        if ids.is_empty() {
            let mut seen = HashSet::new();
            let known = self.known.iter().chain(done).map(|id| &id.as_bytes()[..]);
            for prefix in self.all_prefixes.iter().map(Vec::as_slice).chain(known) {
                if seen.len() >= FALLBACK_PREFIXES_MAX {
                    break;
                }
                if let Some(id) = join(prefix).filter(|id| seen.insert(*id)) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Permissions {
        path: path.to_owned(),
        source,
    }
}

/// sled's `db` file, opened for reading segment by segment.
struct Log {
    file: std::fs::File,
    path: std::path::PathBuf,
    len: u64,
    segment_size: usize,
}

impl Log {
    fn open(sled_dir: &Path) -> Result<Log, StoreError> {
        let conf = std::fs::read_to_string(sled_dir.join("conf")).unwrap_or_default();
        if raw::compressed(&conf) {
            return Err(StoreError::Damaged {
                detail: "the database is compressed, which the raw reader cannot read".into(),
            });
        }
        let path = sled_dir.join("db");
        let file = std::fs::File::open(&path).map_err(io_error(&path))?;
        let len = file.metadata().map_err(io_error(&path))?.len();
        Ok(Log {
            file,
            len,
            path,
            segment_size: raw::segment_size(&conf).unwrap_or(raw::DEFAULT_SEGMENT_SIZE),
        })
    }

    /// Every node and link message, segment by segment; `each` also gets the file offset of
    /// the segment's first byte, and the segment, to locate a value in the file.
    fn messages(
        &self,
        mut each: impl FnMut(&Message<'_>, u64, &[u8]),
    ) -> Result<raw::ScanStats, StoreError> {
        let mut total = raw::ScanStats::default();
        let mut seg = vec![0u8; self.segment_size];
        let mut offset = 0u64;
        while offset < self.len {
            let len =
                usize::try_from((self.len - offset).min(self.segment_size as u64)).unwrap_or(0);
            let buf = &mut seg[..len];
            self.file
                .read_exact_at(buf, offset)
                .map_err(io_error(&self.path))?;
            let buf: &[u8] = buf;
            let stats = raw::scan_segment(buf, self.segment_size, |m| each(&m, offset, buf));
            total.intact += stats.intact;
            total.damaged += stats.damaged;
            offset += self.segment_size as u64;
        }
        Ok(total)
    }
}

/// Reads sled's database in `sled_dir` without sled and hands every record that
/// authenticates to `each`, newest copy first, one per id.
pub fn scan(
    sled_dir: &Path,
    codec: &Codec,
    mut each: impl FnMut(Record) -> Result<(), StoreError>,
) -> Result<RawReport, StoreError> {
    let log = Log::open(sled_dir)?;
    let mut report = RawReport::default();
    let mut found = Collected::default();
    let stats = log.messages(|m, offset, seg| {
        found.take(m, |value| Loc::Db {
            offset: offset + (value.as_ptr() as usize - seg.as_ptr() as usize) as u64,
            len: value.len(),
        })
    })?;
    report.intact_messages = stats.intact;
    report.damaged_messages = stats.damaged;
    scan_blobs(&sled_dir.join("blobs"), &mut found, &mut report);

    found.candidates.sort_by_key(|c| std::cmp::Reverse(c.lsn));
    let candidates = std::mem::take(&mut found.candidates);
    let mut done: HashSet<RecordId> = HashSet::new();
    let mut value = Vec::new();
    for candidate in candidates {
        let ids = found.ids_for(&candidate.key, &done);
        if ids.iter().all(|id| done.contains(id)) {
            continue;
        }
        let bytes: &[u8] = match &candidate.loc {
            Loc::Bytes(b) => b,
            Loc::Db { offset, len } => {
                value.resize(*len, 0);
                if log.file.read_exact_at(&mut value, *offset).is_err() {
                    continue;
                }
                &value
            }
        };
        for id in ids {
            if done.contains(&id) {
                continue;
            }
            match codec.decode_record(id, bytes) {
                Ok(record) if record.id == id => {
                    done.insert(id);
                    report.authenticated += 1;
                    each(record)?;
                    break;
                }
                Err(StoreError::KeyLocked) => return Err(StoreError::KeyLocked),
                _ => {}
            }
        }
    }
    found.known.extend(done);
    report.known_ids = found.known.len() as u64;
    Ok(report)
}

/// Node and link messages sled moved to blob files. A blob's lsn is its file name.
fn scan_blobs(dir: &Path, found: &mut Collected, report: &mut RawReport) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(lsn) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.metadata().map(|m| m.len() > BLOB_MAX).unwrap_or(true) {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Some((kind, body, trusted)) = raw::blob_body(&bytes) else {
            continue;
        };
        if trusted {
            report.intact_messages += 1;
        } else {
            report.damaged_messages += 1;
        }
        if let Some(m) = raw::parse_body(kind, body, None, lsn, trusted) {
            found.take(&m, |value| Loc::Bytes(value.to_vec()));
        }
    }
}

/// The record counts as sled's files hold them, read without sled (which writes when it
/// opens, and so cannot open a store on a full disk): the newest value of each key of the
/// `counters` tree in the log, as of the last write that reached the disk. The counters tree
/// is the only one with one-byte keys (a state tag, `codec::counter_key`) and 8-byte values;
/// its links are matched to it by page id. None when no counter is found.
pub fn counts(store_dir: &Path) -> Result<Option<Counts>, StoreError> {
    let log = Log::open(&store_dir.join(super::DB_DIR))?;
    let mut pages: HashSet<u64> = HashSet::new();
    // state tag -> (lsn, count); links wait until the counter pages are known.
    let mut newest: HashMap<u8, (u64, u64)> = HashMap::new();
    let mut links: Vec<(u64, u64, u8, u64)> = Vec::new();
    let counter = |key: &[u8], value: &[u8]| -> Option<(u8, u64)> {
        let tag = *key.first().filter(|_| key.len() == 1)?;
        codec::decode_state(tag).ok()?;
        Some((tag, codec::decode_u64(value).ok()?))
    };
    let mut keep = |lsn: u64, tag: u8, n: u64| {
        let slot = newest.entry(tag).or_insert((lsn, n));
        if lsn >= slot.0 {
            *slot = (lsn, n);
        }
    };
    log.messages(|m, _, _| {
        if !m.trusted {
            return;
        }
        let pairs: Option<Vec<(u8, u64)>> = m
            .pairs
            .iter()
            .map(|p| match &p.key {
                Key::Full(k) => counter(k, p.value),
                Key::Suffix(_) => None,
            })
            .collect();
        match (m.prefix, pairs) {
            (Some([]), Some(pairs)) if !pairs.is_empty() => {
                if let Some(pid) = m.pid {
                    pages.insert(pid);
                }
                for (tag, n) in pairs {
                    keep(m.lsn, tag, n);
                }
            }
            (None, _) => {
                if let (Some(pid), [pair]) = (m.pid, m.pairs.as_slice()) {
                    if let Key::Suffix(k) = pair.key {
                        if let Some((tag, n)) = counter(k, pair.value) {
                            links.push((pid, m.lsn, tag, n));
                        }
                    }
                }
            }
            _ => {}
        }
    })?;
    for (pid, lsn, tag, n) in links {
        if pages.contains(&pid) {
            keep(lsn, tag, n);
        }
    }
    if newest.is_empty() {
        return Ok(None);
    }
    let mut counts = Counts::default();
    for state in RecordState::ALL {
        let n = newest.get(&state.tag()).map_or(0, |&(_, n)| n);
        counts.per_state[usize::from(state.tag())] = n;
        counts.total += n;
    }
    Ok(Some(counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_v7_shapes_are_ids() {
        let id = RecordId::new();
        assert_eq!(looks_like_id(id.as_bytes()), Some(id));
        assert_eq!(looks_like_id(uuid::Uuid::new_v4().as_bytes()), None);
        assert_eq!(looks_like_id(&[7u8; 15]), None);
    }

    #[test]
    fn a_suffix_gets_its_pages_prefix_first_and_known_prefixes_after() {
        let a = RecordId::new();
        let mut found = Collected::default();
        found
            .prefixes
            .entry(9)
            .or_default()
            .insert(a.as_bytes()[..10].to_vec());
        let key = CandidateKey::Suffix {
            pid: Some(9),
            suffix: a.as_bytes()[10..].to_vec(),
        };
        assert_eq!(found.ids_for(&key, &HashSet::new()), vec![a]);
        // An unknown page: prefixes from ids already known are tried.
        let orphan = CandidateKey::Suffix {
            pid: Some(10),
            suffix: a.as_bytes()[4..].to_vec(),
        };
        assert!(found.ids_for(&orphan, &HashSet::new()).is_empty());
        let done: HashSet<RecordId> = [a].into();
        assert_eq!(found.ids_for(&orphan, &done), vec![a]);
    }
}
