//! The drop folder on disk: its layout (`processed/`, `rejected/`, a hidden work folder),
//! private files, and moves that never overwrite. "Never overwrite" is done with a hard link
//! to a free name (which fails rather than replace) and then removing the old name, so a
//! crash between the two leaves the file under both names, never under none; the next
//! attempt notices the link is already there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
}

fn private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

impl Folder {
    /// Creates the folder and its subfolders (mode 0700) when missing.
    pub fn prepare(root: &Path) -> io::Result<Folder> {
        let folder = Folder {
            root: root.to_path_buf(),
            processed: root.join(PROCESSED_DIR),
            rejected: root.join(REJECTED_DIR),
            work: root.join(WORK_DIR),
        };
        for dir in [
            &folder.root,
            &folder.processed,
            &folder.rejected,
            &folder.work,
        ] {
            private_dir(dir)?;
        }
        Ok(folder)
    }

    /// Makes the moves and new files of a step durable.
    pub fn sync_dirs(&self) -> io::Result<()> {
        for dir in [&self.root, &self.processed, &self.rejected, &self.work] {
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
/// (or already this very file, after a crash between link and unlink). The file is made
/// mode 0600 first. Returns the name used.
pub fn move_no_replace(src: &Path, dir: &Path, name: &str) -> io::Result<String> {
    let meta = std::fs::metadata(src)?;
    if meta.permissions().mode() & 0o777 != 0o600 {
        std::fs::set_permissions(src, std::fs::Permissions::from_mode(0o600))?;
    }
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

/// The first `n` for which every name `make(n)` returns is free in `dir`.
pub fn free_names(dir: &Path, make: impl Fn(u32) -> Vec<String>) -> io::Result<Vec<String>> {
    for n in 1..=MAX_CANDIDATES {
        let names = make(n);
        if names.iter().all(|name| {
            std::fs::symlink_metadata(dir.join(name))
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        }) {
            return Ok(names);
        }
    }
    Err(io::Error::other(format!(
        "no free name in {}",
        dir.display()
    )))
}
