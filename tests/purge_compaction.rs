//! Purged and migrated values are gone from disk, not just unreachable (issue 17): the real
//! binary, a real sled store on disk, every file under the data dir searched.
//!
//! The store is sealed, so a search for plaintext after a purge proves nothing; the tests take
//! 32-byte slices of the purged records' sealed values as they were on disk before the purge
//! (read in the test process while no daemon runs), check that a search finds them there
//! first, and then that none is in any file after `purge` returns. Kept records' values are
//! still found (the search works) and they still read and sync. A plain store from before
//! encryption is searched for its plaintext after the migration; and a compaction killed at
//! each of its steps leaves a store that opens with every record, the purged values gone once
//! it opened.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use common::daemon::{poll_until, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use icsync::store::{
    Attempt, Durability, HistoryEntry, Origin, Payload, RecordId, RecordState, Store, StoreOptions,
    COMPACT_ABORT_ENV, COMPACT_STEPS,
};
use serde_json::{json, Value};

/// Long enough for a debug build on a busy 2-core machine; conditions are polled.
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
/// Bytes of each sealed value searched for.
const SLICE: usize = 32;

/// Which of `needles` (each at least 8 bytes) occur in some file under `dir`, by index.
fn found_in_files(dir: &Path, needles: &[Vec<u8>]) -> Vec<bool> {
    holders(dir, needles)
        .iter()
        .map(|h| !h.is_empty())
        .collect()
}

/// The files under `dir` holding each of `needles` (each at least 8 bytes), by index.
fn holders(dir: &Path, needles: &[Vec<u8>]) -> Vec<Vec<PathBuf>> {
    let mut by_head: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, n) in needles.iter().enumerate() {
        by_head.entry(&n[..8]).or_default().push(i);
    }
    let mut found = vec![Vec::new(); needles.len()];
    for path in common::files_under(dir) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        for at in 0..bytes.len().saturating_sub(7) {
            if let Some(candidates) = by_head.get(&bytes[at..at + 8]) {
                for &i in candidates {
                    if bytes[at..].starts_with(&needles[i]) && !found[i].contains(&path) {
                        found[i].push(path.clone());
                    }
                }
            }
        }
    }
    found
}

/// A slice from the middle of a sealed value: ciphertext, not a header other values share.
fn slice_of(sealed: &[u8]) -> Vec<u8> {
    assert!(sealed.len() >= 2 * SLICE, "{} bytes", sealed.len());
    let at = sealed.len() / 2 - SLICE / 2;
    sealed[at..at + SLICE].to_vec()
}

