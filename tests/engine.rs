//! The sync engine against the real sandbox process and a real sled store on disk: faults,
//! 401 pause, 429 Retry-After, offline then online, edits in flight, crash recovery, drain.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use icsync::api::{ApiClient, ApiKey, ApiTimeouts, InsecureHttp};
use icsync::crypto::KeyConfig;
use icsync::store::{
    HistoryEntry, Origin, Payload, Record, RecordId, RecordState, Store, StoreOptions,
};
use icsync::sync::{send_plan, Engine, EngineConfig, EngineError, EngineHandle};

const ADMIN_TOKEN: &str = "engine-test-admin";
const DEMO_KEY: &str = "ic_test_demo";

/// `icsync sandbox` as a child process, killed on drop.
struct Sandbox {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl Sandbox {
    fn start(extra: &[&str]) -> Sandbox {
        Sandbox::start_on("127.0.0.1:0", extra)
    }

    fn start_on(listen: &str, extra: &[&str]) -> Sandbox {
        let mut child = Command::new(env!("CARGO_BIN_EXE_icsync"))
            .args(["sandbox", "--listen", listen, "--admin-token", ADMIN_TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "sandbox exited");
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_string();
            }
        };
        Sandbox {
            child,
            _stdout: stdout,
            url,
        }
    }

    async fn customers(&self) -> Vec<Value> {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/_sandbox/customers?org=demo", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        body.as_array().unwrap().clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(url: &str, key: &str) -> ApiClient {
    ApiClient::new(
        url,
        ApiKey::new(key).unwrap(),
        ApiTimeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        },
        InsecureHttp::Refuse,
    )
    .unwrap()
}

