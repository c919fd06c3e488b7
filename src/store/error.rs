//! The store's error type. Messages name the store's files, record ids and tree names, never
//! a customer field: a payload, email or external_id must not reach a log through an error.
//!
//! sled's errors are sorted here, in one place (`From<sled::Error>`): corruption becomes
//! [`StoreError::Damaged`] (and so do sled's panics, see `guard`), a write refused for lack of
//! space becomes [`StoreError::DiskFull`], anything else stays [`StoreError::Database`].

use std::path::PathBuf;

use super::record::RecordId;

/// Shortest record-id prefix accepted by `Store::resolve_prefix`.
pub const MIN_PREFIX_CHARS: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot restrict permissions of {path}: {source}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the store in {path} is in use by another process (is an icsync daemon running on this data dir?)")]
    Locked { path: PathBuf },
    #[error("cannot open the store in {path}: {}", sled_message(.source))]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store database error: {}", sled_message(.0))]
    Database(sled::Error),
    /// The database's files cannot be read back: truncated, overwritten, or sled panicked on
    /// them. Nothing in this process can repair it; `icsync recover` copies what is readable.
    #[error("store damaged: {detail} ({RECOVER_HINT})")]
    Damaged { detail: String },
    /// A write failed for lack of space (ENOSPC). After this sled refuses every later write
    /// on the same handle: the store must be reopened once space is freed.
    #[error(
        "disk full: the store cannot save changes (free some space on the disk of the data dir)"
    )]
    DiskFull,
    #[error("store damaged: corrupt {what}: {detail} ({RECOVER_HINT})")]
    Corrupt { what: &'static str, detail: String },
    #[error("cannot encode {what} for the store: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("the store is locked: run `icsync unlock`")]
    KeyLocked,
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    #[error(
        "the store in {path} holds encrypted records but its keyring {keyring} is missing: \
         restore keyring.json from a backup of the data dir (the key file alone cannot open it)"
    )]
    KeyringMissing { path: PathBuf, keyring: PathBuf },
    #[error(
        "the keyring {keyring} holds another data key than the one this store was encrypted \
         with: restore this store's own keyring.json"
    )]
    WrongDataKey { keyring: PathBuf },
    #[error("refused change to record {id}: {reason}")]
    InvalidUpdate { id: RecordId, reason: &'static str },
    #[error(
        "record id prefix {prefix:?} is too short: give at least {MIN_PREFIX_CHARS} characters"
    )]
    PrefixTooShort { prefix: String },
    #[error("{prefix:?} is not a record id prefix: use hexadecimal digits and hyphens")]
    PrefixInvalid { prefix: String },
    #[error("no record id starts with {prefix:?}")]
    NoMatch { prefix: String },
    #[error("record id prefix {prefix:?} is ambiguous: it matches {} (give more characters)", list_ids(.candidates))]
    Ambiguous {
        prefix: String,
        candidates: Vec<RecordId>,
    },
    /// A handle (`Store::resolve_handle`) that names no record. The handle is what the user
    /// typed; no record's field is quoted.
    #[error(
        "no record matches {handle:?}: give the record's external_id, its short id or at least \
         {MIN_PREFIX_CHARS} leading characters of its id"
    )]
    NoRecord { handle: String },
    /// A handle that names more than one record: the candidates' ids only (never a name).
    #[error("{handle:?} names more than one record ({by}): {}; name one by its short id (the last 8 characters) or its full id", list_ids(.candidates))]
    AmbiguousHandle {
        handle: String,
        by: HandleKind,
        candidates: Vec<RecordId>,
    },
    #[error("a record handle is 1 to {MAX_HANDLE_CHARS} characters")]
    HandleInvalid,
}

/// The longest handle `Store::resolve_handle` reads: an external_id's limit in the contract.
pub const MAX_HANDLE_CHARS: usize = crate::contract::MAX_TEXT_CHARS;

/// How a handle matched more than one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleKind {
    /// Several live records hold this external_id (edits can make two rows share one).
    ExternalId,
    /// Several records' ids end with these digits.
    ShortId,
    /// Several records' ids start with these characters.
    IdPrefix,
}

impl std::fmt::Display for HandleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandleKind::ExternalId => "the external_id of each",
            HandleKind::ShortId => "the short id of each",
            HandleKind::IdPrefix => "the start of each id",
        })
    }
}

/// What every damage message ends with.
pub const RECOVER_HINT: &str = "stop the daemon and run `icsync recover`";

impl StoreError {
    /// The store's files are damaged (a read failed or sled panicked on them).
    pub fn is_damaged(&self) -> bool {
        match self {
            StoreError::Damaged { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Open { source, .. } => matches!(source, sled::Error::Corruption { .. }),
            _ => false,
        }
    }

    /// A write failed for lack of space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull => true,
            StoreError::Open { source, .. } | StoreError::Database(source) => {
                matches!(source, sled::Error::Io(io) if is_enospc(io))
            }
            StoreError::CreateDir { source, .. } | StoreError::Permissions { source, .. } => {
                is_enospc(source)
            }
            _ => false,
        }
    }
}

pub fn is_enospc(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { .. } => StoreError::Damaged {
                detail: sled_message(&e),
            },
            sled::Error::Io(ref io) if is_enospc(io) => StoreError::DiskFull,
            e => StoreError::Database(e),
        }
    }
}

/// sled's error in words: its own Display of corruption is a Debug dump
/// (`Some(Inline(4937735)) backtrace ()`).
pub fn sled_message(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(_), .. } => {
            "the database file holds corrupted or truncated data".into()
        }
        sled::Error::Corruption { at: None, .. } => {
            "the database file's header or snapshot is corrupted or truncated".into()
        }
        sled::Error::Io(io) => format!("i/o error: {io}"),
        sled::Error::CollectionNotFound(_) => "a tree of the database is missing".into(),
        sled::Error::Unsupported(s) => format!("unsupported operation: {s}"),
        sled::Error::ReportableBug(s) => format!("internal database error: {s}"),
        #[allow(unreachable_patterns)]
        _ => "database error".into(),
    }
}

fn list_ids(ids: &[RecordId]) -> String {
    let shown: Vec<String> = ids.iter().map(RecordId::to_string).collect();
    let mut text = shown.join(", ");
    if ids.len() >= super::AMBIGUOUS_CANDIDATES {
        text.push_str(", ...");
    }
    text
}
