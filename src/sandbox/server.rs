//! The sandbox's own accept loop and lifecycle: serving each connection with hyper, closing a
//! connection with no response when the drop fault fires, the background state saver, and
//! graceful shutdown (stop accepting, let in-flight requests finish for a short grace period,
//! save the state).
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
use super::persist::{self, PersistError};
use super::routes;
use super::state::{RestoreError, Sandbox};

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The state file is rewritten at most this often while requests change it.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

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
            Some(path) => persist::load(path)?,
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
        let saver = self.state_file.clone().map(|path| {
            tokio::spawn(save_periodically(
                Arc::clone(&self.sandbox),
                path,
                stop_rx.clone(),
            ))
        });

        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve_connection(stream, app.clone(), stop_rx.clone()));
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
        if let Some(saver) = saver {
            saver.await?;
        }
        if let Some(path) = &self.state_file {
            save(&self.sandbox, path).await?;
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

async fn serve_connection(stream: TcpStream, app: Router, mut stop: watch::Receiver<bool>) {
    let drop = ConnectionDrop::default();
    let handle = drop.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        app.clone().oneshot(request)
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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

/// Writes the state file about once a second while something changes.
async fn save_periodically(sandbox: Arc<Sandbox>, path: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut saved = sandbox.generation();
    let mut tick = tokio::time::interval(SAVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if sandbox.generation() == saved {
            continue;
        }
        match save(&sandbox, &path).await {
            Ok(generation) => saved = generation,
            // Keep serving; the next change retries and shutdown reports a lasting failure.
            Err(e) => tracing::warn!("{e}"),
        }
    }
}

/// Writes the current state atomically; returns the generation written.
async fn save(sandbox: &Sandbox, path: &Path) -> Result<u64, SandboxError> {
    let (generation, state) = sandbox.snapshot();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), SandboxError> {
        let bytes = serde_json::to_vec_pretty(&state)?;
        persist::write_atomic(&path, &bytes)?;
        Ok(())
    })
    .await??;
    Ok(generation)
}
