//! What status says about sync as real processes see it: the last sync time survives a
//! daemon restart (and reads from the store with no daemon), and an API that cannot be
//! reached shows as offline, by its host, even with nothing queued.

mod common;

use std::time::Duration;

use common::daemon::{reserve_port, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};

#[test]
fn the_last_sync_time_survives_a_daemon_restart() {
    let sandbox = SandboxOptions::new().start();
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);
    env.add(&["--full-name", "Zqlast Sync"]);
    let synced = env.wait_status("the record synced", Duration::from_secs(20), |s| {
        s["synced"] == 1 && !s["last_sync_at"].is_null()
    });
    let at = synced["last_sync_at"].clone();
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");

    // No daemon: the CLI reads it from the store.
    let status = env.status();
    assert_eq!(status["daemon"], false, "{status}");
    assert_eq!(status["last_sync_at"], at, "{status}");

    // A new daemon with nothing to send still knows when the last sync was.
    let daemon = env.start_daemon(&[]);
    let status = env.status();
    assert_eq!(status["daemon"], true, "{status}");
    assert_eq!(status["last_sync_at"], at, "{status}");
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
}

#[test]
fn an_unreachable_api_is_offline_with_nothing_queued_and_online_once_it_answers() {
    let port = reserve_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = DaemonEnv::new(&url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);
    // Nothing is queued: only the engine's idle probe can find out.
    let status = env.wait_status("offline", Duration::from_secs(20), |s| s["online"] == false);
    assert_eq!(status["total"], 0, "{status}");
    assert_eq!(status["api_host"], format!("127.0.0.1:{port}"), "{status}");
    assert!(
        status["paused"].is_null(),
        "offline is not a pause: {status}"
    );

    let _sandbox = SandboxOptions::new()
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .start();
    env.wait_status(
        "online once the API answers",
        Duration::from_secs(40),
        |s| s["online"] == true,
    );
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
}
