//! The cost of encryption at rest, for the benchmarks issue: `submit_batch` of 10,000
//! records into a plain (pre-encryption layout) store and into a sealed one, in the same
//! process. Ignored by default; run with
//! `cargo test --release --test crypto_cost -- --ignored --nocapture`.

use std::time::Instant;

use icsync::crypto::{KdfParams, KeyConfig, KeySourceKind};
use icsync::store::{Origin, Payload, Store, StoreOptions};
use serde_json::json;

const N: usize = 10_000;

fn items(tag: &str) -> Vec<(Payload, Origin)> {
    (0..N)
        .map(|i| {
            let body = json!({
                "full_name": format!("Person {tag} {i}"),
                "email": format!("p{i}.{tag}@example.org"),
                "external_id": format!("{tag}-{i}"),
                "phone": "+44 7700 900123",
            });
            (Payload::parse(&body).unwrap(), Origin::Cli)
        })
        .collect()
}

#[test]
#[ignore]
fn submit_batch_plain_versus_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let plain =
        Store::open_legacy_plain(&dir.path().join("plain"), StoreOptions::default()).unwrap();
    let keys = KeyConfig {
        source: KeySourceKind::File,
        key_file: dir.path().join("data.key"),
        kdf: KdfParams::default(),
    };
    let sealed = Store::open_with_key(
        &dir.path().join("sealed"),
        StoreOptions::default(),
        &keys,
        None,
    )
    .unwrap();
    for round in 0..3 {
        let tag = format!("r{round}");
        let (a, b) = (items(&tag), items(&tag));
        let t = Instant::now();
        plain.submit_batch(a, chrono::Utc::now()).unwrap();
        let plain_time = t.elapsed();
        let t = Instant::now();
        sealed.submit_batch(b, chrono::Utc::now()).unwrap();
        let sealed_time = t.elapsed();
        println!(
            "round {round}: submit_batch {N}: plain {plain_time:?}, sealed {sealed_time:?} ({:.2}x)",
            sealed_time.as_secs_f64() / plain_time.as_secs_f64()
        );
    }
}
