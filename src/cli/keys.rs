//! The key commands: `unlock` and `lock` (over the daemon's socket), `rekey` (rewraps the
//! data key in the keyring file between key file, passphrase and OS keychain; no record is
//! rewritten) and `purge` (retention on demand).
//! Passphrases are read without echo from the terminal, or from a file descriptor for
//! scripts; they never reach argv, the environment or a log.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use serde_json::json;

use super::{Backend, CliError};
use crate::config::Settings;
use crate::control::{Reply, Request};
use crate::crypto::keychain::{self, Keychain};
use crate::crypto::keyring::Wrapping;
use crate::crypto::{KeySourceKind, Keyring, Passphrase};

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Read the passphrase from this open file descriptor (first line) instead of prompting.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Wrap the data key with this instead: file, passphrase or keychain (default: the
    /// current source, which for a passphrase means a new passphrase and for the keychain a
    /// new entry, the old one deleted).
    #[arg(long, value_parser = parse_source)]
    pub to: Option<KeySourceKind>,
    /// Read the current passphrase from this file descriptor.
    #[arg(long, value_name = "N")]
    pub passphrase_fd: Option<u32>,
    /// Read the new passphrase from this file descriptor.
    #[arg(long, value_name = "N")]
    pub new_passphrase_fd: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Erase records synced and unchanged before this date (YYYY-MM-DD or RFC 3339; default:
    /// now minus retain_synced_days).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub synced_before: Option<DateTime<Utc>>,
    /// Only list what would be erased.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the erased (or, with --dry-run, erasable) record ids as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_source(s: &str) -> Result<KeySourceKind, String> {
    KeySourceKind::parse(s).ok_or_else(|| "one of: file, passphrase, keychain".into())
}

fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| "expected YYYY-MM-DD or an RFC 3339 time".into())
}

/// One line from `fd`, read a byte at a time so the next line stays for the next reader
/// (`rekey` reads the current and the new passphrase from the same descriptor).
fn read_fd(fd: u32) -> Result<Passphrase, CliError> {
    use std::io::Read;
    let err =
        |e: std::io::Error| CliError::Usage(format!("cannot read a passphrase from fd {fd}: {e}"));
    let path = format!("/dev/fd/{fd}");
    let mut file = std::fs::File::open(Path::new(&path)).map_err(err)?;
    let mut line = zeroize::Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    while file.read(&mut byte).map_err(err)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let text = String::from_utf8(line.to_vec())
        .map_err(|_| CliError::Usage(format!("the passphrase on fd {fd} is not UTF-8")))?;
    Ok(Passphrase::new(text))
}

fn prompt(text: &str) -> Result<Passphrase, CliError> {
    rpassword::prompt_password(text)
        .map(Passphrase::new)
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot prompt for a passphrase ({e}); use --passphrase-fd N in scripts"
            ))
        })
}

/// A passphrase from `fd`, else from the terminal.
pub fn read_passphrase(fd: Option<u32>, text: &str) -> Result<Passphrase, CliError> {
    match fd {
        Some(fd) => read_fd(fd),
        None => prompt(text),
    }
}

/// A new passphrase: from `fd`, else typed twice.
fn read_new_passphrase(fd: Option<u32>) -> Result<Passphrase, CliError> {
    let p = match fd {
        Some(fd) => read_fd(fd)?,
        None => {
            let p = prompt("new passphrase: ")?;
            if prompt("new passphrase again: ")? != p {
                return Err(CliError::Usage(
                    "the passphrases differ; nothing changed".into(),
                ));
            }
            p
        }
    };
    if p.is_empty() {
        return Err(CliError::Usage(
            "the passphrase is empty; nothing changed".into(),
        ));
    }
    Ok(p)
}

fn need_daemon(backend: &Backend, what: &str) -> Result<(), CliError> {
    if backend.is_daemon() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "no daemon is running: `icsync {what}` applies to a running daemon (start `icsync daemon`)"
        )))
    }
}

/// Asks the daemon to load the key. Only a passphrase keyring needs a passphrase; a key file
/// or keychain keyring is read again by the daemon (after `lock`, or once the keychain
/// answers), so nothing is prompted for.
pub async fn unlock(
    backend: &mut Backend,
    settings: &Settings,
    args: UnlockArgs,
) -> Result<(), CliError> {
    need_daemon(backend, "unlock")?;
    let source = Keyring::load(&Keyring::path_in(&settings.store_dir()))?.map(|r| r.source());
    let passphrase = match source {
        Some(KeySourceKind::File | KeySourceKind::Keychain) => Passphrase::new(""),
        _ => read_passphrase(args.passphrase_fd, "icsync passphrase: ")?,
    };
    match backend.call(Request::Unlock { passphrase }).await? {
        Reply::Status(s) => {
            println!("unlocked: {} records queued", s.queued);
            Ok(())
        }
        other => Err(super::commands::unexpected(other)),
    }
}

