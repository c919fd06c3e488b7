//! The OS credential store behind `key_source = "keychain"`: the Secret Service on Linux
//! (gnome-keyring, KeePassXC, KWallet), the Keychain on macOS, the Credential Manager on
//! Windows, through the `keyring` crates.
//!
//! It holds one entry per store: service [`SERVICE`], account `store-<32 hex digits>` (random,
//! made when the keyring is wrapped and recorded in that store's `keyring.json`, so two stores
//! never share an entry), and as secret the 32-byte wrapping key that wraps the store's data
//! key in `keyring.json`. The data key itself never goes to the credential store: the keyring
//! file stays the one format, and `rekey` moves between sources by rewrapping it.
//!
//! Failures are sorted into what a person can act on ([`classify`], pure): no credential store
//! answering, the collection locked, the entry gone. Their text names the entry, never the
//! secret.
//!
//! Every call has a deadline ([`DEFAULT_TIMEOUT`], or `ICSYNC_KEYCHAIN_TIMEOUT_SECS`, 1 to
//! 600): a Secret Service that is being D-Bus-activated, or a locked collection waiting on a
//! password prompt no one can see, would otherwise hang the command (D-Bus itself gives up on
//! an activation only after minutes). A call past its deadline is left to finish on its own
//! thread; the caller gets [`KeyError::KeychainTimeout`].

use std::sync::Arc;
use std::time::Duration;

use keyring_core::{CredentialStore, Entry, Error as StoreError};
use zeroize::Zeroizing;

use super::keyring::KeyError;
use super::{random_bytes, KEY_LEN};

/// The service name of every icsync entry.
pub const SERVICE: &str = "icsync";
const ACCOUNT_PREFIX: &str = "store-";
const ACCOUNT_ID_LEN: usize = 16;
/// How long one credential store call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Overrides [`DEFAULT_TIMEOUT`] (whole seconds, 1 to 600).
pub const ENV_TIMEOUT: &str = "ICSYNC_KEYCHAIN_TIMEOUT_SECS";

/// The deadline from `ICSYNC_KEYCHAIN_TIMEOUT_SECS`'s value, when it is one.
pub fn timeout_from(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=600).contains(s))
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// A new, random account name for one store's entry.
pub fn new_account() -> String {
    let mut id = [0u8; ACCOUNT_ID_LEN];
    random_bytes(&mut id);
    format!("{ACCOUNT_PREFIX}{}", hex::encode(id))
}

/// Whether `account` is one [`new_account`] makes (a keyring file edited by hand, or damaged,
/// must not send an arbitrary name to the credential store).
pub fn valid_account(account: &str) -> bool {
    account.strip_prefix(ACCOUNT_PREFIX).is_some_and(|id| {
        id.len() == 2 * ACCOUNT_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// How an entry is named to a person: `icsync/store-…` (service/account).
pub fn entry_name(account: &str) -> String {
    format!("{SERVICE}/{account}")
}

/// The user's error for a credential store failure on `account`'s entry. `connecting` is true
/// when the failure came while reaching the store, before any entry was asked for.
pub fn classify(account: &str, connecting: bool, e: StoreError) -> KeyError {
    let entry = entry_name(account);
    match e {
        StoreError::NoEntry => KeyError::KeychainEntryMissing { entry },
        StoreError::NoStorageAccess(detail) => KeyError::KeychainLocked {
            entry,
            detail: detail.to_string(),
        },
        StoreError::NoDefaultStore => KeyError::KeychainUnavailable {
            detail: "no credential store could be initialised on this system".into(),
        },
        StoreError::PlatformFailure(detail) if connecting => KeyError::KeychainUnavailable {
            detail: detail.to_string(),
        },
        StoreError::BadEncoding(_) | StoreError::BadDataFormat(..) => {
            KeyError::KeychainEntryInvalid { entry }
        }
        other => KeyError::KeychainFailed {
            entry,
            detail: other.to_string(),
        },
    }
}

/// Where entries are kept: the OS credential store, or (tests) any `keyring_core` store.
#[derive(Clone, Default)]
pub struct Keychain {
    store: Option<Arc<CredentialStore>>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.store.is_some() {
            "Keychain(given store)"
        } else {
            "Keychain(os)"
        })
    }
}

impl Keychain {
    /// The OS credential store, reached afresh at each use (a daemon started before the
    /// user's keyring daemon reaches it once that runs).
    pub fn os() -> Self {
        Keychain { store: None }
    }

    /// Entries in `store` instead (tests use `keyring_core::mock`).
    #[doc(hidden)]
    pub fn in_store(store: Arc<CredentialStore>) -> Self {
        Keychain { store: Some(store) }
    }

    /// Runs `op` on `account`'s entry on its own thread, within the deadline.
    fn with_entry<T: Send + 'static>(
        &self,
        account: &str,
        op: impl FnOnce(&str, Entry) -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, KeyError> {
        let timeout = timeout_from(std::env::var(ENV_TIMEOUT).ok().as_deref());
        let store = self.store.clone();
        let name = account.to_string();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("keychain".into())
            .spawn(move || {
                let built = match &store {
                    Some(store) => Entry::new_in_store(store, SERVICE, &name),
                    None => os_entry(&name),
                };
                let out = built
                    .map_err(|e| classify(&name, true, e))
                    .and_then(|entry| op(&name, entry));
                let _ = tx.send(out);
            })
            .map_err(|e| KeyError::KeychainFailed {
                entry: entry_name(account),
                detail: format!("cannot start a thread: {e}"),
            })?;
        rx.recv_timeout(timeout)
            .unwrap_or(Err(KeyError::KeychainTimeout {
                secs: timeout.as_secs(),
            }))
    }

    /// Stores `key` as `account`'s secret (replacing one there).
    pub fn store_key(&self, account: &str, key: &[u8; KEY_LEN]) -> Result<(), KeyError> {
        let key = Zeroizing::new(*key);
        self.with_entry(account, move |name, entry| {
            entry
                .set_secret(key.as_ref())
                .map_err(|e| classify(name, false, e))
        })
    }

    /// `account`'s wrapping key.
    pub fn read_key(&self, account: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        self.with_entry(account, |name, entry| {
            let secret = Zeroizing::new(entry.get_secret().map_err(|e| classify(name, false, e))?);
            let fixed: [u8; KEY_LEN] =
                secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::KeychainEntryInvalid {
                        entry: entry_name(name),
                    })?;
            Ok(Zeroizing::new(fixed))
        })
    }

    /// Deletes `account`'s entry; one already gone is not an error.
    pub fn delete(&self, account: &str) -> Result<(), KeyError> {
        self.with_entry(account, |name, entry| match entry.delete_credential() {
            Ok(()) | Err(StoreError::NoEntry) => Ok(()),
            Err(e) => Err(classify(name, false, e)),
        })
    }
}

