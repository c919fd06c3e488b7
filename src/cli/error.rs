//! What a person sees when a command fails. A user's mistake or a condition they can fix (a
//! bad config, no daemon, an unknown record id, a key file, a full disk) is one plain line,
//! `error: <what>`, and a `hint: <what to do>` line where there is one: no colour, no
//! backtrace, Display text only. An internal error (a task that panicked, a reply the protocol
//! does not allow) gets the full color-eyre report instead, as a panic does.
//!
//! [`classify`] walks an error's chain and decides; it is pure, so main.rs only prints.

use std::error::Error;

use super::CliError;
use crate::api::ApiClientError;
use crate::config::ConfigError;
use crate::control::{ClientError, ControlErrorCode};
use crate::service::ServiceError;
use crate::store::StoreError;

/// A failure the user can act on, as it is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            writeln!(f, "hint: {hint}")?;
        }
        Ok(())
    }
}

/// The hint for one error of a known type, and whether that type is a user's error at all.
enum Known {
    User(Option<String>),
    Internal,
}

fn known(e: &(dyn Error + 'static)) -> Option<Known> {
    let hint = |s: &str| Some(Known::User(Some(s.to_string())));
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return match e {
            ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
                hint("fix that line of the file, then `icsync doctor` checks the whole setup")
            }
            ConfigError::Read { .. } => hint("check the path given with --config or ICSYNC_CONFIG"),
            ConfigError::InvalidKey { .. } | ConfigError::KeyFileEmpty { .. } => {
                hint("write the organisation's API key, alone on one line, to the key file")
            }
            _ => Some(Known::User(None)),
        };
    }
    if let Some(e) = e.downcast_ref::<ClientError>() {
        return match e {
            ClientError::NotRunning(_) => hint("start it with `icsync daemon`"),
            ClientError::Protocol(_) => Some(Known::Internal),
            _ => Some(Known::User(None)),
        };
    }
    if let Some(e) = e.downcast_ref::<CliError>() {
        return match e {
            // Transparent: its source is the client error's source, so look at it here.
            CliError::Client(c) => known(c),
            CliError::Join(_) => Some(Known::Internal),
            CliError::Key(k)
            | CliError::Store {
                source: StoreError::Key(k),
                ..
            } if k.hint().is_some() => Some(Known::User(k.hint().map(str::to_string))),
            CliError::Store {
                source: StoreError::Locked { .. },
                ..
            } => hint("stop the other icsync process, or wait for the daemon to finish starting"),
            // The message already ends with what to do (run `icsync recover`, free space).
            CliError::Store { source, .. } if source.is_damaged() || source.is_disk_full() => {
                Some(Known::User(None))
            }
            CliError::Store { dir, .. } => Some(Known::User(Some(format!(
                "if a daemon is running, its control socket is not answering: check its log in {}",
                dir.join("logs").display()
            )))),
            CliError::Control(c) => match c.code {
                ControlErrorCode::NotFound | ControlErrorCode::Ambiguous => {
                    hint("`icsync list` shows each record's short id and external id")
                }
                ControlErrorCode::Locked => hint("run `icsync unlock`"),
                _ => Some(Known::User(None)),
            },
            _ => Some(Known::User(None)),
        };
    }
    let user = e.is::<StoreError>()
        || e.is::<ServiceError>()
        || e.is::<ApiClientError>()
        || e.is::<std::io::Error>();
    user.then_some(Known::User(None))
}

/// The user-facing form of an error chain (outermost first), or None when it is internal.
/// The first error of a known type decides (an error of no known type is the environment's,
/// such as a port in use, and so the user's); the message joins every level's Display text,
/// leaving out a cause its parent already quoted.
pub fn classify<'a>(
    chain: impl IntoIterator<Item = &'a (dyn Error + 'static)>,
) -> Option<UserError> {
    let mut message = String::new();
    let mut verdict: Option<Known> = None;
    for e in chain {
        let text = e.to_string();
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        if verdict.is_none() {
            verdict = known(e);
        }
    }
    match verdict {
        Some(Known::User(hint)) => Some(UserError {
            message: one_line(&message),
            hint,
        }),
        None => Some(UserError {
            message: one_line(&message),
            hint: None,
        }),
        Some(Known::Internal) => None,
    }
}

/// A message's lines joined ("the record is not valid: email: …; phone: …") and control
/// characters dropped, so a message is one line and cannot move the cursor or recolour the
/// terminal.
fn one_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut joined = lines.next().unwrap_or_default().to_string();
    for (i, line) in lines.enumerate() {
        joined.push_str(if i == 0 { ": " } else { "; " });
        joined.push_str(line);
    }
    joined.chars().filter(|c| !c.is_control()).collect()
}

