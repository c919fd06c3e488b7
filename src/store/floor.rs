//! The record floor: `<store>/records.floor` holds a count of records the database is known
//! to have held once it was on disk. Records are never deleted (discard and purge keep the
//! record), so the count only grows; a database that opens with fewer lost them, and sled
//! would not say so (it replays a truncated file as a smaller database). Written after a
//! flush, aside and renamed, so it never claims more than was durable; a lost or torn file
//! reads as 0 and checks nothing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::StoreError;

const FILE: &str = "records.floor";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The floor, or 0 when there is none or it cannot be read.
pub fn read(dir: &Path) -> u64 {
    std::fs::read_to_string(path(dir))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

pub fn write(dir: &Path, records: u64) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |source: std::io::Error| {
        if super::error::is_enospc(&source) {
            StoreError::DiskFull
        } else {
            StoreError::Permissions {
                path: path(dir),
                source,
            }
        }
    };
    // Private like every file of the store, whatever the umask.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(format!("{records}\n").as_bytes())
        .map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path(dir)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_torn_floor_reads_as_zero_and_a_written_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), 0);
        std::fs::write(path(dir.path()), "12x").unwrap();
        assert_eq!(read(dir.path()), 0);
        write(dir.path(), 300).unwrap();
        assert_eq!(read(dir.path()), 300);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path(dir.path())).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0);
    }
}
