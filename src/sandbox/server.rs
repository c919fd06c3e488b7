//! The sandbox's own accept loop and lifecycle: serving each connection with hyper, closing a
//! connection with no response when the drop fault fires, the state writer, and graceful
//! shutdown (stop accepting, let in-flight requests finish for a short grace period, save the
//! state).
//!
//! With `--state`, a successful answer is held back until the state writer has synced every
//! change made so far to the journal (group commit: one sync serves every request waiting),
//! so kill -9 never loses a customer the sandbox acknowledged. The writer folds the journal
//! into a new snapshot when it grows large, at start and at shutdown.
//!
//! The loop is ours rather than `axum::serve` because the drop fault needs to abandon one
//! connection mid-request: each connection gets a [`ConnectionDrop`] handle as a request
//! extension, and its task stops serving (dropping the socket unanswered) once a handler
//! triggers it. The entry point takes its listener and a shutdown future, so tests can run it
//! on port 0 and stop it without signals.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::config::{ConfigError, SandboxConfig};
use super::persist::{self, Journal, PersistError, JOURNAL_COMPACT_BYTES};
use super::state::{RestoreError, Sandbox};
use super::wire::JsonErrors;
use super::{http, routes};
use crate::contract::ApiError;

/// How soon a failed state write is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the sandbox cannot start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] PersistError),
    #[error("sandbox state file {path} does not fit together ({source}); fix it or delete it")]
    Restore { path: PathBuf, source: RestoreError },
    #[error("cannot encode the sandbox state: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the state writer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Closes the current connection without answering. Cloned into every request of a
/// connection as an extension.
#[derive(Debug, Clone, Default)]
pub struct ConnectionDrop(Arc<Notify>);

impl ConnectionDrop {
    /// Tells the connection task to drop the socket, then waits forever: the task drops this
    /// request's future along with the connection, so no response is ever written.
    pub async fn close_without_response(self) -> Response {
        // notify_one keeps a permit if the task is not waiting yet, so the signal is never lost.
        self.0.notify_one();
        std::future::pending().await
    }

    async fn triggered(&self) {
        self.0.notified().await
    }
}

/// A sandbox ready to serve: configuration checked and state file loaded.
pub struct SandboxServer {
    sandbox: Arc<Sandbox>,
    state_file: Option<PathBuf>,
}

impl SandboxServer {
    /// Loads the state file (if any) and builds the shared state. Separate from
    /// [`run`](Self::run) so the CLI can refuse a corrupt state file before it says it listens.
    pub fn open(config: SandboxConfig) -> Result<Self, SandboxError> {
        let restored = match &config.state_file {
            Some(path) => persist::replay(persist::load(path)?, persist::load_journal(path)?),
            None => None,
        };
        let sandbox = Sandbox::new(&config, restored).map_err(|source| SandboxError::Restore {
            path: config.state_file.clone().unwrap_or_default(),
            source,
        })?;
        Ok(SandboxServer {
            sandbox: Arc::new(sandbox),
            state_file: config.state_file,
        })
    }

    /// Serves `listener` until `shutdown` completes, then drains and saves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SandboxError> {
        let app = routes::router(Arc::clone(&self.sandbox));
        let (stop_tx, stop_rx) = watch::channel(false);
        // The writer stops only after the last request is answered: draining requests still
        // wait for it.
        let (writer_stop_tx, writer_stop_rx) = watch::channel(false);
        let (writer, durability) = match &self.state_file {
            Some(path) => {
                let journal = Journal::open(path)?;
                let (durable_tx, durable_rx) = watch::channel(Durable::default());
                let wake = Arc::new(Notify::new());
                let writer = tokio::spawn(write_state(
                    Arc::clone(&self.sandbox),
                    path.clone(),
                    journal,
                    Arc::clone(&wake),
                    durable_tx,
                    writer_stop_rx,
                ));
                let durability = Durability {
                    sandbox: Arc::clone(&self.sandbox),
                    wake,
                    durable: durable_rx,
                };
                (Some(writer), Some(durability))
            }
            None => (None, None),
        };

        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(
                            stream,
                            app.clone(),
                            durability.clone(),
                            stop_rx.clone(),
                        ));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still running after the grace period were abandoned");
            connections.shutdown().await;
        }
        let _ = writer_stop_tx.send(true);
        if let Some(writer) = writer {
            writer.await??;
        }
        Ok(())
    }
}

