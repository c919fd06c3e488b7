//! `icsync daemon`: wires the store, the sync engine (with its conflict enricher), the
//! drop-folder watcher and the control socket together, and owns the process-level concerns: one daemon per data dir, a private
//! data dir, the API key's lifecycle, and an orderly stop. It holds no sync or record logic of its own.
//!
//! Store faults do not end the daemon (see `front`): the store, engine and watchers run as one
//! *session*; a session ends on a fault, and the control socket, bound for the daemon's whole
//! life, answers for the daemon meanwhile:
//! - disk full (free space on the data dir's filesystem under [`DISK_FULL_BELOW`], polled, or a
//!   write refused with ENOSPC): the session stops, so nothing is taken in or sent; status says
//!   "disk full"; once [`DISK_RESUME_AT`] is free again a new session reopens the store (sled
//!   refuses every write on a handle that once failed, so it must be reopened) and carries on;
//! - damaged store: the session stops and the daemon stays up saying "store damaged" until it
//!   is stopped for `icsync recover`, instead of exiting and being restarted into the same
//!   damage.
//!
//! An error that does end the daemon is written to its log before it exits.

mod front;
pub mod lock;
pub mod logging;
mod pace;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{ApiClient, ApiClientError, ApiKey, ApiTimeouts, InsecureHttp};
use crate::config::{ConfigError, Settings};
use crate::control::{self, BindError, Event, StatusReport};
use crate::crypto::{KeyConfig, KeySourceKind, Passphrase};
use crate::ingest::ReadOptions;
use crate::service::{ControlHandler, KeyControl, Service, ServiceError, SyncHealth, SyncLink};
use crate::store::{Store, StoreError, StoreOptions};
use crate::sync::{Engine, EngineConfig, EngineError, EngineEvent, EngineHandle, EnricherConfig};
use front::{Fault, Front};
use pace::Pace;

pub use lock::{DaemonLock, LockError};

/// How often the key source is re-read, so a fixed key file lifts a 401 pause by itself.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often retention runs (and once when the store is unlocked).
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// How long bulk writes must have stopped before the daemon folds the index terms they left
/// pending (`fold_when_quiet`): longer than the gap between two of an import's requests.
const FOLD_QUIET: Duration = Duration::from_millis(500);
/// Free space on the data dir's filesystem under which the disk counts as full: intake and
/// sending stop before sled's writes fail.
pub const DISK_FULL_BELOW: u64 = 2 << 20;
/// Free space at which a daemon paused for a full disk resumes (above the threshold, so it
/// does not flap).
pub const DISK_RESUME_AT: u64 = 8 << 20;
/// How often free space is polled.
const DISK_POLL: Duration = Duration::from_millis(500);
/// How long a reopen waits after sled's lock was still held by the closing handle.
const REOPEN_RETRY: Duration = Duration::from_millis(500);

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
            api_host: Some(self.0.api_host()),
        }
    }

    fn wake(&self) {
        self.0.wake();
    }

    fn in_flight(&self) -> Option<crate::sync::InFlight> {
        Some(self.0.in_flight())
    }
}

/// `unlock` and `lock` over the control socket. Sending runs only while the store is
/// unlocked: `lock` asks the daemon to stop the engine (draining requests in flight), and
/// returns once the key is gone.
struct DaemonKeys {
    store: Store,
    keys: KeyConfig,
    /// true = the operator wants the store locked.
    want_locked: watch::Sender<bool>,
    /// The daemon's answer: true once the engine stopped and the key was dropped.
    is_locked: watch::Receiver<bool>,
    deadline: Duration,
}

impl KeyControl for DaemonKeys {
    fn unlock(&self, passphrase: &Passphrase) -> Result<(), ServiceError> {
        if self.store.is_locked() {
            self.store.unlock(&self.keys, Some(passphrase))?;
            tracing::info!("store unlocked");
        }
        let _ = self.want_locked.send(false);
        Ok(())
    }

