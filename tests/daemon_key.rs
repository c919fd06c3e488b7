//! The daemon and its API key, as real processes: a wrong key pauses sending (records stay
//! queued, none fails) until the key file is fixed, which the daemon notices by itself; a key
//! file others can read is refused with the fix in the message and sending waits until it is
//! chmod-ed; with no key at all the daemon runs, paused, and records queue. No key ever shows
//! in any output or in the daemon's log.

mod common;

use std::time::Duration;

use common::daemon::{BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::Value;

/// Key re-reads happen every 2 s; syncs are quick. Conditions are polled.
const DEADLINE: Duration = Duration::from_secs(30);

fn paused(status: &Value) -> String {
    status["paused"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_wrong_key_pauses_without_failing_records_until_the_key_file_is_fixed() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "");
    let wrong = "ic_test_not_a_real_key_7f3a9c";
    let key_file = env.write_key_file(wrong, 0o600);
    env.secret(DEMO_KEY);
    let daemon = env.start_daemon(&[]);

    for i in 0..3 {
        env.add(&["--full-name", &format!("Zqpii Key {i}")]);
    }
    let status = env.wait_status("a 401 pause", DEADLINE, |s| {
        !s["paused"].is_null() && s["sending"] == 0
    });
    assert!(paused(&status).contains("refused the key"), "{status}");
    assert_eq!(status["queued"], 3, "{status}");
    assert_eq!(status["rejected"], 0, "{status}");
    assert_eq!(status["synced"], 0, "{status}");
    assert!(admin.customers().is_empty());
    let listed = env.json(&["list", "--json"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["state"] == "queued"));

    // Fixing the file is enough: the daemon re-reads it and resumes.
    assert_eq!(env.write_key_file(DEMO_KEY, 0o600), key_file);
    let status = env.wait_status("the records after the key fix", DEADLINE, |s| {
        s["synced"] == 3
    });
    assert!(status["paused"].is_null(), "{status}");
    assert_eq!(admin.customers().len(), 3);

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii"]);
}

#[test]
fn a_key_file_others_can_read_is_refused_and_sending_waits_for_chmod_600() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "");
    let key_file = env.write_key_file(DEMO_KEY, 0o644);
    let mut daemon = env.start_daemon(&[]);

    // The daemon keeps running (so records still queue) and says why it does not send.
    assert!(daemon.is_running());
    assert!(daemon.stderr().contains("chmod 600"), "{}", daemon.stderr());
    let status = env.status();
    assert!(paused(&status).contains("chmod 600"), "{status}");
    env.add(&["--full-name", "Zqpii Open"]);
    env.add(&["--full-name", "Zqpii Open Too"]);
    let status = env.status();
    assert_eq!(status["queued"], 2, "{status}");
    assert!(paused(&status).contains("chmod 600"), "{status}");
    assert!(admin.customers().is_empty());

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let status = env.wait_status("the records after chmod 600", DEADLINE, |s| {
        s["synced"] == 2
    });
    assert!(status["paused"].is_null(), "{status}");
    assert_eq!(admin.customers().len(), 2);

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii"]);
}

#[test]
fn with_no_key_configured_the_daemon_runs_paused_and_records_queue() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "");
    env.secret(DEMO_KEY);
    let daemon = env.start_daemon(&[]);

    let status = env.status();
    assert_eq!(status["daemon"], true, "{status}");
    assert!(
        paused(&status).contains("no API key configured"),
        "{status}"
    );
    env.add(&[
        "--full-name",
        "Zqpii Nokey",
        "--email",
        "nokey@zqpii.example",
    ]);
    env.add(&["--full-name", "Zqpii Nokey Two"]);
    let status = env.status();
    assert_eq!(status["queued"], 2, "{status}");
    assert_eq!(status["sending"], 0, "{status}");
    assert!(
        paused(&status).contains("no API key configured"),
        "{status}"
    );
    assert!(admin.customers().is_empty());

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii", "zqpii.example"]);
}
