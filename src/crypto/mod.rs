//! Key material and the primitives built on it: sealing values (XChaCha20-Poly1305 with a
//! random 24-byte nonce per value and the caller's associated data), keyed index terms
//! (HMAC-SHA-256), and the keyring that keeps the data key wrapped on disk (`keyring`).
//!
//! It owns bytes and keys only: it never names sled, never knows what a record is, and
//! never logs. Every type holding key bytes zeroizes them on drop and prints as
//! `<redacted>` in Debug output.
//!
//! One random 256-bit data key per store. Two subkeys are derived from it with HKDF-SHA-256
//! (one for sealing, one for index terms), so a leaked index term key (say, through a future
//! bug that logs it) cannot open values, and the two uses never share a key.

pub mod keychain;
pub mod keyring;
pub mod secret;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use keyring::{KdfParams, KeyConfig, KeyError, KeySourceKind, Keyring};
pub use secret::Passphrase;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag appended to every sealed value.
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, or bytes changed (or moved to another record) since they were sealed.
    #[error("sealed value does not open with this key (wrong key, or the bytes were altered)")]
    Open,
    #[error("sealed value is too short ({0} bytes)")]
    Short(usize),
}

/// Fills `out` from the operating system's random source.
pub fn random_bytes(out: &mut [u8]) {
    OsRng.fill_bytes(out);
}

/// The store's data key: random, 256 bits, only ever written to disk wrapped.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_bytes(key.as_mut());
        DataKey(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let fixed: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(fixed)))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Seals `plain` under `key`: `nonce || ciphertext || tag`. `aad` is authenticated, not
/// stored: opening with another `aad` fails.
pub fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), AeadPayload { msg: plain, aad })
        // Only fails for messages beyond 256 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

pub fn open_with(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Short(sealed.len()));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(nonce), AeadPayload { msg: body, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// The keys a store works with, derived from its data key. Cheap to clone (shared).
#[derive(Clone)]
pub struct Crypto {
    keys: std::sync::Arc<Subkeys>,
}

struct Subkeys {
    seal: Zeroizing<[u8; KEY_LEN]>,
    index: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypto(<redacted>)")
    }
}

const HKDF_SALT: &[u8] = b"icsync data key v1";

fn derive(data_key: &DataKey, label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), data_key.as_bytes());
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA-256's limit of 8160.
    let _ = hk.expand(label, out.as_mut());
    out
}

impl Crypto {
    pub fn new(data_key: &DataKey) -> Self {
        Crypto {
            keys: std::sync::Arc::new(Subkeys {
                seal: derive(data_key, b"seal"),
                index: derive(data_key, b"index"),
            }),
        }
    }

    /// A fresh random data key; for tests and for a new store.
    pub fn generate() -> Self {
        Crypto::new(&DataKey::generate())
    }

    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        seal_with(&self.keys.seal, aad, plain)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_with(&self.keys.seal, aad, sealed)
    }

    /// HMAC-SHA-256 of `text` under the index subkey, in the `domain` (so an email and an
    /// external_id with the same text give different terms).
    pub fn term(&self, domain: &[u8], text: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.keys.index.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(domain.len() as u64).to_be_bytes());
        mac.update(domain);
        mac.update(text);
        mac.finalize().into_bytes().into()
    }

    /// A value that identifies the data key without revealing it: stored beside the data so
    /// a store is never opened (or written) with another store's key.
    pub fn key_check(&self) -> [u8; 32] {
        self.term(b"key check", b"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_associated_data() {
        let c = Crypto::generate();
        let sealed = c.seal(b"record 1", b"Ada Lovelace");
        assert_eq!(sealed.len(), NONCE_LEN + 12 + TAG_LEN);
        assert!(!sealed.windows(3).any(|w| w == b"Ada"));
        assert_eq!(
            c.open(b"record 1", &sealed).unwrap().as_slice(),
            b"Ada Lovelace"
        );
        assert_eq!(c.open(b"record 2", &sealed), Err(CryptoError::Open));
        assert_eq!(
            Crypto::generate().open(b"record 1", &sealed),
            Err(CryptoError::Open)
        );
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert_eq!(c.open(b"record 1", &flipped), Err(CryptoError::Open));
        assert_eq!(c.open(b"record 1", &[0; 5]), Err(CryptoError::Short(5)));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let c = Crypto::generate();
        assert_ne!(c.seal(b"", b"same"), c.seal(b"", b"same"));
    }

    #[test]
    fn terms_are_stable_per_key_and_separated_by_domain() {
        let key = DataKey::generate();
        let a = Crypto::new(&key);
        let b = Crypto::new(&DataKey::from_bytes(key.as_bytes()).unwrap());
        assert_eq!(a.term(b"email", b"a@x.io"), b.term(b"email", b"a@x.io"));
        assert_ne!(
            a.term(b"email", b"a@x.io"),
            a.term(b"external_id", b"a@x.io")
        );
        assert_ne!(
            a.term(b"email", b"a@x.io"),
            Crypto::generate().term(b"email", b"a@x.io")
        );
        assert_ne!(a.key_check(), Crypto::generate().key_check());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let key = DataKey::generate();
        let shown = format!("{key:?} {:?}", Crypto::new(&key));
        assert!(!shown.contains(&hex::encode(key.as_bytes())));
        assert!(shown.contains("redacted"));
    }
}