    fn lock(&self) -> Result<(), ServiceError> {
        let _ = self.want_locked.send(true);
        let mut rx = self.is_locked.clone();
        let waited = tokio::runtime::Handle::current().block_on(tokio::time::timeout(
            self.deadline,
            rx.wait_for(|locked| *locked),
        ));
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ServiceError::NotAllowed(
                "the daemon did not stop sending in time; the store is not locked yet".into(),
            )),
        }
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

/// The configured key, or why the one configured cannot be used: a key that is there but
/// malformed is an error (not "no key"), so it is reported as invalid.
fn read_key(settings: &Settings) -> Result<Option<ApiKey>, ConfigError> {
    crate::api::configured_key(settings)
}

/// Runs the daemon until `shutdown` completes, then drains the engine within the configured
/// deadline, flushes the store and removes the socket. An error that ends it is logged first.
/// Says on stdout where it listens once the socket is bound (`icsync daemon`).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    run_as(settings, shutdown, true).await
}

/// [`run`] inside another command's process (the TUI with no daemon running, the demo):
/// the same work, without the banner, which would say a daemon is running on its own.
pub async fn run_in_process(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    run_as(settings, shutdown, false).await
}

async fn run_as(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    banner: bool,
) -> Result<(), DaemonError> {
    let result = run_sessions(settings, shutdown, banner).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "the daemon stopped on an error");
    }
    result
}

/// What `icsync daemon` prints when it has bound its socket.
fn started_banner(settings: &Settings) -> String {
    format!(
        "icsync daemon {version}: listening on {socket}\n  \
         sending to   {api}\n  \
         drop folder  {drop}\n  \
         log          {log}\n\
         Stop it with Ctrl-C; `icsync status` and `icsync tui` talk to it.",
        version = env!("CARGO_PKG_VERSION"),
        socket = settings.socket_path().display(),
        api = crate::config::redact_credentials(&settings.api_url),
        drop = settings.drop_dir.display(),
        log = settings.log_dir().join("icsync.log").display(),
    )
}

/// How a session ended without an error that stops the daemon.
enum Ended {
    Shutdown,
    Fault(Fault),
    /// The store was still held by the previous session's closing handle: try again.
    Retry,
}

async fn run_sessions(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    banner: bool,
) -> Result<(), DaemonError> {
    create_private_dir(&settings.data_dir)?;
    let _lock = DaemonLock::acquire(&settings.data_dir)?;
    // The drop folder is made before the socket answers, so a script that starts the daemon
    // and then drops a file finds it; a folder that cannot be used is reported by the watcher.
    let _ = crate::dropdir::prepare(
        &settings.drop_dir,
        settings.drop_dir_shared,
        settings.keep_processed,
    );
    if let Some((old, files)) = crate::dropdir::legacy::old_default_files(&settings) {
        tracing::warn!(
            "{}",
            crate::dropdir::legacy::describe(&old, files, &settings.drop_dir)
        );
    }
    let socket = settings.socket_path();
    let listener = control::bind(&socket).await?;
    let front = Arc::new(Front::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(control::serve(listener, front.clone(), async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|s| *s).await;
    }));
    // A person starting the daemon by hand sees where everything is (a service's output
    // goes to its journal); problems with the folder or the store follow on stderr.
    if banner {
        println!("{}", started_banner(&settings));
    }
    tokio::pin!(shutdown);
    let mut reopening = false;
    let result = loop {
        let ended = session(&settings, &front, shutdown.as_mut(), reopening).await;
        match ended {
            Ok(Ended::Shutdown) => break Ok(()),
            Ok(Ended::Retry) => {
                tokio::select! {
                    _ = shutdown.as_mut() => break Ok(()),
                    _ = tokio::time::sleep(REOPEN_RETRY) => {}
                }
            }
            Ok(Ended::Fault(fault)) => {
                tracing::error!(error = %fault, "sending and intake stopped");
                front.fault(fault.clone());
                let resumed = match fault {
                    Fault::DiskFull(_) => {
                        wait_for_space(&settings.data_dir, shutdown.as_mut()).await
                    }
                    Fault::Damaged(_) => {
                        shutdown.as_mut().await;
                        false
                    }
                };
                if !resumed {
                    break Ok(());
                }
                tracing::info!("disk space is free again: reopening the store");
            }
            Err(e) => break Err(e),
        }
        reopening = true;
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("daemon stopped");
    result
}

