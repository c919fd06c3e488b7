//! `key_source = "keychain"` against a real Secret Service: each test starts its own private
//! D-Bus session (`dbus-daemon --session --fork`) and `gnome-keyring-daemon --unlock
//! --components=secrets` in it, with HOME, XDG_DATA_HOME and XDG_RUNTIME_DIR in a temp dir, so
//! no user's keyring is touched; only the child processes get DBUS_SESSION_BUS_ADDRESS. Then
//! the real icsync binary creates a store, opens it again, runs a daemon that locks and
//! unlocks and syncs to the sandbox, and rekeys keychain -> file -> passphrase -> keychain;
//! the records stay readable throughout. The errors are checked against the real service:
//! an entry deleted, the collection locked, no Secret Service at all.
//!
//! Without dbus-daemon or gnome-keyring-daemon the tests print why and pass, except when CI
//! is set, where they fail (`.ci/run` installs both).

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::daemon::{poll_until, DaemonEnv};
use common::{output_with_stdin, send_signal, SandboxProcess, DEMO_KEY};

const SYNC: Duration = Duration::from_secs(60);
const READY: Duration = Duration::from_secs(30);
const PASS: &str = "correct horse battery";
const BUS_VAR: &str = "DBUS_SESSION_BUS_ADDRESS";

