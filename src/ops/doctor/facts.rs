//! What the doctor looks at, gathered in one pass of I/O into plain data ([`Facts`]) that
//! `judge` turns into verdicts. Gathering only reads: it never creates the data dir, a
//! keyring or a key file, and it opens the store only when no daemon holds it (and unlocks
//! it only with an existing key-file keyring). The API key is read to send one probe and is
//! never copied into a fact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::{ApiClient, ApiClientError, ApiKey, ApiTimeouts, InsecureHttp};
use crate::config::{self, Defaults, KeySource, Overrides, Settings};
use crate::control::{Client, ClientError};
use crate::crypto::keychain::Keychain;
use crate::crypto::keyring::Wrapping;
use crate::crypto::{KeySourceKind, Keyring};
use crate::store::{Store, StoreError, StoreOptions};

/// The probe must not make `doctor` hang on a dead network.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub config: ConfigFact,
    /// None when the config could not be loaded.
    pub settings: Option<SettingsFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFact {
    Loaded(PathBuf),
    /// No file: defaults (the path is where one would be read from).
    Absent(PathBuf),
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsFacts {
    pub api_url: String,
    pub url: UrlFact,
    pub api_key: ApiKeyFact,
    pub probe: ProbeFact,
    pub data_dir: DirFact,
    pub drop_dir: DirFact,
    pub drop_place: DropPlaceFact,
    pub daemon: DaemonFact,
    pub store: StoreFact,
    pub encryption: EncryptionFact,
    pub disk: DiskFact,
}

/// Whether the drop folder keeps plaintext out of the data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropPlaceFact {
    Apart,
    /// A configured drop folder inside the data dir: its refused rows are in a copy of it.
    InsideDataDir,
    /// An older release's default `<data_dir>/drop` still holds files (`dropdir::legacy`).
    OldDefaultHolds {
        old: PathBuf,
        files: usize,
    },
}

