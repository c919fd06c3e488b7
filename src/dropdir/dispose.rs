//! What becomes of a drop file once its records are durable in the store: removed (the
//! default), so no plaintext copy of it stays in the drop folder, or kept in `processed/` when
//! the config says `keep_processed = true`.
//!
//! Removal renames the file into the hidden work folder first and removes it there only if it
//! is still the very file that was taken (same device and inode): a file someone put under the
//! same name in between is moved back and taken in its turn, never removed unread. A crash
//! between the rename and the removal leaves a `*.removing` file in the work folder; the next
//! start removes it ([`clear_leftovers`]), which is safe because a file is only ever moved
//! there after its records were flushed to the store.

use std::path::Path;

use super::folder::{move_no_replace, Folder};
use super::taken::Taken;
use super::DropError;
use crate::store::Fingerprint;

/// The ending of a file being removed, in the work folder.
const REMOVING: &str = ".removing";
/// Entries of the work folder looked at for leftovers, at most.
const MAX_LEFTOVERS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposed {
    /// Moved to `processed/` under this name (on disk, unescaped).
    Kept(String),
    /// Removed from the drop folder.
    Removed,
}

/// Removes (or, with `keep_processed`, archives) the file `taken` from `path`, whose raw
/// name is `raw_name` and shown name `name`. Call it only once the file's records are durable.
pub fn dispose(
    folder: &Folder,
    path: &Path,
    taken: &Taken,
    fp: &Fingerprint,
    raw_name: &str,
    name: &str,
) -> Result<Disposed, DropError> {
    if folder.keep_processed {
        let kept =
            move_no_replace(path, &folder.processed, raw_name).map_err(DropError::io(path))?;
        return Ok(Disposed::Kept(kept));
    }
    let aside = move_no_replace(path, &folder.work, &format!("{fp}{REMOVING}"))
        .map_err(DropError::io(path))?;
    let aside = folder.work.join(aside);
    if !taken.is_at(&aside) {
        move_no_replace(&aside, &folder.root, raw_name).map_err(DropError::io(&aside))?;
        return Err(DropError::Changed(format!(
            "{name}: another file took its name while it was read"
        )));
    }
    std::fs::remove_file(&aside).map_err(DropError::io(&aside))?;
    Ok(Disposed::Removed)
}

/// Removes the `*.removing` files a crash left in the work folder. Failures are logged: the
/// next start tries again.
pub fn clear_leftovers(work: &Path) {
    let Ok(entries) = std::fs::read_dir(work) else {
        return;
    };
    for entry in entries.take(MAX_LEFTOVERS).flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && entry.file_name().to_string_lossy().ends_with(REMOVING) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(error = %e, "cannot remove a processed drop file left part-way removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(root: &Path, keep: bool) -> Folder {
        Folder::prepare(root, keep).unwrap()
    }

    #[test]
    fn a_taken_file_is_removed_or_kept_as_configured() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path(), false);
        assert!(
            !f.processed.exists(),
            "processed/ made without keep_processed"
        );
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "x").unwrap();
        let taken = Taken::open(&path).unwrap().unwrap();
        let fp = Fingerprint([7; 32]);
        assert_eq!(
            dispose(&f, &path, &taken, &fp, "a.csv", "a.csv").unwrap(),
            Disposed::Removed
        );
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(&f.work).unwrap().count(), 0);

        let kept = folder(dir.path(), true);
        std::fs::write(&path, "y").unwrap();
        let taken = Taken::open(&path).unwrap().unwrap();
        assert_eq!(
            dispose(&kept, &path, &taken, &fp, "a.csv", "a.csv").unwrap(),
            Disposed::Kept("a.csv".into())
        );
        assert_eq!(std::fs::read(kept.processed.join("a.csv")).unwrap(), b"y");
    }

    #[test]
    fn a_file_that_took_the_name_meanwhile_is_put_back_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path(), false);
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "taken").unwrap();
        let taken = Taken::open(&path).unwrap().unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "newer").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let err = dispose(&f, &path, &taken, &Fingerprint([1; 32]), "a.csv", "a.csv");
        assert!(matches!(err, Err(DropError::Changed(_))), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"newer");
    }

    #[test]
    fn leftovers_of_a_crash_are_removed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = folder(dir.path(), false);
        std::fs::write(f.work.join("ab.removing"), "x").unwrap();
        std::fs::write(f.work.join("cd.taking"), "{}").unwrap();
        let f = folder(dir.path(), false);
        assert!(!f.work.join("ab.removing").exists());
        assert!(f.work.join("cd.taking").exists());
    }
}
