//! Retention of refused rows. The files in `rejected/` (reports, copies of refused records,
//! whole files that could not be read) hold customer data in plaintext for a person to read
//! and fix, so they are erased by the same retention as synced records
//! (`retain_synced_days`): a file that arrived there before the cutoff is removed. When it
//! arrived is the later of its modification and status-change times (moving a file in
//! changes the latter), so an old export set aside today is kept the whole period, and a
//! copy being fixed in place is kept from its last edit. Only regular files directly in
//! `rejected/` are removed; folders and links someone made there are left alone.
//!
//! The same pass removes the reports a take left in the hidden work folder when it never
//! finished (the file was taken away before it was archived): by the same cutoff, but never
//! before they are a day old, so a take under way keeps its reports.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::folder::{REJECTED_DIR, WORK_DIR};

/// Entries of `rejected/` looked at in one pass, at most; the rest wait for the next pass.
const MAX_PER_PASS: usize = 100_000;

/// When a file arrived in `rejected/`, in nanoseconds since the epoch: the later of its
/// modification and status-change times. Pure.
pub fn arrived_ns(meta: &std::fs::Metadata) -> i128 {
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    ns(meta.mtime(), meta.mtime_nsec()).max(ns(meta.ctime(), meta.ctime_nsec()))
}

/// Whether a work-folder file is a take's report (`<sha256>.errors.txt`,
/// `<sha256>.rejected.<ext>`), not a mark or a file being removed. Pure.
pub fn is_work_report(name: &str) -> bool {
    name.ends_with(".errors.txt") || name.contains(".rejected.")
}

/// Removes the refused-row files of the drop folder `root` that arrived before `cutoff`, and
/// the work folder's unfinished reports older than that and a day. Returns how many were
/// removed. A missing folder is nothing to do.
pub fn erase_refused(root: &Path, cutoff: DateTime<Utc>) -> io::Result<usize> {
    refused_before(root, cutoff, true)
}

/// How many files [`erase_refused`] would remove now, removing none (`purge --dry-run`).
pub fn count_refused(root: &Path, cutoff: DateTime<Utc>) -> io::Result<usize> {
    refused_before(root, cutoff, false)
}

fn refused_before(root: &Path, cutoff: DateTime<Utc>, remove: bool) -> io::Result<usize> {
    let in_work = cutoff.min(Utc::now() - chrono::Duration::days(1));
    Ok(
        erase_in(&root.join(REJECTED_DIR), cutoff, |_| true, remove)?
            + erase_in(&root.join(WORK_DIR), in_work, is_work_report, remove)?,
    )
}

fn erase_in(
    dir: &Path,
    cutoff: DateTime<Utc>,
    wanted: fn(&str) -> bool,
    remove: bool,
) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let cutoff_ns = cutoff.timestamp_nanos_opt().map_or(i128::MAX, i128::from);
    let mut erased = 0;
    for entry in entries.take(MAX_PER_PASS) {
        let entry = entry?;
        if !wanted(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.file_type().is_file() && arrived_ns(&meta) <= cutoff_ns {
            if !remove {
                erased += 1;
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => erased += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if erased > 0 {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(erased)
}

/// [`erase_refused`] for the daemon's retention and `icsync purge`: the outcome goes to the
/// log (a count and the folder, never a file name). Returns how many were removed (none when
/// the pass failed: it is tried again at the next one).
pub fn erase_refused_logged(root: &Path, cutoff: DateTime<Utc>) -> usize {
    match erase_refused(root, cutoff) {
        Ok(0) => 0,
        Ok(n) => {
            tracing::info!(files = n, folder = %root.join(REJECTED_DIR).display(), "retention erased refused-row files");
            n
        }
        Err(e) => {
            tracing::warn!(error = %e, folder = %root.join(REJECTED_DIR).display(), "retention could not erase refused-row files; it tries again later");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_files_that_arrived_before_the_cutoff_are_erased_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let rejected = dir.path().join(REJECTED_DIR);
        std::fs::create_dir_all(rejected.join("mine")).unwrap();
        std::fs::write(rejected.join("a.errors.txt"), "x").unwrap();
        std::fs::write(rejected.join("a.rejected.csv"), "x").unwrap();
        std::fs::write(dir.path().join("waiting.csv"), "x").unwrap();
        let long_ago = Utc::now() - chrono::Duration::days(1);
        assert_eq!(erase_refused(dir.path(), long_ago).unwrap(), 0);
        assert!(rejected.join("a.errors.txt").exists());
        let later = Utc::now() + chrono::Duration::seconds(1);
        assert_eq!(erase_refused(dir.path(), later).unwrap(), 2);
        assert!(!rejected.join("a.rejected.csv").exists());
        assert!(rejected.join("mine").is_dir());
        assert!(dir.path().join("waiting.csv").exists());
    }

    #[test]
    fn an_old_file_moved_in_counts_from_its_move() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.csv");
        std::fs::write(&old, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        drop(f);
        std::fs::create_dir(dir.path().join(REJECTED_DIR)).unwrap();
        let moved = dir.path().join(REJECTED_DIR).join("old.csv");
        std::fs::rename(&old, &moved).unwrap();
        let a_minute_ago = Utc::now() - chrono::Duration::minutes(1);
        assert_eq!(erase_refused(dir.path(), a_minute_ago).unwrap(), 0);
        assert!(moved.exists());
    }

    #[test]
    fn unfinished_work_reports_go_only_once_a_day_old() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join(WORK_DIR);
        std::fs::create_dir_all(&work).unwrap();
        for name in ["ab.errors.txt", "ab.rejected.csv", "cd.taking"] {
            std::fs::write(work.join(name), "x").unwrap();
        }
        // A take under way keeps its reports, even with retention at 0 days.
        assert_eq!(erase_refused(dir.path(), Utc::now()).unwrap(), 0);
        assert!(is_work_report("ab.errors.txt") && is_work_report("ab.rejected.ndjson"));
        assert!(!is_work_report("cd.taking") && !is_work_report("ab.removing"));
    }

    #[test]
    fn no_rejected_folder_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(erase_refused(dir.path(), Utc::now()).unwrap(), 0);
    }
}
