//! `icsync daemon` as a real process with the real CLI and the real sandbox: the record
//! commands through the control socket, SIGTERM, a second daemon refused, a stale socket
//! after kill -9, and the modes of the files the daemon creates. Every test also checks that
//! the API key never shows in any output and customer data never in the daemon's log.

mod common;

use std::time::Duration;

use common::daemon::{daemon_answers, BlockingAdmin, DaemonEnv};
use common::{mode_of, SandboxOptions, DEMO_KEY};
use serde_json::Value;

/// Long enough for a debug build on a busy 2-core machine; conditions are polled.
const SYNC_DEADLINE: Duration = Duration::from_secs(30);

fn names_on_server(admin: &BlockingAdmin) -> Vec<String> {
    let mut names: Vec<String> = admin
        .customers()
        .iter()
        .map(|c| c["full_name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn count(status: &Value, key: &str) -> u64 {
    status[key]
        .as_u64()
        .unwrap_or_else(|| panic!("status has no integer {key}: {status}"))
}

#[test]
fn record_commands_go_through_the_daemon_and_records_reach_the_sandbox() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);

    let status = env.status();
    assert_eq!(status["daemon"], true, "{status}");
    assert!(status["paused"].is_null(), "{status}");
    assert_eq!(status["online"], true, "{status}");

    let a = env.add(&[
        "--full-name",
        "Zqpii Ada",
        "--email",
        "ada@zqpii.example",
        "--external-id",
        "crm-a",
        "--risk",
        "is_pep=false",
    ]);
    let b = env.add(&["--full-name", "Zqpii Bob", "--email", "bob@zqpii.example"]);
    let c = env.add(&["--full-name", "Zqpii Cy"]);

    let list = env.json(&["list", "--json"]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str()]);
    let shown = env.json(&["show", &a[..13], "--json"]);
    assert_eq!(shown["payload"]["full_name"], "Zqpii Ada");
    assert_eq!(shown["payload"]["risk"]["is_pep"], false);

    let status = env.wait_status("3 records synced", SYNC_DEADLINE, |s| s["synced"] == 3);
    assert!(!status["last_sync_at"].is_null(), "{status}");
    assert_eq!(
        names_on_server(&admin),
        ["Zqpii Ada", "Zqpii Bob", "Zqpii Cy"]
    );
    let a_remote = env.json(&["show", &a, "--json"])["remote_id"].clone();
    assert!(a_remote.is_string(), "{a_remote}");

    // An edit through the socket is a new revision and updates the same server customer.
    let edited = env.json(&["edit", &a, "--full-name", "Zqpii Ada L.", "--json"]);
    assert_eq!(edited["revision"], 2);
    env.wait_status("the edit synced", SYNC_DEADLINE, |s| {
        s["synced"] == 3 && s["queued"] == 0 && s["sending"] == 0
    });
    let shown = env.json(&["show", &a, "--json"]);
    assert_eq!(shown["revision"], 2);
    assert_eq!(shown["state"], "synced");
    assert_eq!(shown["remote_id"], a_remote);
    assert_eq!(
        names_on_server(&admin),
        ["Zqpii Ada L.", "Zqpii Bob", "Zqpii Cy"]
    );

    // A new external_id with Ada's email: the server answers 409 customer_conflict.
    let d = env.add(&[
        "--full-name",
        "Zqpii Dee",
        "--email",
        "ada@zqpii.example",
        "--external-id",
        "crm-d",
    ]);
    env.wait_status("a conflict", SYNC_DEADLINE, |s| s["conflict"] == 1);
    let conflicts = env.json(&["list", "--state", "conflict", "--json"]);
    assert_eq!(conflicts[0]["id"], d.as_str());
    assert_eq!(conflicts[0]["error"]["type"], "customer_conflict");
    assert_eq!(conflicts[0]["error"]["conflicting_customer_id"], a_remote);

    // The name before 0.2 (`--keep-existing`) still works, so old scripts do.
    let resolved = env.json(&["resolve", &d, "--keep-existing", "--json"]);
    assert_eq!(resolved["ids"], serde_json::json!([d]));
    assert_eq!(resolved["action"], "link_existing");
    let shown = env.json(&["show", &d, "--json"]);
    assert_eq!(shown["state"], "synced");
    assert_eq!(shown["remote_id"], a_remote);
    let status = env.status();
    assert_eq!(
        (count(&status, "conflict"), count(&status, "synced")),
        (0, 4)
    );
    assert_eq!(admin.customers().len(), 3, "link-existing sends nothing");

    // What the daemon created is private to its user.
    assert_eq!(mode_of(&env.data_dir), 0o700);
    assert_eq!(mode_of(&env.socket()), 0o600);
    assert_eq!(mode_of(&env.data_dir.join("logs")), 0o700);
    assert_eq!(mode_of(&env.log_file()), 0o600);

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii", "zqpii.example"]);
}