fn drop_place_fact(settings: &Settings) -> DropPlaceFact {
    if let Some((old, files)) = crate::dropdir::legacy::old_default_files(settings) {
        DropPlaceFact::OldDefaultHolds { old, files }
    } else if settings.drop_dir.starts_with(&settings.data_dir) {
        DropPlaceFact::InsideDataDir
    } else {
        DropPlaceFact::Apart
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlFact {
    Https,
    LoopbackHttp,
    InsecureAllowed { host: String },
    InsecureRefused { host: String },
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileProblem {
    Missing,
    /// Usable, but inside the data dir: a copy of the data dir carries the key that opens it.
    InDataDir(PathBuf),
    TooOpen(u32),
    Unusable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyFact {
    Missing,
    Inline,
    /// `ICSYNC_API_KEY` or `api_key` is set but cannot be a key; why, without the key.
    InlineInvalid(String),
    File {
        path: PathBuf,
        problem: Option<KeyFileProblem>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFact {
    NotTried(String),
    Answered {
        status: u16,
        date: Option<String>,
        /// When the answer arrived, by this machine's clock.
        received: DateTime<Utc>,
    },
    NoAnswer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirFact {
    pub path: PathBuf,
    pub state: DirState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    Present {
        mode: u32,
        writable: bool,
    },
    NotADirectory,
    /// `creatable_under`: the nearest existing ancestor, when it is a writable directory.
    Missing {
        creatable_under: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonFact {
    Running {
        version: String,
    },
    /// Running, but its store is damaged or its disk full: it stays up, reporting why.
    Faulted {
        version: String,
        disk_full: bool,
        message: String,
    },
    NotRunning {
        socket: PathBuf,
    },
    StaleSocket {
        socket: PathBuf,
    },
    Stuck {
        socket: PathBuf,
    },
    OtherVersion {
        detail: String,
    },
    Error(String),
}

impl DaemonFact {
    /// Something holds the daemon lock (and so the store), whether or not it answers well.
    fn holds_store(&self) -> bool {
        matches!(
            self,
            DaemonFact::Running { .. }
                | DaemonFact::Faulted { .. }
                | DaemonFact::Stuck { .. }
                | DaemonFact::OtherVersion { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFact {
    None {
        dir: PathBuf,
    },
    HeldByDaemon,
    InUse(String),
    CannotOpen(String),
    /// The store's files are damaged (the error says how).
    Damaged(String),
    Locked {
        records: u64,
    },
    Checked {
        records: u64,
        problems: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncryptionFact {
    /// No keyring yet; the first start wraps the data key with this (described).
    NewStore {
        wraps_with: String,
    },
    /// A keychain keyring: its entry, and why it cannot be read (with the hint) if it cannot.
    Keychain {
        entry: String,
        problem: Option<(String, Option<String>)>,
    },
    KeyringMissing {
        keyring: PathBuf,
        records: u64,
    },
    Passphrase,
    KeyFile {
        path: PathBuf,
        problem: Option<KeyFileProblem>,
    },
    Unreadable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskFact {
    Free { path: PathBuf, bytes: u64 },
    Unknown(String),
}

/// Loads the config as the other commands do (`config::load`), then gathers every fact.
pub async fn gather(explicit_config: Option<&Path>, flags: Overrides) -> Facts {
    let default_config = Defaults::platform()
        .map(|d| d.config_file)
        .unwrap_or_else(|_| PathBuf::from("icsync.toml"));
    let settings = match config::load(explicit_config, flags) {
        Ok(s) => s,
        Err(e) => {
            return Facts {
                config: ConfigFact::Invalid(e.to_string()),
                settings: None,
            }
        }
    };
    let config = match &settings.config_file {
        Some(p) => ConfigFact::Loaded(p.clone()),
        None => ConfigFact::Absent(default_config),
    };
    Facts {
        config,
        settings: Some(gather_settings(&settings).await),
    }
}

async fn gather_settings(settings: &Settings) -> SettingsFacts {
    let url = url_fact(settings);
    let (api_key, key) = api_key_fact(settings);
    let probe = probe(settings, &url, key).await;
    let (daemon, client) = daemon_fact(&settings.socket_path()).await;
    let (mut store, encryption) = store_facts(settings, &daemon);
    if let (StoreFact::HeldByDaemon, Some(mut client)) = (&store, client) {
        store = daemon_store_fact(&mut client).await;
    }
    SettingsFacts {
        api_url: settings.api_url.clone(),
        url,
        api_key,
        probe,
        data_dir: dir_fact(&settings.data_dir),
        drop_dir: dir_fact(&settings.drop_dir),
        drop_place: drop_place_fact(settings),
        daemon,
        store,
        encryption,
        disk: disk_fact(&settings.data_dir),
    }
}

fn url_fact(settings: &Settings) -> UrlFact {
    let placeholder = ApiKey::new("doctor").expect("a literal key is valid");
    match ApiClient::new(
        &settings.api_url,
        placeholder,
        ApiTimeouts::default(),
        InsecureHttp::Refuse,
    ) {
        Ok(_) if settings.api_url.starts_with("https:") => UrlFact::Https,
        Ok(_) => UrlFact::LoopbackHttp,
        Err(ApiClientError::InsecureHttp { host }) if settings.allow_insecure_http => {
            UrlFact::InsecureAllowed { host }
        }
        Err(ApiClientError::InsecureHttp { host }) => UrlFact::InsecureRefused { host },
        Err(e) => UrlFact::Invalid(e.to_string()),
    }
}

/// A usable key file's placement problem: inside the data dir, a copy of the data dir
/// carries the key.
fn placement_problem(path: &Path, data_dir: &Path) -> Option<KeyFileProblem> {
    path.starts_with(data_dir)
        .then(|| KeyFileProblem::InDataDir(data_dir.to_path_buf()))
}

/// A private file's problem, judged from its metadata alone.
fn key_file_problem(path: &Path) -> Option<KeyFileProblem> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(KeyFileProblem::Missing),
        Err(e) => Some(KeyFileProblem::Unusable(e.to_string())),
        Ok(m) if !m.is_file() => Some(KeyFileProblem::Unusable("not a regular file".into())),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then_some(KeyFileProblem::TooOpen(mode))
        }
    }
}

/// The key's fact, and the key itself when it can be used for the probe.
fn api_key_fact(settings: &Settings) -> (ApiKeyFact, Option<ApiKey>) {
    let read = || {
        settings
            .read_api_key()
            .map_err(|e| e.to_string())
            .and_then(|k| k.ok_or_else(|| "no key".to_string()))
            .and_then(|k| ApiKey::new(k).map_err(|e| e.to_string()))
    };
    match &settings.key {
        KeySource::None => (ApiKeyFact::Missing, None),
        KeySource::Inline(_) => match read() {
            Ok(k) => (ApiKeyFact::Inline, Some(k)),
            Err(why) => (ApiKeyFact::InlineInvalid(why), None),
        },
        KeySource::File(path) => {
            if let Some(problem) = key_file_problem(path) {
                return (
                    ApiKeyFact::File {
                        path: path.clone(),
                        problem: Some(problem),
                    },
                    None,
                );
            }
            match read() {
                Ok(k) => (
                    ApiKeyFact::File {
                        path: path.clone(),
                        problem: placement_problem(path, &settings.data_dir),
                    },
                    Some(k),
                ),
                Err(why) => (
                    ApiKeyFact::File {
                        path: path.clone(),
                        problem: Some(KeyFileProblem::Unusable(why)),
                    },
                    None,
                ),
            }
        }
    }
}

async fn probe(settings: &Settings, url: &UrlFact, key: Option<ApiKey>) -> ProbeFact {
    if matches!(url, UrlFact::InsecureRefused { .. } | UrlFact::Invalid(_)) {
        return ProbeFact::NotTried("the API URL is not usable".into());
    }
    let Some(key) = key else {
        return ProbeFact::NotTried("no usable API key".into());
    };
    let client = ApiClient::new(
        &settings.api_url,
        key,
        ApiTimeouts {
            connect: settings.connect_timeout.min(PROBE_CONNECT_TIMEOUT),
            request: settings.request_timeout.min(PROBE_REQUEST_TIMEOUT),
        },
        if settings.allow_insecure_http {
            InsecureHttp::Allow
        } else {
            InsecureHttp::Refuse
        },
    );
    let client = match client {
        Ok(c) => c,
        Err(e) => return ProbeFact::NotTried(e.to_string()),
    };
    match client.probe().await {
        Ok(p) => ProbeFact::Answered {
            status: p.status,
            date: p.date,
            received: Utc::now(),
        },
        Err(e) => ProbeFact::NoAnswer(e.to_string()),
    }
}

fn access(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

fn nearest_existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

pub fn dir_fact(path: &Path) -> DirFact {
    use std::os::unix::fs::PermissionsExt;
    let state = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => DirState::Present {
            mode: m.permissions().mode() & 0o777,
            writable: access(path, libc::W_OK | libc::X_OK),
        },
        Ok(_) => DirState::NotADirectory,
        Err(_) => DirState::Missing {
            creatable_under: nearest_existing(path)
                .filter(|p| p.is_dir() && access(p, libc::W_OK | libc::X_OK))
                .map(Path::to_path_buf),
        },
    };
    DirFact {
        path: path.to_path_buf(),
        state,
    }
}

/// The daemon's fact, and the connection to it when one answers (the store check is asked
/// over the same connection).
pub async fn daemon_fact(socket: &Path) -> (DaemonFact, Option<Client>) {
    if !socket.exists() {
        let fact = DaemonFact::NotRunning {
            socket: socket.to_path_buf(),
        };
        return (fact, None);
    }
    let fact = match Client::connect(socket).await {
        Ok(mut c) => {
            let version = c.daemon_version.clone();
            let fact = match c.request(crate::control::Request::Status).await {
                Ok(crate::control::Reply::Status(s)) if s.damaged || s.disk_full => {
                    DaemonFact::Faulted {
                        version,
                        disk_full: s.disk_full,
                        message: s.paused.unwrap_or_default(),
                    }
                }
                _ => DaemonFact::Running { version },
            };
            return (fact, Some(c));
        }
        Err(ClientError::NotRunning(_)) => DaemonFact::StaleSocket {
            socket: socket.to_path_buf(),
        },
        Err(ClientError::Timeout(_)) => DaemonFact::Stuck {
            socket: socket.to_path_buf(),
        },
        Err(e @ ClientError::VersionMismatch { .. }) => DaemonFact::OtherVersion {
            detail: e.to_string(),
        },
        Err(e) => DaemonFact::Error(e.to_string()),
    };
    (fact, None)
}

fn keyring_fact(settings: &Settings, keyring: &Path) -> Result<EncryptionFact, EncryptionFact> {
    match Keyring::load(keyring) {
        Err(e) => Err(EncryptionFact::Unreadable(e.to_string())),
        Ok(None) => Ok(EncryptionFact::NewStore {
            wraps_with: match settings.keys.source {
                KeySourceKind::File => format!("the key file {}", settings.keys.key_file.display()),
                KeySourceKind::Passphrase => "a passphrase".into(),
                KeySourceKind::Keychain => "a key in the OS credential store".into(),
            },
        }),
        Ok(Some(ring)) if ring.source() == KeySourceKind::Passphrase => {
            Ok(EncryptionFact::Passphrase)
        }
        // Reading the entry is the only proof it is reachable; the key read is dropped.
        Ok(Some(ring)) if ring.source() == KeySourceKind::Keychain => {
            let entry =
                crate::crypto::keychain::entry_name(ring.keychain_account().unwrap_or_default());
            match ring.unwrap(&Wrapping::Keychain(Keychain::os()), keyring) {
                Ok(_) => Ok(EncryptionFact::Keychain {
                    entry,
                    problem: None,
                }),
                Err(e) => Err(EncryptionFact::Keychain {
                    entry,
                    problem: Some((e.to_string(), e.hint().map(str::to_string))),
                }),
            }
        }
        Ok(Some(_)) => {
            let path = settings.keys.key_file.clone();
            match key_file_problem(&path) {
                None => Ok(EncryptionFact::KeyFile {
                    problem: placement_problem(&path, &settings.data_dir),
                    path,
                }),
                Some(p) => Err(EncryptionFact::KeyFile {
                    path,
                    problem: Some(p),
                }),
            }
        }
    }
}

/// The store check, asked of the daemon that holds the store. A daemon that cannot run it
/// (an older release, or a store it cannot read now) leaves the store as held by it, or
/// locked when its key is not loaded.
async fn daemon_store_fact(client: &mut Client) -> StoreFact {
    use crate::control::{ControlErrorCode, Reply, Request};
    match client.request(Request::CheckStore).await {
        Ok(Reply::StoreCheck {
            records,
            mut problems,
            more,
        }) => {
            if more > 0 {
                problems.push(format!(
                    "and {more} more problem(s) the daemon did not list"
                ));
            }
            StoreFact::Checked { records, problems }
        }
        Ok(Reply::Error(e)) | Err(ClientError::Refused(e))
            if e.code == ControlErrorCode::Locked =>
        {
            match client.request(Request::Status).await {
                Ok(Reply::Status(s)) => StoreFact::Locked { records: s.total },
                _ => StoreFact::HeldByDaemon,
            }
        }
        _ => StoreFact::HeldByDaemon,
    }
}

/// The store's and the encryption key's facts; they are learnt together because opening the
/// store needs the key, and a key is only known to be the right one once it opens the store.
fn store_facts(settings: &Settings, daemon: &DaemonFact) -> (StoreFact, EncryptionFact) {
    let dir = settings.store_dir();
    let keyring = Keyring::path_in(&dir);
    let ring = keyring_fact(settings, &keyring);
    let encryption = ring.clone().unwrap_or_else(|e| e);
    if daemon.holds_store() {
        return (StoreFact::HeldByDaemon, encryption);
    }
    if !dir.exists() {
        return (StoreFact::None { dir }, encryption);
    }
    let store = match Store::open_locked(
        &dir,
        StoreOptions {
            cache_capacity_bytes: 8 << 20,
        },
    ) {
        Ok(s) => s,
        Err(e @ StoreError::Locked { .. }) => return (StoreFact::InUse(e.to_string()), encryption),
        Err(e) if e.is_damaged() => return (StoreFact::Damaged(e.to_string()), encryption),
        Err(e) => return (StoreFact::CannotOpen(e.to_string()), encryption),
    };
    let records = match store.counts() {
        Ok(c) => c.total,
        Err(e) if e.is_damaged() => return (StoreFact::Damaged(e.to_string()), encryption),
        Err(e) => return (StoreFact::CannotOpen(e.to_string()), encryption),
    };
    match ring {
        Ok(EncryptionFact::NewStore { .. }) if records > 0 => (
            StoreFact::Locked { records },
            EncryptionFact::KeyringMissing { keyring, records },
        ),
        // Unlocking an existing key-file keyring reads the key file and nothing else; a
        // missing keyring is never unlocked here, because that would create one.
        Ok(EncryptionFact::Keychain { .. }) => match store.unlock(&settings.keys, None) {
            Ok(()) => match store.check_consistency() {
                Ok(problems) => (StoreFact::Checked { records, problems }, encryption),
                Err(e) => (StoreFact::CannotOpen(e.to_string()), encryption),
            },
            Err(e) => (StoreFact::CannotOpen(e.to_string()), encryption),
        },
        Ok(EncryptionFact::KeyFile { .. }) => match store.unlock(&settings.keys, None) {
            Ok(()) => match store.check_consistency() {
                Ok(problems) => (StoreFact::Checked { records, problems }, encryption),
                Err(e) => (StoreFact::CannotOpen(e.to_string()), encryption),
            },
            Err(e) => (
                StoreFact::Locked { records },
                EncryptionFact::KeyFile {
                    path: settings.keys.key_file.clone(),
                    problem: Some(KeyFileProblem::Unusable(e.to_string())),
                },
            ),
        },
        // Nothing written yet, so nothing can disagree.
        Ok(EncryptionFact::NewStore { .. }) => (
            StoreFact::Checked {
                records,
                problems: Vec::new(),
            },
            encryption,
        ),
        _ => (StoreFact::Locked { records }, encryption),
    }
}

pub fn disk_fact(data_dir: &Path) -> DiskFact {
    let Some(existing) = nearest_existing(data_dir) else {
        return DiskFact::Unknown(format!("no part of {} exists", data_dir.display()));
    };
    match super::super::disk::free_bytes(existing) {
        Ok(bytes) => DiskFact::Free {
            path: existing.to_path_buf(),
            bytes,
        },
        Err(e) => DiskFact::Unknown(format!("cannot stat {}: {e}", existing.display())),
    }
}
