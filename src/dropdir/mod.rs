//! The drop folder: the daemon watches it and turns each whole file dropped there into queued
//! records, removing the file once its records are durable in the store (or archiving it in
//! `processed/` with `keep_processed`) and explaining every bad record (or a file that cannot
//! be read at all) in `rejected/`, which retention erases (`erase`). It owns the folder's
//! layout and the order of steps that makes a file's ingestion survive kill -9 (see
//! `pipeline`); parsing and the rejection report's format belong to `ingest`, the records and
//! file progress to `store` (reached through `service`). Its default place, outside the data
//! dir, is `config`'s; `legacy` finds files left in an older release's default.

mod dispose;
pub mod erase;
mod folder;
pub mod legacy;
mod mark;
mod pipeline;
mod quiet;
mod taken;
mod watch;

use std::path::{Path, PathBuf};

pub use folder::{check_not_shared, Folder, PROCESSED_DIR, REJECTED_DIR, WORK_DIR};
pub use mark::{ABORT_AFTER_MARK_ENV, MAX_STARTS};
pub use pipeline::process;
pub use quiet::{Settle, Stamp};
pub use watch::watch;

/// Checks the folder and creates its layout, as [`watch`] does first; the daemon calls it
/// before it answers, so a script that starts the daemon and then drops a file finds the
/// folder there. Errors are [`watch`]'s to report.
pub fn prepare(root: &Path, shared: bool, keep_processed: bool) -> Result<(), DropError> {
    folder::check_not_shared(root, shared)?;
    Folder::prepare(root, keep_processed).map_err(DropError::io(root))?;
    Ok(())
}

use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("drop folder: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0} (the file changed while it was being read; it is read again once it settles)")]
    Changed(String),
    #[error("some process still has the file open for writing; it is taken once it is closed")]
    StillWritten,
    #[error("the drop folder {path} is not watched: {why}, and their files would be sent with your API key (make it private with `chmod go-w` and own it, or set drop_dir_shared = true in icsync.toml if it is shared on purpose)")]
    Shared { path: PathBuf, why: String },
    #[error("cannot watch the drop folder {path}: {source} (set drop_dir in icsync.toml or ICSYNC_DROP_DIR)")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

impl DropError {
    pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> DropError + '_ {
        move |source| DropError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
