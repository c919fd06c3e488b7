//! Compaction: rewrites the store's sled database into a fresh one and deletes the old one's
//! files, so values that were overwritten (a purge erasing customer data, a migration sealing
//! plain records) are gone from disk, not just unreachable. sled 0.34 keeps old values in its
//! log segments (and snapshots point into them) until its cleaner happens to rewrite them,
//! which may be never, and it has no call that guarantees it.
//!
//! How: under an exclusive hold on every write of this handle (`Inner::writes`), every tree is
//! copied in batches (bounded memory) into `<store>/sled.compact`, flushed, and the directories
//! are swapped by renames, each followed by an fsync of the store directory:
//! `sled.compact` -> `sled.new` (the copy is complete), `sled` -> `sled.old`, `sled.new` ->
//! `sled`; then the handle reopens `sled` and `sled.old` is deleted. The same handle goes on
//! (a running daemon compacts under its own handle); callers holding the old handles for a
//! read finish on them.
//!
//! A kill at any point leaves a state [`plan`] finishes or rolls back at the next open
//! ([`finish_interrupted`]): a partial copy is deleted (the old database is whole), a complete
//! one is moved into place, a left-over old one is deleted. Opening and compacting take the
//! same lock file (`compact.lock`, [`with_swap_lock`]), so no process opens the store mid-swap.
//! A compaction is owed (meta key `compaction_owed`, written before the first value it is for
//! is overwritten, and not copied) until one completes: an interrupted one is redone by the next
//! purge or unlock. The keyring, the floor file and the counters are untouched.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::{guard, open_handles, Store, StoreOptions, DB_DIR};

/// The copy being written.
const COPY_DIR: &str = "sled.compact";
/// The complete copy, waiting to be moved into place.
const NEW_DIR: &str = "sled.new";
/// The replaced database, until its files are deleted.
const OLD_DIR: &str = "sled.old";
/// Held (flock) by a compaction from its copy until it has reopened, and by every open.
const SWAP_LOCK: &str = "compact.lock";
/// How long a compaction waits for an open in another process to let go of the lock file.
const SWAP_LOCK_WAIT: Duration = Duration::from_secs(10);
/// Entries per copy batch, and bytes (keys and values) at which a batch is applied sooner:
/// bounds the copy's memory whatever the store's size.
const COPY_BATCH: usize = 1024;
const COPY_BATCH_BYTES: usize = 4 << 20;
/// In `meta`: a compaction is owed (see the module docs).
const META_COMPACTION_OWED: &[u8] = b"compaction_owed";
const META_TREE: &[u8] = b"meta";

/// Debug builds only: set to a step's name ([`STEPS`]), a compaction aborts the process there
/// (tests kill it at each step and open the store after).
pub const ABORT_AT_ENV: &str = "ICSYNC_TEST_COMPACT_ABORT_AT";
/// The steps [`ABORT_AT_ENV`] can name, in order.
pub const STEPS: [&str; 5] = ["copying", "copied", "marked", "moved-old", "swapped"];

/// What a compaction did, for logs and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Keys copied, over every tree.
    pub entries: u64,
    /// Bytes of the old and the new database directory.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub elapsed: Duration,
}

/// Which of the swap's directories a store directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Found {
    current: bool,
    copy: bool,
    new: bool,
    old: bool,
}

/// One step of finishing an interrupted swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    RemoveCopy,
    RemoveOld,
    CurrentToOld,
    NewToCurrent,
    OldToCurrent,
}

/// How to finish (or roll back) the swap `found` shows. Pure. A partial copy is dropped; a
/// complete one (`sled.new`, only ever renamed from a flushed copy made while no write ran)
/// is moved into place; an old database beside a current one is deleted; an old one alone
/// (never left by the swap's order, but possible after a person moved things) is put back.
fn plan(found: Found) -> Vec<Fix> {
    let mut fixes = Vec::new();
    if found.copy {
        fixes.push(Fix::RemoveCopy);
    }
    if found.new {
        if found.current {
            if found.old {
                fixes.push(Fix::RemoveOld);
            }
            fixes.push(Fix::CurrentToOld);
        }
        fixes.extend([Fix::NewToCurrent, Fix::RemoveOld]);
    } else if found.current {
        if found.old {
            fixes.push(Fix::RemoveOld);
        }
    } else if found.old {
        fixes.push(Fix::OldToCurrent);
    }
    fixes
}

