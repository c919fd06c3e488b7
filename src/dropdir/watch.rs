//! The watcher loop: notify events (and a scan at start-up and now and then, in case events
//! were missed or overflowed) say which files to look at; the quiet-period bookkeeping says
//! when each is ready; ready files are taken one at a time on the blocking pool. Between
//! events and deadlines the loop sleeps: no polling.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::folder::Folder;
use super::pipeline;
use super::quiet::{Settle, Stamp};
use super::DropError;
use crate::ingest::drop::names::{shown, waits_for_rename};
use crate::ingest::ReadOptions;
use crate::service::Service;

/// The safety-net scan, for events lost to an overflow or a file system that sends none.
const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// How long a file that failed (I/O error, store error) waits before another try.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Paths queued from notify's thread; beyond this a rescan is asked for instead.
const EVENT_QUEUE: usize = 4096;

/// How a path showed up in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Renamed to this name: whoever wrote it finished before renaming (how browsers, rsync,
    /// curl and export jobs complete a file), so it need not wait out the quiet period.
    Renamed,
    /// Created or written: it may still be growing.
    Changed,
}

/// The path a rename event names as its destination: the only path of a `To` event (moved in
/// from elsewhere), the second of a `Both` event (renamed within the folder).
fn renamed_to(event: &notify::Event) -> Option<PathBuf> {
    use notify::event::{EventKind, ModifyKind, RenameMode};
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.first().cloned(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1).cloned(),
        _ => None,
    }
}

/// How `path` looks, if it is a regular file directly in the folder that is not waiting for a
/// rename. Symlinks and folders are never drops.
fn look(root: &Path, path: &Path) -> Option<Stamp> {
    if path.parent() != Some(root) {
        return None;
    }
    let name = path.file_name()?.to_string_lossy();
    if waits_for_rename(&name) {
        return None;
    }
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_file().then(|| Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

fn scan(root: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(root) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            tracing::warn!(folder = %root.display(), error = %e, "cannot list the drop folder");
            Vec::new()
        }
    }
}

/// Watches `root` until `shutdown`, taking each whole file into the store through `service`.
/// A file being ingested when `shutdown` comes stops after its current batch (its progress is
/// saved and the next start resumes it). A folder other users can write to is refused
/// ([`DropError::Shared`]) unless `shared` (the config's `drop_dir_shared`). Processed files
/// are removed unless `keep_processed`.
pub async fn watch(
    root: PathBuf,
    quiet: Duration,
    shared: bool,
    keep_processed: bool,
    options: Arc<ReadOptions>,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DropError> {
    super::folder::check_not_shared(&root, shared)?;
    let folder = Folder::prepare(&root, keep_processed).map_err(DropError::io(&root))?;
    let (tx, mut rx) = mpsc::channel::<(PathBuf, Arrival)>(EVENT_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let flag = overflow.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                let renamed_to = renamed_to(&event);
                for path in event.paths {
                    let arrival = if renamed_to.as_ref() == Some(&path) {
                        Arrival::Renamed
                    } else {
                        Arrival::Changed
                    };
                    if tx.try_send((path, arrival)).is_err() {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(_) => flag.store(true, Ordering::Relaxed),
        })
        .map_err(|source| DropError::Watch {
            path: root.clone(),
            source,
        })?;
    watcher
        .watch(&root, RecursiveMode::NonRecursive)
        .map_err(|source| DropError::Watch {
            path: root.clone(),
            source,
        })?;
    tracing::info!(folder = %root.display(), quiet_ms = quiet.as_millis() as u64, "watching the drop folder");

    let mut settle = Settle::new(quiet);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut rescan_at = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        if now >= rescan_at || overflow.swap(false, Ordering::Relaxed) {
            for path in scan(&root) {
                settle.saw(&path, look(&root, &path), now.into_std());
            }
            rescan_at = now + RESCAN_EVERY;
        }
        for path in settle.due(now.into_std()) {
            if !settle.ready(&path, look(&root, &path), Instant::now().into_std()) {
                continue;
            }
            let job = {
                let (folder, options, service, path, cancel) = (
                    folder.clone(),
                    options.clone(),
                    service.clone(),
                    path.clone(),
                    cancel.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    pipeline::process(&folder, &options, &service, &path, &cancel)
                })
            };
            tokio::pin!(job);
            let result = tokio::select! {
                r = &mut job => r,
                _ = &mut shutdown => {
                    cancel.store(true, Ordering::Relaxed);
                    let _ = job.await;
                    return Ok(());
                }
            };
            let file = shown(&path.to_string_lossy()).into_owned();
            match result {
                Ok(Ok(_)) => settle.forget(&path),
                Ok(Err(DropError::StillWritten)) => {
                    // A writer paused mid-file: look again after another quiet period.
                    tracing::debug!(file = %file, "drop-folder file still open for writing; waiting");
                    settle.defer(&path, (Instant::now() + quiet).into_std());
                }
                Ok(Err(e @ DropError::Changed(_))) => {
                    tracing::warn!(file = %file, error = %e, "drop-folder file not taken; will retry");
                    settle.defer(&path, (Instant::now() + quiet).into_std());
                }
                Ok(Err(e)) => {
                    tracing::warn!(file = %file, error = %e, "drop-folder file not taken; will retry");
                    settle.defer(&path, (Instant::now() + RETRY_AFTER).into_std());
                }
                Err(e) => {
                    tracing::error!(file = %file, error = %e, "drop-folder worker failed");
                    settle.defer(&path, (Instant::now() + RETRY_AFTER).into_std());
                }
            }
        }
        // The files taken have left their new records' index terms pending (see
        // `store::pending`): they go into the term trees now, between files, not while a
        // file is being queued.
        if service.store().pending_records() > 0 {
            let store = service.store().clone();
            match tokio::task::spawn_blocking(move || store.fold_pending()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "indexing new records failed; will retry"),
                Err(e) => tracing::error!(error = %e, "indexing new records failed"),
            }
        }
        let wake = settle
            .next_wake()
            .map(Instant::from_std)
            .map_or(rescan_at, |w| w.min(rescan_at));
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep_until(wake) => {}
            event = rx.recv() => {
                let now = Instant::now().into_std();
                let mut next = event;
                // Take every event already queued before looking at deadlines again.
                while let Some((path, arrival)) = next {
                    match arrival {
                        Arrival::Renamed => settle.saw_complete(&path, look(&root, &path), now),
                        Arrival::Changed => settle.saw(&path, look(&root, &path), now),
                    }
                    next = rx.try_recv().ok();
                }
            }
        }
    }
}
