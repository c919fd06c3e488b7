//! Part 6: compaction (`Store::compact`, run after a purge or a migration so that old values
//! are gone from disk), against its ceiling in the same run: a bare sled copy of the same
//! database (every tree, in batches of 1,024 keys, then one flush) into a fresh directory.
//! Both copy the same bytes; the ratio is what the swap, the lock and the reopen cost.

use std::time::Instant;

use chrono::Utc;
use icsync::store::{Origin, Payload, Store, StoreOptions};

use super::report::Row;
use super::util::{keys, payloads, quick, BenchResult};

const BATCH: usize = 1024;

pub fn run(rows: &mut Vec<Row>) -> BenchResult<()> {
    let n = if quick() { 2_000 } else { 50_000 };
    let tmp = tempfile::tempdir()?;
    let store_dir = tmp.path().join("store");
    {
        let store =
            Store::open_with_key(&store_dir, StoreOptions::default(), &keys(tmp.path()), None)?;
        for c in (0..n).step_by(10_000) {
            let items: Vec<(Payload, Origin)> =
                payloads(&format!("compact{c}"), 10_000.min(n - c))?
                    .into_iter()
                    .map(|p| (p, Origin::Cli))
                    .collect();
            store.submit_batch(items, Utc::now())?;
        }
        store.fold_pending()?;
        store.flush()?;
    }

    // The ceiling: the same database copied tree by tree with nothing else.
    let bare_secs = {
        let from = sled::open(store_dir.join("sled"))?;
        let start = Instant::now();
        let to = sled::open(tmp.path().join("bare-copy"))?;
        for name in from.tree_names() {
            let (src, dst) = (from.open_tree(&name)?, to.open_tree(&name)?);
            let mut batch = sled::Batch::default();
            let mut held = 0;
            for kv in src.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                held += 1;
                if held == BATCH {
                    dst.apply_batch(std::mem::take(&mut batch))?;
                    held = 0;
                }
            }
            dst.apply_batch(batch)?;
        }
        to.flush()?;
        start.elapsed().as_secs_f64()
    };

    let store = Store::open_with_key(&store_dir, StoreOptions::default(), &keys(tmp.path()), None)?;
    let done = store.compact()?;
    let secs = done.elapsed.as_secs_f64();
    rows.push(
        Row::new(
            "6",
            format!(
                "compaction of {n} sealed records ({} entries, {:.0} -> {:.0} MB)",
                done.entries,
                done.bytes_before as f64 / 1e6,
                done.bytes_after as f64 / 1e6
            ),
            format!("{secs:.2} s"),
        )
        .ceiling(format!("bare sled copy {bare_secs:.2} s"), bare_secs / secs),
    );
    Ok(())
}
