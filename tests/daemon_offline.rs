//! Offline then online, as real processes: records queued while no API answers wait, the
//! daemon reports itself offline, and once the sandbox starts on the configured address the
//! daemon notices by itself (its probe) and every record arrives once.

mod common;

use std::time::Duration;

use common::daemon::{reserve_port, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};

#[test]
fn records_queued_while_the_api_is_down_arrive_by_themselves_once_it_is_up() {
    let port = reserve_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = DaemonEnv::new(&url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);

    let names = ["Zqpii Off One", "Zqpii Off Two", "Zqpii Off Three"];
    for name in names {
        env.add(&["--full-name", name]);
    }
    let status = env.wait_status("offline", Duration::from_secs(20), |s| {
        s["online"] == false && s["sending"] == 0
    });
    assert_eq!(status["queued"], 3, "{status}");
    assert_eq!(status["synced"], 0, "{status}");
    assert!(
        status["paused"].is_null(),
        "offline is not a pause: {status}"
    );

    let sandbox = SandboxOptions::new()
        .admin()
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .start();
    assert_eq!(sandbox.base_url, url);
    let admin = BlockingAdmin::new(&sandbox);
    // Probes back off from 1 s (doubling, jittered), so a few seconds of outage cost a few
    // seconds of waiting.
    let status = env.wait_status(
        "3 synced after the API came up",
        Duration::from_secs(40),
        |s| s["synced"] == 3,
    );
    assert_eq!(status["online"], true, "{status}");
    let mut on_server: Vec<String> = admin
        .customers()
        .iter()
        .map(|c| c["full_name"].as_str().unwrap().to_string())
        .collect();
    on_server.sort();
    let mut want = names.map(String::from).to_vec();
    want.sort();
    assert_eq!(on_server, want);

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii"]);
}
