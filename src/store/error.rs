//! The store's error type. Messages name the store's files, record ids and tree names, never
//! a customer field: a payload, email or external_id must not reach a log through an error.

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
    #[error("cannot open the store in {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store database error: {0}")]
    Database(#[from] sled::Error),
    #[error("corrupt {what} in the store: {detail} (run `icsync doctor`)")]
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
}

fn list_ids(ids: &[RecordId]) -> String {
    let shown: Vec<String> = ids.iter().map(RecordId::to_string).collect();
    let mut text = shown.join(", ");
    if ids.len() >= super::AMBIGUOUS_CANDIDATES {
        text.push_str(", ...");
    }
    text
}
