//! The keyring: a store's data key, wrapped, in a small JSON file beside the store
//! (`<store>/keyring.json`, mode 0600), and the secrets that unwrap it:
//! - `file`: a random 256-bit wrapping key in a file (hex, mode 0600) kept apart from the
//!   data dir, by default in the user's config dir, so a copy of the data dir alone opens
//!   nothing;
//! - `passphrase`: a wrapping key derived with Argon2id from a passphrase; the parameters
//!   and salt are stored in the keyring, so they can be raised later without breaking old
//!   keyrings;
//! - `keychain`: a random wrapping key in the OS credential store (`keychain`), under an
//!   entry whose account name the keyring records.
//!
//! The keyring records which source wrapped it; that record, not the configuration, decides
//! what is needed to unwrap it (`key_source` only chooses for a new keyring and for rekey).
//! Rewrapping (`rekey`) changes only this file: the data key, and so every sealed record,
//! stays as it is. Writes go through a temporary file and a rename, so a crash leaves the
//! old keyring or the new one, never half of one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keychain::{self, Keychain};
use super::{open_with, random_bytes, seal_with, DataKey, Passphrase, KEY_LEN, NONCE_LEN};

/// Overrides where the wrapping key file lives.
pub const ENV_KEY_FILE: &str = "ICSYNC_KEY_FILE";
/// The keyring's file name inside the store directory.
pub const KEYRING_FILE: &str = "keyring.json";
const KEYRING_VERSION: u32 = 1;
const SALT_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeySourceKind {
    #[default]
    File,
    Passphrase,
    Keychain,
}

impl KeySourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySourceKind::File => "file",
            KeySourceKind::Passphrase => "passphrase",
            KeySourceKind::Keychain => "keychain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "file" => Some(KeySourceKind::File),
            "passphrase" => Some(KeySourceKind::Passphrase),
            "keychain" => Some(KeySourceKind::Keychain),
            _ => None,
        }
    }
}

/// Argon2id cost. The default (64 MiB, 3 passes) takes a fraction of a second on a laptop
/// and makes guessing a passphrase from a stolen keyring expensive; tests lower the memory
/// through `kdf_memory_mib`, which is stored in the keyring it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// How a store's keyring is made and opened: from `key_source`, `key_file` and the KDF cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub source: KeySourceKind,
    pub key_file: PathBuf,
    pub kdf: KdfParams,
}

/// `ICSYNC_KEY_FILE`, else `data.key` in the user's config dir.
pub fn default_key_file() -> Result<PathBuf, KeyError> {
    if let Some(p) = std::env::var_os(ENV_KEY_FILE).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    directories::ProjectDirs::from("com", "Instant Compliance", "icsync")
        .map(|d| d.config_dir().join("data.key"))
        .ok_or(KeyError::NoHome)
}

