//! The `--state` file: what a demo keeps across a restart (customers per organisation, the
//! stored idempotent successes, the clock offset). Keys never go in it: they come from the
//! `--org` flags. It owns the file formats and nothing about HTTP or locking:
//!
//! - the snapshot, `FILE`: the whole state as JSON, replaced atomically (a 0600 temp file in
//!   the same directory, synced, then renamed over the old file);
//! - the journal, `FILE.journal`: one JSON line per change made since that snapshot, appended
//!   and synced before the change is answered, so kill -9 never loses an acknowledged
//!   customer. Each line carries the change's generation; the snapshot records the generation
//!   it covers, so lines it already holds are skipped when both are read back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{Customer, Fingerprint, IdempotencyKey};

const FORMAT_VERSION: u32 = 1;

/// The largest clock offset a state file may hold: the sandbox clock stays within years
/// 0-9999 (checked again when the clock moves).
pub const MAX_CLOCK_OFFSET_SECONDS: i64 = 8000 * 366 * 24 * 3600;

/// A journal longer than this is folded into a new snapshot.
pub const JOURNAL_COMPACT_BYTES: u64 = 8 << 20;

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub version: u32,
    /// The generation of the last change this snapshot holds (0 in files written before the
    /// journal existed).
    #[serde(default)]
    pub generation: u64,
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

/// One change, as a journal line: a customer written (with the stored success of its
/// Idempotency-Key, if it had one), or the clock moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    Customer {
        generation: u64,
        org: String,
        customer: Box<Customer>,
        key: Option<StoredKey>,
    },
    Clock {
        generation: u64,
        clock_offset_seconds: i64,
    },
}

impl Change {
    pub fn generation(&self) -> u64 {
        match self {
            Change::Customer { generation, .. } | Change::Clock { generation, .. } => *generation,
        }
    }
}

impl StateFile {
    pub fn new(
        generation: u64,
        clock_offset_seconds: i64,
        orgs: BTreeMap<String, Vec<Customer>>,
        idempotency: Vec<StoredKey>,
    ) -> Self {
        StateFile {
            version: FORMAT_VERSION,
            generation,
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
    if state.clock_offset_seconds.abs() > MAX_CLOCK_OFFSET_SECONDS {
        return Err(corrupt(format!(
            "clock_offset_seconds {} moves the clock out of years 0-9999",
            state.clock_offset_seconds
        )));
    }
    Ok(Some(state))
}

/// The journal that goes with the state file `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    path.with_file_name(name)
}

/// Reads the journal of the state file `path`, oldest change first; empty when there is none.
/// A last line cut short by a crash mid-append was never acknowledged and is ignored; any
/// other unreadable line makes the journal corrupt.
pub fn load_journal(path: &Path) -> Result<Vec<Change>, PersistError> {
    let journal = journal_path(path);
    let bytes = match std::fs::read(&journal) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PersistError::Read {
                path: journal,
                source,
            })
        }
    };
    let complete = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &[][..],
    };
    let mut changes = Vec::new();
    for (n, line) in complete.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let change: Change = serde_json::from_slice(line).map_err(|e| PersistError::Corrupt {
            path: journal.clone(),
            reason: format!("line {}: {e}", n + 1),
        })?;
        if let Change::Clock {
            clock_offset_seconds,
            ..
        } = change
        {
            if clock_offset_seconds.abs() > MAX_CLOCK_OFFSET_SECONDS {
                return Err(PersistError::Corrupt {
                    path: journal.clone(),
                    reason: format!("line {}: the clock leaves years 0-9999", n + 1),
                });
            }
        }
        changes.push(change);
    }
    Ok(changes)
}

/// The snapshot with the journal's changes made after it applied, in order: the state as it
/// was at the last acknowledged change. `None` when there is neither.
pub fn replay(snapshot: Option<StateFile>, changes: Vec<Change>) -> Option<StateFile> {
    if changes.is_empty() {
        return snapshot;
    }
    let mut state = snapshot.unwrap_or_else(|| StateFile::new(0, 0, BTreeMap::new(), Vec::new()));
    let mut customer_at: std::collections::HashMap<(String, uuid::Uuid), usize> = state
        .orgs
        .iter()
        .flat_map(|(org, customers)| {
            customers
                .iter()
                .enumerate()
                .map(move |(i, c)| ((org.clone(), c.id), i))
        })
        .collect();
    let mut key_at: std::collections::HashMap<(String, IdempotencyKey), usize> = state
        .idempotency
        .iter()
        .enumerate()
        .map(|(i, k)| ((k.org.clone(), k.key.clone()), i))
        .collect();
    for change in changes {
        if change.generation() <= state.generation {
            continue;
        }
        state.generation = change.generation();
        match change {
            Change::Clock {
                clock_offset_seconds,
                ..
            } => state.clock_offset_seconds = clock_offset_seconds,
            Change::Customer {
                org, customer, key, ..
            } => {
                let customers = state.orgs.entry(org.clone()).or_default();
                match customer_at.get(&(org.clone(), customer.id)) {
                    Some(&i) => customers[i] = *customer,
                    None => {
                        customer_at.insert((org, customer.id), customers.len());
                        customers.push(*customer);
                    }
                }
                if let Some(key) = key {
                    let scope = (key.org.clone(), key.key.clone());
                    match key_at.get(&scope) {
                        Some(&i) => state.idempotency[i] = key,
                        None => {
                            key_at.insert(scope, state.idempotency.len());
                            state.idempotency.push(key);
                        }
                    }
                }
            }
        }
    }
    Some(state)
}

