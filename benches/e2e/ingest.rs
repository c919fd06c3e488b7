//! Part 2: ingest. A 100k-row NDJSON and CSV file go through the drop-folder pipeline
//! (`dropdir::process`, the daemon's own code: survey, fingerprint, batches with progress,
//! flush, archive) into a real sealed store, each in a child process of its own so its peak
//! RSS (VmHWM) is that work's alone. The ceiling, also in a child: a bare sled database
//! (same cache size) taking the same records, already parsed and serialised, in one batch
//! with one flush. The same pipeline into a plain (pre-encryption layout) store gives the
//! cost of encryption. `drop_1m` (part `drop`): a 1M-row CSV through the same pipeline, for
//! its time and its peak RSS (goals: under 60 s, under 150 MB).

use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::Utc;
use icsync::dropdir::{process, Folder};
use icsync::ingest::{read_records, Format, ReadOptions};
use icsync::service::Service;
use icsync::store::{Origin, Record, RecordId, Store, StoreOptions};

use super::report::Row;
use super::util::{dir_size, keys, proc_kb, quick, write_csv, write_ndjson, BenchResult};

/// What a child reports: seconds taken, its peak RSS and the bytes its store takes on disk;
/// for the pipeline, the seconds the fold of the new records' index terms took after it.
struct Measured {
    secs: f64,
    hwm_kb: u64,
    disk: u64,
    fold_secs: f64,
}

/// Runs in the child: `child-ingest MODE FILE WORKDIR`, prints `SECS HWM_KB DISK_BYTES
/// FOLD_SECS`.
pub fn child(mode: &str, file: &Path, work: &Path) -> BenchResult<()> {
    let mut fold_secs = 0.0;
    let secs = match mode {
        "sealed" | "plain" => {
            let store_dir = work.join("store");
            let store = if mode == "sealed" {
                Store::open_with_key(&store_dir, StoreOptions::default(), &keys(work), None)?
            } else {
                Store::open_legacy_plain(&store_dir, StoreOptions::default())?
            };
            let service = Service::new(store, None);
            let folder = Folder::prepare(&work.join("drop"), false)?;
            let dropped = folder.root.join(file.file_name().ok_or("no file name")?);
            std::fs::copy(file, &dropped)?;
            let start = Instant::now();
            let entry = process(
                &folder,
                &ReadOptions::default(),
                &service,
                &dropped,
                &AtomicBool::new(false),
            )?
            .ok_or("the file was not taken")?;
            let secs = start.elapsed().as_secs_f64();
            if entry.rejected != 0 || entry.accepted == 0 {
                return Err(format!("unexpected outcome: {entry:?}").into());
            }
            // The daemon's drop folder folds the pending index terms once the file is
            // queued (`store::pending`): timed apart, and the disk measured after it.
            let start = Instant::now();
            service.store().fold_pending()?;
            service.store().flush()?;
            fold_secs = start.elapsed().as_secs_f64();
            secs
        }
        "sled" => {
            let format = Format::from_path(file)?;
            let mut records = Vec::new();
            let now = Utc::now();
            let _ = read_records::<_, (), _>(format, std::fs::File::open(file)?, |p| {
                if let Ok(payload) = p.result {
                    let id = RecordId::new();
                    let record = Record::new(id, payload, Origin::Cli, now);
                    records.push((id, serde_json::to_vec(&record).unwrap_or_default()));
                }
                ControlFlow::Continue(())
            })?;
            let db = sled::Config::new()
                .path(work.join("sled"))
                .cache_capacity(StoreOptions::default().cache_capacity_bytes)
                .open()?;
            let start = Instant::now();
            let mut batch = sled::Batch::default();
            for (id, bytes) in records {
                batch.insert(id.as_bytes().as_slice(), bytes);
            }
            db.apply_batch(batch)?;
            db.flush()?;
            start.elapsed().as_secs_f64()
        }
        other => return Err(format!("unknown ingest mode {other}").into()),
    };
    let disk = dir_size(&work.join("store")) + dir_size(&work.join("sled"));
    println!(
        "{secs} {} {disk} {fold_secs}",
        proc_kb(None, "VmHWM:").unwrap_or(0)
    );
    Ok(())
}

fn spawn(mode: &str, file: &Path) -> BenchResult<Measured> {
    let work = tempfile::tempdir()?;
    let out = Command::new(std::env::current_exe()?)
        .arg("child-ingest")
        .arg(mode)
        .arg(file)
        .arg(work.path())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "ingest child {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut words = text.split_whitespace();
    let secs = words.next().ok_or("no time")?.parse()?;
    let hwm_kb = words.next().ok_or("no rss")?.parse()?;
    let disk = words.next().ok_or("no disk size")?.parse()?;
    let fold_secs = words.next().ok_or("no fold time")?.parse()?;
    Ok(Measured {
        secs,
        hwm_kb,
        disk,
        fold_secs,
    })
}