/// Whether error reports may use colour on stderr: a terminal, and `NO_COLOR` unset or empty
/// (https://no-color.org).
pub fn colour_allowed(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour_allowed`] for this process's stderr and environment.
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    colour_allowed(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlError;
    use std::path::PathBuf;

    fn chain<'a>(e: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
        let mut out = vec![e];
        let mut next = e.source();
        while let Some(s) = next {
            out.push(s);
            next = s.source();
        }
        out
    }

    #[test]
    fn a_config_error_is_one_line_without_its_repeated_cause() {
        let e = ConfigError::Read {
            path: PathBuf::from("/x/icsync.toml"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let user = classify(chain(&e)).unwrap();
        assert_eq!(user.message.matches("not found").count(), 1, "{user:?}");
        assert!(user
            .message
            .starts_with("cannot read config file /x/icsync.toml"));
        assert!(user.hint.unwrap().contains("--config"));
    }

    #[test]
    fn no_daemon_is_a_user_error_with_the_fix() {
        let e = CliError::Client(ClientError::NotRunning(PathBuf::from("/d/icsync.sock")));
        let user = classify(chain(&e)).unwrap();
        assert!(user.message.contains("no icsync daemon"), "{user:?}");
        assert_eq!(user.hint.as_deref(), Some("start it with `icsync daemon`"));
        assert_eq!(
            user.to_string(),
            format!(
                "error: {}\nhint: start it with `icsync daemon`\n",
                user.message
            )
        );
    }

    #[test]
    fn field_errors_become_one_line_and_control_characters_go() {
        let mut c = ControlError::new(ControlErrorCode::Invalid, "the record is not valid");
        c.invalid.push(crate::contract::FieldError {
            field: "email".into(),
            message: "not an email\u{1b}[31m".into(),
        });
        let user = classify(chain(&CliError::Control(c))).unwrap();
        assert!(!user.message.contains('\n') && !user.message.contains('\u{1b}'));
        assert_eq!(
            user.message,
            "the record is not valid: email: not an email[31m"
        );
    }

    #[test]
    fn a_store_error_hints_by_its_cause() {
        let damaged = CliError::Store {
            dir: PathBuf::from("/d"),
            source: StoreError::Damaged {
                detail: "truncated".into(),
            },
        };
        let user = classify(chain(&damaged)).unwrap();
        assert!(user.message.ends_with("run `icsync recover`)"), "{user:?}");
        assert!(!user.message.contains("socket"), "{user:?}");
        assert_eq!(user.hint, None, "the message already says what to do");

        let other = CliError::Store {
            dir: PathBuf::from("/d"),
            source: StoreError::KeyLocked,
        };
        let user = classify(chain(&other)).unwrap();
        assert_eq!(
            user.message,
            "cannot open the store in /d: the store is locked: run `icsync unlock`"
        );
        assert!(user.hint.unwrap().contains("/d/logs"));
    }

    #[test]
    fn a_keychain_error_hints_what_to_do_with_the_credential_store() {
        use crate::crypto::KeyError;
        let missing = CliError::Store {
            dir: PathBuf::from("/d"),
            source: StoreError::Key(KeyError::KeychainEntryMissing {
                entry: "icsync/store-00".into(),
            }),
        };
        let user = classify(chain(&missing)).unwrap();
        assert!(
            user.message.contains("no entry icsync/store-00"),
            "{user:?}"
        );
        assert!(user.hint.unwrap().starts_with("restore that entry"));
        let down = CliError::Key(KeyError::KeychainUnavailable {
            detail: "no bus".into(),
        });
        let user = classify(chain(&down)).unwrap();
        assert!(
            user.hint
                .as_deref()
                .unwrap_or_default()
                .contains("start gnome-keyring"),
            "{user:?}"
        );
        // A key error without a hint of its own keeps the store's.
        let wrong = CliError::Store {
            dir: PathBuf::from("/d"),
            source: StoreError::Key(KeyError::WrongPassphrase),
        };
        assert!(classify(chain(&wrong))
            .unwrap()
            .hint
            .unwrap()
            .contains("/d/logs"));
    }

    #[test]
    fn a_failed_task_or_a_protocol_error_is_internal() {
        assert_eq!(classify(chain(&CliError::Join("panicked".into()))), None);
        let e = CliError::Client(ClientError::Protocol("unexpected frame".into()));
        assert_eq!(classify(chain(&e)), None);
        let other = std::fmt::Error;
        assert!(classify(chain(&other)).is_some());
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_allowed(true, None));
        assert!(colour_allowed(true, Some(OsStr::new(""))));
        assert!(!colour_allowed(true, Some(OsStr::new("1"))));
        assert!(!colour_allowed(false, None));
    }
}