/// Free bytes on the data dir's filesystem; None when it cannot be read (then the disk is
/// not judged full on that account).
fn free_space(data_dir: &Path) -> Option<u64> {
    crate::ops::disk::free_bytes(data_dir).ok()
}

/// Waits until [`DISK_RESUME_AT`] bytes are free (true) or `shutdown` (false).
async fn wait_for_space(
    data_dir: &Path,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    tokio::pin!(shutdown);
    loop {
        if free_space(data_dir).is_none_or(|free| free >= DISK_RESUME_AT) {
            return true;
        }
        tokio::select! {
            _ = shutdown.as_mut() => return false,
            _ = tokio::time::sleep(DISK_POLL) => {}
        }
    }
}

/// Resolves with a disk-full fault once free space falls under [`DISK_FULL_BELOW`].
async fn disk_watch(data_dir: PathBuf) -> Fault {
    loop {
        if let Some(free) = free_space(&data_dir).filter(|f| *f < DISK_FULL_BELOW) {
            return Fault::DiskFull(format!("{} KiB free on the data dir's disk", free / 1024));
        }
        tokio::time::sleep(DISK_POLL).await;
    }
}

/// What a store error that ends a session means: a full disk, damage, or (`Err`) an error
/// that ends the daemon.
fn store_fault(e: StoreError, data_dir: &Path) -> Result<Ended, DaemonError> {
    let low = free_space(data_dir).is_some_and(|f| f < DISK_RESUME_AT);
    if e.is_disk_full() || (low && !e.is_damaged()) {
        Ok(Ended::Fault(Fault::DiskFull(e.to_string())))
    } else if matches!(e, StoreError::Locked { .. }) {
        Ok(Ended::Retry)
    } else if e.is_damaged() || matches!(e, StoreError::Database(_)) {
        Ok(Ended::Fault(Fault::Damaged(e.to_string())))
    } else {
        Err(e.into())
    }
}