fn write_ndjson(path: &Path, tag: &str, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            json!({
                "full_name": format!("Zq{tag} Person {i}"),
                "email": format!("zq{tag}{i}@example.org"),
                "external_id": format!("{tag}-{i}"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn synced(env: &DaemonEnv, n: u64) {
    env.wait_status(&format!("{n} records synced"), SYNC_DEADLINE, |s| {
        s["synced"] == n
    });
}

/// The sealed bytes of every record, by whether its name carries `tag`.
fn sealed_values(store: &Store, tag: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut tagged, mut other) = (Vec::new(), Vec::new());
    for record in store.list(None, None, usize::MAX).unwrap() {
        let raw = store.raw_record(record.id).unwrap().unwrap();
        if record.payload.full_name().contains(tag) {
            tagged.push(slice_of(&raw));
        } else {
            other.push(slice_of(&raw));
        }
    }
    (tagged, other)
}

#[test]
fn purged_records_sealed_values_are_in_no_file_after_purge_through_the_daemon() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let daemon = env.start_daemon(&[]);
    let old_file = env.dir.path().join("old.ndjson");
    write_ndjson(&old_file, "Old", 40);
    env.ok(&["import", old_file.to_str().unwrap()]);
    synced(&env, 40);
    let cutoff = Utc::now();
    poll_until("the clock to pass the cutoff", SYNC_DEADLINE, || {
        (Utc::now() > cutoff).then_some(()).ok_or(())
    });
    let new_file = env.dir.path().join("new.ndjson");
    write_ndjson(&new_file, "New", 10);
    env.ok(&["import", new_file.to_str().unwrap()]);
    synced(&env, 50);

    // The sealed values as they are on disk, read with no daemon holding the store.
    daemon.stop_with("TERM", Duration::from_secs(20));
    let store = env.open_store();
    let (purged, kept) = sealed_values(&store, "ZqOld");
    drop(store);
    assert_eq!((purged.len(), kept.len()), (40, 10));
    assert!(
        found_in_files(&env.data_dir, &purged).iter().all(|f| *f),
        "the search does not find the sealed values before the purge"
    );

    let daemon = env.start_daemon(&[]);
    let out = env.json(&[
        "purge",
        "--synced-before",
        &cutoff.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "--json",
    ]);
    assert_eq!(out["ids"].as_array().unwrap().len(), 40, "{out}");

    let left: Vec<_> = holders(&env.data_dir, &purged).concat();
    assert!(
        left.is_empty(),
        "purged sealed values are still in {left:?}"
    );
    assert!(
        found_in_files(&env.data_dir, &kept).iter().all(|f| *f),
        "kept records' values are missing from disk"
    );
    let store_dir = env.store_dir();
    for aside in ["sled.compact", "sled.new", "sled.old"] {
        assert!(!store_dir.join(aside).exists(), "{aside} left behind");
    }

    // Kept records read as before; purged ones are stubs; the daemon syncs on, once each.
    let shown = env.json(&["show", "New-3", "--json"]);
    assert_eq!(shown["payload"]["full_name"], "ZqNew Person 3");
    let list: Value = env.json(&["list", "--json"]);
    let erased = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["full_name"] == "" && r["email"].is_null())
        .count();
    assert_eq!(erased, 40, "{list}");
    let more = env.dir.path().join("more.ndjson");
    write_ndjson(&more, "More", 5);
    env.ok(&["import", more.to_str().unwrap()]);
    synced(&env, 55);
    let customers = admin.customers();
    let mut names: Vec<&str> = customers
        .iter()
        .map(|c| c["full_name"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!((customers.len(), names.len()), (55, 55));
    let store_check = env.json(&["status", "--json"]);
    assert_eq!(store_check["synced"], 55, "{store_check}");
    env.assert_daemon_output_clean(&["ZqOld Person", "zqold1@example.org"]);
    drop(daemon);
}

#[test]
fn a_migrated_plain_store_leaves_no_plaintext_value_on_disk() {
    const N: usize = 2_000;
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let store = Store::open_legacy_plain(&env.store_dir(), StoreOptions::default()).unwrap();
    let items = (0..N)
        .map(|i| {
            let body = json!({
                "full_name": format!("Zqlegacy Person {i}"),
                "email": format!("zqlegacy{i}@example.org"),
                "external_id": format!("zqlegacy-{i}"),
            });
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect();
    store.submit_batch(items, Utc::now()).unwrap();
    drop(store);
    let needles: Vec<Vec<u8>> = (0..N)
        .step_by(97)
        .flat_map(|i| {
            [
                format!("Zqlegacy Person {i}\""),
                format!("zqlegacy{i}@example.org"),
            ]
        })
        .map(String::into_bytes)
        .collect();
    assert!(
        found_in_files(&env.data_dir, &needles).iter().all(|f| *f),
        "the search does not find the plain values before the migration"
    );

    // Any command that unlocks the store migrates it.
    let status = env.json(&["status", "--json"]);
    assert_eq!(status["queued"], N as u64, "{status}");
    let left: Vec<String> = found_in_files(&env.data_dir, &needles)
        .iter()
        .zip(&needles)
        .filter(|(f, _)| **f)
        .map(|(_, n)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(left.is_empty(), "plaintext left on disk: {left:?}");
    let store = env.open_store();
    assert!(store.check_consistency().unwrap().is_empty());
    let id = store.find_by_external_id("zqlegacy-17").unwrap().unwrap();
    assert_eq!(
        store.get(id).unwrap().unwrap().payload.full_name(),
        "Zqlegacy Person 17"
    );
}

/// A store of `n` records marked synced (as the engine marks a 201) at `at`, built in the test
/// process.
fn synced_store(env: &DaemonEnv, n: usize) -> Vec<RecordId> {
    let store = env.open_store();
    let items = (0..n)
        .map(|i| {
            let body = json!({"full_name": format!("Zqkill Person {i}"), "email": format!("zqkill{i}@example.org")});
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect();
    let ids: Vec<RecordId> = store
        .submit_batch(items, Utc::now())
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    for chunk in ids.chunks(256) {
        store
            .update_many(chunk, Durability::Lazy, |_, r| {
                r.history.push(HistoryEntry::Attempt(Attempt {
                    at: r.updated_at,
                    revision: r.revision,
                    key: format!("icsync-{}-r{}", r.id, r.revision),
                    status: Some(201),
                    latency_ms: 1,
                    replayed: false,
                    error: None,
                }));
                r.state = RecordState::Synced;
                r.synced_revision = Some(r.revision);
                r.linked_customer_id = Some(uuid::Uuid::new_v4());
            })
            .unwrap();
    }
    store.flush().unwrap();
    ids
}

#[test]
fn a_compaction_killed_at_each_step_leaves_a_store_with_every_record_and_no_purged_value() {
    const N: usize = 3_000;
    for step in COMPACT_STEPS {
        let env = DaemonEnv::new("http://127.0.0.1:9", "");
        let ids = synced_store(&env, N);
        let store = env.open_store();
        let purged: Vec<Vec<u8>> = ids
            .iter()
            .step_by(50)
            .map(|id| slice_of(&store.raw_record(*id).unwrap().unwrap()))
            .collect();
        drop(store);

        let out = env
            .command(&["purge", "--synced-before", "2100-01-01"])
            .env(COMPACT_ABORT_ENV, step)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{step}: the purge was not cut short: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        // The store opens (with the binary) with every record, the purge kept, and the
        // compaction owed or done: no purged value is left once it opened.
        let status = env.json(&["status", "--json"]);
        assert_eq!(status["synced"], N as u64, "{step}: {status}");
        let left = found_in_files(&env.data_dir, &purged);
        assert_eq!(
            left.iter().filter(|f| **f).count(),
            0,
            "{step}: purged values on disk after the store opened"
        );
        for aside in ["sled.compact", "sled.new", "sled.old"] {
            assert!(
                !env.store_dir().join(aside).exists(),
                "{step}: {aside} left"
            );
        }
        let store = env.open_store();
        assert_eq!(store.counts().unwrap().total, N as u64, "{step}");
        assert!(store.check_consistency().unwrap().is_empty(), "{step}");
        for id in ids.iter().step_by(50) {
            let record = store.get(*id).unwrap().unwrap();
            assert!(record.payload.is_erased(), "{step}: {id} not purged");
        }
    }
}

/// Compaction time for 10k and 100k records (run by hand: `cargo test --test purge_compaction
/// -- --ignored --nocapture`; docs/benchmarks.md has the figures).
#[test]
#[ignore]
fn measure_compaction() {
    for n in [10_000usize, 100_000] {
        let env = DaemonEnv::new("http://127.0.0.1:9", "");
        synced_store(&env, n);
        let store = env.open_store();
        let started = std::time::Instant::now();
        let purged = store
            .purge(Utc::now() + chrono::Duration::days(1), Utc::now(), false)
            .unwrap();
        let total = started.elapsed();
        let again = store.compact().unwrap();
        println!(
            "{n} records: purge + compaction {:.2} s; compaction alone {:.2} s, {} entries, \
             {} -> {} bytes",
            total.as_secs_f64(),
            again.elapsed.as_secs_f64(),
            again.entries,
            again.bytes_before,
            again.bytes_after
        );
        assert_eq!(purged.len(), n);
    }
}