impl KeyConfig {
    /// What unwraps (or wraps) a keyring of `source`; a passphrase keyring needs one.
    pub fn wrapping<'a>(
        &'a self,
        source: KeySourceKind,
        passphrase: Option<&'a Passphrase>,
    ) -> Result<Wrapping<'a>, KeyError> {
        match source {
            KeySourceKind::File => Ok(Wrapping::KeyFile(&self.key_file)),
            KeySourceKind::Passphrase => passphrase
                .map(|p| Wrapping::Passphrase(p, self.kdf))
                .ok_or(KeyError::PassphraseNeeded),
            KeySourceKind::Keychain => Ok(Wrapping::Keychain(Keychain::os())),
        }
    }

    /// A key file at `key_file` with the default KDF cost (for a passphrase keyring).
    pub fn file(key_file: impl Into<PathBuf>) -> Self {
        KeyConfig {
            source: KeySourceKind::File,
            key_file: key_file.into(),
            kdf: KdfParams::default(),
        }
    }

    /// The default: a key file at [`default_key_file`].
    pub fn from_env() -> Result<Self, KeyError> {
        Ok(KeyConfig {
            source: KeySourceKind::File,
            key_file: default_key_file()?,
            kdf: KdfParams::default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the key file {path} is missing, and this store's data key is wrapped with it: restore \
         it from your backup, or point key_file (or {ENV_KEY_FILE}) at it; the store stays \
         closed until then"
    )]
    KeyFileMissing { path: PathBuf },
    #[error(
        "key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` \
         and try again"
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("cannot read or write key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not an icsync key (64 hexadecimal digits expected)")]
    KeyFileInvalid { path: PathBuf },
    #[error(
        "the key file {path} does not open the keyring {keyring}: it belongs to another store \
         or machine; point key_file (or {ENV_KEY_FILE}) at this store's key file"
    )]
    WrongKeyFile { path: PathBuf, keyring: PathBuf },
    #[error("wrong passphrase: the store stays locked (run `icsync unlock` again)")]
    WrongPassphrase,
    #[error("the store is locked: run `icsync unlock`")]
    PassphraseNeeded,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("cannot read or write keyring {path}: {source}")]
    KeyringIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keyring {path} is damaged ({detail}); restore it from a backup of the data dir")]
    KeyringCorrupt { path: PathBuf, detail: String },
    #[error("passphrase key derivation failed: {0}")]
    Kdf(String),
    #[error("no home directory found to place the key file; set key_file or {ENV_KEY_FILE}")]
    NoHome,
    #[error(
        "no OS credential store answers (on Linux, no Secret Service on the session bus): {detail}"
    )]
    KeychainUnavailable { detail: String },
    #[error("the credential store holding {entry} is locked: {detail}")]
    KeychainLocked { entry: String, detail: String },
    #[error(
        "the credential store has no entry {entry}, which wraps this store's data key (it was \
         deleted): the store cannot be opened"
    )]
    KeychainEntryMissing { entry: String },
    #[error("the credential store entry {entry} does not hold an icsync key")]
    KeychainEntryInvalid { entry: String },
    #[error(
        "the credential store entry {entry} does not open the keyring {keyring}: it was \
         overwritten, or the keyring belongs to another store"
    )]
    WrongKeychainEntry { entry: String, keyring: PathBuf },
    #[error("the credential store failed on entry {entry}: {detail}")]
    KeychainFailed { entry: String, detail: String },
    #[error(
        "the OS credential store did not answer within {secs} s (a locked keyring waiting for a \
         password prompt, or a Secret Service that is not running or still starting)"
    )]
    KeychainTimeout { secs: u64 },
}

impl KeyError {
    /// Whether the OS credential store refused or lacks the key (a condition outside the
    /// store, which a daemon waits out locked).
    pub fn is_keychain(&self) -> bool {
        matches!(
            self,
            KeyError::KeychainUnavailable { .. }
                | KeyError::KeychainLocked { .. }
                | KeyError::KeychainEntryMissing { .. }
                | KeyError::KeychainEntryInvalid { .. }
                | KeyError::WrongKeychainEntry { .. }
                | KeyError::KeychainFailed { .. }
                | KeyError::KeychainTimeout { .. }
        )
    }

    /// What to do, for the errors whose message does not already say it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            KeyError::KeychainUnavailable { .. } => {
                "start gnome-keyring (or another Secret Service) in your desktop session, or use \
                 key_source = \"file\""
            }
            KeyError::KeychainTimeout { .. } => {
                "unlock the keyring (log in to the desktop session) or start gnome-keyring, or use \
                 key_source = \"file\"; then `icsync unlock` for a running daemon"
            }
            KeyError::KeychainLocked { .. } => {
                "unlock the keyring (log in to the desktop session, or unlock it in Seahorse / \
                 Keychain Access), then `icsync unlock` for a running daemon"
            }
            KeyError::KeychainEntryMissing { .. } | KeyError::WrongKeychainEntry { .. } => {
                "restore that entry from a backup of the credential store (service \"icsync\"); \
                 records stay encrypted until then"
            }
            KeyError::KeychainEntryInvalid { .. } | KeyError::KeychainFailed { .. } => {
                "`icsync doctor` checks the entry; the keychain's own tool shows it (service \
                 \"icsync\")"
            }
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredKdf {
    algorithm: String,
    #[serde(flatten)]
    params: KdfParams,
    salt: String,
}

/// The keyring file's content: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    version: u32,
    source: KeySourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<StoredKdf>,
    /// The credential store entry's account name (keychain keyrings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    nonce: String,
    ciphertext: String,
}

