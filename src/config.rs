//! Configuration: the TOML file, environment variables and command-line flags, resolved into
//! one [`Settings`] (flags override the environment, which overrides the file).
//!
//! This module owns where settings come from and their defaults. It reads the config file and
//! the API key file (refusing a key file others can read) but opens nothing else: it never
//! touches the store, the network or the data directory's contents.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{KdfParams, KeyConfig, KeySourceKind};

/// Environment variables that override the file.
pub const ENV_API_URL: &str = "ICSYNC_API_URL";
pub const ENV_API_KEY: &str = "ICSYNC_API_KEY";
pub const ENV_DATA_DIR: &str = "ICSYNC_DATA_DIR";
pub const ENV_DROP_DIR: &str = "ICSYNC_DROP_DIR";
pub const ENV_CONFIG: &str = "ICSYNC_CONFIG";
pub const ENV_DEFAULT_COUNTRY: &str = "ICSYNC_DEFAULT_COUNTRY";
pub use crate::crypto::keyring::ENV_KEY_FILE;

/// The API the daemon talks to unless told otherwise: a sandbox on this machine, so that a
/// fresh install can never send data to a live organisation by accident.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:7878";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}{}: {message}", path.display(), place.as_ref().map(|p| p.to_string()).unwrap_or_default())]
    Parse {
        path: PathBuf,
        /// Where in the file, when the parser could tell.
        place: Option<TomlPlace>,
        message: String,
    },
    #[error("{key} = {value}: {problem}")]
    Invalid {
        key: &'static str,
        value: String,
        problem: String,
    },
    #[error("cannot read API key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "API key file {path} can be read by other users (mode {mode:o}); \
         run `chmod 600 {path}` and try again"
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("API key file {path} is empty")]
    KeyFileEmpty { path: PathBuf },
    /// A key is there but cannot be one: the reason names no character of it.
    #[error("the API key {origin} is not valid: {reason}")]
    InvalidKey { origin: String, reason: String },
    #[error("no home directory found to place icsync's files; set {ENV_DATA_DIR} and --config")]
    NoHome,
}

/// The config file as written. Every key is optional; `config/icsync.example.toml` documents
/// each one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub allow_insecure_http: Option<bool>,
    pub data_dir: Option<PathBuf>,
    pub drop_dir: Option<PathBuf>,
    pub concurrency: Option<usize>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_cap_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub cache_capacity_mb: Option<u64>,
    pub drop_quiet_ms: Option<u64>,
    pub drop_dir_shared: Option<bool>,
    pub keep_processed: Option<bool>,
    pub key_source: Option<String>,
    pub key_file: Option<PathBuf>,
    pub kdf_memory_mib: Option<u32>,
    pub retain_synced_days: Option<u32>,
    pub mapping: Option<PathBuf>,
    pub default_country: Option<String>,
}

/// Values given by the environment or by flags; the later source wins.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub drop_dir: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub default_country: Option<String>,
}

impl Overrides {
    /// Reads the `ICSYNC_*` variables through `get` (so tests need not touch the process env).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let nonempty = |k| get(k).filter(|v: &String| !v.is_empty());
        Overrides {
            api_url: nonempty(ENV_API_URL),
            api_key: nonempty(ENV_API_KEY),
            data_dir: nonempty(ENV_DATA_DIR).map(PathBuf::from),
            drop_dir: nonempty(ENV_DROP_DIR).map(PathBuf::from),
            key_file: nonempty(ENV_KEY_FILE).map(PathBuf::from),
            default_country: nonempty(ENV_DEFAULT_COUNTRY),
        }
    }

    fn or(self, lower: Overrides) -> Overrides {
        Overrides {
            api_url: self.api_url.or(lower.api_url),
            api_key: self.api_key.or(lower.api_key),
            data_dir: self.data_dir.or(lower.data_dir),
            drop_dir: self.drop_dir.or(lower.drop_dir),
            key_file: self.key_file.or(lower.key_file),
            default_country: self.default_country.or(lower.default_country),
        }
    }
}

