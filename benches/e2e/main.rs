//! The end-to-end benchmark (issue 7): sync throughput, ingest, drop-to-synced latency, the
//! TUI and the daemon's memory, each figure against a ceiling measured in the same run where
//! there is one. Prints one table and rewrites the figures of docs/benchmarks.md.
//!
//! `cargo bench --bench e2e` (the `icsync` binary is built with it, in the release-like
//! bench profile). It re-runs itself as `child-ingest ...` to measure one ingest per process.

mod big;
mod compact;
mod ingest;
mod latency;
mod report;
mod sync;
mod util;

use std::path::Path;

use report::Row;
use util::{wanted, BenchResult};

const COMMAND: &str = "cargo bench --bench e2e   # or: just bench";

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "child-ingest") {
        let a = &args[i + 1..];
        if a.len() < 3 {
            return Err("child-ingest MODE FILE WORKDIR".into());
        }
        return ingest::child(&a[0], Path::new(&a[1]), Path::new(&a[2]));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    if wanted("sync") {
        runtime.block_on(sync::run(&mut rows, &mut extra))?;
    }
    if wanted("ingest") {
        ingest::run(&mut rows, &mut extra)?;
    }
    if wanted("drop") {
        ingest::drop_1m(&mut rows)?;
    }
    if wanted("latency") {
        runtime.block_on(latency::run(&mut rows))?;
    }
    if wanted("big") {
        big::run(&mut rows, &mut extra)?;
    }
    if wanted("compact") {
        compact::run(&mut rows)?;
    }
    let binary = Path::new(util::icsync_bin());
    if let Ok(meta) = std::fs::metadata(binary) {
        rows.push(Row::new(
            "-",
            "release binary size (`icsync`, stripped)",
            format!("{:.1} MB", meta.len() as f64 / 1024.0 / 1024.0),
        ));
    }
    print!("{}", report::text_table(&rows));
    for e in &extra {
        println!("- {e}");
    }
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    if util::quick() || util::partial() {
        println!("(a partial or quick run: docs/benchmarks.md left alone)");
    } else {
        report::write_markdown(&doc, &rows, &extra, COMMAND)?;
        println!("written: {}", doc.display());
    }
    Ok(())
}
