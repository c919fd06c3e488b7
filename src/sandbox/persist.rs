//! The `--state` file: what a demo keeps across a restart (customers per organisation, the
//! stored idempotent successes, the clock offset). Keys never go in it: they come from the
//! `--org` flags. It owns the file format and the atomic write (a 0600 temp file in the same
//! directory, synced, then renamed over the old file), and nothing about HTTP or locking.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{Customer, Fingerprint, IdempotencyKey};

const FORMAT_VERSION: u32 = 1;

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub version: u32,
    pub clock_offset_seconds: i64,
    /// Customers per organisation name, oldest first.
    pub orgs: BTreeMap<String, Vec<Customer>>,
    pub idempotency: Vec<StoredKey>,
}

/// One stored success of an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    pub org: String,
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    pub first_used_at: DateTime<Utc>,
    pub status: u16,
    /// The exact response body (always JSON text, so kept as a string).
    pub body: String,
}

impl StateFile {
    pub fn new(
        clock_offset_seconds: i64,
        orgs: BTreeMap<String, Vec<Customer>>,
        idempotency: Vec<StoredKey>,
    ) -> Self {
        StateFile {
            version: FORMAT_VERSION,
            clock_offset_seconds,
            orgs,
            idempotency,
        }
    }
}

/// A state file that cannot be read or written. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read sandbox state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "sandbox state file {path} is not valid ({reason}); fix it or delete it to start empty"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write sandbox state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the state file; `None` when it does not exist yet.
pub fn load(path: &Path) -> Result<Option<StateFile>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is not {FORMAT_VERSION}",
            state.version
        )));
    }
    Ok(Some(state))
}

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Customer data: readable by the owner only, from the first byte written.
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is synced; failing that is not fatal.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load(&path).unwrap().is_none());
        let state = StateFile::new(42, BTreeMap::from([("demo".into(), vec![])]), vec![]);
        write_atomic(&path, &serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{not json").unwrap();
        let e = load(&path).unwrap_err();
        assert!(matches!(e, PersistError::Corrupt { .. }));
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
}