/// Where the API key comes from. The key itself is read only when needed
/// ([`Settings::read_api_key`]) and is never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    None,
    /// From `ICSYNC_API_KEY` or the `api_key` config key.
    Inline(String),
    /// From `api_key_file`, which must not be readable by group or others.
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::None => f.write_str("None"),
            KeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub api_url: String,
    pub key: KeySource,
    pub allow_insecure_http: bool,
    pub data_dir: PathBuf,
    pub drop_dir: PathBuf,
    /// No `drop_dir` was configured (flag, env or file): the default is used, and an older
    /// release's default `<data_dir>/drop` may still hold files (`icsync doctor` says so).
    pub drop_dir_is_default: bool,
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
    pub cache_capacity_bytes: u64,
    /// How long a file in the drop folder must stay unchanged before it is read.
    pub drop_quiet: Duration,
    /// The drop folder may be writable by other users (or owned by another): their files
    /// are then sent with this user's API key. Off unless the config says so.
    pub drop_dir_shared: bool,
    /// Keep each processed drop file (and a note for each duplicate) in `processed/`, in
    /// plaintext, instead of removing it once its records are durable in the store. Off
    /// unless the config says so.
    pub keep_processed: bool,
    /// How the store's data key is wrapped (docs/security.md).
    pub keys: KeyConfig,
    /// Synced records unchanged this long lose their customer data; 0 = at once.
    pub retain_synced: chrono::Duration,
    /// The config file these settings were read from, if any.
    pub config_file: Option<PathBuf>,
    /// The drop folder's column mapping file (`[columns]`), relative paths resolved against
    /// the config file's folder.
    pub mapping: Option<PathBuf>,
    /// The country (alpha-2) of national phone numbers in rows that name none.
    pub default_country: Option<String>,
}

/// Platform directories used when nothing else is set.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    /// Where the wrapping key file goes: the config dir, apart from the data dir.
    pub key_file: PathBuf,
    /// The drop folder when neither it nor the data dir is configured: `~/icsync-drop`.
    pub drop_dir: PathBuf,
}

impl Defaults {
    pub fn platform() -> Result<Self, ConfigError> {
        let dirs = directories::ProjectDirs::from("com", "Instant Compliance", "icsync")
            .ok_or(ConfigError::NoHome)?;
        let key_file = default_key_file(dirs.config_dir(), dirs.data_dir(), dirs.preference_dir());
        let home = directories::BaseDirs::new().ok_or(ConfigError::NoHome)?;
        Ok(Defaults {
            config_file: dirs.config_dir().join("icsync.toml"),
            data_dir: dirs.data_dir().to_path_buf(),
            key_file,
            drop_dir: home.home_dir().join(DROP_DIR_NAME),
        })
    }
}

/// Where the store key file goes by default: never in the data dir, so a copy of the data
/// dir does not carry the key that opens it. The config dir where it is apart from the data
/// dir (Linux, Windows); else the preferences dir (macOS, where `directories` gives one
/// folder, `~/Library/Application Support/<app>`, for config and data). A key file an older
/// release left at the old macOS default is still used when the new place holds none, so an
/// upgrade never strands a store; `icsync doctor` says to move it.
pub fn default_key_file(config_dir: &Path, data_dir: &Path, preference_dir: &Path) -> PathBuf {
    const NAME: &str = "data.key";
    if !config_dir.starts_with(data_dir) {
        return config_dir.join(NAME);
    }
    let apart = if preference_dir.starts_with(data_dir) {
        // No platform does this; keep the key beside the data dir, not in it.
        data_dir.with_file_name(format!(
            "{}-keys",
            data_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("icsync")
        ))
    } else {
        preference_dir.to_path_buf()
    };
    let legacy = config_dir.join(NAME);
    if !apart.join(NAME).exists() && legacy.exists() {
        return legacy;
    }
    apart.join(NAME)
}

/// The default drop folder's name, in the home folder.
pub const DROP_DIR_NAME: &str = "icsync-drop";

