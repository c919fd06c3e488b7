//! The CLI's commands: argument types, the way each reaches the records (the running daemon's
//! socket, or the store directly when no daemon runs), and output. `main.rs` only dispatches.

pub mod commands;
pub mod demo;
pub mod error;
pub mod export;
pub mod fields;
pub mod import;
pub mod interactive;
pub mod keys;
pub mod output;
pub mod recover;
pub mod refused;

use std::path::PathBuf;

use crate::config::Settings;
use crate::control::{Client, ClientError, ControlError, Reply, Request};
use crate::crypto::KeySourceKind;
use crate::service::{Service, ServiceError};
use crate::store::{Store, StoreError, StoreOptions};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store could not be opened or used directly (no daemon answered). What to do
    /// depends on the cause: `cli::error` gives the hint.
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: PathBuf, source: StoreError },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{}", control_message(.0))]
    Control(ControlError),
    #[error("the local request failed: {0}")]
    Join(String),
    /// A keyring or key source error; `cli::error` gives the hint.
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    #[error("{0}")]
    Usage(String),
}

/// Where a command's requests go.
pub enum Backend {
    /// A running daemon, over its control socket.
    Daemon(Client),
    /// No daemon: this process opened the store itself.
    Local(Service),
}

impl Backend {
    /// The daemon if one answers, else the store directly. A store held by another process
    /// whose socket does not answer yet is a daemon starting up (or stopping): it is asked
    /// again until [`DAEMON_SETTLE`] has passed.
    pub async fn connect(settings: &Settings) -> Result<Backend, CliError> {
        let deadline = tokio::time::Instant::now() + DAEMON_SETTLE;
        loop {
            match Client::connect(&settings.socket_path()).await {
                Ok(client) => {
                    if let Some(warning) = client.other_release() {
                        eprintln!("warning: {warning}");
                    }
                    return Ok(Backend::Daemon(client));
                }
                Err(ClientError::NotRunning(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let drop_dir = settings.drop_dir.clone();
            let settings = settings.clone();
            let opened = tokio::task::spawn_blocking(move || open_store(&settings))
                .await
                .map_err(|e| CliError::Join(e.to_string()))?;
            match opened {
                Ok(store) => {
                    // With the drop folder, so `purge` erases its refused rows too.
                    let service = Service::new(store, None).with_drop_dir(&drop_dir);
                    return Ok(Backend::Local(service));
                }
                Err(CliError::Store {
                    source: StoreError::Locked { .. },
                    ..
                }) if tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn is_daemon(&self) -> bool {
        matches!(self, Backend::Daemon(_))
    }

    /// Finishes what bulk writes leave for later: with no daemon, the index terms an import
    /// left pending (`store::pending`) are folded now, while the person waits for the
    /// import, not at the next command's start. A daemon folds them itself once an import's
    /// requests stop.
    pub async fn settle(&self) -> Result<(), CliError> {
        if let Backend::Local(service) = self {
            let store = service.store().clone();
            tokio::task::spawn_blocking(move || store.fold_pending())
                .await
                .map_err(|e| CliError::Join(e.to_string()))?
                .map_err(ServiceError::from)?;
        }
        Ok(())
    }

    /// Sends a request; an error reply becomes an `Err`.
    pub async fn call(&mut self, request: Request) -> Result<Reply, CliError> {
        let reply = match self {
            Backend::Daemon(client) => client.request(request).await?,
            Backend::Local(service) => {
                let service = service.clone();
                tokio::task::spawn_blocking(move || service.answer(request))
                    .await
                    .map_err(|e| CliError::Join(e.to_string()))?
            }
        };
        match reply {
            Reply::Error(e) => Err(CliError::Control(e)),
            other => Ok(other),
        }
    }
}

/// How long a command waits for a daemon that holds the store but does not answer yet.
const DAEMON_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the store for a command run without a daemon. A passphrase store stays locked here:
/// counts work, record commands answer "locked" (unlocking is the daemon's job).
fn open_store(settings: &Settings) -> Result<Store, CliError> {
    let dir = settings.store_dir();
    Store::open_locked(
        &dir,
        StoreOptions {
            cache_capacity_bytes: settings.cache_capacity_bytes,
        },
    )
    .and_then(|store| {
        if store.key_source(&settings.keys)? != KeySourceKind::Passphrase {
            store.unlock(&settings.keys, None)?;
        }
        Ok(store)
    })
    .map_err(|source| CliError::Store {
        dir: settings.data_dir.clone(),
        source,
    })
}

/// A control error with the contract's field errors, one per line.
fn control_message(e: &ControlError) -> String {
    let mut text = e.message.clone();
    for f in &e.invalid {
        text.push_str(&format!("\n  {}: {}", f.field, f.message));
    }
    text
}
