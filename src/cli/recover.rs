//! `icsync recover`: rebuilds a damaged store from what can still be read, in the manner of
//! `sqlite3 .recover`. With the daemon stopped (its lock is taken for the whole run), every
//! readable record is copied with its history into a fresh store beside the old one (see
//! `store::salvage`), the damaged store is kept aside as `store.damaged-<time>`, and the fresh
//! one takes its place. The output says how many records came back and how many are lost
//! (lost: the largest count of records the damaged store is known to have held, from its
//! floor file, its counters and the record ids in its log, minus those recovered). This works
//! when sled cannot open the damaged database at all: its files are then read directly.
//!
//! Records keep their ids and revisions, so their Idempotency-Keys are unchanged: one the
//! server already has is replayed there, never created twice.

use std::path::{Path, PathBuf};

use clap::Args;

use super::keys::read_passphrase;
use super::CliError;
use crate::config::Settings;
use crate::crypto::{KeySourceKind, Keyring};
use crate::daemon::DaemonLock;
use crate::store::{SalvageReport, Store, StoreOptions};

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Read the store's passphrase from this open file descriptor (passphrase stores).
    #[arg(long, value_name = "FD")]
    pub passphrase_fd: Option<u32>,
}

/// What `recover` did.
#[derive(Debug)]
pub struct Recovered {
    pub report: SalvageReport,
    /// Where the damaged store was moved.
    pub kept: PathBuf,
}

/// The summary lines `recover` prints.
pub fn summary(r: &Recovered) -> String {
    let s = &r.report;
    let mut out = format!("recovered {} records, lost {}", s.recovered, s.lost());
    match s.expected {
        Some(n) => out.push_str(&format!(" (the damaged store counted {n})")),
        None => out.push_str(" (the damaged store's counts were unreadable: more may be lost)"),
    }
    out.push('\n');
    if s.unreadable > 0 {
        out.push_str(&format!(
            "{} stored records failed to read or authenticate\n",
            s.unreadable
        ));
    }
    if s.skipped_reads > 0 {
        out.push_str(&format!(
            "{} damaged parts of the database were skipped\n",
            s.skipped_reads
        ));
    }
    if let Some(raw) = &s.raw {
        out.push_str(&format!(
            "read directly from the database files: {} records authenticated, {} record ids \
             seen, {} intact log messages, {} damaged stretches\n",
            raw.authenticated, raw.known_ids, raw.intact_messages, raw.damaged_messages
        ));
    }
    if let Some(e) = &s.raw_error {
        out.push_str(&format!(
            "the database files could not be read directly: {e}\n"
        ));
    }
    if let Some(e) = &s.open_error {
        out.push_str(&format!(
            "the database engine could not open the damaged store ({e}); the records above \
             were read without it\n"
        ));
    }
    out.push_str(&format!(
        "ledger entries copied: {}, drop-folder entries copied: {}\n",
        s.ledger_copied, s.drops_copied
    ));
    out.push_str(&format!(
        "the damaged store is kept in {}; start the daemon to sync the recovered records\n",
        r.kept.display()
    ));
    out
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> CliError {
    let text = format!("cannot {what} {}", path.display());
    move |e| CliError::Usage(format!("{text}: {e}"))
}

pub fn recover(settings: &Settings, args: RecoverArgs) -> Result<Recovered, CliError> {
    let data_dir = &settings.data_dir;
    let store_dir = settings.store_dir();
    if !store_dir.exists() {
        return Err(CliError::Usage(format!(
            "no store in {}: nothing to recover",
            data_dir.display()
        )));
    }
    let _lock = DaemonLock::acquire(data_dir).map_err(|e| CliError::Usage(e.to_string()))?;
    let keyring = Keyring::path_in(&store_dir);
    if !keyring.exists() {
        return Err(CliError::Usage(format!(
            "the store's keyring {} is missing: restore it from a backup first (records are \
             encrypted with its key)",
            keyring.display()
        )));
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let fresh = data_dir.join(format!("store.recovering-{stamp}"));
    let kept = data_dir.join(format!("store.damaged-{stamp}"));
    crate::daemon::create_private_dir(&fresh).map_err(|e| CliError::Usage(e.to_string()))?;
    let options = StoreOptions {
        cache_capacity_bytes: settings.cache_capacity_bytes,
    };
    let store = Store::open_locked(&fresh, options).map_err(|source| CliError::Store {
        dir: fresh.clone(),
        source,
    })?;
    // The keyring comes after the first open: a keyring beside a database that never held
    // anything is how a truncated store looks.
    let fresh_keyring = Keyring::path_in(&fresh);
    std::fs::copy(&keyring, &fresh_keyring).map_err(io_err("copy", &keyring))?;
    let source = store
        .key_source(&settings.keys)
        .map_err(|source| CliError::Store {
            dir: fresh.clone(),
            source,
        })?;
    let passphrase = match source {
        KeySourceKind::Passphrase => Some(read_passphrase(
            args.passphrase_fd,
            "passphrase of the damaged store: ",
        )?),
        KeySourceKind::File | KeySourceKind::Keychain => None,
    };
    store
        .unlock(&settings.keys, passphrase.as_ref())
        .map_err(|source| CliError::Store {
            dir: fresh.clone(),
            source,
        })?;
    let report = store
        .salvage_from(&store_dir)
        .map_err(|source| CliError::Store {
            dir: fresh.clone(),
            source,
        })?;
    drop(store);
    std::fs::rename(&store_dir, &kept).map_err(io_err("move aside", &store_dir))?;
    std::fs::rename(&fresh, &store_dir).map_err(io_err("move into place", &fresh))?;
    tracing::info!(
        recovered = report.recovered,
        lost = report.lost(),
        kept = %kept.display(),
        "store recovered"
    );
    Ok(Recovered { report, kept })
}