/// A private D-Bus session with gnome-keyring's Secret Service in it; both stop on drop.
struct SecretService {
    dir: tempfile::TempDir,
    bus: String,
    dbus_pid: u32,
    keyring: Child,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

impl SecretService {
    /// The service, or None (with the reason printed) where the tools are missing outside CI.
    fn start() -> Option<SecretService> {
        let missing: Vec<_> = ["dbus-daemon", "gnome-keyring-daemon", "dbus-send"]
            .into_iter()
            .filter(|t| !on_path(t))
            .collect();
        if !missing.is_empty() {
            let why = format!(
                "{} not installed (apt-get install gnome-keyring dbus)",
                missing.join(", ")
            );
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set, so this test may not skip: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "data", "run"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::set_permissions(
            dir.path().join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let private = |cmd: &mut Command| {
            cmd.env("HOME", dir.path().join("home"))
                .env("XDG_DATA_HOME", dir.path().join("data"))
                .env("XDG_RUNTIME_DIR", dir.path().join("run"))
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY");
        };
        let mut dbus = Command::new("dbus-daemon");
        dbus.args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .stdin(Stdio::null());
        private(&mut dbus);
        let out = dbus.output().unwrap();
        assert!(out.status.success(), "dbus-daemon: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let bus = lines.next().unwrap().to_string();
        let dbus_pid: u32 = lines.next().unwrap().trim().parse().unwrap();

        let mut keyring = Command::new("gnome-keyring-daemon");
        keyring
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env(BUS_VAR, &bus)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        private(&mut keyring);
        let mut keyring = keyring.spawn().unwrap();
        // The login keyring's password, on stdin then EOF, as a login session gives it.
        drop(
            keyring
                .stdin
                .take()
                .unwrap()
                .write_all(b"keyring test password"),
        );
        let ss = SecretService {
            dir,
            bus,
            dbus_pid,
            keyring,
        };
        poll_until("the Secret Service owns its bus name", READY, || {
            let out = ss.dbus_send(&[
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ]);
            if out.contains("boolean true") {
                Ok(())
            } else {
                Err(out)
            }
        });
        Some(ss)
    }

    /// `dbus-send --session --print-reply ARGS` on this bus: its stdout and stderr.
    fn dbus_send(&self, args: &[&str]) -> String {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply"])
            .args(args)
            .env(BUS_VAR, &self.bus)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Paths of the items the service holds for icsync's `account`.
    fn items(&self, account: &str) -> String {
        self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.SearchItems",
            &format!("dict:string:string:service,icsync,username,{account}"),
        ])
    }

    /// Locks the login collection (where the default alias points after `--unlock`).
    fn lock_collection(&self) {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ]);
        assert!(out.contains("collection/login"), "{out}");
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        send_signal(self.dbus_pid, "TERM");
    }
}

/// A store configured with `key_source = "keychain"` whose processes use `ss`'s bus.
fn keychain_env(ss: &SecretService, api_url: &str) -> DaemonEnv {
    DaemonEnv::new(api_url, "key_source = \"keychain\"\nkdf_memory_mib = 1")
        .with_env_key(DEMO_KEY)
        .with_env(BUS_VAR, &ss.bus)
        // A locked collection must fail within the test's patience, not D-Bus's.
        .with_env("ICSYNC_KEYCHAIN_TIMEOUT_SECS", "10")
}

/// icsync with `stdin` (passphrases on fd 0), which must succeed: its stdout.
fn ok_with(env: &DaemonEnv, args: &[&str], stdin: &str) -> String {
    let out = output_with_stdin(&mut env.command(args), stdin);
    assert!(
        out.status.success(),
        "icsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn keyring(env: &DaemonEnv) -> Value {
    let text = std::fs::read_to_string(env.store_dir().join("keyring.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn account(env: &DaemonEnv) -> String {
    keyring(env)["account"].as_str().unwrap().to_string()
}

/// The full names `list --json` shows, sorted.
fn names(env: &DaemonEnv) -> Vec<String> {
    let listed = env.json(&["list", "--json"]);
    let rows = listed
        .as_array()
        .or_else(|| listed["records"].as_array())
        .unwrap_or_else(|| panic!("list --json: {listed}"));
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r["full_name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn stop(daemon: common::daemon::DaemonProcess) {
    let (status, _) = daemon.stop_with("TERM", Duration::from_secs(20));
    assert!(status.success(), "the daemon exited with {status}");
}

fn has_item(ss: &SecretService, account: &str) -> bool {
    ss.items(account)
        .contains("/org/freedesktop/secrets/collection/")
}

#[test]
fn a_keychain_store_opens_locks_unlocks_and_rekeys_in_every_direction() {
    let Some(ss) = SecretService::start() else {
        return;
    };
    let sandbox = SandboxProcess::with_args(&[]);
    let env = keychain_env(&ss, &sandbox.base_url);

    // Created without a daemon: the keyring names an entry the Secret Service holds, and no
    // key file is made.
    env.add(&["--full-name", "Ada Lovelace", "--email", "ada@example.org"]);
    env.add(&[
        "--full-name",
        "Grace Hopper",
        "--email",
        "grace@example.org",
    ]);
    let ring = keyring(&env);
    assert_eq!(ring["source"], "keychain", "{ring}");
    let first = account(&env);
    assert!(has_item(&ss, &first), "{}", ss.items(&first));
    assert!(!env.data_key_file().exists());
    // Opened again by a new process.
    assert_eq!(names(&env), ["Ada Lovelace", "Grace Hopper"]);
    let doctor = String::from_utf8(env.cli(&["doctor"]).stdout).unwrap();
    assert!(
        doctor.contains(&format!("entry icsync/{first} is reachable")),
        "{doctor}"
    );

    // The daemon opens it at once, syncs, locks and unlocks without a passphrase.
    let daemon = env.start_daemon(&[]);
    env.wait_status("2 synced", SYNC, |s| s["synced"] == 2);
    assert_eq!(env.status()["locked"], false);
    env.ok(&["lock"]);
    assert_eq!(env.status()["locked"], true);
    let e = fails(env.cli(&["list"]), "list while locked");
    assert!(e.contains("locked"), "{e}");
    env.ok(&["unlock"]);
    env.add(&["--full-name", "Alan Turing", "--email", "alan@example.org"]);
    env.wait_status("3 synced", SYNC, |s| s["synced"] == 3);
    stop(daemon);

    // keychain -> file: the entry goes once the new keyring is written; the old keyring
    // alone (as a stale backup would be) then names the missing entry.
    let keychain_ring = std::fs::read(env.store_dir().join("keyring.json")).unwrap();
    let out = env.ok(&["rekey", "--to", "file"]);
    assert!(out.contains("key file"), "{out}");
    assert_eq!(keyring(&env)["source"], "file");
    assert!(env.data_key_file().exists());
    assert!(!has_item(&ss, &first), "{}", ss.items(&first));
    let file_ring = std::fs::read(env.store_dir().join("keyring.json")).unwrap();
    std::fs::write(env.store_dir().join("keyring.json"), &keychain_ring).unwrap();
    let e = fails(env.cli(&["list"]), "list with a deleted entry");
    assert!(
        e.contains(&format!("no entry icsync/{first}")) && e.contains("cannot be opened"),
        "{e}"
    );
    assert!(e.contains("hint: restore that entry"), "{e}");
    std::fs::write(env.store_dir().join("keyring.json"), &file_ring).unwrap();
    assert_eq!(names(&env).len(), 3);

    // file -> passphrase -> keychain.
    ok_with(
        &env,
        &["rekey", "--to", "passphrase", "--new-passphrase-fd", "0"],
        &format!("{PASS}\n"),
    );
    assert_eq!(keyring(&env)["source"], "passphrase");
    ok_with(
        &env,
        &["rekey", "--to", "keychain", "--passphrase-fd", "0"],
        &format!("{PASS}\n"),
    );
    let second = account(&env);
    assert_ne!(second, first);
    assert!(has_item(&ss, &second));
    // keychain -> keychain makes a new entry and deletes the old one.
    env.ok(&["rekey"]);
    let third = account(&env);
    assert_ne!(third, second);
    assert!(has_item(&ss, &third) && !has_item(&ss, &second));
    assert_eq!(names(&env), ["Ada Lovelace", "Alan Turing", "Grace Hopper"]);
    let daemon = env.start_daemon(&[]);
    assert_eq!(env.status()["locked"], false);
    assert_eq!(env.status()["synced"], 3);
    stop(daemon);
    env.assert_daemon_output_clean(&["Ada Lovelace", "ada@example.org", "Alan Turing"]);
}

#[test]
fn a_locked_collection_or_no_secret_service_is_a_clear_error_and_the_daemon_waits_locked() {
    let Some(ss) = SecretService::start() else {
        return;
    };
    let env = keychain_env(&ss, "http://127.0.0.1:9");
    env.add(&["--full-name", "Ada Lovelace", "--email", "ada@example.org"]);

    // No Secret Service on the bus named.
    let nowhere = ss.dir.path().join("no-such-bus");
    let out = env
        .command(&["list"])
        .env(BUS_VAR, format!("unix:path={}", nowhere.display()))
        .output()
        .unwrap();
    let e = fails(out, "list without a Secret Service");
    assert!(e.contains("no OS credential store answers"), "{e}");
    assert!(
        e.contains("hint: start gnome-keyring") && e.contains("key_source = \"file\""),
        "{e}"
    );

    // The collection locked: no prompt can be shown, so the store cannot be opened, and
    // the daemon runs locked with the reason, records still queueing.
    ss.lock_collection();
    let e = fails(env.cli(&["list"]), "list with the collection locked");
    assert!(
        e.contains("is locked") || e.contains("did not answer within"),
        "{e}"
    );
    assert!(e.contains("hint: unlock the keyring"), "{e}");
    let doctor = String::from_utf8(env.cli(&["doctor"]).stdout).unwrap();
    assert!(
        doctor.contains("fail  encryption  keychain keyring"),
        "{doctor}"
    );
    let daemon = env.start_daemon(&[]);
    let status = env.status();
    assert_eq!(status["locked"], true);
    // Status says why, not only that it is locked.
    let why = status["paused"].as_str().unwrap_or_default();
    assert!(
        why.contains("stays locked until `icsync unlock`")
            && (why.contains("is locked") || why.contains("did not answer within")),
        "{status}"
    );
    let e = fails(env.cli(&["unlock"]), "unlock with the collection locked");
    assert!(
        e.contains("is locked") || e.contains("did not answer within"),
        "{e}"
    );
    assert_eq!(env.status()["locked"], true);
    stop(daemon);
    let stderr: String = env.all_daemon_output();
    assert!(
        stderr.contains("the store stays locked until `icsync unlock`"),
        "{stderr}"
    );
}
