//! Ad-hoc measurement: how long the daemon takes to build a sorted view (by name, and by
//! newest change) over N sealed records. `cargo run --release --example sort_build -- 200000`
//! (makes a temporary store and key file, removed at the end).

use std::time::{Duration, Instant};

use chrono::Utc;
use icsync::control::{ListSort, Reply, Request};
use icsync::service::Service;
use icsync::store::{Origin, Payload, Store, StoreOptions};
use serde_json::json;

fn rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    std::env::set_var("ICSYNC_KEY_FILE", dir.path().join("data.key"));
    let store = Store::open(&dir.path().join("store"), StoreOptions::default()).expect("store");
    let t = Instant::now();
    let now = Utc::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let items = chunk
            .iter()
            .map(|i| {
                // Names in an order unrelated to queue order.
                let k = (i * 7_919) % n;
                let body = json!({"type": "INDIVIDUAL", "full_name": format!("Person {k:07}"),
                    "email": format!("p{i}@example.org"), "external_id": format!("crm-{i}")});
                (Payload::parse(&body).expect("valid"), Origin::Cli)
            })
            .collect();
        store.submit_batch(items, now).expect("submit");
    }
    println!("{n} sealed records written in {:.1?}", t.elapsed());
    println!("RSS before sorting: {} MB", rss_mb());
    let svc = Service::new(store, None);
    for sort in [ListSort::Name, ListSort::NewestChange] {
        let t = Instant::now();
        let first = loop {
            let reply = svc.answer(Request::List {
                state: None,
                after: None,
                limit: 20,
                query: None,
                sort,
                after_key: None,
            });
            match reply {
                Reply::Records {
                    records,
                    sorting: None,
                    ..
                } => break records.first().map(|r| r.payload.full_name().to_owned()),
                Reply::Records { .. } => std::thread::sleep(Duration::from_millis(5)),
                other => panic!("{other:?}"),
            }
        };
        let built = t.elapsed();
        let t = Instant::now();
        let _ = svc.answer(Request::List {
            state: None,
            after: None,
            limit: 20,
            query: None,
            sort,
            after_key: None,
        });
        println!(
            "sort {sort:?}: view built and first page served in {built:.2?}; a page from the built view {:.2?} (first: {})",
            t.elapsed(),
            first.unwrap_or_default()
        );
        println!("RSS with the view held: {} MB", rss_mb());
    }
}
