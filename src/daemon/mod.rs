//! `icsync daemon`: wires the store, the sync engine, the drop-folder watcher and the control
//! socket together, and owns the process-level concerns: one daemon per data dir, a private
//! data dir, the API key's lifecycle, and an orderly stop. It holds no sync or record logic of its own.

pub mod lock;
pub mod logging;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{ApiClient, ApiClientError, ApiKey, ApiTimeouts, InsecureHttp};
use crate::config::{ConfigError, Settings};
use crate::control::{self, BindError, Event, StatusReport};
use crate::service::{ControlHandler, Service, SyncHealth, SyncLink};
use crate::store::{Store, StoreError, StoreOptions};
use crate::sync::{Engine, EngineConfig, EngineError, EngineEvent, EngineHandle};

pub use lock::{DaemonLock, LockError};

/// How often the key source is re-read, so a fixed key file lifts a 401 pause by itself.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] ApiClientError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The engine as the service sees it.
struct EngineLink(EngineHandle);

impl SyncLink for EngineLink {
    fn health(&self) -> SyncHealth {
        let s = self.0.status();
        let paused = s.paused.clone().or_else(|| {
            s.rate_limited_until
                .filter(|t| *t > chrono::Utc::now())
                .map(|t| format!("rate limited by the API until {}", t.format("%H:%M:%S UTC")))
        });
        SyncHealth {
            online: s.online,
            paused,
            last_sync_at: s.last_sync_at,
        }
    }

    fn wake(&self) {
        self.0.wake();
    }
}

pub fn create_private_dir(path: &Path) -> Result<(), DaemonError> {
    let err = |source| DaemonError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Why sending waits when no usable key is configured.
const NO_KEY: &str = "no API key configured: set ICSYNC_API_KEY or api_key_file in icsync.toml";

fn read_key(settings: &Settings) -> Result<Option<ApiKey>, ConfigError> {
    Ok(settings.read_api_key()?.and_then(|k| ApiKey::new(k).ok()))
}

/// Runs the daemon until `shutdown` completes, then drains the engine within the configured
/// deadline, flushes the store and removes the socket.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    create_private_dir(&settings.data_dir)?;
    let _lock = DaemonLock::acquire(&settings.data_dir)?;
    let store = Store::open(
        &settings.store_dir(),
        StoreOptions {
            cache_capacity_bytes: settings.cache_capacity_bytes,
        },
    )?;

    // A key source that cannot be used (a key file others can read, a missing file) does not
    // stop the daemon: records still queue, the reason is shown as the pause in `status`, and
    // the key watcher resumes sending once the file is fixed, without a restart. The reason
    // names the file and its mode, never the key.
    let (key, key_problem) = match read_key(&settings) {
        Ok(k) => (k, None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the API key; sending waits until it is fixed");
            eprintln!("icsync daemon: {e}; sending is paused until it is fixed");
            (
                None,
                Some(format!("{e}; sending is paused until it is fixed")),
            )
        }
    };
    let client = ApiClient::new(
        &settings.api_url,
        key.clone()
            .unwrap_or_else(|| ApiKey::new("unset").expect("a literal key is valid")),
        ApiTimeouts {
            connect: settings.connect_timeout,
            request: settings.request_timeout,
        },
        if settings.allow_insecure_http {
            InsecureHttp::Allow
        } else {
            InsecureHttp::Refuse
        },
    )?;
    let mut engine = Engine::new(
        store.clone(),
        client,
        EngineConfig {
            concurrency: settings.concurrency,
            backoff_base: settings.backoff_base,
            backoff_cap: settings.backoff_cap,
            drain_deadline: settings.drain_timeout,
            ..EngineConfig::default()
        },
    );
    if key.is_none() {
        engine = engine.paused_until_key(key_problem.unwrap_or_else(|| NO_KEY.to_string()));
    }
    let handle = engine.handle();
    let service = Arc::new(Service::new(
        store.clone(),
        Some(Arc::new(EngineLink(handle.clone()))),
    ));

    let socket = settings.socket_path();
    let listener = control::bind(&socket).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(control::serve(
        listener,
        Arc::new(ControlHandler(service.clone())),
        stopped(stop_rx.clone()),
    ));
    let forwarder = tokio::spawn(forward_events(
        handle.clone(),
        service.clone(),
        stopped(stop_rx.clone()),
    ));
    let drops = tokio::spawn({
        let (dir, quiet, service) = (
            settings.drop_dir.clone(),
            settings.drop_quiet,
            service.clone(),
        );
        let stop = stopped(stop_rx.clone());
        async move {
            // The daemon still syncs without a drop folder; the reason is in the log.
            if let Err(e) = crate::dropdir::watch(dir, quiet, service, stop).await {
                tracing::error!(error = %e, "the drop folder is not watched");
            }
        }
    });
    let key_watch = tokio::spawn(watch_key(
        settings.clone(),
        key,
        handle.clone(),
        stopped(stop_rx),
    ));
    tracing::info!(
        api = %settings.api_url,
        data_dir = %settings.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "daemon started"
    );

    let result = engine.run(shutdown).await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(server, forwarder, key_watch, drops);
    store.flush()?;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("daemon stopped");
    result.map_err(Into::into)
}

/// Engine events become control events for subscribers (the TUI).
async fn forward_events(
    handle: EngineHandle,
    service: Arc<Service>,
    stop: impl Future<Output = ()>,
) {
    let mut events = handle.subscribe();
    let sender = service.event_sender();
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => return,
            e = events.recv() => e,
        };
        match event {
            Ok(EngineEvent::RecordChanged { id, state }) => {
                let _ = sender.send(Event::RecordChanged { id, state });
            }
            Ok(EngineEvent::StatusChanged(_)) => {
                let service = service.clone();
                let report = tokio::task::spawn_blocking(move || service.status())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_else(StatusReport::default);
                let _ = sender.send(Event::Status(report));
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Re-reads the key source now and then; a changed key is handed to the engine, which lifts a
/// 401 or no-key pause.
async fn watch_key(
    settings: Settings,
    mut current: Option<ApiKey>,
    handle: EngineHandle,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let settings = settings.clone();
        let read = tokio::task::spawn_blocking(move || read_key(&settings)).await;
        if let Ok(Ok(Some(key))) = read {
            if current.as_ref() != Some(&key) {
                tracing::info!(key = %key, "API key changed; sending resumes");
                handle.set_api_key(key.clone());
                current = Some(key);
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