/// Where the drop folder goes when none is configured: never inside the data dir, so a copy
/// of the data dir carries no file a person dropped and no refused row. With the platform's
/// data dir, `home_default` (`~/icsync-drop`: a folder a person can find, outside the
/// Documents folder that macOS and Windows often sync to a cloud); with a data dir someone
/// chose, a folder beside it (`<data_dir>-drop`), so two daemons with their own data dirs never
/// share one drop folder. Either way, a place inside the data dir (a data dir of `~`) gives
/// way to the one beside it. An older release's default was `<data_dir>/drop`.
pub fn default_drop_dir(home_default: &Path, data_dir: &Path, data_dir_chosen: bool) -> PathBuf {
    let beside = || {
        let name = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "icsync".to_string());
        data_dir.with_file_name(format!("{name}-drop"))
    };
    if data_dir_chosen || home_default.starts_with(data_dir) {
        beside()
    } else {
        home_default.to_path_buf()
    }
}

fn positive(key: &'static str, v: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::Invalid {
            key,
            value: "0".into(),
            problem: "must be at least 1".into(),
        }),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Resolves settings from the parsed file and the overrides (flags already merged over env).
/// Pure: no I/O.
pub fn resolve(
    file: FileConfig,
    overrides: Overrides,
    defaults: &Defaults,
    config_file: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let api_url = overrides
        .api_url
        .or(file.api_url)
        .unwrap_or_else(|| DEFAULT_API_URL.to_string())
        .trim_end_matches('/')
        .to_string();
    let key = match (overrides.api_key, file.api_key, file.api_key_file) {
        (Some(k), _, _) => KeySource::Inline(k),
        (None, Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "api_key",
                value: "<redacted>".into(),
                problem: "set either api_key or api_key_file, not both".into(),
            })
        }
        (None, Some(k), None) => KeySource::Inline(k),
        (None, None, Some(p)) => KeySource::File(p),
        (None, None, None) => KeySource::None,
    };
    let chosen_data_dir = overrides.data_dir.or(file.data_dir);
    let data_dir_chosen = chosen_data_dir.is_some();
    let data_dir = chosen_data_dir.unwrap_or_else(|| defaults.data_dir.clone());
    let configured_drop_dir = overrides.drop_dir.or(file.drop_dir);
    let drop_dir_is_default = configured_drop_dir.is_none();
    let drop_dir = configured_drop_dir
        .unwrap_or_else(|| default_drop_dir(&defaults.drop_dir, &data_dir, data_dir_chosen));
    let concurrency = positive("concurrency", file.concurrency.map(|c| c as u64), 8)?;
    if concurrency > 256 {
        return Err(ConfigError::Invalid {
            key: "concurrency",
            value: concurrency.to_string(),
            problem: "must be at most 256".into(),
        });
    }
    let key_source = match file.key_source.as_deref() {
        None => KeySourceKind::File,
        Some(s) => KeySourceKind::parse(s).ok_or_else(|| ConfigError::Invalid {
            key: "key_source",
            value: s.to_string(),
            problem: "must be \"file\", \"passphrase\" or \"keychain\"".into(),
        })?,
    };
    let mut kdf = KdfParams::default();
    if let Some(mib) = file.kdf_memory_mib {
        kdf.memory_kib = u32::try_from(positive("kdf_memory_mib", Some(mib.into()), 64)?)
            .unwrap_or(u32::MAX)
            .saturating_mul(1024);
    }
    let keys = KeyConfig {
        source: key_source,
        key_file: overrides
            .key_file
            .or(file.key_file)
            .unwrap_or_else(|| defaults.key_file.clone()),
        kdf,
    };
    let retain_synced = chrono::Duration::days(file.retain_synced_days.unwrap_or(30).into());
    let default_country = match overrides.default_country.or(file.default_country) {
        None => None,
        Some(text) => Some(
            crate::ingest::values::country(&text)
                .map(|c| c.value)
                .map_err(|problem| ConfigError::Invalid {
                    key: "default_country",
                    value: text,
                    problem,
                })?,
        ),
    };
    let mapping = file
        .mapping
        .map(|m| match config_file.as_deref().and_then(Path::parent) {
            Some(dir) if m.is_relative() => dir.join(m),
            _ => m,
        });
    Ok(Settings {
        api_url,
        key,
        allow_insecure_http: file.allow_insecure_http.unwrap_or(false),
        data_dir,
        drop_dir,
        drop_dir_is_default,
        concurrency: concurrency as usize,
        backoff_base: Duration::from_millis(positive(
            "backoff_base_ms",
            file.backoff_base_ms,
            1000,
        )?),
        backoff_cap: Duration::from_secs(positive("backoff_cap_secs", file.backoff_cap_secs, 300)?),
        connect_timeout: Duration::from_secs(positive(
            "connect_timeout_secs",
            file.connect_timeout_secs,
            10,
        )?),
        request_timeout: Duration::from_secs(positive(
            "request_timeout_secs",
            file.request_timeout_secs,
            30,
        )?),
        drain_timeout: Duration::from_secs(positive(
            "drain_timeout_secs",
            file.drain_timeout_secs,
            10,
        )?),
        cache_capacity_bytes: positive("cache_capacity_mb", file.cache_capacity_mb, 32)? << 20,
        drop_quiet: Duration::from_millis(positive("drop_quiet_ms", file.drop_quiet_ms, 1000)?),
        drop_dir_shared: file.drop_dir_shared.unwrap_or(false),
        keep_processed: file.keep_processed.unwrap_or(false),
        keys,
        retain_synced,
        config_file,
        mapping,
        default_country,
    })
}

