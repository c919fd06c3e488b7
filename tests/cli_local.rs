//! The record commands run as the real binary with no daemon: they open the store directly.

use std::path::Path;
use std::process::{Command, Output};

use icsync::contract::ApiError;
use icsync::crypto::keyring::ENV_KEY_FILE;
use icsync::crypto::KeyConfig;
use icsync::store::{Durability, RecordError, RecordState, Store, StoreOptions};
use serde_json::Value;
use uuid::Uuid;

/// An empty config file, so the machine's own config cannot leak into a test.
fn empty_config(data_dir: &Path) -> std::path::PathBuf {
    let path = data_dir.join("icsync.toml");
    if !path.exists() {
        std::fs::write(&path, "").unwrap();
    }
    path
}

/// The store's key file, inside the test's data dir: never the user's own.
fn key_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("data.key")
}

/// `command` with the test's own config and key file, no API key and no backtraces.
fn isolated<'c>(command: &'c mut Command, data_dir: &Path) -> &'c mut Command {
    command
        .env_remove("ICSYNC_API_KEY")
        .env("ICSYNC_CONFIG", empty_config(data_dir))
        .env(ENV_KEY_FILE, key_file(data_dir))
        .env("RUST_BACKTRACE", "0")
}

fn icsync(data_dir: &Path, args: &[&str]) -> Output {
    isolated(&mut Command::new(env!("CARGO_BIN_EXE_icsync")), data_dir)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(data_dir: &Path, args: &[&str]) -> String {
    let out = icsync(data_dir, args);
    assert!(
        out.status.success(),
        "icsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `icsync add ARGS` and returns the new record's id, read from what a person sees:
/// `queued <id>: a new record` and how to follow it.
fn added(data_dir: &Path, args: &[&str]) -> String {
    let out = ok(data_dir, args);
    let first = out.lines().next().unwrap_or_default();
    let id = first
        .strip_prefix("queued ")
        .and_then(|rest| rest.split_once(": a new record"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("not what add says: {out}"));
    assert!(out.contains(&format!("icsync show {id}")), "{out}");
    id
}

fn json(data_dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(data_dir, args)).unwrap()
}

#[test]
fn add_then_list_show_and_status_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = added(
        d,
        &[
            "add",
            "--full-name",
            "Ada Lovelace",
            "--email",
            "Ada@Example.com",
            "--external-id",
            "crm-1",
            "--risk",
            "is_pep=false",
            "--risk",
            "country_of_residence=GB",
        ],
    );
    assert!(Uuid::parse_str(&id).is_ok(), "{id}");

    let list = json(d, &["list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "queued");
    assert_eq!(list[0]["revision"], 1);
    assert_eq!(list[0]["email"], "Ada@Example.com");
    assert_eq!(list[0]["external_id"], "crm-1");
    assert!(list[0]["remote_id"].is_null());
    assert!(list[0]["error"].is_null());

    let status = json(d, &["status", "--json"]);
    for (k, v) in [("queued", 1), ("total", 1), ("synced", 0), ("sending", 0)] {
        assert_eq!(status[k], v, "{k}");
    }
    assert_eq!(status["online"], false);
    assert!(status["paused"].is_null());

    // A unique prefix of 6+ characters finds the record (UUIDv7s of one run share their
    // leading time digits, so take the whole first group and more).
    let shown = json(d, &["show", &id[..13], "--json"]);
    assert_eq!(shown["payload"]["risk"]["is_pep"], false);
    assert_eq!(shown["origin"]["kind"], "cli");
}

#[test]
fn a_matching_add_is_the_next_revision_of_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = json(
        d,
        &[
            "add",
            "--full-name",
            "Ada",
            "--external-id",
            "crm-1",
            "--json",
        ],
    );
    let second = json(
        d,
        &[
            "add",
            "--full-name",
            "Ada L.",
            "--external-id",
            "crm-1",
            "--json",
        ],
    );
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["revision"], 2);
    assert_eq!(second["created"], false);
    assert_eq!(json(d, &["status", "--json"])["total"], 1);
}

#[test]
fn invalid_input_names_every_bad_field_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = icsync(
        d,
        &[
            "add",
            "--full-name",
            "A",
            "--email",
            "nope",
            "--phone",
            "call me",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("email: is not a valid email address"), "{err}");
    assert!(err.contains("phone: must be digits"), "{err}");
    assert_eq!(json(d, &["status", "--json"])["total"], 0);
}

#[test]
fn edit_makes_a_new_revision_and_clear_sends_null() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = added(d, &["add", "--full-name", "Ada", "--phone", "+44 1"]);
    let edited = json(
        d,
        &[
            "edit", &id, "--email", "ada@x.io", "--clear", "phone", "--json",
        ],
    );
    assert_eq!(edited["revision"], 2);
    let shown = json(d, &["show", &id, "--json"]);
    assert_eq!(shown["payload"]["email"], "ada@x.io");
    assert!(shown["payload"]["phone"].is_null());
    assert!(shown["payload"].as_object().unwrap().contains_key("phone"));

    let out = icsync(d, &["edit", &id]);
    assert!(
        !out.status.success(),
        "an edit with no field flag is refused"
    );
}

#[test]
fn short_or_unknown_ids_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    added(d, &["add", "--full-name", "Ada"]);
    let out = icsync(d, &["show", "01a2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 6"));
    let out = icsync(d, &["show", "ffffffff"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no record matches"));
}

#[test]
fn an_external_id_names_its_record_wherever_an_id_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = added(
        d,
        &["add", "--full-name", "Ada", "--external-id", "crm-1001"],
    );
    let shown = json(d, &["show", "crm-1001", "--json"]);
    assert_eq!(shown["id"], id.as_str());
    let edited = json(d, &["edit", "crm-1001", "--phone", "+44 20 1234", "--json"]);
    assert_eq!(
        (edited["id"].as_str(), edited["revision"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    let resolved = json(d, &["resolve", "crm-1001", "--discard", "--json"]);
    assert_eq!(resolved["ids"][0], id.as_str());
    // Discarded: no longer live, so its external_id names nothing; its id still does.
    let out = icsync(d, &["show", "crm-1001"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no record matches \"crm-1001\""));
    assert_eq!(json(d, &["show", &id, "--json"])["state"], "discarded");
}

/// Puts a record into a 409 customer_conflict, as the engine would.
fn make_conflict(d: &Path, id: &str, existing: Uuid) {
    let store = match Store::open_with_key(
        &d.join("store"),
        StoreOptions::default(),
        &KeyConfig::file(key_file(d)),
        None,
    ) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    };
    let id = store.resolve_prefix(id).unwrap();
    store
        .update(id, Durability::Flush, |r| {
            r.state = RecordState::Conflict;
            r.last_error = Some(RecordError::Api {
                error: ApiError::CustomerConflict {
                    message: "email taken".into(),
                    conflicting_customer_id: existing,
                    conflicting_external_id: Some("crm-existing".into()),
                },
            });
        })
        .unwrap();
}

/// `icsync resolve ID --update-existing` run on a terminal (a pty made by util-linux's
/// `script`), answering `answer` to its question.
fn update_existing_on_a_terminal(d: &Path, handle: &str, answer: &str) -> (bool, String) {
    let command = format!(
        "{} --data-dir {} resolve {handle} --update-existing",
        env!("CARGO_BIN_EXE_icsync"),
        d.display()
    );
    let mut child = isolated(&mut Command::new("script"), d)
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Sending the local fields over a customer someone else put on the server asks first on a
/// terminal, naming the record and the customer; "n" sends nothing.
#[test]
fn update_existing_asks_first_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (to make a pty) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let id = added(
        d,
        &[
            "add",
            "--full-name",
            "A",
            "--email",
            "a@x.io",
            "--external-id",
            "crm-a",
        ],
    );
    let existing = Uuid::from_u128(42);
    make_conflict(d, &id, existing);

    let (ok_no, said) = update_existing_on_a_terminal(d, "crm-a", "n\n");
    assert!(!ok_no, "{said}");
    let short = &id[id.len() - 8..];
    assert!(
        said.contains(&format!(
            "Send the fields of record {short} over existing customer {existing}"
        )),
        "{said}"
    );
    assert!(said.contains("not confirmed: nothing sent"), "{said}");
    assert_eq!(json(d, &["show", &id, "--json"])["state"], "conflict");

    let (ok_yes, said) = update_existing_on_a_terminal(d, short, "y\n");
    assert!(ok_yes, "{said}");
    assert!(
        said.contains("1 record queued to update the existing customer"),
        "{said}"
    );
    assert_eq!(json(d, &["show", &id, "--json"])["state"], "queued");
}

#[test]
fn resolve_actions_on_conflicts_one_and_many() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let existing = Uuid::from_u128(42);
    let a = added(
        d,
        &[
            "add",
            "--full-name",
            "A",
            "--email",
            "a@x.io",
            "--external-id",
            "a",
        ],
    );
    let b = added(
        d,
        &[
            "add",
            "--full-name",
            "B",
            "--email",
            "b@x.io",
            "--external-id",
            "b",
        ],
    );
    let c = added(
        d,
        &[
            "add",
            "--full-name",
            "C",
            "--email",
            "c@x.io",
            "--external-id",
            "c",
        ],
    );
    for id in [&a, &b, &c] {
        make_conflict(d, id, existing);
    }
    let listed = json(d, &["list", "--state", "conflict", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["error"]["type"], "customer_conflict");
    assert_eq!(
        listed[0]["error"]["conflicting_customer_id"],
        existing.to_string()
    );

    // Named for what they do, and said in words (never `link_existing: 1 record(s)`).
    let said = ok(d, &["resolve", &a, "--link-existing"]);
    assert!(
        said.starts_with("1 record linked to the existing customer (nothing sent)"),
        "{said}"
    );
    assert!(
        !said.contains("link_existing") && !said.contains("(s)"),
        "{said}"
    );
    let shown = json(d, &["show", &a, "--json"]);
    assert_eq!(shown["state"], "synced");
    assert_eq!(shown["remote_id"], existing.to_string());
    let text = ok(d, &["show", &a]);
    assert!(text.contains(" link_existing r1"), "{text}");

    // With no terminal, the flag is the confirmation: a script need not pass --yes.
    let said = ok(d, &["resolve", &b, "--update-existing"]);
    assert!(
        said.starts_with("1 record queued to update the existing customer"),
        "{said}"
    );
    let shown = json(d, &["show", &b, "--json"]);
    assert_eq!(shown["state"], "queued");
    assert_eq!(shown["revision"], 2);
    assert_eq!(shown["payload"]["external_id"], "crm-existing");
    assert!(ok(d, &["show", &b]).contains(" update_existing r2"));

    // Bulk discard asks first; with no terminal to ask on, it refuses without --yes.
    let out = icsync(d, &["resolve", "--state", "conflict", "--discard"]);
    assert!(!out.status.success());
    assert_eq!(json(d, &["status", "--json"])["conflict"], 1);
    let done = json(
        d,
        &[
            "resolve",
            "--state",
            "conflict",
            "--error-type",
            "customer_conflict",
            "--discard",
            "--yes",
            "--json",
        ],
    );
    assert_eq!(done["ids"], serde_json::json!([c]));
    assert_eq!(json(d, &["status", "--json"])["discarded"], 1);

    let history = json(d, &["show", &c, "--json"])["history"].clone();
    assert!(history
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["action"] == "discard"));
}

/// "Rejected" is the API's verdict only: status and show say "rejected by the API", `refused`
/// is not a state (the message says where refused rows go), and an export of no rejected
/// records says that rows refused at import are elsewhere. The exit statuses are in --help.
#[test]
fn rejected_by_the_api_and_refused_at_import_are_named_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    added(d, &["add", "--full-name", "Ann"]);
    let status = ok(d, &["status"]);
    assert!(status.contains("rejected by the API 0"), "{status}");
    for args in [
        &["list", "--state", "refused"][..],
        &["export", "--state", "refused", "x.csv"],
    ] {
        let out = icsync(d, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("rows refused at import are not records")
                && stderr.contains(".refused.csv"),
            "{stderr}"
        );
    }
    let fix = d.join("fix.csv").display().to_string();
    let out = icsync(d, &["export", "--state", "rejected", &fix]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wrote 0 record(s) rejected by the API"),
        "{out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint: rows refused at import"),
        "{out:?}"
    );
    for args in [&["--help"][..], &["import", "--help"]] {
        let help = ok(d, args);
        assert!(
            help.contains("Exit status: 0")
                && help.contains("1 for an error")
                && help.contains("2 when `import` refused"),
            "{help}"
        );
    }
}