pub async fn lock(backend: &mut Backend) -> Result<(), CliError> {
    need_daemon(backend, "lock")?;
    match backend.call(Request::Lock).await? {
        Reply::Status(_) => {
            println!("locked: the key is out of memory; sending waits for `icsync unlock`");
            Ok(())
        }
        other => Err(super::commands::unexpected(other)),
    }
}

/// Rewraps the data key in the keyring; works with or without a running daemon (which keeps
/// the key it has in memory). The new keyring is durable before the old keychain entry (if
/// any) is deleted; a keychain entry made for a keyring that could not be saved is deleted.
pub fn rekey(settings: &Settings, args: RekeyArgs) -> Result<(), CliError> {
    let path = Keyring::path_in(&settings.store_dir());
    let ring = Keyring::load(&path)?.ok_or_else(|| {
        CliError::Usage(format!(
            "no keyring at {}: the store has not been created yet, nothing to rekey",
            path.display()
        ))
    })?;
    let current = match ring.source() {
        KeySourceKind::Passphrase => {
            Some(read_passphrase(args.passphrase_fd, "current passphrase: ")?)
        }
        KeySourceKind::File | KeySourceKind::Keychain => None,
    };
    let data_key = ring.unwrap(
        &settings.keys.wrapping(ring.source(), current.as_ref())?,
        &path,
    )?;
    let to = args.to.unwrap_or(ring.source());
    let new = match to {
        KeySourceKind::File if ring.source() == KeySourceKind::File => {
            return Err(CliError::Usage(
                "the data key is already wrapped with a key file; to move the file, move it and \
                 set key_file (or ICSYNC_KEY_FILE)"
                    .into(),
            ))
        }
        KeySourceKind::File => {
            Keyring::wrap(&data_key, &Wrapping::KeyFile(&settings.keys.key_file))?
        }
        KeySourceKind::Passphrase => {
            let p = read_new_passphrase(args.new_passphrase_fd)?;
            Keyring::wrap(&data_key, &Wrapping::Passphrase(&p, settings.keys.kdf))?
        }
        KeySourceKind::Keychain => Keyring::wrap(&data_key, &Wrapping::Keychain(Keychain::os()))?,
    };
    if let Some(e) = ring.replace_with(&new, &path, &Keychain::os())? {
        eprintln!(
            "warning: the old credential store entry is no longer used but could not be \
             deleted ({e}); delete {} by hand",
            keychain::entry_name(ring.keychain_account().unwrap_or_default())
        );
    }
    match to {
        KeySourceKind::File => println!(
            "the data key is now wrapped with the key file {} (keep a backup of it); no record \
             was rewritten",
            settings.keys.key_file.display()
        ),
        KeySourceKind::Passphrase => println!(
            "the data key is now wrapped with the new passphrase; no record was rewritten \
             (the daemon starts locked from now on)"
        ),
        KeySourceKind::Keychain => println!(
            "the data key is now wrapped with a key in the OS credential store (entry {}); no \
             record was rewritten",
            keychain::entry_name(new.keychain_account().unwrap_or_default())
        ),
    }
    Ok(())
}

pub async fn purge(
    backend: &mut Backend,
    settings: &Settings,
    args: PurgeArgs,
) -> Result<(), CliError> {
    let synced_before = args
        .synced_before
        .unwrap_or_else(|| Utc::now() - settings.retain_synced);
    let reply = backend
        .call(Request::Purge {
            synced_before,
            dry_run: args.dry_run,
        })
        .await?;
    let Reply::Purged {
        ids,
        dry_run,
        refused_files,
    } = reply
    else {
        return Err(super::commands::unexpected(reply));
    };
    if args.json {
        println!(
            "{}",
            json!({"dry_run": dry_run, "ids": ids, "refused_files": refused_files})
        );
        return Ok(());
    }
    if dry_run {
        println!("{} records would be purged", ids.len());
        for id in &ids {
            println!("{id}");
        }
    } else {
        println!(
            "{} records purged (synced before {})",
            ids.len(),
            synced_before.to_rfc3339()
        );
    }
    if refused_files > 0 {
        let verb = if dry_run { "would be" } else { "were" };
        println!(
            "{refused_files} file(s) of refused rows in the drop folder's rejected/ {verb} \
             erased by the same cutoff"
        );
    }
    Ok(())
}