/// Finishes or rolls back a swap a kill interrupted (see [`plan`]); nothing when none was.
/// Call it holding [`with_swap_lock`], before sled opens the store.
pub(super) fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let found = Found {
        current: dir.join(DB_DIR).exists(),
        copy: dir.join(COPY_DIR).exists(),
        new: dir.join(NEW_DIR).exists(),
        old: dir.join(OLD_DIR).exists(),
    };
    let fixes = plan(found);
    if fixes.is_empty() {
        return Ok(());
    }
    tracing::info!(?found, ?fixes, "finishing an interrupted store compaction");
    for fix in fixes {
        match fix {
            Fix::RemoveCopy => remove_dir(&dir.join(COPY_DIR))?,
            Fix::RemoveOld => remove_dir(&dir.join(OLD_DIR))?,
            Fix::CurrentToOld => rename(dir, DB_DIR, OLD_DIR)?,
            Fix::NewToCurrent => rename(dir, NEW_DIR, DB_DIR)?,
            Fix::OldToCurrent => rename(dir, OLD_DIR, DB_DIR)?,
        }
    }
    sync_dir(dir)
}

/// Runs `f` holding the store's swap lock (an exclusive `flock` on `<dir>/compact.lock`),
/// waiting up to `wait` for another process to let go of it ([`StoreError::Locked`] after).
pub(super) fn with_swap_lock<T>(
    dir: &Path,
    wait: Duration,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(SWAP_LOCK);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    let deadline = Instant::now() + wait;
    // SAFETY: flock on a descriptor this function owns; released when `file` closes.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if Instant::now() >= deadline {
            return Err(StoreError::Locked {
                path: dir.to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = f();
    drop(file);
    out
}

impl Store {
    /// Notes that a compaction is owed, on disk before the caller overwrites what it is for.
    pub(super) fn owe_compaction(&self) -> Result<(), StoreError> {
        let handles = self.trees();
        if handles.meta.get(META_COMPACTION_OWED)?.is_none() {
            handles.meta.insert(META_COMPACTION_OWED, &[1u8])?;
            handles.db.flush()?;
        }
        Ok(())
    }

    /// Whether a compaction is owed.
    pub(super) fn compaction_owed(&self) -> Result<bool, StoreError> {
        Ok(self.trees().meta.get(META_COMPACTION_OWED)?.is_some())
    }

    /// Takes back a mark [`Store::owe_compaction`] made for values that were not overwritten
    /// after all (lazily: a crash before it lands costs one needless compaction).
    pub(super) fn forgive_compaction(&self) -> Result<(), StoreError> {
        self.trees().meta.remove(META_COMPACTION_OWED)?;
        Ok(())
    }

    /// Held while a purge writes and compacts (see `Inner::maintenance`).
    pub(super) fn maintenance(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .maintenance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compacts when one is owed (see the module docs); `None` when none was. The caller holds
    /// [`Store::maintenance`], so no purge is between its mark and its compaction.
    pub(super) fn compact_if_owed(
        &self,
        held: &std::sync::MutexGuard<'_, ()>,
    ) -> Result<Option<Compacted>, StoreError> {
        if !self.compaction_owed()? {
            return Ok(None);
        }
        self.compact_held(held).map(Some)
    }

    /// Rewrites the database into a fresh one and deletes the old one's files (see the module
    /// docs). Writes through this handle wait meanwhile; reads go on. Needs free space for a
    /// second copy of the live data: on a full disk it fails with the old database intact
    /// (and the compaction still owed).
    pub fn compact(&self) -> Result<Compacted, StoreError> {
        self.compact_held(&self.maintenance())
    }

    /// [`Store::compact`] for a caller holding [`Store::maintenance`].
    fn compact_held(&self, _held: &std::sync::MutexGuard<'_, ()>) -> Result<Compacted, StoreError> {
        guard::guarded("compacting the store", || {
            let dir = self.inner.dir.clone();
            let options = self.inner.options;
            with_swap_lock(&dir, SWAP_LOCK_WAIT, || {
                let _no_writes = self
                    .inner
                    .writes
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let started = Instant::now();
                let old = self.trees();
                old.db.flush()?;
                remove_dir(&dir.join(OLD_DIR))?;
                let entries = match copy_db(&old.db, &dir.join(COPY_DIR), options) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = remove_dir(&dir.join(COPY_DIR));
                        return Err(e);
                    }
                };
                abort_at("copied");
                rename(&dir, COPY_DIR, NEW_DIR)?;
                sync_dir(&dir)?;
                abort_at("marked");
                let bytes_before = dir_bytes(&dir.join(DB_DIR));
                rename(&dir, DB_DIR, OLD_DIR)?;
                sync_dir(&dir)?;
                abort_at("moved-old");
                rename(&dir, NEW_DIR, DB_DIR)?;
                sync_dir(&dir)?;
                abort_at("swapped");
                let fresh = open_handles(&dir.join(DB_DIR), options)?;
                *self
                    .inner
                    .handles
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                // Readers still holding the old handles read on from open descriptors.
                drop(old);
                remove_dir(&dir.join(OLD_DIR))?;
                sync_dir(&dir)?;
                let done = Compacted {
                    entries,
                    bytes_before,
                    bytes_after: dir_bytes(&dir.join(DB_DIR)),
                    elapsed: started.elapsed(),
                };
                tracing::info!(
                    entries = done.entries,
                    bytes_before = done.bytes_before,
                    bytes_after = done.bytes_after,
                    ms = done.elapsed.as_millis() as u64,
                    "compacted the store"
                );
                Ok(done)
            })
        })
    }
}

/// Copies every tree of `src` into a new database at `to` (made afresh), in batches, and
/// flushes it; the owed-compaction mark is left out. Returns the keys copied. The copy is
/// closed on return; sled's threads may hold its lock a moment longer (`open_handles` waits).
fn copy_db(src: &sled::Db, to: &Path, options: StoreOptions) -> Result<u64, StoreError> {
    remove_dir(to)?;
    let dst = sled::Config::new()
        .path(to)
        .cache_capacity(options.cache_capacity_bytes)
        .open()?;
    let mut entries = 0u64;
    for name in src.tree_names() {
        let from = src.open_tree(&name)?;
        let into = dst.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let (mut n, mut bytes) = (0usize, 0usize);
        for kv in from.iter() {
            let (key, value) = kv?;
            if name == META_TREE && key == META_COMPACTION_OWED {
                continue;
            }
            bytes += key.len() + value.len();
            batch.insert(key, value);
            n += 1;
            if n >= COPY_BATCH || bytes >= COPY_BATCH_BYTES {
                into.apply_batch(std::mem::take(&mut batch))?;
                entries += n as u64;
                (n, bytes) = (0, 0);
                abort_at("copying");
            }
        }
        if n > 0 {
            into.apply_batch(batch)?;
            entries += n as u64;
        }
    }
    dst.flush()?;
    Ok(entries)
}

/// Aborts the process at `step` when [`ABORT_AT_ENV`] names it (debug builds only).
fn abort_at(step: &str) {
    if cfg!(debug_assertions) && std::env::var(ABORT_AT_ENV).is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

fn remove_dir(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, e)),
        _ => Ok(()),
    }
}