/// A customer created on the sandbox by someone else; the daemon's record collides with it and
/// the daemon reads it back, field by field, into the record. Adopting it clears the copy.
#[test]
fn a_conflicting_record_holds_the_existing_customer_read_from_the_server() {
    let sandbox = SandboxOptions::new().admin().start();
    let api = common::http::ApiClient::new(&sandbox, DEMO_KEY);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = runtime.block_on(api.upsert(
        &serde_json::json!({"full_name": "Zqpii Grace Hopper", "email": "grace@zqpii.example",
            "external_id": "crm-server", "phone": "+1 555 0100"}),
        None,
    ));
    assert_eq!(created.status, 201);
    let server_id = created.id();

    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);
    let id = env.add(&[
        "--full-name",
        "Zqpii Grace H.",
        "--email",
        "grace@zqpii.example",
        "--external-id",
        "crm-local",
    ]);
    let shown = common::daemon::poll_until("the existing customer read", SYNC_DEADLINE, || {
        let shown = env.json(&["show", &id, "--json"]);
        if shown["existing"]["outcome"] == "found" {
            Ok(shown)
        } else {
            Err(shown)
        }
    });
    assert_eq!(shown["state"], "conflict");
    let existing = &shown["existing"];
    assert_eq!(existing["customer_id"], server_id.as_str());
    assert_eq!(existing["customer"]["id"], server_id.as_str());
    assert_eq!(existing["customer"]["full_name"], "Zqpii Grace Hopper");
    assert_eq!(existing["customer"]["external_id"], "crm-server");
    assert_eq!(existing["customer"]["phone"], "+1 555 0100");
    assert_eq!(existing["customer"]["kyc_status"], "NOT_STARTED");
    let text = env.ok(&["show", &id]);
    assert!(text.contains("Zqpii Grace Hopper"), "{text}");

    env.json(&["resolve", &id, "--adopt-existing", "--json"]);
    let shown = common::daemon::poll_until("the adopted record synced", SYNC_DEADLINE, || {
        let shown = env.json(&["show", &id, "--json"]);
        if shown["state"] == "synced" {
            Ok(shown)
        } else {
            Err(shown)
        }
    });
    assert!(shown["existing"].is_null(), "{shown}");
    assert_eq!(shown["remote_id"], server_id.as_str());

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii", "zqpii.example"]);
}

#[test]
fn the_daemon_says_where_it_listens_sends_watches_and_logs() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let d = env.start_daemon(&[]);
    // The drop folder is there as soon as the daemon answers: a script may drop at once.
    // Outside the data dir; no processed/ unless keep_processed.
    assert!(env.drop_dir().join("rejected").is_dir());
    assert!(!env.drop_dir().join("processed").exists());
    assert!(!env.drop_dir().starts_with(&env.data_dir));
    let out = d.stderr();
    let socket = env.socket().display().to_string();
    assert!(out.contains(&format!("listening on {socket}")), "{out}");
    assert!(out.contains("sending to   http://127.0.0.1:9"), "{out}");
    assert!(out.contains(&env.drop_dir().display().to_string()), "{out}");
    assert!(out.contains(&env.log_file().display().to_string()), "{out}");
}

