//! The verdicts: pure functions from [`Facts`] to [`Check`]s, one per line of the doctor's
//! screen. Every message says what was found and every non-ok verdict says what to do, in
//! the words a support call can read out. Nothing here does I/O, so each rule is a unit test.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::facts::*;
use crate::control::other_release;

/// Clock skew beyond this makes `Retry-After` dates and retention ages unreliable.
pub const MAX_SKEW_SECS: i64 = 5 * 60;
/// Below this much free space the store's growth (and sled's compaction) is at risk.
pub const DISK_WARN_BYTES: u64 = 1 << 30;
pub const DISK_FAIL_BYTES: u64 = 100 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing, nothing to fix (a passphrase store is locked until unlock).
    Info,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

fn check(name: &'static str, status: Status, message: impl Into<String>) -> Check {
    Check {
        check: name,
        status,
        message: message.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Every check, in screen order. With an unreadable config only that verdict is given: the
/// rest would be judged against settings the user did not write.
pub fn judge(facts: &Facts) -> Vec<Check> {
    let mut checks = vec![judge_config(&facts.config)];
    let Some(s) = &facts.settings else {
        return checks;
    };
    checks.push(judge_api_url(&s.api_url, &s.url));
    checks.push(judge_api_key(&s.api_key));
    checks.push(judge_api_auth(&s.probe));
    checks.push(judge_dir("data_dir", "data dir", &s.data_dir));
    checks.push(judge_dir("drop_dir", "drop dir", &s.drop_dir));
    checks.extend(judge_drop_place(&s.drop_place, &s.drop_dir.path));
    checks.push(judge_daemon(&s.daemon));
    checks.push(judge_store(&s.store));
    checks.push(judge_encryption(&s.encryption));
    checks.push(judge_clock(&s.probe));
    checks.push(judge_disk(&s.disk));
    checks
}

pub fn judge_config(config: &ConfigFact) -> Check {
    const NAME: &str = "config";
    match config {
        ConfigFact::Loaded(path) => check(NAME, Status::Ok, format!("{} is valid", path.display())),
        ConfigFact::Absent(default) => check(
            NAME,
            Status::Warn,
            format!(
                "no config file at {}: defaults are used (the API is a local sandbox)",
                default.display()
            ),
        )
        .fix(format!(
            "create {} with two lines: api_url = \"https://<your API host>\" and \
             api_key_file = \"<a file holding the key, chmod 600>\"",
            default.display()
        )),
        ConfigFact::Invalid(error) => check(NAME, Status::Fail, error.clone()).fix(
            "correct the config file (every key is described in config/icsync.example.toml); \
             the other checks run once it loads",
        ),
    }
}

pub fn judge_api_url(url: &str, fact: &UrlFact) -> Check {
    const NAME: &str = "api_url";
    match fact {
        UrlFact::Https => check(NAME, Status::Ok, format!("{url} (https)")),
        UrlFact::LoopbackHttp => check(
            NAME,
            Status::Ok,
            format!("{url}: plain http on this machine (a local sandbox)"),
        ),
        UrlFact::InsecureAllowed { host } => check(
            NAME,
            Status::Warn,
            format!(
                "{url}: plain http to {host} with allow_insecure_http = true: the API key \
                 and customer data travel unencrypted"
            ),
        )
        .fix("use the API's https:// URL and remove allow_insecure_http"),
        UrlFact::InsecureRefused { host } => check(
            NAME,
            Status::Fail,
            format!("{url}: plain http to {host} is refused (the key would travel unencrypted)"),
        )
        .fix("set api_url to the API's https:// URL"),
        UrlFact::Invalid(reason) => {
            check(NAME, Status::Fail, reason.clone()).fix("set api_url to the API's https:// URL")
        }
    }
}

pub fn judge_api_key(key: &ApiKeyFact) -> Check {
    const NAME: &str = "api_key";
    let use_file = "export ICSYNC_API_KEY=<your key> for this shell, or, for the daemon and \
                    the service, put the key in a file only you can read (chmod 600) and set \
                    api_key_file = \"<that file>\" in the config";
    match key {
        ApiKeyFact::Missing => check(
            NAME,
            Status::Fail,
            "no API key configured: nothing can be sent",
        )
        .fix(use_file),
        ApiKeyFact::InlineInvalid(why) => check(
            NAME,
            Status::Fail,
            format!("the key from ICSYNC_API_KEY or api_key is not valid: {why}"),
        )
        .fix("set the organisation's API key exactly as issued, without quotes or spaces"),
        ApiKeyFact::Inline => check(
            NAME,
            Status::Ok,
            "set (from ICSYNC_API_KEY or api_key in the config)",
        ),
        ApiKeyFact::File {
            path,
            problem: None,
        } => check(
            NAME,
            Status::Ok,
            format!("read from {} (private to you)", path.display()),
        ),
        ApiKeyFact::File {
            path,
            problem: Some(KeyFileProblem::TooOpen(mode)),
        } => check(
            NAME,
            Status::Fail,
            format!(
                "{} can be read by other users (mode {mode:03o}); the daemon refuses it",
                path.display()
            ),
        )
        .fix(format!("chmod 600 {}", path.display())),
        ApiKeyFact::File {
            path,
            problem: Some(KeyFileProblem::Missing),
        } => check(
            NAME,
            Status::Fail,
            format!("{} does not exist", path.display()),
        )
        .fix(format!(
            "write the API key to {} (chmod 600), or correct api_key_file",
            path.display()
        )),
        ApiKeyFact::File {
            path,
            problem: Some(KeyFileProblem::InDataDir(data_dir)),
        } => check(
            NAME,
            Status::Warn,
            format!(
                "read from {}, inside the data dir {}: a copy of the data dir carries the key",
                path.display(),
                data_dir.display()
            ),
        )
        .fix("move the API key file out of the data dir and set api_key_file to it"),
        ApiKeyFact::File {
            path,
            problem: Some(KeyFileProblem::Unusable(why)),
        } => check(NAME, Status::Fail, format!("{}: {why}", path.display())).fix(format!(
            "write the organisation's API key, alone on one line, to {}",
            path.display()
        )),
    }
}

pub fn judge_api_auth(probe: &ProbeFact) -> Check {
    const NAME: &str = "api_auth";
    match probe {
        ProbeFact::NotTried(why) => check(NAME, Status::Info, format!("not checked: {why}")),
        ProbeFact::Answered { status: 401, .. } => check(
            NAME,
            Status::Fail,
            "the API refused the key (401 Unauthorized): sending stays paused",
        )
        .fix("replace the key with the organisation's current one (the daemon picks it up within seconds)"),
        ProbeFact::Answered { status, .. } => check(
            NAME,
            Status::Ok,
            format!(
                "the API accepted the key (a read of a customer that does not exist answered \
                 HTTP {status}, not 401)"
            ),
        ),
        ProbeFact::NoAnswer(why) => check(
            NAME,
            Status::Warn,
            format!("cannot reach the API: {why}; records wait in the queue until it answers"),
        )
        .fix("check the network, a proxy or firewall, and api_url"),
    }
}

fn mode_text(mode: u32) -> String {
    format!("{mode:03o}")
}

/// Plaintext the drop folder may leave in the data dir; nothing to say when it is apart.
pub fn judge_drop_place(fact: &DropPlaceFact, drop_dir: &std::path::Path) -> Option<Check> {
    const NAME: &str = "drop_place";
    match fact {
        DropPlaceFact::Apart => None,
        DropPlaceFact::InsideDataDir => Some(
            check(
                NAME,
                Status::Warn,
                format!(
                    "drop dir {} is inside the data dir: its refused rows (and kept files) are                      plaintext in any copy of the data dir",
                    drop_dir.display()
                ),
            )
            .fix("set drop_dir to a folder outside the data dir, or remove it to use the default"),
        ),
        DropPlaceFact::OldDefaultHolds { old, files } => Some(
            check(
                NAME,
                Status::Warn,
                crate::dropdir::legacy::describe(old, *files, drop_dir),
            )
            .fix(format!(
                "move files still to be imported to {}, then delete {}",
                drop_dir.display(),
                old.display()
            )),
        ),
    }
}

pub fn judge_dir(name: &'static str, what: &str, dir: &DirFact) -> Check {
    let path = dir.path.display();
    match &dir.state {
        DirState::Missing {
            creatable_under: Some(parent),
        } => check(
            name,
            Status::Ok,
            format!(
                "{what} {path} does not exist yet; the daemon creates it (0700) under {}",
                parent.display()
            ),
        ),
        DirState::Missing {
            creatable_under: None,
        } => check(
            name,
            Status::Fail,
            format!("{what} {path} does not exist and cannot be created (no writable parent)"),
        )
        .fix(format!(
            "create it yourself (mkdir -p {path} && chmod 700 {path}) or choose another {}",
            name
        )),
        DirState::NotADirectory => check(
            name,
            Status::Fail,
            format!("{what} {path} exists but is not a directory"),
        )
        .fix(format!("move it away or set {name} to a directory")),
        DirState::Present { mode, writable } => {
            if !writable {
                check(
                    name,
                    Status::Fail,
                    format!("{what} {path} is not writable by you"),
                )
                .fix(format!(
                    "chown it to your user, or choose another {name} (config or --{})",
                    name.replace('_', "-")
                ))
            } else if mode & 0o022 != 0 {
                check(
                    name,
                    Status::Fail,
                    format!(
                        "{what} {path} can be changed by other users (mode {})",
                        mode_text(*mode)
                    ),
                )
                .fix(format!("chmod 700 {path}"))
            } else if mode & 0o077 != 0 {
                check(
                    name,
                    Status::Warn,
                    format!(
                        "{what} {path} can be listed by other users (mode {}); it holds customer data",
                        mode_text(*mode)
                    ),
                )
                .fix(format!("chmod 700 {path}"))
            } else {
                check(
                    name,
                    Status::Ok,
                    format!("{what} {path} is private and writable"),
                )
            }
        }
    }
}

/// This binary's release, against which a running daemon's is judged.
const OURS: &str = env!("CARGO_PKG_VERSION");

pub fn judge_daemon(daemon: &DaemonFact) -> Check {
    const NAME: &str = "daemon";
    let start = "run `icsync service install` (or `icsync daemon` in a terminal)";
    match daemon {
        DaemonFact::Running { version } => match other_release(version, OURS) {
            None => check(NAME, Status::Ok, format!("running (icsync {version})")),
            Some(warning) => check(NAME, Status::Warn, warning)
                .fix("restart the daemon so that it runs this release"),
        },
        DaemonFact::Faulted {
            version,
            disk_full: true,
            message,
        } => check(
            NAME,
            Status::Fail,
            format!("running (icsync {version}), paused: {message}"),
        )
        .fix("free space on the data dir's disk: the daemon resumes by itself"),
        DaemonFact::Faulted {
            version, message, ..
        } => check(
            NAME,
            Status::Fail,
            format!("running (icsync {version}), stopped: {message}"),
        )
        .fix(
            "stop the daemon (systemctl --user stop icsync), run `icsync recover`, then start \
             it again",
        ),
        DaemonFact::NotRunning { socket } => check(
            NAME,
            Status::Warn,
            format!(
                "not running (no socket at {}): nothing is sent",
                socket.display()
            ),
        )
        .fix(start),
        DaemonFact::StaleSocket { socket } => check(
            NAME,
            Status::Warn,
            format!(
                "stale socket {}: the file is there but no daemon answers (a crash?)",
                socket.display()
            ),
        )
        .fix(format!("{start}; a new daemon replaces the stale socket")),
        DaemonFact::Stuck { socket } => check(
            NAME,
            Status::Fail,
            format!(
                "a daemon holds {} but did not answer in time",
                socket.display()
            ),
        )
        .fix(
            "restart it: systemctl --user restart icsync (or stop the process and start it again)",
        ),
        DaemonFact::OtherVersion { detail } => check(NAME, Status::Fail, detail.clone()).fix(
            "restart the daemon so that it runs this version: systemctl --user restart icsync",
        ),
        DaemonFact::Error(e) => check(NAME, Status::Fail, format!("cannot ask the daemon: {e}"))
            .fix("restart the daemon"),
    }
}

pub fn judge_store(store: &StoreFact) -> Check {
    const NAME: &str = "store";
    match store {
        StoreFact::None { dir } => check(
            NAME,
            Status::Ok,
            format!("no store yet at {}; the daemon creates it", dir.display()),
        ),
        StoreFact::HeldByDaemon => check(
            NAME,
            Status::Info,
            "open in the running daemon, which did not run the index check (a daemon of an \
             older release cannot)",
        ),
        StoreFact::InUse(e) => check(NAME, Status::Warn, e.clone())
            .fix("run doctor again when the other icsync command has finished"),
        StoreFact::Damaged(e) => check(NAME, Status::Fail, e.clone()).fix(
            "run `icsync recover`: it copies every readable record into a fresh store, keeps \
             the damaged one aside and says how many records were lost",
        ),
        StoreFact::CannotOpen(e) => check(NAME, Status::Fail, format!("cannot open: {e}"))
            .fix("restore the data dir from a backup, or move it aside to start empty (queued records in it are then lost)"),
        StoreFact::Locked { records } => check(
            NAME,
            Status::Info,
            format!("opens ({records} records); indexes not checked: the store is locked"),
        ),
        StoreFact::Checked { records, problems } if problems.is_empty() => check(
            NAME,
            Status::Ok,
            format!("opens; {records} records, indexes agree with them"),
        ),
        StoreFact::Checked { records, problems } => {
            let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
            let more = problems.len().saturating_sub(shown.len());
            check(
                NAME,
                Status::Fail,
                format!(
                    "{records} records, but {} index problem(s): {}{}",
                    problems.len(),
                    shown.join("; "),
                    if more > 0 { format!("; and {more} more") } else { String::new() }
                ),
            )
            .fix("stop the daemon, copy the data dir aside, and report this with `icsync doctor --json`")
        }
    }
}

pub fn judge_encryption(enc: &EncryptionFact) -> Check {
    const NAME: &str = "encryption";
    match enc {
        EncryptionFact::NewStore { wraps_with } => check(
            NAME,
            Status::Ok,
            format!("no keyring yet; the first start makes one wrapped with {wraps_with}"),
        ),
        EncryptionFact::Keychain {
            entry,
            problem: None,
        } => check(
            NAME,
            Status::Ok,
            format!("keychain keyring: the OS credential store entry {entry} is reachable and opens it"),
        ),
        EncryptionFact::Keychain {
            entry,
            problem: Some((why, hint)),
        } => {
            let c = check(
                NAME,
                Status::Fail,
                format!("keychain keyring (entry {entry}): {why}"),
            );
            match hint {
                Some(h) => c.fix(h.clone()),
                None => c,
            }
        }
        EncryptionFact::KeyringMissing { keyring, records } => check(
            NAME,
            Status::Warn,
            format!(
                "the store holds {records} records but no keyring ({}): an encrypted store cannot be opened without it",
                keyring.display()
            ),
        )
        .fix("restore keyring.json from a backup of the data dir (a store from before encryption gets one at the next start)"),
        EncryptionFact::Passphrase => check(
            NAME,
            Status::Info,
            "passphrase keyring: locked until `icsync unlock` after each daemon start",
        ),
        EncryptionFact::KeyFile { path, problem: None } => check(
            NAME,
            Status::Ok,
            format!("key file {} is present and private (0600)", path.display()),
        ),
        EncryptionFact::KeyFile {
            path,
            problem: Some(KeyFileProblem::InDataDir(data_dir)),
        } => check(
            NAME,
            Status::Warn,
            format!(
                "key file {} is inside the data dir {}: a copy of the data dir carries the key \
                 that opens it",
                path.display(),
                data_dir.display()
            ),
        )
        .fix(
            "move the key file out of the data dir (the default is the config dir; on macOS \
             ~/Library/Preferences/com.Instant-Compliance.icsync) and set key_file (or \
             ICSYNC_KEY_FILE) to it unless it is that default",
        ),
        EncryptionFact::KeyFile {
            path,
            problem: Some(KeyFileProblem::Missing),
        } => check(
            NAME,
            Status::Fail,
            format!(
                "the store's key file {} is missing: the store cannot be opened",
                path.display()
            ),
        )
        .fix(format!(
            "restore {} from your backup, or point key_file (or ICSYNC_KEY_FILE) at it",
            path.display()
        )),
        EncryptionFact::KeyFile {
            path,
            problem: Some(KeyFileProblem::TooOpen(mode)),
        } => check(
            NAME,
            Status::Fail,
            format!(
                "key file {} can be read by other users (mode {})",
                path.display(),
                mode_text(*mode)
            ),
        )
        .fix(format!("chmod 600 {}", path.display())),
        EncryptionFact::KeyFile {
            path,
            problem: Some(KeyFileProblem::Unusable(why)),
        } => check(NAME, Status::Fail, format!("{}: {why}", path.display()))
            .fix("point key_file (or ICSYNC_KEY_FILE) at this store's own key file"),
        EncryptionFact::Unreadable(why) => check(NAME, Status::Fail, why.clone())
            .fix("restore keyring.json from a backup of the data dir"),
    }
}

pub fn judge_clock(probe: &ProbeFact) -> Check {
    const NAME: &str = "clock";
    let ProbeFact::Answered { date, received, .. } = probe else {
        return check(NAME, Status::Info, "not checked: no answer from the API");
    };
    let Some(server) = date.as_deref().and_then(parse_http_date) else {
        return check(
            NAME,
            Status::Info,
            "not checked: the API sent no Date header",
        );
    };
    let skew = received.signed_duration_since(server).num_seconds();
    let ahead = if skew >= 0 { "ahead of" } else { "behind" };
    if skew.abs() > MAX_SKEW_SECS {
        check(
            NAME,
            Status::Warn,
            format!(
                "this clock is {} {ahead} the API's",
                human_secs(skew.unsigned_abs())
            ),
        )
        .fix("turn on automatic time (NTP): retries and retention use the local clock")
    } else {
        check(
            NAME,
            Status::Ok,
            format!(
                "within {} of the API's",
                human_secs(skew.unsigned_abs().max(1))
            ),
        )
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// An HTTP date (`Tue, 15 Nov 1994 08:12:31 GMT`), which is RFC 2822 with "GMT".
pub fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

pub fn judge_disk(disk: &DiskFact) -> Check {
    const NAME: &str = "disk";
    match disk {
        DiskFact::Free { path, bytes } => {
            let text = format!(
                "{} free on the filesystem of {}",
                human_bytes(*bytes),
                path.display()
            );
            if *bytes < crate::daemon::DISK_FULL_BELOW {
                check(NAME, Status::Fail, format!("disk full: {text}")).fix(
                    "free space now: the daemon has paused intake and sending, and resumes by \
                     itself once space is freed",
                )
            } else if *bytes < DISK_FAIL_BYTES {
                check(NAME, Status::Fail, text)
                    .fix("free space now: the store cannot grow and records may not be saved")
            } else if *bytes < DISK_WARN_BYTES {
                check(NAME, Status::Warn, text).fix("free some space (less than 1 GiB left)")
            } else {
                check(NAME, Status::Ok, text)
            }
        }
        DiskFact::Unknown(why) => check(NAME, Status::Info, format!("not checked: {why}")),
    }
}

fn human_bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if b >= GIB {
        format!("{:.1} GiB", b as f64 / GIB as f64)
    } else {
        format!("{} MiB", b / MIB)
    }
}

/// Zero when nothing failed, one otherwise.
pub fn exit_code(checks: &[Check]) -> u8 {
    u8::from(checks.iter().any(|c| c.status == Status::Fail))
}

#[cfg(test)]
mod tests;
