//! The API key: a newtype whose Debug and Display never show the secret, so it cannot leak
//! through logs, error messages or panics by accident.

use crate::config::{ConfigError, Settings};

/// A bearer key such as `ic_live_…`. Only [`ApiKey::expose`] (crate-private) reveals it, and
/// the only caller is the code that builds the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a string cannot be an API key. Deliberately carries no part of the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidApiKey {
    #[error("the API key is empty")]
    Empty,
    #[error("the API key contains characters other than visible ASCII (check for stray quotes or line breaks)")]
    NotVisibleAscii,
}

/// The key the settings name, or why it cannot be used. A key that is there but malformed is
/// an error ([`ConfigError::InvalidKey`]), never "no key"; None only when none is configured.
pub fn configured(settings: &Settings) -> Result<Option<ApiKey>, ConfigError> {
    match settings.read_api_key()? {
        None => Ok(None),
        Some(text) => ApiKey::new(text)
            .map(Some)
            .map_err(|e| ConfigError::InvalidKey {
                origin: settings.key_origin(),
                reason: e.to_string(),
            }),
    }
}

/// Keys shorter than this show no characters at all when redacted: four characters of a
/// short key would be too large a share of it.
const MIN_LEN_TO_SHOW_TAIL: usize = 16;

impl ApiKey {
    /// Trims surrounding whitespace and a byte-order mark (a key read from a file usually
    /// ends in a newline, CRLF on Windows, and Notepad starts it with a BOM).
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidApiKey> {
        let key = key.into();
        let trimmed = crate::config::key_text(&key);
        if trimmed.is_empty() {
            return Err(InvalidApiKey::Empty);
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidApiKey::NotVisibleAscii);
        }
        Ok(ApiKey(trimmed.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `ic_…` plus at most the last four characters, enough to tell two keys apart.
    pub fn redacted(&self) -> String {
        if self.0.len() >= MIN_LEN_TO_SHOW_TAIL {
            format!("ic_…{}", &self.0[self.0.len() - 4..])
        } else {
            "ic_…".to_string()
        }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({})", self.redacted())
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "ic_live_4f9a8b7c6d5e4f3a2b1c";

    #[test]
    fn debug_and_display_show_at_most_the_last_four_characters() {
        let key = ApiKey::new(SECRET).unwrap();
        for shown in [
            format!("{key}"),
            format!("{key:?}"),
            format!("{:?}", Some(&key)),
        ] {
            assert!(!shown.contains("4f9a8b7c"), "{shown}");
            assert!(!shown.contains("live"), "{shown}");
            assert!(shown.contains("ic_…2b1c"), "{shown}");
        }
    }

    #[test]
    fn a_short_key_shows_none_of_its_characters() {
        let key = ApiKey::new("ic_test_abcd").unwrap();
        assert_eq!(key.to_string(), "ic_…");
    }

    #[test]
    fn surrounding_whitespace_is_trimmed_and_bad_keys_refused() {
        let key = ApiKey::new(format!("  {SECRET}\n")).unwrap();
        assert_eq!(key.expose(), SECRET);
        assert_eq!(ApiKey::new(" \n"), Err(InvalidApiKey::Empty));
        let notepad = ApiKey::new(format!("\u{feff}{SECRET}\r\n")).unwrap();
        assert_eq!(notepad.expose(), SECRET);
        assert_eq!(ApiKey::new(format!("{SECRET}\r")).unwrap().expose(), SECRET);
        assert_eq!(
            ApiKey::new("ic_live_a b"),
            Err(InvalidApiKey::NotVisibleAscii)
        );
    }
}
