//! Exactly once under crashes: 1,000 records (with an external_id, with an email only, with
//! neither; some in a second revision) queued in the store, synced by the real daemon against
//! a sandbox that fails and drops a fifth of its requests each, while the daemon is killed
//! with SIGKILL at random points of the sync and restarted. At the end every record is on the
//! server exactly once in its newest revision, with nothing extra, and the store is
//! consistent.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};

use common::daemon::{poll_until, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use icsync::service::Service;
use icsync::store::{Origin, Payload, RecordId, RecordState, SubmitOutcome};

const RECORDS: usize = 1000;
const KILLS: usize = 3;

/// What the server must end up holding for one record.
#[derive(Debug, Clone)]
struct Expected {
    name: String,
    email: Option<String>,
    external_id: Option<String>,
    revision: u32,
}

fn body(name: &str, email: Option<&str>, external_id: Option<&str>) -> Value {
    let mut b = json!({ "full_name": name });
    if let Some(e) = email {
        b["email"] = json!(e);
    }
    if let Some(x) = external_id {
        b["external_id"] = json!(x);
    }
    b
}

/// Queues the records straight into the store (no daemon runs yet), as an import would.
/// Every fifth record gets a second revision: through the local upsert when it has an
/// external_id or email, through an edit when it has neither.
fn queue_records(env: &DaemonEnv) -> HashMap<RecordId, Expected> {
    let store = env.open_store();
    let mut items = Vec::new();
    let mut owners = Vec::new();
    let mut expected = Vec::new();
    for i in 0..RECORDS {
        let external_id = matches!(i % 4, 0 | 1).then(|| format!("crash-{i}"));
        let email = matches!(i % 4, 1 | 2).then(|| format!("c{i}@zqpii.example"));
        let name = format!("Zqpii Crash {i:04} r1");
        let origin = Origin::Import {
            file: "crash.ndjson".into(),
            line: i as u64 + 1,
        };
        let b = body(&name, email.as_deref(), external_id.as_deref());
        items.push((Payload::parse(&b).unwrap(), origin.clone()));
        owners.push(i);
        expected.push(Expected {
            name,
            email: email.clone(),
            external_id: external_id.clone(),
            revision: 1,
        });
        if i % 5 == 0 && i % 4 != 3 {
            let name = format!("Zqpii Crash {i:04} r2");
            let b = body(&name, email.as_deref(), external_id.as_deref());
            items.push((Payload::parse(&b).unwrap(), origin));
            owners.push(i);
            expected[i].name = name;
            expected[i].revision = 2;
        }
    }
    let submitted = store.submit_batch(items, Utc::now()).unwrap();
    let mut ids = vec![None; RECORDS];
    for (s, &i) in submitted.iter().zip(&owners) {
        match ids[i] {
            None => assert_eq!(
                s.outcome,
                SubmitOutcome::Created,
                "record {i} matched another"
            ),
            Some(id) => assert_eq!(
                (s.id, s.outcome),
                (id, SubmitOutcome::Revised),
                "record {i}"
            ),
        }
        ids[i] = Some(s.id);
    }
    let service = Service::new(store.clone(), None);
    for i in (0..RECORDS).filter(|i| i % 5 == 0 && i % 4 == 3) {
        let name = format!("Zqpii Crash {i:04} r2");
        let q = service
            .edit(
                &ids[i].unwrap().to_string(),
                &json!({ "full_name": name }),
                Utc::now(),
            )
            .unwrap();
        assert_eq!(q.revision, 2);
        expected[i].name = name;
        expected[i].revision = 2;
    }
    assert_eq!(store.counts().unwrap().total, RECORDS as u64);
    store.flush().unwrap();
    ids.into_iter().map(Option::unwrap).zip(expected).collect()
}

/// Polls `status --json` until nothing is queued or sending. On timeout, panics with what a
/// person would need to see: the status, the records still waiting and their histories, and
/// the daemon's log.
fn wait_drained(env: &DaemonEnv, deadline: Duration) -> Value {
    let until = std::time::Instant::now() + deadline;
    loop {
        let status = env.status();
        if status["queued"] == 0 && status["sending"] == 0 {
            return status;
        }
        if std::time::Instant::now() > until {
            let waiting: Vec<Value> = env
                .json(&["list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["state"] != "synced")
                .cloned()
                .collect();
            let first = waiting
                .first()
                .map(|r| env.json(&["show", r["id"].as_str().unwrap(), "--json"]));
            panic!(
                "the queue did not drain in {deadline:?}: {status}\nwaiting: {waiting:#?}\n\
                 first: {first:#?}\nlog:\n{}",
                env.all_daemon_output()
            );
        }
        std::thread::sleep(common::daemon::POLL);
    }
}

#[test]
fn kill_9_during_a_faulty_sync_of_1000_records_loses_and_doubles_nothing() {
    let sandbox = SandboxOptions::new()
        .admin()
        .args(["--fail-rate", "0.2", "--drop-rate", "0.2"])
        .start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let mut expected = queue_records(&env);
    // The store is closed; Store::open in the daemon waits for sled to let go of its lock.

    // Kill points: somewhere in each third of the sync, never before the first record nor
    // after the last, so every kill lands while records are still on their way.
    let mut rng = rand::rng();
    let step = RECORDS / (KILLS + 1);
    let kill_at: Vec<usize> = (1..=KILLS)
        .map(|k| k * step + rng.random_range(0..step / 2) - step / 4)
        .collect();

    let mut daemon = env.start_daemon(&[]);
    for (k, &at) in kill_at.iter().enumerate() {
        let seen = poll_until(
            &format!("{at} customers on the server before kill {}", k + 1),
            Duration::from_secs(60),
            || {
                let n = admin.customers().len();
                if n >= at {
                    Ok(n)
                } else {
                    Err(n)
                }
            },
        );
        daemon.kill();
        let after = admin.customers().len();
        assert!(
            seen < RECORDS && after < RECORDS,
            "kill {} came after the sync finished ({after} customers): the kill points are too late",
            k + 1
        );

        // Between crashes, edit a few records already on the server, through the CLI (the
        // local path: no daemon runs now). Each must land as one more revision of the same
        // customer, never as a new one.
        let synced = env.json(&["list", "--state", "synced", "--json"]);
        let edits: Vec<(RecordId, String)> = synced
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["external_id"].is_null() || !r["email"].is_null())
            .take(3)
            .map(|r| {
                let id: RecordId = serde_json::from_value(r["id"].clone()).unwrap();
                (id, r["id"].as_str().unwrap().to_string())
            })
            .collect();
        for (id, text) in edits {
            let e = expected.get_mut(&id).unwrap();
            e.name = format!("{} e{k}", e.name);
            let q = env.json(&["edit", &text, "--full-name", &e.name, "--json"]);
            e.revision += 1;
            assert_eq!(q["revision"], e.revision);
        }
        daemon = env.start_daemon(&[]);
    }

    let status = wait_drained(&env, Duration::from_secs(120));
    assert_eq!(status["daemon"], true);
    for (state, n) in [
        ("synced", RECORDS),
        ("conflict", 0),
        ("rejected", 0),
        ("discarded", 0),
        ("total", RECORDS),
    ] {
        assert_eq!(status[state], n as u64, "{state}: {status}");
    }

    // Every record exactly once, in its newest revision, and nothing else.
    let customers = admin.customers();
    let mut by_name: HashMap<String, Vec<&Value>> = HashMap::new();
    for c in &customers {
        by_name
            .entry(c["full_name"].as_str().unwrap().to_string())
            .or_default()
            .push(c);
    }
    for e in expected.values() {
        let found = by_name.get(&e.name).map(Vec::len).unwrap_or(0);
        assert_eq!(found, 1, "{:?} is on the server {found} times", e.name);
        let c = by_name[&e.name][0];
        assert_eq!(c["email"].as_str(), e.email.as_deref(), "{}", e.name);
        assert_eq!(
            c["external_id"].as_str(),
            e.external_id.as_deref(),
            "{}",
            e.name
        );
    }
    assert_eq!(customers.len(), RECORDS, "extra customers on the server");

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");

    let store = env.open_store();
    assert_eq!(store.check_consistency().unwrap(), Vec::<String>::new());
    for (id, e) in &expected {
        let r = store.get(*id).unwrap().unwrap();
        assert_eq!(r.state, RecordState::Synced, "{}", e.name);
        assert_eq!(r.revision, e.revision, "{}", e.name);
        assert_eq!(r.synced_revision, Some(e.revision), "{}", e.name);
        assert_eq!(r.payload.full_name(), e.name);
        let server_id = by_name[&e.name][0]["id"].as_str().unwrap();
        assert_eq!(
            r.remote_id().map(|u| u.to_string()).as_deref(),
            Some(server_id),
            "{}",
            e.name
        );
    }
    // The faults were real: some answers were lost after the server committed, and the
    // resend with the same key was replayed rather than executed twice.
    let replayed = expected
        .keys()
        .filter(|id| {
            store
                .get(**id)
                .unwrap()
                .unwrap()
                .history
                .iter()
                .any(|h| matches!(h, icsync::store::HistoryEntry::Attempt(a) if a.replayed))
        })
        .count();
    eprintln!("kills at {kill_at:?}; {replayed} records got a replayed answer");
    assert!(replayed > 0, "no replay seen: the faults did not bite");
    drop(store);
    env.assert_daemon_output_clean(&["Zqpii", "zqpii.example"]);
}