fn rename(dir: &Path, from: &str, to: &str) -> Result<(), StoreError> {
    std::fs::rename(dir.join(from), dir.join(to)).map_err(|e| io_error(&dir.join(from), e))
}

/// Makes the directory's entries (the renames in it) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Bytes of the files directly in `dir` and one level down (sled's `blobs`), 0 if unreadable.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A file operation's failure: a full disk, or a database error naming the path.
fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    if super::error::is_enospc(&e) {
        return StoreError::DiskFull;
    }
    let named = std::io::Error::new(
        e.kind(),
        format!("compacting the store: {}: {e}", path.display()),
    );
    StoreError::Database(sled::Error::Io(named))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(current: bool, copy: bool, new: bool, old: bool) -> Found {
        Found {
            current,
            copy,
            new,
            old,
        }
    }

    #[test]
    fn a_swap_cut_at_each_step_is_finished_or_rolled_back() {
        use Fix::*;
        // No compaction ran, or it finished.
        assert!(plan(found(true, false, false, false)).is_empty());
        assert!(plan(Found::default()).is_empty());
        // Killed while copying, or with the copy complete but not yet marked: the old one
        // stays.
        assert_eq!(plan(found(true, true, false, false)), [RemoveCopy]);
        // Marked complete: moved into place.
        assert_eq!(
            plan(found(true, false, true, false)),
            [CurrentToOld, NewToCurrent, RemoveOld]
        );
        // Old moved aside.
        assert_eq!(
            plan(found(false, false, true, true)),
            [NewToCurrent, RemoveOld]
        );
        // In place, the old one not yet (or not wholly) deleted.
        assert_eq!(plan(found(true, false, false, true)), [RemoveOld]);
        // Never left by the swap, handled anyway.
        assert_eq!(plan(found(false, false, false, true)), [OldToCurrent]);
        assert_eq!(
            plan(found(true, true, true, true)),
            [RemoveCopy, RemoveOld, CurrentToOld, NewToCurrent, RemoveOld]
        );
    }

    #[test]
    fn finishing_a_swap_cut_after_the_old_one_moved_puts_the_copy_in_place() {
        let dir = tempfile::tempdir().unwrap();
        for (name, file) in [(NEW_DIR, "new"), (OLD_DIR, "old")] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("db"), file).unwrap();
        }
        finish_interrupted(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(DB_DIR).join("db")).unwrap(),
            "new"
        );
        assert!(!dir.path().join(OLD_DIR).exists());
        assert!(!dir.path().join(NEW_DIR).exists());
    }

    #[test]
    fn the_swap_lock_is_exclusive_between_holders() {
        let dir = tempfile::tempdir().unwrap();
        let inner = with_swap_lock(dir.path(), Duration::ZERO, || {
            Ok(with_swap_lock(dir.path(), Duration::ZERO, || Ok(())))
        })
        .unwrap();
        assert!(matches!(inner, Err(StoreError::Locked { .. })));
        assert!(with_swap_lock(dir.path(), Duration::ZERO, || Ok(())).is_ok());
    }
}
