//! The sandbox's configuration: organisations and their keys, the admin token, the fault
//! settings and the state file, parsed from the CLI flags. It owns the secret newtypes that
//! keep API keys and the admin token out of Debug output; it does no I/O.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An API key or admin token. Its Debug output is redacted so a key never reaches a log,
/// an error report or a panic message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for comparing with a presented credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An organisation and the one API key that belongs to it (`--org NAME=KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSpec {
    pub name: String,
    pub key: Secret,
}

/// Why an `--org` or fault flag value is unusable. Messages never repeat a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--org must be NAME=KEY (got no '=')")]
    OrgMissingEquals,
    #[error("organisation name {0:?} must be 1-64 letters, digits, '-' or '_'")]
    BadOrgName(String),
    #[error("the key of organisation {0:?} must be 1-255 visible ASCII characters with no spaces")]
    BadOrgKey(String),
    #[error("organisation {0:?} is given twice")]
    DuplicateOrg(String),
    #[error(
        "organisations {0:?} and {1:?} have the same key; each key belongs to one organisation"
    )]
    DuplicateKey(String, String),
    #[error("the admin token must be 1-255 visible ASCII characters with no spaces")]
    BadAdminToken,
}

/// The org used when no `--org` is given; its key is printed at start.
pub const DEMO_ORG: &str = "demo";
pub const DEMO_KEY: &str = "ic_test_demo";

fn is_token(s: &str) -> bool {
    (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses one `--org NAME=KEY` value.
pub fn parse_org(s: &str) -> Result<OrgSpec, ConfigError> {
    let (name, key) = s.split_once('=').ok_or(ConfigError::OrgMissingEquals)?;
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(ConfigError::BadOrgName(name.to_string()));
    }
    if !is_token(key) {
        return Err(ConfigError::BadOrgKey(name.to_string()));
    }
    Ok(OrgSpec {
        name: name.to_string(),
        key: Secret::new(key),
    })
}

/// Parses `--admin-token`.
pub fn parse_admin_token(s: &str) -> Result<Secret, ConfigError> {
    if is_token(s) {
        Ok(Secret::new(s))
    } else {
        Err(ConfigError::BadAdminToken)
    }
}

/// Parses a fraction in [0, 1] for `--fail-rate` / `--drop-rate`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("must be a number between 0 and 1 (got {s:?})")),
    }
}

/// The injected faults. Changed live by `POST /_sandbox/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Faults {
    /// Fraction of public requests answered 503 `unavailable` before anything is executed.
    pub fail_rate: f64,
    /// Fraction of public requests executed in full, then answered by closing the connection.
    pub drop_rate: f64,
    /// Delay added to every public request (for a POST with a key: while the key is held).
    pub latency_ms: u64,
    /// Requests per second per organisation; 0 turns the limit off.
    pub rate_limit: u32,
}

/// Everything [`serve`](super::serve) needs besides its listener.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub orgs: Vec<OrgSpec>,
    pub admin_token: Option<Secret>,
    pub faults: Faults,
    pub state_file: Option<PathBuf>,
}

impl SandboxConfig {
    /// A configuration with the given orgs (the demo org when empty), no admin API, no faults
    /// and no state file. Refuses duplicate names and shared keys.
    pub fn new(orgs: Vec<OrgSpec>) -> Result<Self, ConfigError> {
        let orgs = if orgs.is_empty() {
            vec![OrgSpec {
                name: DEMO_ORG.to_string(),
                key: Secret::new(DEMO_KEY),
            }]
        } else {
            orgs
        };
        let mut names = HashSet::new();
        for (i, org) in orgs.iter().enumerate() {
            if !names.insert(org.name.as_str()) {
                return Err(ConfigError::DuplicateOrg(org.name.clone()));
            }
            if let Some(other) = orgs[..i].iter().find(|o| o.key == org.key) {
                return Err(ConfigError::DuplicateKey(
                    other.name.clone(),
                    org.name.clone(),
                ));
            }
        }
        Ok(SandboxConfig {
            orgs,
            admin_token: None,
            faults: Faults::default(),
            state_file: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_flag_splits_on_the_first_equals_and_checks_both_halves() {
        let o = parse_org("acme=ic_test_a=b").unwrap();
        assert_eq!(o.name, "acme");
        assert_eq!(o.key.expose(), "ic_test_a=b");
        assert_eq!(parse_org("acme"), Err(ConfigError::OrgMissingEquals));
        assert!(matches!(parse_org("=k"), Err(ConfigError::BadOrgName(_))));
        assert!(matches!(
            parse_org("a b=k"),
            Err(ConfigError::BadOrgName(_))
        ));
        assert!(matches!(parse_org("a="), Err(ConfigError::BadOrgKey(_))));
        assert!(matches!(parse_org("a=k k"), Err(ConfigError::BadOrgKey(_))));
    }

    #[test]
    fn keys_never_show_in_debug_or_errors() {
        let o = parse_org("acme=ic_test_supersecret").unwrap();
        assert!(!format!("{o:?}").contains("supersecret"));
        let e = parse_org("acme=ic_test_super secret").unwrap_err();
        assert!(!e.to_string().contains("super"));
        let dup = SandboxConfig::new(vec![
            parse_org("a=ic_test_same").unwrap(),
            parse_org("b=ic_test_same").unwrap(),
        ])
        .unwrap_err();
        assert_eq!(dup, ConfigError::DuplicateKey("a".into(), "b".into()));
        assert!(!dup.to_string().contains("ic_test_same"));
    }

    #[test]
    fn no_org_means_the_demo_org() {
        let c = SandboxConfig::new(vec![]).unwrap();
        assert_eq!(c.orgs.len(), 1);
        assert_eq!(c.orgs[0].name, DEMO_ORG);
        assert_eq!(c.orgs[0].key.expose(), DEMO_KEY);
    }

    #[test]
    fn rates_are_fractions() {
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("1.0"), Ok(1.0));
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("1.01").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("NaN").is_err());
    }
}
