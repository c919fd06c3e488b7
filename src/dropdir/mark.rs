//! The "being taken" mark: before a file is read, a small note in the hidden work folder says
//! so, and counts how many times taking it has started without a record committed in between.
//! It is cleared whenever taking ends (done, set aside, or an error that is retried later), so
//! a mark found at the next take means the daemon stopped mid-file: killed, out of memory, a
//! panic. kill -9 during a big file still resumes (each start commits more records, which
//! resets the count); a file that stops the daemon [`MAX_STARTS`] times running with no
//! progress is quarantined to `rejected/` instead of being taken again, so no file can keep
//! the daemon in a crash loop. The decision is pure ([`next`]); the rest reads and writes the
//! note.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::taken::Identity;

/// Starts without progress after which a file is set aside.
pub const MAX_STARTS: u32 = 3;

/// Debug builds only: set, the daemon aborts right after writing a mark (tests prove the
/// quarantine with it; docs/ingest.md "Faults").
pub const ABORT_AFTER_MARK_ENV: &str = "ICSYNC_TEST_ABORT_AFTER_MARK";

/// What the note holds. No customer data: the file's identity and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
    /// Takes started in a row with `records_done` unchanged.
    pub starts: u32,
    /// The file's committed records when the count began.
    pub records_done: u64,
    /// The file's content hash once known (hex): where its committed records are counted.
    pub sha256: Option<String>,
}

impl Mark {
    fn is_of(&self, id: &Identity) -> bool {
        (self.dev, self.ino, self.len, self.mtime_ns) == (id.dev, id.ino, id.len, id.mtime_ns)
    }

    fn first(id: &Identity) -> Mark {
        Mark {
            dev: id.dev,
            ino: id.ino,
            len: id.len,
            mtime_ns: id.mtime_ns,
            starts: 1,
            records_done: 0,
            sha256: None,
        }
    }
}

/// What to do with a file found with (or without) a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Take it, writing this mark first.
    Take(Mark),
    /// It stopped the daemon `starts` times in a row at `records_done` committed records.
    Quarantine { starts: u32, records_done: u64 },
}

/// `found` is the mark left for this name (if any), `id` the file there now, `committed` the
/// records the store has committed for the mark's content hash (0 when none is known).
pub fn next(found: Option<Mark>, id: &Identity, committed: u64) -> Verdict {
    let Some(found) = found.filter(|m| m.is_of(id)) else {
        return Verdict::Take(Mark::first(id));
    };
    if committed != found.records_done {
        return Verdict::Take(Mark {
            starts: 1,
            records_done: committed,
            ..found
        });
    }
    if found.starts >= MAX_STARTS {
        return Verdict::Quarantine {
            starts: found.starts,
            records_done: committed,
        };
    }
    Verdict::Take(Mark {
        starts: found.starts + 1,
        ..found
    })
}

/// Where the mark for the file named `name` lives: its name's hash, so any name fits.
pub fn path(work: &Path, name: &str) -> PathBuf {
    work.join(format!(
        "{}.taking",
        hex::encode(&Sha256::digest(name.as_bytes())[..16])
    ))
}

/// The mark at `path`; an unreadable or torn one counts as none.
pub fn read(path: &Path) -> Option<Mark> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the mark whole (a temporary name, then a rename). Not flushed to the disk: it
/// counts process crashes, which the page cache survives; a power cut costs one more try.
pub fn write(path: &Path, mark: &Mark) -> io::Result<()> {
    let tmp = path.with_extension("taking-new");
    let json = serde_json::to_vec(mark).map_err(io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)?;
    if cfg!(debug_assertions) && std::env::var_os(ABORT_AFTER_MARK_ENV).is_some() {
        std::process::abort();
    }
    Ok(())
}

pub fn clear(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(mark = %path.display(), error = %e, "cannot clear a drop-folder mark");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            dev: 1,
            ino: 2,
            len: 300,
            mtime_ns: 4,
        }
    }

    fn take(v: Verdict) -> Mark {
        match v {
            Verdict::Take(m) => m,
            other => panic!("expected a take, got {other:?}"),
        }
    }

    #[test]
    fn repeated_starts_without_progress_end_in_quarantine() {
        let m1 = take(next(None, &id(), 0));
        assert_eq!(m1.starts, 1);
        let m2 = take(next(Some(m1), &id(), 0));
        let m3 = take(next(Some(m2), &id(), 0));
        assert_eq!(m3.starts, MAX_STARTS);
        assert_eq!(
            next(Some(m3), &id(), 0),
            Verdict::Quarantine {
                starts: MAX_STARTS,
                records_done: 0
            }
        );
    }

    #[test]
    fn progress_between_starts_resets_the_count_so_kill_9_still_resumes() {
        let mut m = take(next(None, &id(), 0));
        // Killed many times, each time after more records were committed.
        for done in 1..=25u64 {
            m = take(next(Some(m), &id(), done * 256));
            assert_eq!(m.starts, 1);
            assert_eq!(m.records_done, done * 256);
        }
        let again = take(next(Some(m.clone()), &id(), 25 * 256));
        assert_eq!(again.starts, 2);
    }

    #[test]
    fn a_different_or_changed_file_under_the_name_starts_afresh() {
        let mut m = take(next(None, &id(), 0));
        m.starts = MAX_STARTS;
        let changed = Identity { len: 301, ..id() };
        assert_eq!(take(next(Some(m.clone()), &changed, 0)).starts, 1);
        let other = Identity { ino: 9, ..id() };
        assert_eq!(take(next(Some(m), &other, 0)).starts, 1);
    }

    #[test]
    fn marks_round_trip_and_a_torn_one_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), &"x".repeat(254));
        assert!(p.file_name().unwrap().len() < 64);
        let m = take(next(None, &id(), 0));
        write(&p, &m).unwrap();
        assert_eq!(read(&p), Some(m));
        std::fs::write(&p, b"{\"dev\":").unwrap();
        assert_eq!(read(&p), None);
        clear(&p);
        clear(&p);
        assert!(!p.exists());
    }
}