/// One session: opens the store, serves it through `front`, and runs the engine and the
/// watchers until `shutdown` or a store fault.
async fn session(
    settings: &Settings,
    front: &Arc<Front>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    reopening: bool,
) -> Result<Ended, DaemonError> {
    if free_space(&settings.data_dir).is_some_and(|f| f < DISK_FULL_BELOW) {
        return Ok(Ended::Fault(disk_watch(settings.data_dir.clone()).await));
    }
    let opened = Store::open_locked(
        &settings.store_dir(),
        StoreOptions {
            cache_capacity_bytes: settings.cache_capacity_bytes,
        },
    );
    let store = match opened {
        Ok(store) => store,
        Err(StoreError::Locked { .. }) if reopening => return Ok(Ended::Retry),
        Err(e) => return store_fault(e, &settings.data_dir),
    };
    // A key file or the keychain opens the store at once; a passphrase waits for `icsync
    // unlock`, and so does a keychain that cannot give the key now (no Secret Service yet,
    // its collection locked, the entry gone): records still queue meanwhile.
    let mut lock_problem = None;
    if store.key_source(&settings.keys)? != KeySourceKind::Passphrase {
        match store.unlock(&settings.keys, None) {
            Ok(()) => {}
            Err(e) if e.is_damaged() || e.is_disk_full() => {
                return store_fault(e, &settings.data_dir)
            }
            Err(StoreError::Key(k)) if k.is_keychain() => {
                tracing::warn!(error = %k, "the store stays locked until `icsync unlock`");
                let problem = format!(
                    "{k}; the store stays locked until `icsync unlock`{}",
                    k.hint()
                        .map(|h| format!(" (hint: {h})"))
                        .unwrap_or_default()
                );
                eprintln!("icsync daemon: {problem}");
                lock_problem = Some(problem);
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        tracing::info!("the store is locked: sending waits for `icsync unlock`");
    }
    release_freed_memory();

    // A key source that cannot be used (a key file others can read, a missing file) does not
    // stop the daemon: records still queue, the reason is shown as the pause in `status`, and
    // the key watcher resumes sending once the file is fixed, without a restart. The reason
    // names the file and its mode, never the key.
    let (key, key_problem) = match read_key(settings) {
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
    let new_engine = |key: &Option<ApiKey>| {
        let engine = Engine::new(
            store.clone(),
            client.clone(),
            EngineConfig {
                concurrency: settings.concurrency,
                backoff_base: settings.backoff_base,
                backoff_cap: settings.backoff_cap,
                drain_deadline: settings.drain_timeout,
                ..EngineConfig::default()
            },
        );
        match key {
            Some(_) => engine,
            None => {
                engine.paused_until_key(key_problem.clone().unwrap_or_else(|| NO_KEY.to_string()))
            }
        }
    };
    let mut engine = Some(new_engine(&key));
    let handle = engine.as_ref().map(Engine::handle).expect("just built");
    let link = Arc::new(SwitchLink(std::sync::Mutex::new(handle.clone())));
    let (want_locked, mut want_locked_rx) = watch::channel(store.is_locked());
    let (is_locked_tx, is_locked) = watch::channel(store.is_locked());
    let service = Arc::new(
        Service::new(store.clone(), Some(link.clone()))
            .with_drop_dir(&settings.drop_dir)
            .with_keys(Arc::new(DaemonKeys {
                store: store.clone(),
                keys: settings.keys.clone(),
                want_locked,
                is_locked,
                deadline: settings.drain_timeout + Duration::from_secs(5),
            })),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    service.set_lock_problem(lock_problem);
    front.serve(ControlHandler(service.clone()));
    // The drop folder is watched for the daemon's whole life; its files wait in the folder
    // while the store is locked (they cannot be sealed without the key).
    // A mapping file that cannot be used leaves the drop folder unwatched rather than
    // reading files with the wrong columns; sending goes on.
    let read_options = match ReadOptions::load(
        settings.mapping.as_deref(),
        settings.default_country.clone(),
    ) {
        Ok(options) => Some(Arc::new(options)),
        Err(e) => {
            tracing::error!(error = %e, "the drop folder is not watched");
            eprintln!("icsync daemon: {e}; the drop folder is not watched until it is fixed");
            service.set_drop_problem(Some(e.to_string()));
            None
        }
    };
    let drops = tokio::spawn({
        let (dir, quiet, shared, keep, read_options, service) = (
            settings.drop_dir.clone(),
            settings.drop_quiet,
            settings.drop_dir_shared,
            settings.keep_processed,
            read_options.clone(),
            service.clone(),
        );
        let stop = stopped(stop_rx.clone());
        async move {
            // The daemon still syncs without a drop folder; the reason is in the log.
            let Some(read_options) = read_options else {
                return;
            };
            let watched = crate::dropdir::watch(
                dir,
                quiet,
                shared,
                keep,
                read_options,
                service.clone(),
                stop,
            );
            if let Err(e) = watched.await {
                tracing::error!(error = %e, "the drop folder is not watched");
                eprintln!("icsync daemon: {e}");
                service.set_drop_problem(Some(e.to_string()));
            }
        }
    });
    tracing::info!(
        api = %crate::config::redact_credentials(&settings.api_url),
        data_dir = %settings.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "daemon started"
    );

    // One engine per unlocked period: locking stops (drains) it and drops the key; unlocking
    // starts a new one on the same store, which re-sends what was left `sending`.
    let disk = disk_watch(settings.data_dir.clone());
    tokio::pin!(disk);
    let mut fault: Option<Fault> = None;
    let mut key = key;
    let result = loop {
        if *want_locked_rx.borrow() {
            let _ = is_locked_tx.send(true);
            tokio::select! {
                _ = shutdown.as_mut() => break Ok(()),
                f = &mut disk => {
                    fault = Some(f);
                    break Ok(());
                }
                _ = want_locked_rx.wait_for(|locked| !*locked) => {}
            }
            let _ = is_locked_tx.send(false);
            let fresh = new_engine(&key);
            *link
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.handle();
            engine = Some(fresh);
        }
        let current = engine.take().unwrap_or_else(|| new_engine(&key));
        let handle = current.handle();
        let (session_tx, session_rx) = watch::channel(false);
        let forwarder = tokio::spawn(forward_events(
            handle.clone(),
            service.clone(),
            stopped(session_rx.clone()),
        ));
        let key_watch = tokio::spawn(watch_key(
            settings.clone(),
            key.clone(),
            handle.clone(),
            stopped(session_rx.clone()),
        ));
        let enricher = tokio::spawn(crate::sync::existing::run(
            store.clone(),
            client.clone(),
            handle.clone(),
            EnricherConfig::default(),
            {
                let sender = service.event_sender();
                move |id| {
                    let _ = sender.send(Event::RecordChanged {
                        id,
                        state: crate::store::RecordState::Conflict,
                    });
                }
            },
            stopped(session_rx.clone()),
        ));
        let retention = tokio::spawn(run_retention(
            store.clone(),
            settings.retain_synced,
            settings.drop_dir.clone(),
            stopped(session_rx.clone()),
        ));
        let folder = tokio::spawn(fold_when_quiet(
            store.clone(),
            service.bulk_written(),
            FOLD_QUIET,
            stopped(session_rx),
        ));
        let mut quit = false;
        let mut lock_rx = want_locked_rx.clone();
        let stop = async {
            tokio::select! {
                _ = shutdown.as_mut() => quit = true,
                f = &mut disk => {
                    fault = Some(f);
                    quit = true;
                }
                _ = lock_rx.wait_for(|locked| *locked) => {}
            }
        };
        let outcome = current.run(stop).await;
        let _ = session_tx.send(true);
        let (_, watched, _, _, _) = tokio::join!(forwarder, key_watch, enricher, retention, folder);
        if let Ok(latest) = watched {
            key = latest;
        }
        if quit || outcome.is_err() {
            break outcome;
        }
        store.lock();
        tracing::info!("store locked: sending waits for `icsync unlock`");
    };
    let _ = stop_tx.send(true);
    let _ = drops.await;
    // Status keeps its last counts while the store is closed.
    let last = service.status().unwrap_or_default();
    front.closing(last);
    drop(service);
    let flushed = store.flush();
    if let Some(fault) = fault {
        return Ok(Ended::Fault(fault));
    }
    match result {
        Ok(()) => {
            flushed?;
            Ok(Ended::Shutdown)
        }
        Err(EngineError::Store(e)) => store_fault(e, &settings.data_dir),
    }
}

/// Hands memory freed during start-up back to the system. sled's recovery reads its whole
/// page-table snapshot into short-lived allocations interleaved with the page table it keeps,
/// and glibc keeps the freed space in its heap: measured on a 400k-record store, 85 MB
/// resident after opening, 64 MB after this.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only works on the allocator's own free lists;
    // glibc makes it safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The engine handle the service reports on, replaced when a new engine starts after unlock.
struct SwitchLink(std::sync::Mutex<EngineHandle>);

impl SwitchLink {
    fn current(&self) -> EngineHandle {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl SyncLink for SwitchLink {
    fn health(&self) -> SyncHealth {
        EngineLink(self.current()).health()
    }

    fn wake(&self) {
        self.current().wake();
    }

    fn in_flight(&self) -> Option<crate::sync::InFlight> {
        Some(self.current().in_flight())
    }
}

/// Erases the customer data of records synced longer than `retain` ago, and the drop folder's
/// refused-row files older than that: once at start, then every [`RETENTION_INTERVAL`].
async fn run_retention(
    store: Store,
    retain: chrono::Duration,
    drop_dir: std::path::PathBuf,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let (store, drop_dir) = (store.clone(), drop_dir.clone());
        let purged = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now();
            crate::dropdir::erase::erase_refused_logged(&drop_dir, now - retain);
            store.purge(now - retain, now, false)
        })
        .await;
        match purged {
            Ok(Ok(ids)) if !ids.is_empty() => {
                tracing::info!(records = ids.len(), "retention erased synced customer data")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed; it runs again later"),
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}

/// Folds the index terms that bulk writes left pending (`store::pending`) once `bulk` has
/// not been notified for `quiet`: `icsync import` sends a file as many requests of 1,000
/// records, and folding after each would rewrite the term trees' pages once per request.
/// Lookups answer the same meanwhile; what is still pending at the session's end is folded
/// then, so a restart does not pay for it.
pub async fn fold_when_quiet(
    store: Store,
    bulk: Arc<tokio::sync::Notify>,
    quiet: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            _ = &mut stop => true,
            _ = bulk.notified() => loop {
                tokio::select! {
                    _ = &mut stop => break true,
                    _ = bulk.notified() => {}
                    _ = tokio::time::sleep(quiet) => break false,
                }
            },
        };
        // Nothing to do (and no write) when nothing is pending.
        let folding = store.clone();
        match tokio::task::spawn_blocking(move || folding.fold_pending()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "indexing imported records failed; done again at the next start")
            }
            Err(e) => tracing::warn!(error = %e, "indexing imported records stopped"),
        }
        if stopping {
            return;
        }
    }
}

/// Engine events become control events for subscribers (the TUI): each record's change as
/// it comes, and status reports paced (`pace`), the last change always reported.
async fn forward_events(
    handle: EngineHandle,
    service: Arc<Service>,
    stop: impl Future<Output = ()>,
) {
    let mut events = handle.subscribe();
    let sender = service.event_sender();
    let mut pace = Pace::new(pace::STATUS_EVERY);
    tokio::pin!(stop);
    loop {
        let owed_at = pace.owed_at();
        let owed = async {
            match owed_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            _ = &mut stop => return,
            e = events.recv() => e,
            _ = owed => {
                pace.reported(std::time::Instant::now());
                send_status(&service, &sender).await;
                continue;
            }
        };
        match event {
            Ok(EngineEvent::RecordChanged { id, state }) => {
                let _ = sender.send(Event::RecordChanged { id, state });
            }
            Ok(EngineEvent::StatusChanged(_)) => {
                if pace.changed(std::time::Instant::now()) {
                    send_status(&service, &sender).await;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Reads the status (the store's counters, on a blocking thread) and sends it as an event.
async fn send_status(service: &Arc<Service>, sender: &tokio::sync::broadcast::Sender<Event>) {
    let service = service.clone();
    let report = tokio::task::spawn_blocking(move || service.status())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(StatusReport::default);
    let _ = sender.send(Event::Status(report));
}

/// Re-reads the key source now and then; a changed key is handed to the engine, which lifts a
/// 401 or no-key pause.
async fn watch_key(
    settings: Settings,
    mut current: Option<ApiKey>,
    handle: EngineHandle,
    stop: impl Future<Output = ()>,
) -> Option<ApiKey> {
    tokio::pin!(stop);
    // The last problem logged, so a bad key file is not logged again on every re-read. A
    // problem at start was logged by `run`.
    let mut problem = match current {
        Some(_) => None,
        None => read_key(&settings).err().map(|e| e.to_string()),
    };
    let mut tick = tokio::time::interval(KEY_RELOAD_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => return current,
            _ = tick.tick() => {}
        }
        let settings = settings.clone();
        let read = tokio::task::spawn_blocking(move || read_key(&settings)).await;
        match read {
            Ok(Ok(Some(key))) => {
                if problem.take().is_some() {
                    tracing::info!("the API key can be read again");
                }
                if current.as_ref() != Some(&key) {
                    tracing::info!(key = %key, "API key changed; sending resumes");
                    handle.set_api_key(key.clone());
                    current = Some(key);
                }
            }
            // A replaced key file that cannot be used is said once per distinct problem; the
            // key in use (if any) stays until a good one is read.
            Ok(Err(e)) => {
                let text = e.to_string();
                if problem.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        error = %text,
                        "cannot use the API key; {}",
                        if current.is_some() { "the previous key stays in use" } else { "sending stays paused" }
                    );
                    problem = Some(text);
                }
            }
            Ok(Ok(None)) | Err(_) => {}
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