/// A new connection to the Secret Service each time: its default store in the `keyring`
/// crate is made once per process, so a failure at start would stay for the process's life.
#[cfg(target_os = "linux")]
fn os_entry(account: &str) -> Result<Entry, StoreError> {
    let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
    Entry::new_in_store(&store, SERVICE, account)
}

#[cfg(not(target_os = "linux"))]
fn os_entry(account: &str) -> Result<Entry, StoreError> {
    keyring::Entry::new(SERVICE, account).map(|e| e.inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> Keychain {
        Keychain::in_store(keyring_core::mock::Store::new().unwrap())
    }

    #[test]
    fn accounts_are_random_and_only_ours_are_valid() {
        let (a, b) = (new_account(), new_account());
        assert_ne!(a, b);
        assert!(valid_account(&a), "{a}");
        assert_eq!(entry_name(&a), format!("icsync/{a}"));
        for bad in [
            "",
            "store-",
            "store-xyz",
            "other-0123",
            &format!("{a}0"),
            &a[1..],
        ] {
            assert!(!valid_account(bad), "{bad}");
        }
    }

    #[test]
    fn a_key_round_trips_and_a_deleted_entry_is_named_missing() {
        let kc = mock();
        let account = new_account();
        let key = [7u8; KEY_LEN];
        kc.store_key(&account, &key).unwrap();
        assert_eq!(*kc.read_key(&account).unwrap(), key);
        kc.delete(&account).unwrap();
        kc.delete(&account).unwrap();
        let e = kc.read_key(&account).unwrap_err();
        assert!(matches!(e, KeyError::KeychainEntryMissing { .. }), "{e}");
        assert!(e.to_string().contains(&entry_name(&account)), "{e}");
    }

    #[test]
    fn the_deadline_is_bounded() {
        assert_eq!(timeout_from(None), DEFAULT_TIMEOUT);
        assert_eq!(timeout_from(Some("3")), Duration::from_secs(3));
        for bad in ["0", "601", "-1", "soon", ""] {
            assert_eq!(timeout_from(Some(bad)), DEFAULT_TIMEOUT, "{bad}");
        }
    }

    #[test]
    fn failures_are_sorted_by_what_a_person_can_do() {
        let boxed = |s: &str| -> Box<dyn std::error::Error + Send + Sync> { s.into() };
        let a = "store-00";
        let e = classify(a, true, StoreError::PlatformFailure(boxed("no bus")));
        assert!(matches!(e, KeyError::KeychainUnavailable { .. }), "{e}");
        assert!(e.hint().unwrap().contains("key_source = \"file\""));
        let e = classify(a, false, StoreError::NoStorageAccess(boxed("locked")));
        assert!(matches!(e, KeyError::KeychainLocked { .. }), "{e}");
        assert!(e.to_string().contains("icsync/store-00"), "{e}");
        let e = classify(a, false, StoreError::PlatformFailure(boxed("timeout")));
        assert!(matches!(e, KeyError::KeychainFailed { .. }), "{e}");
        let e = classify(a, false, StoreError::NoEntry);
        assert!(e.to_string().contains("cannot be opened"), "{e}");
        assert!(e.is_keychain());
    }
}
