//! Ad-hoc measurement: what one store operation costs per record on the engine's path (`due`,
//! a state write such as the `sending` mark older versions wrote, the outcome), with a read
//! and a write that changes nothing for reference. `cargo run --release --example store_write_cost` (temporary store, removed at
//! the end). docs/benchmarks.md uses it to explain the sync ratio at 0 ms latency.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Utc;
use icsync::crypto::KeyConfig;
use icsync::store::{Durability, Origin, Payload, Record, RecordState, Store, StoreOptions};
use icsync::sync::recover_sending;
use serde_json::json;

const RECORDS: usize = 5_000;
const DUE_CALLS: usize = 2_000;

/// The `sending` mark older versions wrote before each request: a state write.
fn begin_attempt(r: &mut Record, now: chrono::DateTime<Utc>) {
    r.state = RecordState::Sending;
    r.updated_at = now;
}

/// Microseconds per item since `start`.
fn per(start: Instant, items: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / items as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open_with_key(
        &dir.path().join("store"),
        StoreOptions::default(),
        &KeyConfig::file(dir.path().join("data.key")),
        None,
    )?;
    let mut items = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let body = json!({
            "full_name": format!("Person {i}"),
            "email": format!("p{i}@example.org"),
            "external_id": format!("x-{i}"),
            "type": "INDIVIDUAL",
            "risk": {"occupation": "Baker"},
        });
        let payload = Payload::parse(&body).map_err(|e| format!("{e:?}"))?;
        items.push((payload, Origin::Cli));
    }

    let start = Instant::now();
    let ids: Vec<_> = store
        .submit_batch(items, Utc::now())?
        .into_iter()
        .map(|s| s.id)
        .collect();
    println!(
        "submit_batch (sealed, flushed): {:6.1} us/record",
        per(start, RECORDS)
    );

    let none = HashSet::new();
    let start = Instant::now();
    for _ in 0..DUE_CALLS {
        store.due(Utc::now(), 1, &none)?;
    }
    println!(
        "due(limit 1):                   {:6.1} us/call",
        per(start, DUE_CALLS)
    );

    let start = Instant::now();
    for id in &ids {
        store.get(*id)?;
    }
    println!(
        "get:                            {:6.1} us/record",
        per(start, RECORDS)
    );

    let start = Instant::now();
    for id in &ids {
        store.update(*id, Durability::Lazy, |_| ())?;
    }
    println!(
        "update changing nothing:        {:6.1} us/record",
        per(start, RECORDS)
    );

    let start = Instant::now();
    for id in &ids {
        store.update(*id, Durability::Lazy, |r| begin_attempt(r, Utc::now()))?;
    }
    println!(
        "update: mark sending:           {:6.1} us/record",
        per(start, RECORDS)
    );

    let start = Instant::now();
    for id in &ids {
        store.update(*id, Durability::Lazy, recover_sending)?;
    }
    println!(
        "update: back to queued:         {:6.1} us/record",
        per(start, RECORDS)
    );

    let start = Instant::now();
    for chunk in ids.chunks(8) {
        store.update_many(chunk, Durability::Lazy, |_, r| begin_attempt(r, Utc::now()))?;
    }
    println!(
        "update_many by 8: mark sending: {:6.1} us/record",
        per(start, RECORDS)
    );
    Ok(())
}