/// What wraps (or unwraps) a data key.
pub enum Wrapping<'a> {
    KeyFile(&'a Path),
    Passphrase(&'a Passphrase, KdfParams),
    /// A new entry is made to wrap; a keyring's own entry unwraps.
    Keychain(Keychain),
}

fn aad(source: KeySourceKind) -> Vec<u8> {
    format!("icsync keyring v{KEYRING_VERSION} {}", source.as_str()).into_bytes()
}

fn argon2_key(
    passphrase: &Passphrase,
    params: KdfParams,
    salt: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let p = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| KeyError::Kdf(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| KeyError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Reads a wrapping key file, refusing one others can read.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let io = |source| KeyError::KeyFileIo {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::KeyFileMissing {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(text.trim(), key.as_mut()).map_err(|_| KeyError::KeyFileInvalid {
        path: path.to_owned(),
    })?;
    Ok(key)
}

fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates a new random wrapping key file, mode 0600; refuses to overwrite one.
pub fn create_key_file(path: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::KeyFileIo {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        create_private_dirs(dir).map_err(io)?;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    random_bytes(key.as_mut());
    let mut text = Zeroizing::new(hex::encode(key.as_ref()));
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The key file's key, creating the file when there is none yet.
fn key_file_key(path: &Path, create: bool) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    match read_key_file(path) {
        Err(KeyError::KeyFileMissing { .. }) if create => {
            match create_key_file(path) {
                // Another process (a second store of the same user) made it meanwhile.
                Err(KeyError::KeyFileIo { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => other?,
            }
            read_key_file(path)
        }
        other => other,
    }
}

impl Keyring {
    pub fn path_in(store_dir: &Path) -> PathBuf {
        store_dir.join(KEYRING_FILE)
    }

    pub fn source(&self) -> KeySourceKind {
        self.source
    }

    /// The credential store entry's account name, for a keychain keyring.
    pub fn keychain_account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Wraps `data_key`. A key file that does not exist yet is created.
    pub fn wrap(data_key: &DataKey, with: &Wrapping<'_>) -> Result<Keyring, KeyError> {
        let mut account = None;
        let (source, wrapping_key, kdf) = match with {
            Wrapping::KeyFile(path) => (KeySourceKind::File, key_file_key(path, true)?, None),
            Wrapping::Keychain(kc) => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                random_bytes(key.as_mut());
                let name = keychain::new_account();
                kc.store_key(&name, &key)?;
                account = Some(name);
                (KeySourceKind::Keychain, key, None)
            }
            Wrapping::Passphrase(p, params) => {
                if p.is_empty() {
                    return Err(KeyError::EmptyPassphrase);
                }
                let mut salt = [0u8; SALT_LEN];
                random_bytes(&mut salt);
                let key = argon2_key(p, *params, &salt)?;
                let stored = StoredKdf {
                    algorithm: "argon2id".into(),
                    params: *params,
                    salt: hex::encode(salt),
                };
                (KeySourceKind::Passphrase, key, Some(stored))
            }
        };
        let sealed = seal_with(&wrapping_key, &aad(source), data_key.as_bytes());
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        Ok(Keyring {
            version: KEYRING_VERSION,
            source,
            kdf,
            account,
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Unwraps the data key. `path` names the keyring in errors. The wrapping must match
    /// the keyring's source; nothing is created.
    pub fn unwrap(&self, with: &Wrapping<'_>, path: &Path) -> Result<DataKey, KeyError> {
        let corrupt = |detail: &str| KeyError::KeyringCorrupt {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let wrapping_key = match (self.source, with) {
            (KeySourceKind::File, Wrapping::KeyFile(file)) => key_file_key(file, false)?,
            (KeySourceKind::Passphrase, Wrapping::Passphrase(p, _)) => {
                let kdf = self.kdf.as_ref().ok_or_else(|| corrupt("no kdf"))?;
                if kdf.algorithm != "argon2id" {
                    return Err(corrupt("unknown kdf"));
                }
                let salt = hex::decode(&kdf.salt).map_err(|_| corrupt("bad salt"))?;
                argon2_key(p, kdf.params, &salt)?
            }
            (KeySourceKind::Keychain, Wrapping::Keychain(kc)) => kc.read_key(
                self.own_account()
                    .ok_or_else(|| corrupt("bad keychain account"))?,
            )?,
            (KeySourceKind::Passphrase, _) => return Err(KeyError::PassphraseNeeded),
            (source, _) => {
                return Err(corrupt(&format!(
                    "wrapped by source {}, not the one given",
                    source.as_str()
                )))
            }
        };
        let mut sealed = hex::decode(&self.nonce).map_err(|_| corrupt("bad nonce"))?;
        sealed.extend(hex::decode(&self.ciphertext).map_err(|_| corrupt("bad ciphertext"))?);
        let plain =
            open_with(&wrapping_key, &aad(self.source), &sealed).map_err(|_| match with {
                Wrapping::KeyFile(file) => KeyError::WrongKeyFile {
                    path: file.to_path_buf(),
                    keyring: path.to_owned(),
                },
                Wrapping::Passphrase(..) => KeyError::WrongPassphrase,
                Wrapping::Keychain(_) => KeyError::WrongKeychainEntry {
                    entry: keychain::entry_name(self.account.as_deref().unwrap_or_default()),
                    keyring: path.to_owned(),
                },
            })?;
        DataKey::from_bytes(&plain).ok_or_else(|| corrupt("wrapped key has the wrong length"))
    }

    /// The keyring's account name, when it is one `keychain` makes.
    fn own_account(&self) -> Option<&str> {
        self.account
            .as_deref()
            .filter(|a| keychain::valid_account(a))
    }

    /// Deletes this keyring's credential store entry (after a rekey made it unused); a
    /// keyring of another source has none.
    pub fn delete_keychain_entry(&self, kc: &Keychain) -> Result<(), KeyError> {
        match self.own_account() {
            Some(account) => kc.delete(account),
            None => Ok(()),
        }
    }

    /// Puts `new` in place of this keyring at `path` (a rekey). The new keyring is durable
    /// before this one's keychain entry is deleted; if it cannot be saved, the entry made for
    /// it is deleted and this keyring stays in force. `Ok(Some(e))`: the new keyring is in
    /// force but the old entry could not be deleted.
    pub fn replace_with(
        &self,
        new: &Keyring,
        path: &Path,
        kc: &Keychain,
    ) -> Result<Option<KeyError>, KeyError> {
        if let Err(e) = new.save(path) {
            let _ = new.delete_keychain_entry(kc);
            return Err(e);
        }
        Ok(self.delete_keychain_entry(kc).err())
    }

    pub fn load(path: &Path) -> Result<Option<Keyring>, KeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::KeyringIo {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| KeyError::KeyringCorrupt {
                path: path.to_owned(),
                detail: format!("{:?} error at line {}", e.classify(), e.line()),
            })
    }

    /// Writes the keyring atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::KeyringIo {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| KeyError::KeyringCorrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn a_key_file_keyring_round_trips_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg/data.key");
        let key = DataKey::generate();
        let ring = Keyring::wrap(&key, &Wrapping::KeyFile(&file)).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let path = dir.path().join("keyring.json");
        ring.save(&path).unwrap();
        let back = Keyring::load(&path).unwrap().unwrap();
        let opened = back.unwrap(&Wrapping::KeyFile(&file), &path).unwrap();
        assert_eq!(opened.as_bytes(), key.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(key.as_bytes())));
    }

    #[test]
    fn a_missing_or_foreign_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data.key");
        let ring = Keyring::wrap(&DataKey::generate(), &Wrapping::KeyFile(&file)).unwrap();
        let other = dir.path().join("other.key");
        create_key_file(&other).unwrap();
        let e = ring
            .unwrap(&Wrapping::KeyFile(&other), Path::new("k.json"))
            .unwrap_err();
        assert!(matches!(e, KeyError::WrongKeyFile { .. }), "{e}");
        let e = ring
            .unwrap(
                &Wrapping::KeyFile(&dir.path().join("gone.key")),
                Path::new("k"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("gone.key is missing"), "{e}");
    }

    #[test]
    fn a_keychain_keyring_keeps_only_the_account_and_needs_its_own_entry() {
        let kc = Keychain::in_store(keyring_core::mock::Store::new().unwrap());
        let key = DataKey::generate();
        let ring = Keyring::wrap(&key, &Wrapping::Keychain(kc.clone())).unwrap();
        assert_eq!(ring.source(), KeySourceKind::Keychain);
        let account = ring.keychain_account().unwrap().to_string();
        assert!(keychain::valid_account(&account));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        ring.save(&path).unwrap();
        let back = Keyring::load(&path).unwrap().unwrap();
        let opened = back.unwrap(&Wrapping::Keychain(kc.clone()), &path).unwrap();
        assert_eq!(opened.as_bytes(), key.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&account) && text.contains("\"keychain\""),
            "{text}"
        );
        let wrapping = kc.read_key(&account).unwrap();
        assert!(!text.contains(&hex::encode(wrapping.as_ref())));
        assert!(!text.contains(&hex::encode(key.as_bytes())));

        // A second store gets its own entry.
        let other = Keyring::wrap(&key, &Wrapping::Keychain(kc.clone())).unwrap();
        assert_ne!(other.keychain_account(), Some(account.as_str()));

        // An overwritten entry, then a deleted one, are named.
        kc.store_key(&account, &[1; KEY_LEN]).unwrap();
        let e = back
            .unwrap(&Wrapping::Keychain(kc.clone()), &path)
            .unwrap_err();
        assert!(matches!(e, KeyError::WrongKeychainEntry { .. }), "{e}");
        back.delete_keychain_entry(&kc).unwrap();
        let e = back
            .unwrap(&Wrapping::Keychain(kc.clone()), &path)
            .unwrap_err();
        assert!(e.to_string().contains(&format!("icsync/{account}")), "{e}");
        assert!(e.hint().unwrap().contains("restore"), "{e}");
        // The other store's entry is untouched.
        assert!(other.unwrap(&Wrapping::Keychain(kc), &path).is_ok());
    }

    #[test]
    fn a_rekey_deletes_the_old_entry_only_once_the_new_keyring_is_saved() {
        let kc = Keychain::in_store(keyring_core::mock::Store::new().unwrap());
        let key = DataKey::generate();
        let old = Keyring::wrap(&key, &Wrapping::Keychain(kc.clone())).unwrap();
        let old_account = old.keychain_account().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        old.save(&path).unwrap();

        // The new keyring cannot be written: the old one and its entry stay, the new entry goes.
        let new = Keyring::wrap(&key, &Wrapping::Keychain(kc.clone())).unwrap();
        let new_account = new.keychain_account().unwrap().to_string();
        let nowhere = dir.path().join("gone/keyring.json");
        assert!(old.replace_with(&new, &nowhere, &kc).is_err());
        assert!(kc.read_key(&old_account).is_ok());
        assert!(kc.read_key(&new_account).is_err());
        assert!(Keyring::load(&path)
            .unwrap()
            .unwrap()
            .unwrap(&Wrapping::Keychain(kc.clone()), &path)
            .is_ok());

        // To a key file: saved, then the old entry deleted.
        let file = dir.path().join("data.key");
        let new = Keyring::wrap(&key, &Wrapping::KeyFile(&file)).unwrap();
        assert!(old.replace_with(&new, &path, &kc).unwrap().is_none());
        assert!(matches!(
            kc.read_key(&old_account),
            Err(KeyError::KeychainEntryMissing { .. })
        ));
        let back = Keyring::load(&path).unwrap().unwrap();
        let opened = back.unwrap(&Wrapping::KeyFile(&file), &path).unwrap();
        assert_eq!(opened.as_bytes(), key.as_bytes());
    }

    #[test]
    fn a_keyring_with_a_forged_account_is_refused_before_the_keychain_is_asked() {
        let kc = Keychain::in_store(keyring_core::mock::Store::new().unwrap());
        let mut ring =
            Keyring::wrap(&DataKey::generate(), &Wrapping::Keychain(kc.clone())).unwrap();
        ring.account = Some("login-password".into());
        let e = ring
            .unwrap(&Wrapping::Keychain(kc.clone()), Path::new("k"))
            .unwrap_err();
        assert!(matches!(e, KeyError::KeyringCorrupt { .. }), "{e}");
        ring.delete_keychain_entry(&kc).unwrap();
    }

    #[test]
    fn key_source_names_round_trip() {
        for k in [
            KeySourceKind::File,
            KeySourceKind::Passphrase,
            KeySourceKind::Keychain,
        ] {
            assert_eq!(KeySourceKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(KeySourceKind::parse("usb"), None);
    }

    #[test]
    fn a_passphrase_keyring_needs_the_right_passphrase() {
        let key = DataKey::generate();
        let p = Passphrase::new("correct horse");
        let ring = Keyring::wrap(&key, &Wrapping::Passphrase(&p, fast())).unwrap();
        assert_eq!(ring.source(), KeySourceKind::Passphrase);
        let k = ring
            .unwrap(
                &Wrapping::Passphrase(&p, KdfParams::default()),
                Path::new("k"),
            )
            .unwrap();
        assert_eq!(k.as_bytes(), key.as_bytes());
        let wrong = Passphrase::new("battery staple");
        let e = ring
            .unwrap(&Wrapping::Passphrase(&wrong, fast()), Path::new("k"))
            .unwrap_err();
        assert!(matches!(e, KeyError::WrongPassphrase));
        let e = ring
            .unwrap(&Wrapping::KeyFile(Path::new("/nope")), Path::new("k"))
            .unwrap_err();
        assert_eq!(e.to_string(), "the store is locked: run `icsync unlock`");
    }
}
