//! Ad-hoc measurement: where a sealed store's bytes go, per tree (entries, key and value bytes
//! as sled is given them) against the database's size on disk, for N records queued by
//! `submit_batch` and then the same records synced (server customer and an attempt in their
//! history, as the engine writes them). `cargo run --release --example store_bytes -- 100000`
//! (temporary store, removed at the end). `STORE_BYTES_INPUT=customers.ndjson` takes the
//! bodies from a file (`assets/zstd/customers.py` makes varied ones; bodies the contract
//! refuses are skipped) instead of one name numbered; `STORE_BYTES_DUMP=path` writes each
//! record's JSON, queued and then synced, one a line (the dictionary's training data,
//! assets/zstd/README.md). docs/benchmarks.md cites it.

use std::io::Write;

use chrono::Utc;
use icsync::api::{Reply, ReplyBody};
use icsync::contract::Customer;
use icsync::crypto::KeyConfig;
use icsync::store::{Durability, Origin, Payload, Store, StoreOptions};
use icsync::sync::transition::attempt_entry;
use icsync::sync::{finish_attempt, send_plan, Disposition};
use serde_json::json;

fn body(i: usize) -> serde_json::Value {
    json!({
        "external_id": format!("crm-{i:07}"),
        "full_name": format!("Hana Mensah {i}"),
        "email": format!("hana.mensah.{i}@example.com"),
        "phone": format!("+44 7700 9{:05}", i % 100_000),
        "type": "INDIVIDUAL",
        "risk": {
            "occupation": "Engineer",
            "source_of_funds": "Salary",
            "country_of_residence": "GB",
            "expected_monthly_volume": 2500,
            "is_pep": false
        }
    })
}

fn report(label: &str, dir: &std::path::Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let db = sled::open(dir.join("store").join("sled"))?;
    let on_disk = db.size_on_disk()?;
    println!(
        "{label}: {n} records, {} B on disk per record",
        on_disk / n as u64
    );
    println!(
        "  {:<20} {:>9} {:>10} {:>10}",
        "tree", "entries", "key B/rec", "val B/rec"
    );
    let mut total = 0usize;
    for name in db.tree_names() {
        let tree = db.open_tree(&name)?;
        let (mut entries, mut keys, mut values) = (0usize, 0usize, 0usize);
        for kv in tree.iter() {
            let (k, v) = kv?;
            entries += 1;
            keys += k.len();
            values += v.len();
        }
        total += keys + values;
        println!(
            "  {:<20} {:>9} {:>10.1} {:>10.1}",
            String::from_utf8_lossy(&name),
            entries,
            keys as f64 / n as f64,
            values as f64 / n as f64
        );
    }
    println!(
        "  logical {} B per record; on disk / logical = {:.2}",
        total / n,
        on_disk as f64 / total as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let open = || {
        Store::open_with_key(
            &dir.path().join("store"),
            StoreOptions::default(),
            &KeyConfig::file(dir.path().join("data.key")),
            None,
        )
    };
    let store = open()?;
    let items: Vec<_> = match std::env::var("STORE_BYTES_INPUT") {
        Ok(path) => std::fs::read_to_string(path)?
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter_map(|body| Payload::parse(&body).ok())
            .take(n)
            .map(|p| (p, Origin::Cli))
            .collect(),
        Err(_) => (0..n)
            .filter_map(|i| Payload::parse(&body(i)).ok())
            .map(|p| (p, Origin::Cli))
            .collect(),
    };
    let n = items.len();
    let mut dump = match std::env::var("STORE_BYTES_DUMP") {
        Ok(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        Err(_) => None,
    };
    let mut dump_all = |store: &Store,
                        ids: &[icsync::store::RecordId]|
     -> Result<(), Box<dyn std::error::Error>> {
        if let Some(out) = dump.as_mut() {
            for id in ids {
                if let Some(r) = store.get(*id)? {
                    serde_json::to_writer(&mut *out, &r)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    };
    let ids: Vec<_> = store
        .submit_batch(items, Utc::now())?
        .into_iter()
        .map(|s| s.id)
        .collect();
    dump_all(&store, &ids)?;
    drop(store);
    report("queued", dir.path(), n)?;

    let store = open()?;
    for chunk in ids.chunks(64) {
        store.update_many(chunk, Durability::Lazy, |_, r| {
            let Some(plan) = send_plan(r) else { return };
            let now = Utc::now();
            let mut customer = r.payload.to_value();
            customer["id"] = json!(uuid::Uuid::new_v4());
            customer["kyc_status"] = json!("PENDING");
            customer["added_via"] = json!("INTEGRATION");
            if customer.get("risk").is_none() {
                customer["risk"] = json!({});
            }
            customer["verified_identity"] = json!(null);
            customer["trading_name"] = json!(null);
            customer["created_at"] = json!(now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            customer["updated_at"] = customer["created_at"].clone();
            let Ok(customer) = serde_json::from_value::<Customer>(customer) else {
                return;
            };
            let reply = Ok(Reply {
                status: 201,
                replayed: false,
                retry_after: None,
                body: ReplyBody::Customer(Box::new(customer.clone())),
            });
            let attempt = attempt_entry(&plan, &reply, now, std::time::Duration::from_millis(3));
            let disposition = Disposition::Synced {
                customer: Box::new(customer),
                replayed: false,
            };
            finish_attempt(r, plan.revision, attempt, &disposition, None, now);
        })?;
    }
    store.flush()?;
    dump_all(&store, &ids)?;
    drop(store);
    report("synced", dir.path(), n)?;
    Ok(())
}
