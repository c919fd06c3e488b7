//! A passphrase in memory: zeroized on drop, redacted in Debug, carried over the control
//! socket as a plain JSON string (the socket is private to its owner, mode 0600).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Trailing newlines are dropped (a passphrase read from a file or a pipe ends with one);
    /// other whitespace is part of the passphrase.
    pub fn new(text: impl Into<String>) -> Self {
        let mut text = Zeroizing::new(text.into());
        while text.ends_with('\n') || text.ends_with('\r') {
            text.pop();
        }
        Passphrase(text)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_newlines_are_trimmed() {
        let p = Passphrase::new("correct horse\n");
        assert_eq!(p.as_bytes(), b"correct horse");
        assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Passphrase>(&json).unwrap(), p);
    }
}
