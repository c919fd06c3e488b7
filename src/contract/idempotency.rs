//! The `Idempotency-Key` header: 1 to 255 characters, remembered for 24 hours per organisation.

use serde::{Deserialize, Serialize};

/// How long a key is remembered from its first use.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;

/// A valid Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

/// Why a header value is not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdempotencyKey {
    #[error("Idempotency-Key must not be empty")]
    Empty,
    #[error("Idempotency-Key must be at most 255 characters (got {0})")]
    TooLong(usize),
    #[error("Idempotency-Key must be visible ASCII characters")]
    NotVisibleAscii,
}

impl IdempotencyKey {
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let s = s.into();
        let len = s.chars().count();
        if len == 0 {
            return Err(InvalidIdempotencyKey::Empty);
        }
        if len > 255 {
            return Err(InvalidIdempotencyKey::TooLong(len));
        }
        // Header values travel as bytes; anything outside visible ASCII would not survive
        // proxies intact, so it is refused rather than guessed at.
        if !s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(InvalidIdempotencyKey::NotVisibleAscii);
        }
        Ok(IdempotencyKey(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidIdempotencyKey;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        IdempotencyKey::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_boundaries() {
        assert_eq!(IdempotencyKey::new(""), Err(InvalidIdempotencyKey::Empty));
        assert!(IdempotencyKey::new("k").is_ok());
        assert!(IdempotencyKey::new("k".repeat(255)).is_ok());
        assert_eq!(
            IdempotencyKey::new("k".repeat(256)),
            Err(InvalidIdempotencyKey::TooLong(256))
        );
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(
            IdempotencyKey::new("a\nb"),
            Err(InvalidIdempotencyKey::NotVisibleAscii)
        );
        assert!(IdempotencyKey::new("0190b0f2-7c1e-7000-8000-000000000000:3").is_ok());
    }
}