/// Serves `listener` with `config` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SandboxError> {
    SandboxServer::open(config)?.run(listener, shutdown).await
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    durability: Option<Durability>,
    mut stop: watch::Receiver<bool>,
) {
    let drop = ConnectionDrop::default();
    let handle = drop.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let (app, durability) = (app.clone(), durability.clone());
        async move {
            let response = app.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(match durability {
                Some(durability) if response.status().is_success() => {
                    durability.settle(response).await
                }
                _ => response,
            })
        }
    });
    let connection =
        http1::Builder::new().serve_connection(TokioIo::new(JsonErrors::new(stream)), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended with an error: {e}");
                }
                return;
            }
            // Returning drops the connection and its socket with the request unanswered.
            () = drop.triggered() => return,
            _ = stop.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// How far the journal is synced, as the state writer last reported.
#[derive(Debug, Clone, Copy, Default)]
struct Durable {
    /// Every change up to this generation is on disk.
    generation: u64,
    /// The last write failed (the next one retries with a whole snapshot).
    failing: bool,
}

/// What a connection needs to hold a success back until it is durable.
#[derive(Debug, Clone)]
struct Durability {
    sandbox: Arc<Sandbox>,
    wake: Arc<Notify>,
    durable: watch::Receiver<Durable>,
}

impl Durability {
    /// `response` once every change made so far is synced; a 503 instead when the state
    /// file cannot be written (the change stays in memory: a retry with the same
    /// Idempotency-Key replays it, and is answered once it is durable).
    async fn settle(mut self, response: Response) -> Response {
        let target = self.sandbox.generation();
        self.wake.notify_one();
        let reached = self
            .durable
            .wait_for(|d| d.generation >= target || d.failing)
            .await
            .map(|d| d.generation >= target);
        match reached {
            Ok(true) => response,
            _ => http::error(ApiError::Unavailable {
                message: "the sandbox cannot write its state file; retry later".to_string(),
            }),
        }
    }
}

/// The state writer: appends each wave of changes to the journal and syncs it, then reports
/// the generation reached; folds the journal into a new snapshot at start, when it passes
/// [`JOURNAL_COMPACT_BYTES`] or after a failed write, and once more when stopped.
async fn write_state(
    sandbox: Arc<Sandbox>,
    path: PathBuf,
    journal: Journal,
    wake: Arc<Notify>,
    durable: watch::Sender<Durable>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SandboxError> {
    let journal = Arc::new(std::sync::Mutex::new(journal));
    // What the previous run journaled is in memory now: one snapshot holds it all.
    let mut snapshot_due = true;
    loop {
        let written = if snapshot_due {
            compact(&sandbox, &path, &journal).await
        } else {
            append(&sandbox, &journal).await
        };
        match written {
            Ok((generation, journal_len)) => {
                snapshot_due = journal_len > JOURNAL_COMPACT_BYTES;
                durable.send_replace(Durable {
                    generation,
                    failing: false,
                });
            }
            Err(e) => {
                tracing::warn!("{e}");
                snapshot_due = true;
                durable.send_modify(|d| d.failing = true);
            }
        }
        if *stop.borrow() {
            compact(&sandbox, &path, &journal).await?;
            // The snapshot holds everything: a stopped sandbox leaves one file.
            return std::fs::remove_file(persist::journal_path(&path)).map_err(|source| {
                SandboxError::State(PersistError::Write {
                    path: persist::journal_path(&path),
                    source,
                })
            });
        }
        tokio::select! {
            () = wake.notified() => {}
            _ = stop.changed() => {}
            // A failed write is retried without waiting for the next request.
            () = tokio::time::sleep(RETRY_AFTER_FAILURE), if snapshot_due => {}
        }
    }
}

type SharedJournal = Arc<std::sync::Mutex<Journal>>;

/// Appends the changes made since the last write and syncs them; returns the generation
/// reached and the journal's length.
async fn append(sandbox: &Sandbox, journal: &SharedJournal) -> Result<(u64, u64), SandboxError> {
    let (generation, changes) = sandbox.take_changes();
    if changes.is_empty() {
        return Ok((generation, 0));
    }
    let journal = Arc::clone(journal);
    tokio::task::spawn_blocking(move || {
        let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
        Ok((generation, journal.append(&changes)?))
    })
    .await?
}

/// Writes the whole state as a new snapshot, then empties the journal; returns the
/// generation the snapshot holds (and the journal's length, 0).
async fn compact(
    sandbox: &Sandbox,
    path: &Path,
    journal: &SharedJournal,
) -> Result<(u64, u64), SandboxError> {
    let (generation, state) = sandbox.snapshot();
    let (path, journal) = (path.to_path_buf(), Arc::clone(journal));
    tokio::task::spawn_blocking(move || {
        let bytes = serde_json::to_vec_pretty(&state)?;
        persist::write_atomic(&path, &bytes)?;
        // A crash here leaves lines the snapshot already holds; they are skipped on load.
        let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
        journal.clear()?;
        Ok((generation, 0))
    })
    .await?
}