/// The journal, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

impl Journal {
    /// Opens (creating, 0600) the journal of the state file `path`.
    pub fn open(path: &Path) -> Result<Journal, PersistError> {
        let journal = journal_path(path);
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&journal)
            .map_err(|source| PersistError::Write {
                path: journal.clone(),
                source,
            })?;
        Ok(Journal {
            path: journal,
            file,
        })
    }

    /// Appends `changes` and syncs them to disk; returns the journal's size after.
    pub fn append(&mut self, changes: &[Change]) -> Result<u64, PersistError> {
        let mut bytes = Vec::new();
        for change in changes {
            serde_json::to_writer(&mut bytes, change).map_err(|e| self.error(e.into()))?;
            bytes.push(b'\n');
        }
        self.file.write_all(&bytes).map_err(|e| self.error(e))?;
        self.file.sync_data().map_err(|e| self.error(e))?;
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| self.error(e))
    }

    /// Empties the journal once a snapshot holds everything in it.
    pub fn clear(&mut self) -> Result<(), PersistError> {
        self.file.set_len(0).map_err(|e| self.error(e))?;
        self.file.sync_all().map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> PersistError {
        PersistError::Write {
            path: self.path.clone(),
            source,
        }
    }
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
        let state = StateFile::new(0, 42, BTreeMap::from([("demo".into(), vec![])]), vec![]);
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

    fn customer(n: u128, name: &str) -> Customer {
        let input =
            crate::contract::parse_input(&serde_json::json!({ "full_name": name })).unwrap();
        crate::contract::apply_upsert(None, &input, uuid::Uuid::from_u128(n), Utc::now())
    }

    fn written(generation: u64, n: u128, name: &str) -> Change {
        Change::Customer {
            generation,
            org: "demo".into(),
            customer: Box::new(customer(n, name)),
            key: None,
        }
    }

    #[test]
    fn replay_applies_only_changes_newer_than_the_snapshot_in_order() {
        let snapshot = StateFile::new(
            2,
            0,
            BTreeMap::from([("demo".into(), vec![customer(1, "Ada v2")])]),
            vec![],
        );
        let changes = vec![
            // Already in the snapshot (a crash between snapshot and journal clear): skipped,
            // so it cannot put the older name back.
            written(1, 1, "Ada v1"),
            written(3, 1, "Ada v3"),
            written(4, 2, "Bob"),
            Change::Clock {
                generation: 5,
                clock_offset_seconds: 60,
            },
        ];
        let state = replay(Some(snapshot), changes).unwrap();
        assert_eq!(state.generation, 5);
        assert_eq!(state.clock_offset_seconds, 60);
        let names: Vec<_> = state.orgs["demo"]
            .iter()
            .map(|c| c.full_name.as_str())
            .collect();
        assert_eq!(names, ["Ada v3", "Bob"]);
        assert_eq!(replay(None, vec![]), None);
    }

    #[test]
    fn a_journal_line_cut_by_a_crash_is_ignored_and_a_bad_full_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(load_journal(&path).unwrap().is_empty());
        let mut journal = Journal::open(&path).unwrap();
        journal
            .append(&[written(1, 1, "Ada"), written(2, 2, "Bob")])
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(journal_path(&path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut bytes = std::fs::read(journal_path(&path)).unwrap();
        bytes.extend_from_slice(br#"{"change":"customer","genera"#);
        std::fs::write(journal_path(&path), &bytes).unwrap();
        assert_eq!(load_journal(&path).unwrap().len(), 2);
        bytes.extend_from_slice(b"\n");
        std::fs::write(journal_path(&path), &bytes).unwrap();
        let e = load_journal(&path).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
    }
}
