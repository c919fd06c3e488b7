//! Encryption at rest and key handling, through the real binary, a real daemon and the real
//! sandbox: no customer field on disk in plaintext after a sync; a wrong or missing key is a
//! clear error; a passphrase store waits locked and drains once unlocked; rekey rewraps
//! without rewriting records; an old plain store is encrypted in place across a kill -9.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::SandboxProcess;
use icsync::crypto::{KdfParams, KeyConfig, KeySourceKind, Passphrase};
use icsync::store::{Origin, Payload, RecordState, Store, StoreError, StoreOptions};
use serde_json::{json, Value};

const NAME: &str = "Zebediah Quuxworth";
const EMAIL: &str = "zeb.quuxworth@example.org";
const PHONE: &str = "+44 7700 900123";
const PASS: &str = "correct horse battery";

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    key_file: PathBuf,
}

impl Env {
    fn new(config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let env = Env {
            data: root.join("data"),
            key_file: root.join("config/data.key"),
            root,
            _dir: dir,
        };
        env.config(config);
        env
    }

    fn config(&self, text: &str) {
        std::fs::write(
            self.root.join("icsync.toml"),
            format!("kdf_memory_mib = 1\ndrain_timeout_secs = 3\n{text}"),
        )
        .unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_icsync"));
        c.arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .env("ICSYNC_CONFIG", self.root.join("icsync.toml"))
            .env("ICSYNC_KEY_FILE", &self.key_file)
            .env("ICSYNC_API_KEY", common::DEMO_KEY)
            .env("RUST_BACKTRACE", "0");
        c
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        common::output_with_stdin(&mut self.command(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "icsync {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(!out.status.success(), "icsync {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"], "")).unwrap()
    }

    /// The new record's id.
    fn add(&self, name: &str, email: &str) -> String {
        let out = self.ok(
            &["add", "--full-name", name, "--email", email, "--json"],
            "",
        );
        let queued: Value = serde_json::from_str(&out).unwrap();
        queued["id"].as_str().unwrap().to_string()
    }

    fn daemon(&self) -> Child {
        let child = self
            .command(&["daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the daemon answers", || {
            self.run(&["status", "--json"], "").status.success()
                && self.status()["daemon"] == json!(true)
        });
        child
    }

    fn key_config(&self) -> KeyConfig {
        KeyConfig {
            source: KeySourceKind::File,
            key_file: self.key_file.clone(),
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 3,
                parallelism: 1,
            },
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut daemon: Child) {
    common::send_signal(daemon.id(), "TERM");
    let status = common::wait_with_deadline(&mut daemon, Duration::from_secs(20));
    assert!(status.success(), "daemon exit {status:?}");
}

fn assert_no_plaintext(dir: &Path, needles: &[&str]) {
    let all = common::files_under(dir);
    assert!(all.len() > 3, "too few files to prove anything: {all:?}");
    for path in all {
        let bytes = std::fs::read(&path).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in plaintext in {}",
                path.display()
            );
        }
    }
}

#[test]
fn no_customer_field_is_on_disk_in_plaintext_after_a_sync() {
    let sandbox = SandboxProcess::with_args(&[]);
    let env = Env::new(&format!("api_url = \"{}\"\n", sandbox.base_url));
    let daemon = env.daemon();
    env.ok(
        &[
            "add",
            "--full-name",
            NAME,
            "--email",
            EMAIL,
            "--phone",
            PHONE,
            "--external-id",
            "crm-zeb-77",
        ],
        "",
    );
    for i in 0..20 {
        env.add(&format!("{NAME} {i}"), &format!("n{i}.{EMAIL}"));
    }
    wait_until("every record is synced", || {
        env.status()["synced"] == json!(21)
    });
    // The operator still sees everything.
    let listed = env.ok(&["list", "--json"], "");
    assert!(listed.contains(NAME) && listed.contains(EMAIL));
    // Retention on demand through the daemon: the dry run changes nothing.
    let dry: Value = serde_json::from_str(&env.ok(
        &[
            "purge",
            "--synced-before",
            "2100-01-01",
            "--dry-run",
            "--json",
        ],
        "",
    ))
    .unwrap();
    assert_eq!(dry["ids"].as_array().unwrap().len(), 21);
    assert!(env.ok(&["list", "--json"], "").contains(NAME));
    env.ok(&["purge", "--synced-before", "2100-01-01"], "");
    let listed = env.ok(&["list", "--json"], "");
    assert!(!listed.contains(NAME), "{listed}");
    assert_eq!(env.status()["synced"], json!(21));
    stop(daemon);

    assert_no_plaintext(&env.data, &[NAME, EMAIL, PHONE, "crm-zeb-77", "Zebediah"]);
    assert!(env.data.join("store/keyring.json").exists());
    assert!(!env.key_file.starts_with(&env.data));
    assert_eq!(common::mode_of(&env.key_file), 0o600);
    assert_eq!(common::mode_of(&env.data.join("store/keyring.json")), 0o600);
}

#[test]
fn a_missing_or_foreign_key_file_is_a_clear_error_and_changes_nothing() {
    let env = Env::new("");
    env.add(NAME, EMAIL);
    let kept = env.key_file.with_extension("kept");
    std::fs::rename(&env.key_file, &kept).unwrap();
    let e = env.fails(&["list"], "");
    assert!(e.contains("is missing") && e.contains("restore it"), "{e}");
    // Another machine's key file.
    std::fs::copy(&kept, env.root.join("spare")).unwrap();
    icsync::crypto::keyring::create_key_file(&env.key_file).unwrap();
    let e = env.fails(&["list"], "");
    assert!(e.contains("does not open the keyring"), "{e}");
    std::fs::rename(&kept, &env.key_file).unwrap();
    assert!(env.ok(&["list"], "").contains(NAME));
    // A keyring lost from the data dir is not silently replaced by a new key.
    let ring = env.data.join("store/keyring.json");
    std::fs::rename(&ring, env.root.join("ring")).unwrap();
    let e = env.fails(&["list"], "");
    assert!(e.contains("keyring") && e.contains("missing"), "{e}");
    assert!(!ring.exists());
    std::fs::rename(env.root.join("ring"), &ring).unwrap();
    assert_eq!(env.status()["total"], json!(1));
}

#[test]
fn a_passphrase_store_waits_locked_then_drains_once_unlocked() {
    // Queue while the API is unreachable, so the records are still queued when locked.
    let env = Env::new("key_source = \"passphrase\"\napi_url = \"http://127.0.0.1:9\"\n");
    let daemon = env.daemon();
    assert_eq!(env.status()["locked"], json!(true));
    let e = env.fails(&["add", "--full-name", NAME], "");
    assert!(
        e.contains("the store is locked: run `icsync unlock`"),
        "{e}"
    );
    env.ok(&["unlock", "--passphrase-fd", "0"], &format!("{PASS}\n"));
    for i in 0..5 {
        env.add(&format!("{NAME} {i}"), &format!("n{i}.{EMAIL}"));
    }
    env.ok(&["lock"], "");
    assert_eq!(env.status()["locked"], json!(true));
    assert!(env
        .fails(&["list"], "")
        .contains("the store is locked: run `icsync unlock`"));
    stop(daemon);

    let sandbox = SandboxProcess::with_args(&[]);
    env.config(&format!(
        "key_source = \"passphrase\"\napi_url = \"{}\"\n",
        sandbox.base_url
    ));
    let daemon = env.daemon();
    let s = env.status();
    assert_eq!(
        (s["locked"].clone(), s["queued"].clone()),
        (json!(true), json!(5))
    );
    let e = env.fails(&["unlock", "--passphrase-fd", "0"], "wrong one\n");
    assert!(e.contains("wrong passphrase"), "{e}");
    assert_eq!(env.status()["synced"], json!(0));
    env.ok(&["unlock", "--passphrase-fd", "0"], &format!("{PASS}\n"));
    wait_until("the waiting queue drains", || {
        env.status()["synced"] == json!(5)
    });
    env.ok(&["lock"], "");
    stop(daemon);
    assert_no_plaintext(&env.data, &[NAME, EMAIL]);
}

#[test]
fn rekey_moves_between_sources_without_rewriting_records() {
    let env = Env::new("");
    let id = env.add(NAME, EMAIL);
    let raw_before = {
        let store = Store::open_locked(&env.data.join("store"), StoreOptions::default()).unwrap();
        let full = store.resolve_prefix(&id).unwrap();
        (full, store.raw_record(full).unwrap().unwrap())
    };
    env.ok(
        &["rekey", "--to", "passphrase", "--new-passphrase-fd", "0"],
        "first pass\n",
    );
    // The key file no longer opens it: a passphrase is needed.
    assert_eq!(env.status()["locked"], json!(true));
    env.ok(
        &["rekey", "--passphrase-fd", "0", "--new-passphrase-fd", "0"],
        "first pass\nsecond pass\n",
    );
    let e = env.fails(
        &["rekey", "--passphrase-fd", "0", "--new-passphrase-fd", "0"],
        "first pass\nthird\n",
    );
    assert!(e.contains("wrong passphrase"), "{e}");

    let dir = env.data.join("store");
    let mut keys = env.key_config();
    let old = Passphrase::new("first pass");
    match Store::open_with_key(&dir, StoreOptions::default(), &keys, Some(&old)) {
        Err(StoreError::Key(icsync::crypto::KeyError::WrongPassphrase)) => {}
        other => panic!("old passphrase: {other:?}"),
    }
    let new = Passphrase::new("second pass");
    let store = Store::open_with_key(&dir, StoreOptions::default(), &keys, Some(&new)).unwrap();
    assert_eq!(
        store
            .get(raw_before.0)
            .unwrap()
            .unwrap()
            .payload
            .full_name(),
        NAME
    );
    assert_eq!(
        store.raw_record(raw_before.0).unwrap().unwrap(),
        raw_before.1
    );
    drop(store);

    env.ok(
        &["rekey", "--to", "file", "--passphrase-fd", "0"],
        "second pass\n",
    );
    keys.source = KeySourceKind::File;
    let store = Store::open_with_key(&dir, StoreOptions::default(), &keys, None).unwrap();
    assert_eq!(
        store.raw_record(raw_before.0).unwrap().unwrap(),
        raw_before.1
    );
    assert!(!store.is_locked());
}

/// Starts `icsync status` on a store being migrated and kills it (SIGKILL) at the first
/// stderr line containing `at`; no line before may contain `never`. Returns that line.
fn kill_at_progress(env: &Env, at: &str, never: &str) -> String {
    let mut child = env
        .command(&["status"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let progress = loop {
        let line = lines.next().expect("a progress line").unwrap();
        assert!(!line.contains(never), "{line}");
        if line.contains(at) {
            break line;
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    progress
}

/// The plain layout of a store made before encryption at rest.
fn legacy_store(dir: &Path, n: usize) {
    let store = Store::open_legacy_plain(dir, StoreOptions::default()).unwrap();
    let items = (0..n)
        .map(|i| {
            let body = json!({
                "full_name": format!("Legacy Person {i}"),
                "email": format!("legacy{i}@example.org"),
                "external_id": format!("legacy-{i}"),
            });
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect();
    store.submit_batch(items, chrono::Utc::now()).unwrap();
}

fn sealed_and_plain(dir: &Path) -> (usize, usize) {
    let store = Store::open_locked(dir, StoreOptions::default()).unwrap();
    let ids = store.in_state(RecordState::Queued).unwrap();
    let sealed = ids
        .iter()
        .filter(|id| matches!(store.raw_record(**id).unwrap().unwrap()[0], 2 | 3))
        .count();
    (sealed, ids.len() - sealed)
}

#[test]
fn an_old_plain_store_is_encrypted_in_place_across_a_kill_9() {
    const N: usize = 20_000;
    let env = Env::new("");
    let dir = env.data.join("store");
    legacy_store(&dir, N);
    assert_eq!(sealed_and_plain(&dir), (0, N));

    let progress = kill_at_progress(&env, "encrypting the store: 1000/", "compressing");
    assert!(progress.contains(&format!("/{N} records")), "{progress}");
    let (sealed, plain) = sealed_and_plain(&dir);
    assert_eq!(sealed + plain, N);
    assert!(plain > 0, "the kill came too late to test anything");

    let out = env.run(&["status", "--json"], "");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{plain}/{plain} records")),
        "{stderr}"
    );
    assert_eq!(sealed_and_plain(&dir), (N, 0));
    let store =
        Store::open_with_key(&dir, StoreOptions::default(), &env.key_config(), None).unwrap();
    assert!(store.check_consistency().unwrap().is_empty());
    assert_eq!(store.counts().unwrap().total, N as u64);
    let id = store
        .find_by_email("legacy17@example.org")
        .unwrap()
        .unwrap();
    assert_eq!(store.find_by_external_id("legacy-17").unwrap(), Some(id));
    assert_eq!(
        store.get(id).unwrap().unwrap().payload.full_name(),
        "Legacy Person 17"
    );
}

#[test]
fn plain_records_written_after_the_store_was_sealed_are_sealed_on_the_next_unlock() {
    // Unlocking skips the search for plain records once a store is known to be all sealed;
    // a store written in the old layout afterwards must be searched (and sealed) again.
    let env = Env::new("");
    let dir = env.data.join("store");
    let keys = env.key_config();
    drop(Store::open_with_key(&dir, StoreOptions::default(), &keys, None).unwrap());
    legacy_store(&dir, 3);
    assert_eq!(sealed_and_plain(&dir), (0, 3));
    drop(Store::open_with_key(&dir, StoreOptions::default(), &keys, None).unwrap());
    assert_eq!(sealed_and_plain(&dir), (3, 0));
    legacy_store(&dir, 2);
    assert_eq!(sealed_and_plain(&dir), (3, 2));
    let store = Store::open_with_key(&dir, StoreOptions::default(), &keys, None).unwrap();
    assert_eq!(store.counts().unwrap().total, 5);
    drop(store);
    assert_eq!(sealed_and_plain(&dir), (5, 0));
}

/// A store sealed before records were compressed (format 2).
fn uncompressed_store(dir: &Path, keys: &KeyConfig, n: usize) {
    let store = Store::open_legacy_uncompressed(dir, StoreOptions::default(), keys).unwrap();
    let items = (0..n)
        .map(|i| {
            let body = json!({
                "full_name": format!("Older Person {i}"),
                "email": format!("older{i}@example.org"),
                "external_id": format!("older-{i}"),
                "risk": {"occupation": "Baker", "country_of_residence": "GB"},
            });
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect();
    store.submit_batch(items, chrono::Utc::now()).unwrap();
}

/// Records by format byte: (compressed, sealed before compression).
fn compressed_and_not(dir: &Path) -> (usize, usize) {
    let store = Store::open_locked(dir, StoreOptions::default()).unwrap();
    let ids = store.in_state(RecordState::Queued).unwrap();
    let formats: Vec<u8> = ids
        .iter()
        .map(|id| store.raw_record(*id).unwrap().unwrap()[0])
        .collect();
    assert!(formats.iter().all(|f| matches!(f, 2 | 3)), "{formats:?}");
    let compressed = formats.iter().filter(|f| **f == 3).count();
    (compressed, ids.len() - compressed)
}

fn sled_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("sled"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn a_store_sealed_before_compression_is_compressed_in_place_across_a_kill_9() {
    const N: usize = 20_000;
    let env = Env::new("");
    let dir = env.data.join("store");
    uncompressed_store(&dir, &env.key_config(), N);
    assert_eq!(compressed_and_not(&dir), (0, N));
    let before = sled_bytes(&dir);

    // Only encryption is announced as encryption: these records were sealed already.
    let progress = kill_at_progress(&env, "compressing the store: 1000/", "encrypting");
    assert!(progress.contains(&format!("/{N} records")), "{progress}");
    let (compressed, old) = compressed_and_not(&dir);
    // What sled had flushed before the kill is compressed (the progress line can be ahead
    // of it); each record is wholly one format or the other.
    assert_eq!(compressed + old, N);
    assert!(old > 0, "the kill came too late to test anything");

    let out = env.run(&["status", "--json"], "");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{old}/{old} records")), "{stderr}");
    assert_eq!(compressed_and_not(&dir), (N, 0));
    // The compaction owed took the uncompressed values off the disk: without it the file
    // keeps them beside the compressed ones and only grows. (Just under half since an
    // import's index terms are written in key order, which left `before` smaller.)
    let after = sled_bytes(&dir);
    assert!(
        after * 4 < before * 3,
        "{before} bytes before, {after} after"
    );
    let store =
        Store::open_with_key(&dir, StoreOptions::default(), &env.key_config(), None).unwrap();
    assert!(store.check_consistency().unwrap().is_empty());
    assert_eq!(store.counts().unwrap().total, N as u64);
    let id = store.find_by_email("older17@example.org").unwrap().unwrap();
    assert_eq!(store.find_by_external_id("older-17").unwrap(), Some(id));
    let record = store.get(id).unwrap().unwrap();
    assert_eq!(record.payload.full_name(), "Older Person 17");
    assert_eq!(record.revision, 1);
    // New writes are compressed too, and a store compressed once is not scanned again.
    drop(store);
    let out = env.run(&["status"], "");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("compressing"));
}
