//! The sandbox as a process: its start-up lines, a clean exit 0 on SIGTERM and SIGINT, the
//! `--state` file surviving a restart (private, atomic), and clear start-up errors that never
//! echo a key.

mod common;

use common::http::{AdminClient, ApiClient};
use common::{run_to_exit, SandboxOptions, SandboxProcess, DEMO_KEY};
use serde_json::json;

#[tokio::test]
async fn prints_the_demo_key_and_exits_0_on_sigterm() {
    let sb = SandboxProcess::with_args(&[]);
    assert!(
        sb.base_url.starts_with("http://127.0.0.1:"),
        "{}",
        sb.base_url
    );
    assert!(
        !sb.base_url.ends_with(":0"),
        "the real bound port is printed"
    );
    assert!(
        sb.banner
            .iter()
            .any(|l| l.contains("demo") && l.contains(DEMO_KEY)),
        "{:?}",
        sb.banner
    );
    let api = ApiClient::new(&sb, DEMO_KEY);
    assert_eq!(
        api.upsert(&json!({"full_name": "Ada"}), None).await.status,
        201
    );
    let status = sb.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn exits_0_on_sigint() {
    let sb = SandboxOptions::new()
        .args(["--org", "acme=ic_test_acme"])
        .start();
    assert!(
        sb.banner.is_empty(),
        "no demo notice with --org: {:?}",
        sb.banner
    );
    assert_eq!(sb.stop_with("INT").code(), Some(0));
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let sb = SandboxOptions::new().args(["--latency-ms", "1500"]).start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    let body = json!({"full_name": "Ada"});
    // Two requests with one key: the one that claims it spends the latency in flight; the
    // other answers in-progress at once, which is the event that says "one is in flight".
    let mut a = tokio::spawn({
        let (api, body) = (api.clone(), body.clone());
        async move { api.upsert(&body, Some("k")).await }
    });
    let mut b = tokio::spawn({
        let (api, body) = (api.clone(), body.clone());
        async move { api.upsert(&body, Some("k")).await }
    });
    let (quick, in_flight) = tokio::select! {
        r = &mut a => (r.unwrap(), b),
        r = &mut b => (r.unwrap(), a),
    };
    assert_eq!(quick.error_type(), "idempotency_in_progress");
    sb.signal("TERM");
    let finished = in_flight.await.unwrap();
    assert_eq!(
        finished.status, 201,
        "the in-flight request completes during shutdown"
    );
    assert_eq!(sb.wait().code(), Some(0));
}

#[tokio::test]
async fn state_survives_a_sigterm_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    let state_arg = state.to_str().unwrap().to_string();
    let options = SandboxOptions::new()
        .args(["--org", "acme=ic_test_acme", "--state", &state_arg])
        .admin();

    let sb = options.clone().start();
    let api = ApiClient::new(&sb, "ic_test_acme");
    let admin = AdminClient::new(&sb);
    let body = json!({"full_name": "Ada", "email": "ada@x.io", "external_id": "crm-1"});
    let created = api.upsert(&body, Some("persisted-key")).await;
    assert_eq!(created.status, 201);
    admin.advance_clock(7200).await;
    assert_eq!(sb.terminate().code(), Some(0));

    assert!(state.exists());
    #[cfg(unix)]
    assert_eq!(common::mode_of(&state), 0o600);
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        !text.contains("ic_test_acme"),
        "keys never go in the state file"
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temp file left behind");

    let sb = options.start();
    let api = ApiClient::new(&sb, "ic_test_acme");
    let read = api.get(&created.id()).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, created.body);
    let replay = api.upsert(&body, Some("persisted-key")).await;
    assert!(replay.replayed(), "stored responses survive too");
    assert_eq!(replay.body, created.body);
    // The clock offset survived: a new write is stamped two hours ahead.
    let later = api
        .upsert(&json!({"full_name": "Ada L", "external_id": "crm-1"}), None)
        .await
        .json();
    let updated =
        chrono::DateTime::parse_from_rfc3339(later["updated_at"].as_str().unwrap()).unwrap();
    assert!(
        updated > chrono::Utc::now() + chrono::Duration::minutes(110),
        "{updated}"
    );
    assert_eq!(sb.terminate().code(), Some(0));
}

#[tokio::test]
async fn kill_9_never_loses_an_acknowledged_customer_or_clock_move() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox.json");
    let start = || {
        SandboxOptions::new()
            .args(["--state", state.to_str().unwrap()])
            .admin()
            .start()
    };
    let sb = start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    // Eight writers at once, as the daemon sends: every 2xx must survive the kill.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let api = api.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for n in 0..40 {
                let body = json!({"full_name": format!("Writer {w} customer {n}")});
                let key = format!("key-{w}-{n}");
                let reply = api.upsert(&body, Some(&key)).await;
                assert_eq!(reply.status, 201, "{:?}", reply.json());
                ids.push((reply.id(), key, body));
            }
            ids
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(ids) = tasks.join_next().await {
        acknowledged.extend(ids.unwrap());
    }
    let moved = AdminClient::new(&sb).advance_clock(7200).await;
    assert_eq!(moved.status, 200);
    // No grace: the process dies the instant the last answer is read.
    sb.kill();
    assert_eq!(
        common::mode_of(&dir.path().join("sandbox.json.journal")),
        0o600
    );

    let sb = start();
    let api = ApiClient::new(&sb, DEMO_KEY);
    for (id, key, body) in &acknowledged {
        assert_eq!(api.get(id).await.status, 200, "customer {id} was lost");
        // Its Idempotency-Key was kept too: a retry replays instead of writing again.
        let replay = api.upsert(body, Some(key)).await;
        assert!(replay.replayed(), "key {key} was not kept");
        assert_eq!(&replay.id(), id);
    }
    let now = AdminClient::new(&sb).advance_clock(0).await.json()["now"]
        .as_str()
        .unwrap()
        .to_string();
    let now = chrono::DateTime::parse_from_rfc3339(&now).unwrap();
    assert!(
        now > chrono::Utc::now() + chrono::Duration::minutes(110),
        "{now}"
    );
    assert_eq!(sb.terminate().code(), Some(0));
    // A clean stop folds the journal into the snapshot and removes it.
    assert!(!dir.path().join("sandbox.json.journal").exists());
}

#[test]
fn a_corrupt_state_file_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("broken.json");
    std::fs::write(&state, "{ not json").unwrap();
    let (status, stdout, stderr) = run_to_exit(&[
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(
        !stdout.contains("listening on"),
        "refuses before listening: {stdout}"
    );
    assert!(stderr.contains(state.to_str().unwrap()), "{stderr}");
}

#[test]
fn bad_flags_are_refused_without_echoing_keys() {
    let (status, _, stderr) = run_to_exit(&["sandbox", "--org", "acme=ic_test_has space"]);
    assert!(!status.success());
    assert!(stderr.contains("acme"), "{stderr}");
    assert!(!stderr.contains("ic_test_has"), "key echoed: {stderr}");
    let (status, _, stderr) = run_to_exit(&[
        "sandbox",
        "--org",
        "a=ic_test_same",
        "--org",
        "b=ic_test_same",
    ]);
    assert!(!status.success());
    assert!(!stderr.contains("ic_test_same"), "key echoed: {stderr}");
    let (status, _, _) = run_to_exit(&["sandbox", "--fail-rate", "1.5"]);
    assert!(!status.success());
}