/// Where a TOML error is: 1-based line and column, and the key on that line (with its
/// `[table]` prefix) when the line has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlPlace {
    pub line: usize,
    pub column: usize,
    pub key: Option<String>,
}

impl std::fmt::Display for TomlPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ", line {}, column {}", self.line, self.column)?;
        match &self.key {
            Some(key) => write!(f, ", key `{key}`"),
            None => Ok(()),
        }
    }
}

/// Turns a byte offset into `text` (the start of a parser's span) into a [`TomlPlace`].
pub fn toml_place(text: &str, offset: usize) -> TomlPlace {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line_text = &text[line_start..line_end];
    let table = before
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .map(|t| t.trim_matches(['[', ']']).trim().to_string())
        })
        .next_back();
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .map(|k| match &table {
            Some(t) if !t.is_empty() => format!("{t}.{k}"),
            _ => k,
        })
        .or_else(|| {
            // A `[table]` header (an unknown table is reported there) names itself.
            let word = line_text.trim();
            word.strip_prefix('[')
                .map(|t| t.trim_matches(['[', ']']).trim().to_string())
        })
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_SHOWN);
    TomlPlace {
        line: before.matches('\n').count() + 1,
        column: text[line_start..offset].chars().count() + 1,
        key,
    }
}

/// A "key" longer than this is not a key: the error is shown without one.
const MAX_KEY_SHOWN: usize = 64;

/// Parses config file text; `path` only names the file in errors. URLs in the parser's
/// message lose their credentials.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        place: e.span().map(|span| toml_place(text, span.start)),
        message: redact_credentials(e.message().trim()),
    })
}