#[test]
fn sigterm_drains_and_exits_0_and_a_second_daemon_is_refused() {
    // Slow replies, so requests are in flight when SIGTERM arrives.
    let sandbox = SandboxOptions::new()
        .admin()
        .args(["--latency-ms", "300"])
        .start();
    let env = DaemonEnv::new(&sandbox.base_url, "concurrency = 2").with_env_key(DEMO_KEY);
    let mut daemon = env.start_daemon(&[]);

    let second = env.spawn_daemon(&[]);
    let second_stderr = second.stderr_path.clone();
    let exit = second.wait(Duration::from_secs(20));
    assert!(!exit.success(), "a second daemon on the same data dir ran");
    let stderr = std::fs::read_to_string(&second_stderr).unwrap();
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(daemon.is_running());
    assert!(
        daemon_answers(&env.socket()),
        "the first daemon lost its socket"
    );

    for i in 0..8 {
        env.add(&["--full-name", &format!("Zqpii Term {i}")]);
    }
    env.wait_status("a request in flight", SYNC_DEADLINE, |s| {
        s["sending"].as_u64() > Some(0)
    });

    // drain_timeout_secs = 3 (FAST_CONFIG); the exit must come within it, plus start-up slack.
    let (exit, took) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "SIGTERM exit: {exit}");
    assert!(took < Duration::from_secs(3 + 3), "SIGTERM took {took:?}");
    assert!(!env.socket().exists(), "the socket file was left behind");

    // Nothing is left `sending`; the store is consistent.
    let status = env.status();
    assert_eq!(status["daemon"], false);
    assert_eq!(count(&status, "sending"), 0, "{status}");
    assert_eq!(
        count(&status, "queued") + count(&status, "synced"),
        8,
        "{status}"
    );
    let store = env.open_store();
    assert_eq!(store.check_consistency().unwrap(), Vec::<String>::new());
    drop(store);
    env.assert_daemon_output_clean(&["Zqpii"]);
}

#[test]
fn after_kill_9_the_stale_socket_is_ignored_by_the_cli_and_replaced_by_a_new_daemon() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    // A data dir others can read is tightened by the daemon.
    std::fs::create_dir(&env.data_dir).unwrap();
    std::fs::set_permissions(
        &env.data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let daemon = env.start_daemon(&[]);
    assert_eq!(mode_of(&env.data_dir), 0o700);
    env.add(&["--full-name", "Zqpii One"]);
    env.add(&["--full-name", "Zqpii Two"]);
    env.wait_status("2 synced", SYNC_DEADLINE, |s| s["synced"] == 2);
    daemon.kill();

    assert!(env.socket().exists(), "kill -9 cannot remove the socket");
    assert!(!daemon_answers(&env.socket()));
    // The CLI sees that nothing answers and opens the store itself.
    let status = env.status();
    assert_eq!(status["daemon"], false, "{status}");
    // Outcomes are written lazily (sled's 500 ms flush): one the kill took is re-sent with
    // the same Idempotency-Key by the next daemon and replayed, never duplicated.
    assert_eq!(count(&status, "total"), 2, "{status}");
    assert_eq!(
        count(&status, "synced") + count(&status, "queued") + count(&status, "sending"),
        2,
        "{status}"
    );
    let three = env.add(&["--full-name", "Zqpii Three"]);
    let shown = env.json(&["show", &three, "--json"]);
    assert_eq!(shown["state"], "queued");
    assert_eq!(env.json(&["list", "--json"]).as_array().unwrap().len(), 3);

    let daemon = env.start_daemon(&[]);
    assert_eq!(mode_of(&env.socket()), 0o600);
    let status = env.wait_status("3 synced by the new daemon", SYNC_DEADLINE, |s| {
        s["synced"] == 3
    });
    assert_eq!(status["daemon"], true);
    assert_eq!(admin.customers().len(), 3);

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii"]);
}