fn fast_config() -> EngineConfig {
    EngineConfig {
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(200),
        probe_base: Duration::from_millis(50),
        probe_cap: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

fn open_store(dir: &Path) -> Store {
    // The key file beside the store, never the user's own.
    let keys = KeyConfig::file(dir.join("data.key"));
    Store::open_with_key(dir, StoreOptions::default(), &keys, None).unwrap()
}

fn submit(store: &Store, body: Value) -> RecordId {
    store
        .submit(Payload::parse(&body).unwrap(), Origin::Cli, Utc::now())
        .unwrap()
        .id
}

/// A running engine and the means to stop it.
struct Running {
    handle: EngineHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), EngineError>>,
}

impl Running {
    fn start(store: &Store, client: ApiClient, config: EngineConfig) -> Running {
        let engine = Engine::new(store.clone(), client, config);
        let handle = engine.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(engine.run(async move {
            let _ = stopped.await;
        }));
        Running {
            handle,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `cond` until it holds, failing the test after `limit`.
async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_records(store: &Store) -> Vec<Record> {
    store.list(None, None, usize::MAX).unwrap()
}

fn synced(store: &Store) -> u64 {
    store.counts().unwrap().get(RecordState::Synced)
}

fn attempts(record: &Record) -> Vec<&icsync::store::Attempt> {
    record
        .history
        .iter()
        .filter_map(|h| match h {
            HistoryEntry::Attempt(a) => Some(a),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_lands_exactly_once_in_its_newest_revision_despite_failures_and_drops() {
    let sandbox = Sandbox::start(&["--fail-rate", "0.2", "--drop-rate", "0.2"]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    // Name-only records match nothing on the server: each request without its key replayed
    // would create a second customer, so these prove the keys work.
    for i in 0..40 {
        submit(&store, json!({"full_name": format!("Name {i}")}));
    }
    for i in 0..20 {
        submit(
            &store,
            json!({"external_id": format!("ext-{i}"), "full_name": format!("Ext {i} v1")}),
        );
        submit(
            &store,
            json!({"external_id": format!("ext-{i}"), "full_name": format!("Ext {i} v2")}),
        );
    }
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), fast_config());
    // Some of these land while revision 2 is in flight, some after it synced.
    for i in 0..10 {
        submit(
            &store,
            json!({"external_id": format!("ext-{i}"), "full_name": format!("Ext {i} v3")}),
        );
        running.handle.wake();
    }
    wait_for("every record synced", Duration::from_secs(60), || {
        synced(&store) == 60
    })
    .await;
    running.shutdown().await;

    let customers = sandbox.customers().await;
    let mut names: HashMap<String, usize> = HashMap::new();
    for c in &customers {
        *names
            .entry(c["full_name"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let mut expected: Vec<String> = (0..40).map(|i| format!("Name {i}")).collect();
    expected.extend((0..20).map(|i| format!("Ext {i} v{}", if i < 10 { 3 } else { 2 })));
    assert_eq!(customers.len(), 60, "names on the server: {names:?}");
    for name in &expected {
        assert_eq!(names.get(name), Some(&1), "{name} on the server: {names:?}");
    }

    let records = all_records(&store);
    let server_ids: Vec<&str> = customers
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for r in &records {
        assert_eq!(r.state, RecordState::Synced);
        assert_eq!(r.synced_revision, Some(r.revision));
        let remote = r.remote.as_ref().unwrap();
        assert!(server_ids.contains(&remote.id.to_string().as_str()));
        assert_eq!(remote.full_name, r.payload.full_name());
    }
    let all: Vec<_> = records.iter().flat_map(attempts).collect();
    assert!(
        all.iter().any(|a| a.status.is_none()),
        "no dropped reply was exercised"
    );
    assert!(
        all.iter().any(|a| a.status == Some(503)),
        "no 503 was exercised"
    );
    assert!(store.check_consistency().unwrap().is_empty());
}

/// The engine counts the CPU its store work takes (for the bench's breakdown) only once asked
/// to, and then both parts: the queue reads and the outcome writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_work_meter_counts_store_work_only_once_switched_on() {
    let sandbox = Sandbox::start(&[]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    for i in 0..20 {
        submit(&store, json!({"full_name": format!("Unmetered {i}")}));
    }
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), fast_config());
    wait_for("the first records synced", Duration::from_secs(60), || {
        synced(&store) == 20
    })
    .await;
    assert_eq!(running.handle.work(), icsync::sync::Work::default());

    running.handle.measure_work();
    for i in 0..200 {
        submit(&store, json!({"full_name": format!("Metered {i}")}));
    }
    running.handle.wake();
    wait_for(
        "the metered records synced",
        Duration::from_secs(60),
        || synced(&store) == 220,
    )
    .await;
    let work = running.handle.work();
    running.shutdown().await;
    assert!(work.outcome_writes > Duration::ZERO, "{work:?}");
    assert!(work.queue_reads > Duration::ZERO, "{work:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_pauses_without_failing_records_and_set_api_key_resumes() {
    let sandbox = Sandbox::start(&[]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    for i in 0..5 {
        submit(&store, json!({"full_name": format!("Paused {i}")}));
    }
    let wrong = "ic_test_wrong_key_0000000000";
    let config = EngineConfig {
        concurrency: 2,
        ..fast_config()
    };
    let running = Running::start(&store, client(&sandbox.url, wrong), config);
    let handle = running.handle.clone();
    wait_for(
        "the 401 pause with no request in flight",
        Duration::from_secs(10),
        || {
            let s = handle.status();
            s.paused.is_some() && s.in_flight == 0
        },
    )
    .await;
    let reason = handle.status().paused.unwrap();
    assert!(
        !reason.contains("wrong_key"),
        "the key leaked into the reason: {reason}"
    );

    // An observation window: a paused engine sends nothing more, however long it waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = all_records(&store);
    let sent: usize = records.iter().map(|r| attempts(r).len()).sum();
    assert_eq!(sent, 2, "only the two requests already in flight were sent");
    for r in &records {
        assert_eq!(r.state, RecordState::Queued, "no record is marked failed");
        assert_eq!(r.failures, 0);
        assert_eq!(r.last_error, None);
    }
    assert!(sandbox.customers().await.is_empty());

    handle.set_api_key(ApiKey::new(DEMO_KEY).unwrap());
    wait_for(
        "all five synced after the key change",
        Duration::from_secs(10),
        || synced(&store) == 5,
    )
    .await;
    assert_eq!(handle.status().paused, None);
    running.shutdown().await;
    assert_eq!(sandbox.customers().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_dispatched_before_a_429_retry_after_has_passed() {
    let sandbox = Sandbox::start(&["--rate-limit", "4"]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    for i in 0..24 {
        submit(&store, json!({"full_name": format!("Limited {i}")}));
    }
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), fast_config());
    wait_for("every record synced", Duration::from_secs(30), || {
        synced(&store) == 24
    })
    .await;
    running.shutdown().await;
    assert_eq!(sandbox.customers().await.len(), 24);

    let records = all_records(&store);
    let all: Vec<_> = records.iter().flat_map(attempts).collect();
    let limited: Vec<_> = all.iter().filter(|a| a.status == Some(429)).collect();
    assert!(!limited.is_empty(), "the rate limit was never hit");
    // The sandbox answers Retry-After: 1. A request may start between a 429's arrival and
    // the engine reading it (the slack); none may start later within the second.
    let slack = chrono::Duration::milliseconds(50);
    for l in &limited {
        let answered = l.at + chrono::Duration::milliseconds(l.latency_ms as i64);
        let until = answered + chrono::Duration::seconds(1);
        for a in &all {
            assert!(
                !(a.at > answered + slack && a.at < until),
                "a request started at {} inside the Retry-After window {}..{}",
                a.at,
                answered,
                until
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_down_the_engine_goes_offline_then_drains_by_itself_when_it_is_back() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    for i in 0..10 {
        submit(&store, json!({"full_name": format!("Offline {i}")}));
    }
    let running = Running::start(
        &store,
        client(&format!("http://{addr}"), DEMO_KEY),
        fast_config(),
    );
    let handle = running.handle.clone();
    wait_for("offline", Duration::from_secs(10), || {
        !handle.status().online
    })
    .await;
    let counts = store.counts().unwrap();
    assert_eq!(counts.get(RecordState::Synced), 0);
    assert_eq!(
        counts.get(RecordState::Rejected) + counts.get(RecordState::Conflict),
        0
    );

    let sandbox = Sandbox::start_on(&addr.to_string(), &[]);
    wait_for("all ten synced", Duration::from_secs(15), || {
        synced(&store) == 10
    })
    .await;
    assert!(handle.status().online);
    assert!(handle.status().last_sync_at.is_some());
    running.shutdown().await;
    assert_eq!(sandbox.customers().await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_the_previous_revision_is_in_flight_lands_after_it() {
    let sandbox = Sandbox::start(&["--latency-ms", "400"]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    let v1 = json!({"external_id": "E-1", "full_name": "Edited v1"});
    let id = submit(&store, v1);
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), fast_config());
    let in_flight = running.handle.in_flight();
    wait_for("revision 1 in flight", Duration::from_secs(5), || {
        in_flight.contains(id)
    })
    .await;
    // Nothing is written for "sending": the record in flight is queued in the store.
    assert_eq!(store.get(id).unwrap().unwrap().state, RecordState::Queued);
    let edited = submit(
        &store,
        json!({"external_id": "E-1", "full_name": "Edited v2"}),
    );
    assert_eq!(edited, id, "the edit is the same record's next revision");
    running.handle.wake();
    wait_for("revision 2 synced", Duration::from_secs(10), || {
        let r = store.get(id).unwrap().unwrap();
        r.state == RecordState::Synced && r.synced_revision == Some(2)
    })
    .await;
    running.shutdown().await;

    let customers = sandbox.customers().await;
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["full_name"], "Edited v2");
    let record = store.get(id).unwrap().unwrap();
    let sent = attempts(&record);
    assert_eq!(
        sent.iter().map(|a| a.revision).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let first_done = sent[0].at + chrono::Duration::milliseconds(sent[0].latency_ms as i64);
    assert!(
        sent[1].at >= first_done,
        "revision 2 started before revision 1 finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_left_sending_by_a_crash_is_resent_with_its_key_and_replayed() {
    let sandbox = Sandbox::start(&[]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    // A previous run sent the request and the server executed it, but the process died
    // before the reply was recorded: the record is still queued at the same revision.
    let queued = submit(&store, json!({"full_name": "Crashed Once"}));
    // The same, in a store written by a version that marked records `sending`.
    let marked = submit(&store, json!({"full_name": "Crashed Marked"}));
    store
        .update(marked, icsync::store::Durability::Flush, |r| {
            r.state = RecordState::Sending
        })
        .unwrap();
    let api = client(&sandbox.url, DEMO_KEY);
    let mut keys = Vec::new();
    for id in [queued, marked] {
        let mut record = store.get(id).unwrap().unwrap();
        record.state = RecordState::Queued;
        let plan = send_plan(&record).unwrap();
        let first = api.upsert(&plan.body, &plan.key).await.unwrap();
        assert_eq!(first.status, 201);
        keys.push(plan.key);
    }

    let running = Running::start(&store, api, fast_config());
    wait_for("synced", Duration::from_secs(10), || synced(&store) == 2).await;
    running.shutdown().await;

    for (id, key) in [queued, marked].into_iter().zip(keys) {
        let record = store.get(id).unwrap().unwrap();
        let sent = attempts(&record);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].key, key.as_str());
        assert!(
            sent[0].replayed,
            "the server replayed instead of executing again"
        );
    }
    assert_eq!(sandbox.customers().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight_and_records_their_outcome() {
    let sandbox = Sandbox::start(&["--latency-ms", "300"]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    for i in 0..4 {
        submit(&store, json!({"full_name": format!("Draining {i}")}));
    }
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), fast_config());
    let handle = running.handle.clone();
    wait_for("four in flight", Duration::from_secs(5), || {
        handle.status().in_flight == 4
    })
    .await;
    running.shutdown().await;
    assert_eq!(synced(&store), 4);
    assert!(store.in_state(RecordState::Sending).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_drain_deadline_requests_are_abandoned_and_their_records_requeued() {
    let sandbox = Sandbox::start(&["--latency-ms", "3000"]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    let id = submit(&store, json!({"full_name": "Slow One"}));
    let config = EngineConfig {
        drain_deadline: Duration::from_millis(100),
        ..fast_config()
    };
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), config);
    let handle = running.handle.clone();
    wait_for("one in flight", Duration::from_secs(5), || {
        handle.status().in_flight == 1
    })
    .await;
    let started = std::time::Instant::now();
    running.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited for the slow request"
    );
    let record = store.get(id).unwrap().unwrap();
    assert_eq!(
        record.state,
        RecordState::Queued,
        "resent with the same key next run"
    );
    drop(sandbox);
}

/// The conflict enricher beside an engine: a read that fails (nothing listens) stores nothing,
/// and a later sweep reads again once the API answers; the 404 for a customer the server
/// does not know is stored as `not_found`, distinct from "not read yet".
#[tokio::test]
async fn the_conflict_enricher_reads_again_after_a_failure_and_keeps_a_404() {
    use icsync::contract::ApiError;
    use icsync::store::{Durability, ExistingLookup, RecordError, RecordState};
    use icsync::sync::existing::{self, EnricherConfig};

    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let id = submit(&store, json!({"full_name": "Ada", "email": "ada@x.io"}));
    let gone = uuid::Uuid::new_v4();
    store
        .update(id, Durability::Lazy, |r| {
            r.state = RecordState::Conflict;
            r.last_error = Some(RecordError::Api {
                error: ApiError::CustomerConflict {
                    message: "taken".into(),
                    conflicting_customer_id: gone,
                    conflicting_external_id: None,
                },
            });
        })
        .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = client(&format!("http://127.0.0.1:{port}"), DEMO_KEY);
    // Never run: the enricher only needs its events and status.
    let engine = Engine::new(store.clone(), api.clone(), fast_config());
    let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(existing::run(
        store.clone(),
        api,
        engine.handle(),
        EnricherConfig {
            concurrency: 2,
            sweep_interval: Duration::from_millis(100),
        },
        move |id| {
            let _ = read_tx.send(id);
        },
        async move {
            let _ = stopped.await;
        },
    ));

    // Offline for a few sweeps: the read at start failed and nothing was stored.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(store.get(id).unwrap().unwrap().existing, None);
    assert!(read_rx.try_recv().is_err());

    let _sandbox = Sandbox::start_on(&format!("127.0.0.1:{port}"), &[]);
    let read = tokio::time::timeout(Duration::from_secs(20), read_rx.recv())
        .await
        .expect("the enricher read the customer once the API answered");
    assert_eq!(read, Some(id));
    let existing = store.get(id).unwrap().unwrap().existing.unwrap();
    assert_eq!(existing.customer_id, gone);
    assert_eq!(existing.lookup, ExistingLookup::NotFound);

    let _ = stop.send(());
    task.await.unwrap();
}

/// Outcomes are written off the loop while the next requests go out: a record whose outcome
/// waits for the writer is still in flight, so none is sent twice, and every outcome is
/// written (one attempt each, one customer each) with nothing left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_waiting_for_the_writer_are_never_sent_twice() {
    let sandbox = Sandbox::start(&[]);
    let dir = TempDir::new().unwrap();
    let store = open_store(dir.path());
    let items = (0..400)
        .map(|i| {
            let body = json!({"full_name": format!("Burst {i}"), "external_id": format!("b-{i}")});
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect();
    store.submit_batch(items, Utc::now()).unwrap();
    let config = EngineConfig {
        concurrency: 32,
        ..fast_config()
    };
    let running = Running::start(&store, client(&sandbox.url, DEMO_KEY), config);
    let in_flight = running.handle.in_flight();
    wait_for("all synced", Duration::from_secs(30), || {
        synced(&store) == 400
    })
    .await;
    wait_for("nothing left in flight", Duration::from_secs(5), || {
        in_flight.is_empty()
    })
    .await;
    running.shutdown().await;
    for record in all_records(&store) {
        assert_eq!(attempts(&record).len(), 1, "{} sent twice", record.id);
    }
    assert_eq!(sandbox.customers().await.len(), 400);
}