/// `text` with the password (or lone user name, which is often a token) of every
/// `scheme://user:password@host` in it replaced by `***`: `https://user:***@host`. For any
/// URL shown to a person or written to a log.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Loads settings: the file named by `--config` (which must exist), else `ICSYNC_CONFIG`, else
/// the platform default (which may be absent); then the environment; then `flags`.
pub fn load(explicit: Option<&Path>, flags: Overrides) -> Result<Settings, ConfigError> {
    let defaults = Defaults::platform()?;
    let env_config = std::env::var_os(ENV_CONFIG).map(PathBuf::from);
    let (path, required) = match explicit.map(Path::to_path_buf).or(env_config) {
        Some(p) => (p, true),
        None => (defaults.config_file.clone(), false),
    };
    let (file, used) = match std::fs::read_to_string(&path) {
        Ok(text) => (parse_file(&text, &path)?, Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            (FileConfig::default(), None)
        }
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let env = Overrides::from_env(|k| std::env::var(k).ok());
    resolve(file, flags.or(env), &defaults, used)
}

impl Settings {
    /// Reads the API key, if one is configured. A key file must be private to its owner.
    pub fn read_api_key(&self) -> Result<Option<String>, ConfigError> {
        match &self.key {
            KeySource::None => Ok(None),
            KeySource::Inline(k) => Ok(Some(key_text(k).to_string())),
            KeySource::File(path) => read_key_file(path).map(Some),
        }
    }

    /// Where the key comes from, for messages: "in file /x/api-key" or "from ICSYNC_API_KEY
    /// or api_key". Never the key.
    pub fn key_origin(&self) -> String {
        match &self.key {
            KeySource::None => "(none configured)".to_string(),
            KeySource::Inline(_) => format!("from {ENV_API_KEY} or api_key"),
            KeySource::File(path) => format!("in file {}", path.display()),
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join("icsync.sock")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// A key file larger than this is not a key file.
const MAX_KEY_FILE_BYTES: usize = 4096;

/// The key in a key file's or variable's text: without a UTF-8 byte-order mark (Notepad writes
/// one) and without surrounding whitespace, which takes CRLF and CR line ends with it.
pub fn key_text(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// A key file's bytes as text: UTF-8, or UTF-16 with its byte-order mark (Notepad's
/// "Unicode" encodings). None for anything else.
fn decode_key_file(bytes: &[u8]) -> Option<String> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        if !rest.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).ok()
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

fn read_key_file(path: &Path) -> Result<String, ConfigError> {
    let err = |source| ConfigError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::KeyFileTooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = std::fs::read(path).map_err(err)?;
    if text.len() > MAX_KEY_FILE_BYTES {
        return Err(ConfigError::InvalidKey {
            origin: format!("in file {}", path.display()),
            reason: format!(
                "the file is over {MAX_KEY_FILE_BYTES} bytes: it holds more than a key"
            ),
        });
    }
    let text = decode_key_file(&text).ok_or_else(|| ConfigError::InvalidKey {
        origin: format!("in file {}", path.display()),
        reason: "the file is not text (save it as UTF-8 or ASCII)".into(),
    })?;
    let key = key_text(&text).to_string();
    if key.is_empty() {
        return Err(ConfigError::KeyFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            config_file: "/cfg/icsync.toml".into(),
            data_dir: "/data".into(),
            key_file: "/cfg/data.key".into(),
            drop_dir: "/home/u/icsync-drop".into(),
        }
    }

    #[test]
    fn the_default_drop_dir_is_never_in_the_data_dir() {
        let home = Path::new("/home/u/icsync-drop");
        let platform = Path::new("/home/u/.local/share/icsync");
        assert_eq!(default_drop_dir(home, platform, false), home);
        // A data dir someone chose gets its own drop folder beside it.
        assert_eq!(
            default_drop_dir(home, Path::new("/srv/icsync/data"), true),
            PathBuf::from("/srv/icsync/data-drop")
        );
        // A data dir holding the home default: beside it instead.
        assert_eq!(
            default_drop_dir(home, Path::new("/home/u"), false),
            PathBuf::from("/home/u-drop")
        );
        assert_eq!(
            default_drop_dir(home, Path::new("/home/u/icsync-drop"), true),
            PathBuf::from("/home/u/icsync-drop-drop")
        );
        for (data, chosen) in [
            ("/home/u/.local/share/icsync", false),
            ("/home/u", false),
            ("/home/u", true),
            ("/home/u/icsync-drop", false),
            ("/tmp/x/data", true),
            ("relative/data", true),
        ] {
            let data = Path::new(data);
            let drop = default_drop_dir(home, data, chosen);
            assert!(
                !drop.starts_with(data),
                "{} in {}",
                drop.display(),
                data.display()
            );
        }
        // What resolve gives, and a configured folder wins.
        let s = resolve(
            FileConfig::default(),
            Overrides {
                data_dir: Some("/t/data".into()),
                ..Overrides::default()
            },
            &defaults(),
            None,
        )
        .unwrap();
        assert_eq!(s.drop_dir, PathBuf::from("/t/data-drop"));
        assert!(s.drop_dir_is_default);
        let s = resolve(
            parse_file("drop_dir = \"/t/data/drop\"", Path::new("/c")).unwrap(),
            Overrides::default(),
            &defaults(),
            None,
        )
        .unwrap();
        assert_eq!(s.drop_dir, PathBuf::from("/t/data/drop"));
        assert!(!s.drop_dir_is_default);
    }

    #[test]
    fn the_default_key_file_is_never_in_the_data_dir() {
        let linux = default_key_file(
            Path::new("/h/.config/icsync"),
            Path::new("/h/.local/share/icsync"),
            Path::new("/h/.config/icsync"),
        );
        assert_eq!(linux, PathBuf::from("/h/.config/icsync/data.key"));
        // macOS: config and data are one folder, preferences another.
        let app = tempfile::tempdir().unwrap();
        let prefs = tempfile::tempdir().unwrap();
        let mac = default_key_file(app.path(), app.path(), prefs.path());
        assert_eq!(mac, prefs.path().join("data.key"));
        assert!(!mac.starts_with(app.path()));
        // An older release's key file at the old place is used until the new place has one.
        std::fs::write(app.path().join("data.key"), "k").unwrap();
        assert_eq!(
            default_key_file(app.path(), app.path(), prefs.path()),
            app.path().join("data.key")
        );
        std::fs::write(prefs.path().join("data.key"), "k").unwrap();
        assert_eq!(
            default_key_file(app.path(), app.path(), prefs.path()),
            prefs.path().join("data.key")
        );
        // A preferences dir inside the data dir too: beside the data dir, not in it.
        let odd = default_key_file(
            Path::new("/a/icsync"),
            Path::new("/a/icsync"),
            Path::new("/a/icsync/prefs"),
        );
        assert_eq!(odd, PathBuf::from("/a/icsync-keys/data.key"));
    }

    #[test]
    fn defaults_point_at_a_local_sandbox_and_platform_dirs() {
        let s = resolve(
            FileConfig::default(),
            Overrides::default(),
            &defaults(),
            None,
        )
        .unwrap();
        assert_eq!(s.api_url, DEFAULT_API_URL);
        assert_eq!(s.data_dir, PathBuf::from("/data"));
        assert_eq!(s.drop_dir, PathBuf::from("/home/u/icsync-drop"));
        assert!(s.drop_dir_is_default);
        assert!(!s.keep_processed);
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.backoff_cap, Duration::from_secs(300));
        assert_eq!(s.cache_capacity_bytes, 32 << 20);
        assert_eq!(s.drop_quiet, Duration::from_secs(1));
        assert_eq!(s.key, KeySource::None);
        assert_eq!(s.keys.source, KeySourceKind::File);
        assert_eq!(s.keys.key_file, PathBuf::from("/cfg/data.key"));
        assert_eq!(s.retain_synced, chrono::Duration::days(30));
    }

    #[test]
    fn key_settings_come_from_the_file_and_the_key_file_from_env() {
        let file = parse_file(
            "key_source = \"passphrase\"\nkey_file = \"/f.key\"\nkdf_memory_mib = 8\nretain_synced_days = 0",
            Path::new("c.toml"),
        )
        .unwrap();
        let env = Overrides::from_env(|k| (k == ENV_KEY_FILE).then(|| "/env.key".into()));
        let s = resolve(file, env, &defaults(), None).unwrap();
        assert_eq!(s.keys.source, KeySourceKind::Passphrase);
        assert_eq!(s.keys.key_file, PathBuf::from("/env.key"));
        assert_eq!(s.keys.kdf.memory_kib, 8 * 1024);
        assert_eq!(s.retain_synced, chrono::Duration::zero());
        let bad = parse_file("key_source = \"usb\"", Path::new("c.toml")).unwrap();
        let e = resolve(bad, Overrides::default(), &defaults(), None).unwrap_err();
        assert!(e.to_string().contains("key_source = usb"), "{e}");
    }

    #[test]
    fn flags_override_env_which_overrides_the_file() {
        let file = parse_file(
            "api_url = \"https://file.example\"\ndata_dir = \"/file\"\ndrop_dir = \"/filedrop\"",
            Path::new("x.toml"),
        )
        .unwrap();
        let env = Overrides::from_env(|k| match k {
            ENV_API_URL => Some("https://env.example/".into()),
            ENV_DATA_DIR => Some("/env".into()),
            _ => None,
        });
        let flags = Overrides {
            data_dir: Some("/flag".into()),
            ..Overrides::default()
        };
        let s = resolve(file, flags.or(env), &defaults(), None).unwrap();
        assert_eq!(s.api_url, "https://env.example");
        assert_eq!(s.data_dir, PathBuf::from("/flag"));
        assert_eq!(s.drop_dir, PathBuf::from("/filedrop"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse_file("api_urll = \"x\"", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("api_urll"), "{e}");
        let file = parse_file("concurrency = 0", Path::new("c.toml")).unwrap();
        let e = resolve(file, Overrides::default(), &defaults(), None).unwrap_err();
        assert_eq!(e.to_string(), "concurrency = 0: must be at least 1");
    }

    #[test]
    fn key_never_shows_in_debug_or_errors() {
        let file = parse_file(
            "api_key = \"ic_live_secret123\"\napi_key_file = \"/k\"",
            Path::new("c.toml"),
        )
        .unwrap();
        let e = resolve(file.clone(), Overrides::default(), &defaults(), None).unwrap_err();
        assert!(!e.to_string().contains("secret123"));
        let only_inline = FileConfig {
            api_key_file: None,
            ..file
        };
        let s = resolve(only_inline, Overrides::default(), &defaults(), None).unwrap();
        assert!(!format!("{s:?}").contains("secret123"));
        assert_eq!(
            s.read_api_key().unwrap().as_deref(),
            Some("ic_live_secret123")
        );
    }

    #[test]
    fn toml_errors_name_the_line_column_and_key() {
        let e = parse_file(
            "api_url = \"http://x\"\nconcurrency = \"a\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("config file c.toml, line 2, column 15, key `concurrency`: "),
            "{text}"
        );
        let e = parse_file("\n\napi_urll = \"x\"", Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("line 3, column 1, key `api_urll`"),
            "{e}"
        );
        assert_eq!(
            toml_place("[t]\na = 1", 8),
            TomlPlace {
                line: 2,
                column: 5,
                key: Some("t.a".into())
            }
        );
        assert_eq!(
            toml_place("a = 1\n[columns]\n", 7).key.as_deref(),
            Some("columns")
        );
        // An offset past the end or inside a character is clamped, not a panic.
        assert_eq!(toml_place("é", 1).column, 1);
        assert_eq!(toml_place("a", 99).line, 1);
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_credentials("https://user:pass@host.example/v1"),
            "https://user:***@host.example/v1"
        );
        assert_eq!(
            redact_credentials("see \"http://tok@h:8080\" and https://a:b@c"),
            "see \"http://***@h:8080\" and https://a:***@c"
        );
        assert_eq!(
            redact_credentials("https://host/p@th?q=a@b"),
            "https://host/p@th?q=a@b"
        );
        assert_eq!(redact_credentials("no url"), "no url");
        let e = parse_file("api_url = 1\n# https://u:secret@h", Path::new("c.toml"));
        assert!(!format!("{e:?}").contains("secret"));
    }

    #[test]
    fn key_files_in_notepad_encodings_are_read() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("ic_test_x\r\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("ic_test_x".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        for bytes in [le, be, b"\xEF\xBB\xBFic_test_x\r\n".to_vec()] {
            let text = decode_key_file(&bytes).unwrap();
            assert_eq!(key_text(&text), "ic_test_x");
        }
        assert_eq!(decode_key_file(&[0xFF, 0xFE, 0x41]), None);
        assert_eq!(decode_key_file(&[0xC3, 0x28]), None);
    }

    #[test]
    fn key_text_drops_a_bom_and_any_line_ends() {
        assert_eq!(key_text("\u{feff}ic_test_x\r\n"), "ic_test_x");
        assert_eq!(key_text(" ic_test_x\r"), "ic_test_x");
        assert_eq!(key_text("\u{feff}\r\n"), "");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "ic_test_abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = resolve(
            FileConfig {
                api_key_file: Some(path.clone()),
                ..FileConfig::default()
            },
            Overrides::default(),
            &defaults(),
            None,
        )
        .unwrap();
        let e = s.read_api_key().unwrap_err();
        assert!(
            matches!(e, ConfigError::KeyFileTooOpen { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(s.read_api_key().unwrap().as_deref(), Some("ic_test_abc"));
    }
}