pub fn run(rows: &mut Vec<Row>, extra: &mut Vec<String>) -> BenchResult<()> {
    let n = if quick() { 10_000 } else { 100_000 };
    let data = tempfile::tempdir()?;
    for (ext, write) in [
        (
            "ndjson",
            write_ndjson as fn(&Path, &str, usize) -> BenchResult<()>,
        ),
        ("csv", write_csv),
    ] {
        let file = data.path().join(format!("customers.{ext}"));
        write(&file, ext, n)?;
        let ceiling = spawn("sled", &file)?;
        let sealed = spawn("sealed", &file)?;
        let plain = spawn("plain", &file)?;
        let rate = |m: &Measured| n as f64 / m.secs;
        let ratio = rate(&sealed) / rate(&ceiling);
        let mb = sealed.hwm_kb as f64 / 1024.0;
        eprintln!(
            "ingest {ext}: sealed {:.2}s ({mb:.0} MB), plain {:.2}s ({:.0} MB), sled {:.2}s",
            sealed.secs,
            plain.secs,
            plain.hwm_kb as f64 / 1024.0,
            ceiling.secs
        );
        // The sealed pipeline's rate against another run's, in this run.
        let against = |what: String, other: &Measured, name: &str| {
            Row::new(
                "2",
                what,
                format!("{:.0} rec/s ({:.2} s)", rate(&sealed), sealed.secs),
            )
            .ceiling(
                format!("{:.0} rec/s {name}", rate(other)),
                rate(&sealed) / rate(other),
            )
        };
        rows.push(
            against(
                format!("ingest {n}-row {ext}, drop to durably queued (sealed)"),
                &ceiling,
                "bare sled batch",
            )
            .goal(">= 0.5", ratio >= 0.5),
        );
        // The pending index terms are folded after the file (`store::pending`): the
        // whole work, drop and fold, against the same ceiling.
        let whole = n as f64 / (sealed.secs + sealed.fold_secs);
        rows.push(
            Row::new(
                "2",
                format!("ingest {ext}: drop, then its index terms folded (sealed)"),
                format!(
                    "{whole:.0} rec/s ({:.2} s + fold {:.2} s)",
                    sealed.secs, sealed.fold_secs
                ),
            )
            .ceiling(
                format!("{:.0} rec/s bare sled batch", rate(&ceiling)),
                whole / rate(&ceiling),
            ),
        );
        rows.push(
            Row::new(
                "2",
                format!("ingest {ext}: peak RSS (VmHWM) of the process"),
                format!("{mb:.0} MB"),
            )
            .goal("< 150 MB", mb < 150.0),
        );
        rows.push(against(
            format!("ingest {ext}: cost of encryption, sealed store"),
            &plain,
            "plain store",
        ));
        let per_record = sealed.disk as f64 / n as f64;
        rows.push(
            Row::new(
                "2",
                format!("ingest {ext}: store on disk per record (sealed)"),
                format!(
                    "{per_record:.0} B ({:.0} MB)",
                    sealed.disk as f64 / 1024.0 / 1024.0
                ),
            )
            .ceiling(
                format!("{:.0} B bare sled batch", ceiling.disk as f64 / n as f64),
                ceiling.disk as f64 / sealed.disk.max(1) as f64,
            )
            .goal("<= 1 KB", per_record <= 1024.0),
        );
        std::fs::remove_file(&file)?;
    }
    extra.push(
        "Ingest: the pipeline validates and seals every record and writes it with its index \
         entries (external_id, email, state: a sled insert each) and two upsert lookups, \
         committing every 256 records with the file's progress; the ceiling makes one insert \
         per record, already parsed and serialised, and nothing else."
            .into(),
    );
    Ok(())
}

/// Part `drop`: a 1M-row CSV (100k with `BENCH_QUICK=1`) through the drop-folder pipeline into
/// a sealed store, in a child process: time from drop to durably queued with every index term
/// folded, and the process's peak RSS, which must not grow with the file.
pub fn drop_1m(rows: &mut Vec<Row>) -> BenchResult<()> {
    let n = if quick() { 100_000 } else { 1_000_000 };
    let data = tempfile::tempdir()?;
    let file = data.path().join("customers.csv");
    write_csv(&file, "csv", n)?;
    let size_mb = std::fs::metadata(&file)?.len() as f64 / 1024.0 / 1024.0;
    let sealed = spawn("sealed", &file)?;
    let mb = sealed.hwm_kb as f64 / 1024.0;
    rows.push(
        Row::new(
            "2",
            format!(
                "drop of a {n}-row CSV ({size_mb:.0} MB) to durably queued and indexed (sealed)"
            ),
            format!(
                "{:.0} s ({:.0} rec/s; queued at {:.0} s, last fold {:.1} s)",
                sealed.secs + sealed.fold_secs,
                n as f64 / (sealed.secs + sealed.fold_secs),
                sealed.secs,
                sealed.fold_secs
            ),
        )
        .goal("< 60 s", sealed.secs + sealed.fold_secs < 60.0),
    );
    rows.push(
        Row::new(
            "2",
            format!("drop of a {n}-row CSV: peak RSS (VmHWM) of the process"),
            format!("{mb:.0} MB"),
        )
        .goal("< 150 MB", mb < 150.0),
    );
    rows.push(Row::new(
        "2",
        format!("drop of a {n}-row CSV: store on disk per record"),
        format!("{:.0} B", sealed.disk as f64 / n as f64),
    ));
    Ok(())
}
