//! The drop folder on disk: its layout (`rejected/`, a hidden work folder, and `processed/`
//! only with `keep_processed`), private files, and moves that never overwrite. "Never overwrite" is done with a hard link
//! to a free name (which fails rather than replace) and then removing the old name, so a
//! crash between the two leaves the file under both names, never under none; the next
//! attempt notices the link is already there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::ingest::drop::names::numbered;

/// Hidden (so never taken as a drop), inside the folder (so moves out of it are renames).
pub const WORK_DIR: &str = ".icsync-work";
pub const PROCESSED_DIR: &str = "processed";
pub const REJECTED_DIR: &str = "rejected";

/// How many numbered names are tried before giving up on a free one.
const MAX_CANDIDATES: u32 = 100_000;

#[derive(Debug, Clone)]
pub struct Folder {
    pub root: PathBuf,
    pub processed: PathBuf,
    pub rejected: PathBuf,
    pub work: PathBuf,
    /// Processed files (and duplicates) are kept in `processed/` rather than removed.
    pub keep_processed: bool,
}

/// Why a drop folder is refused: others could put files in it, which would be sent with this
/// user's API key. Pure: `mode` and `owner` are the folder's, `me` the daemon's user id.
pub fn foreign_writable(mode: u32, owner: u32, me: u32) -> Option<String> {
    if owner != me {
        return Some(format!(
            "it belongs to another user (uid {owner}), who can put files in it"
        ));
    }
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and all other users",
            (true, false) => "its group",
            _ => "all other users",
        };
        return Some(format!(
            "{who} can write to it (mode {:04o}{})",
            mode & 0o7777,
            if mode & 0o1000 != 0 {
                "; the sticky bit does not stop them adding files"
            } else {
                ""
            }
        ));
    }
    None
}

/// Refuses an existing drop folder others can write to, unless `shared` (the config's
/// `drop_dir_shared`) says so. A missing folder is created private later, so it passes.
pub fn check_not_shared(root: &Path, shared: bool) -> Result<(), super::DropError> {
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(super::DropError::io(root)(e)),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match foreign_writable(meta.mode(), meta.uid(), me) {
        Some(why) if !shared => Err(super::DropError::Shared {
            path: root.to_path_buf(),
            why,
        }),
        Some(why) => {
            tracing::warn!(folder = %root.display(), why = %why, "the drop folder is shared (drop_dir_shared = true)");
            Ok(())
        }
        None => Ok(()),
    }
}

fn private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl Folder {
    /// Creates the folder and its subfolders (mode 0700) when missing (`processed/` only
    /// when processed files are kept), and removes what a crash left part-way removed.
    pub fn prepare(root: &Path, keep_processed: bool) -> io::Result<Folder> {
        let folder = Folder {
            root: root.to_path_buf(),
            processed: root.join(PROCESSED_DIR),
            rejected: root.join(REJECTED_DIR),
            work: root.join(WORK_DIR),
            keep_processed,
        };
        for dir in folder.dirs() {
            private_dir(dir)?;
        }
        super::dispose::clear_leftovers(&folder.work);
        Ok(folder)
    }

    fn dirs(&self) -> Vec<&PathBuf> {
        let mut dirs = vec![&self.root, &self.rejected, &self.work];
        if self.keep_processed {
            dirs.push(&self.processed);
        }
        dirs
    }

    /// Makes the moves and new files of a step durable.
    pub fn sync_dirs(&self) -> io::Result<()> {
        for dir in self.dirs() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Creates (truncating) a file only its owner can read.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn same_file(a: &std::fs::Metadata, b: &Path) -> bool {
    std::fs::metadata(b).is_ok_and(|m| m.dev() == a.dev() && m.ino() == a.ino())
}

/// Moves `src` into `dir` under `name`, or `name.2.ext`, `name.3.ext`, ... whichever is free
/// (or already this very file, after a crash between link and unlink); every candidate fits
/// the name limit. `src` itself is moved, never what a symbolic link there points to (make
/// the file private through its descriptor first). Returns the name used.
pub fn move_no_replace(src: &Path, dir: &Path, name: &str) -> io::Result<String> {
    let meta = std::fs::symlink_metadata(src)?;
    for n in 1..=MAX_CANDIDATES {
        let candidate = numbered(name, n);
        let target = dir.join(&candidate);
        match std::fs::hard_link(src, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !same_file(&meta, &target) {
                    continue;
                }
            }
            Err(e) => return Err(e),
        }
        std::fs::remove_file(src)?;
        return Ok(candidate);
    }
    Err(io::Error::other(format!(
        "no free name for {name} in {}",
        dir.display()
    )))
}

/// The first `n` for which every name `make(n)` returns is free in `dir`. An error other
/// than "not found" (a name too long, no permission) is returned as it is, never taken for
/// a name in use.
pub fn free_names(dir: &Path, make: impl Fn(u32) -> Vec<String>) -> io::Result<Vec<String>> {
    'next: for n in 1..=MAX_CANDIDATES {
        let names = make(n);
        for name in &names {
            match std::fs::symlink_metadata(dir.join(name)) {
                Ok(_) => continue 'next,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(names);
    }
    Err(io::Error::other(format!(
        "no free name in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_others_can_write_to_or_do_not_own_is_foreign() {
        assert_eq!(foreign_writable(0o40700, 1000, 1000), None);
        assert_eq!(foreign_writable(0o40755, 1000, 1000), None);
        let group = foreign_writable(0o40770, 1000, 1000).unwrap();
        assert!(group.contains("its group"), "{group}");
        let all = foreign_writable(0o41777, 1000, 1000).unwrap();
        assert!(all.contains("sticky bit"), "{all}");
        let other = foreign_writable(0o40700, 0, 1000).unwrap();
        assert!(other.contains("another user"), "{other}");
    }

    #[test]
    fn free_names_reports_a_name_too_long_instead_of_searching() {
        let dir = tempfile::tempdir().unwrap();
        let err = free_names(dir.path(), |_| vec!["x".repeat(300)]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn a_long_name_is_moved_under_a_fitting_numbered_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let long = format!("{}.csv", "n".repeat(250));
        std::fs::write(a.join(&long), "1").unwrap();
        std::fs::write(b.join(&long), "2").unwrap();
        let moved = move_no_replace(&a.join(&long), &b, &long).unwrap();
        assert_ne!(moved, long);
        assert!(moved.len() <= 255 && moved.ends_with(".csv"));
        assert_eq!(std::fs::read_to_string(b.join(&moved)).unwrap(), "1");
    }
}
