//! The poison file: one JSON array element that is a 20 MB array of numbers and one CSV
//! record with a 20 MB quoted cell spanning lines, among good records, imported by the real
//! binary under a data-segment limit (`prlimit --data`). Before the record bound the JSON
//! element alone took the process to 638 MB and aborted it under a limit; now the good
//! records are queued, each poison record is refused at its line and the process exits as
//! it does for any file with refused records.
//!
//! The limit: `icsync import` of a small file runs under 50 MB of data segment (measured);
//! this file needs about 100 MB (its refused element is read up to the 1 MiB bound into
//! memory); 256 MB leaves room for allocator and platform differences and is far below what
//! an unbounded read of either poison record takes.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const DATA_LIMIT_BYTES: u64 = 256_000_000;

fn icsync(dir: &Path, limit: Option<u64>, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_icsync");
    let cmd = match limit {
        Some(bytes) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--data={bytes}")).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    common::run_isolated(dir, cmd, args)
}

fn prlimit_works() -> bool {
    Command::new("prlimit")
        .arg(format!("--data={DATA_LIMIT_BYTES}"))
        .arg("true")
        .status()
        .is_ok_and(|s| s.success())
}

/// `[good, {"full_name": "Poison", "n": [20 MB of numbers]}, good]`, pretty enough that the
/// elements start on lines 1, 2 and 3.
fn poison_json(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"[{\"full_name\":\"Ann Good\",\"email\":\"ann@example.com\"},\n")
        .unwrap();
    f.write_all(b"{\"full_name\":\"Poison\",\"n\":[1234567")
        .unwrap();
    for _ in 0..2_600_000 {
        f.write_all(b",1234567").unwrap();
    }
    f.write_all(b"]},\n{\"full_name\":\"Bob Good\",\"email\":\"bob@example.com\"}]\n")
        .unwrap();
    f.flush().unwrap();
}

/// A header, a good row, a row whose quoted cell is 20 MB over 4,000,000 lines, a good row.
fn poison_csv(path: &Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(b"full_name,email\nCid Good,cid@example.com\nPoison,\"")
        .unwrap();
    for _ in 0..4_000_000 {
        f.write_all(b"line\n").unwrap();
    }
    f.write_all(b"\"\nDee Good,dee@example.com\n").unwrap();
    f.flush().unwrap();
}

#[test]
fn a_poison_record_is_refused_at_its_line_and_the_good_ones_queue_under_a_memory_limit() {
    if !prlimit_works() {
        eprintln!("skipped: prlimit --data is not available here");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    poison_json(&d.join("poison.json"));
    poison_csv(&d.join("poison.csv"));
    assert!(std::fs::metadata(d.join("poison.json")).unwrap().len() > 20_000_000);
    assert!(std::fs::metadata(d.join("poison.csv")).unwrap().len() > 20_000_000);

    let out = icsync(
        d,
        Some(DATA_LIMIT_BYTES),
        &["import", "poison.json", "poison.csv", "--json"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        None,
        "killed by a signal under the limit: {stderr}"
    );
    // 2: the files were read and some records refused (0 would mean none were).
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let files: Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused_at = |i: usize| {
        let file = &files[i];
        assert_eq!(file["created"], 2, "{file}");
        assert_eq!(file["refused"], 1, "{file}");
        let problem = &file["problems"][0];
        assert_eq!(
            problem["message"], "record is over 1 MiB; not read",
            "{file}"
        );
        problem["line"].as_u64().unwrap()
    };
    assert_eq!(refused_at(0), 2);
    assert_eq!(files[0]["problems"][0]["element"], 1);
    assert_eq!(refused_at(1), 3);

    let list = icsync(d, None, &["list", "--json"]);
    assert!(list.status.success());
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Ann Good", "Bob Good", "Cid Good", "Dee Good"]);
}

/// The crash loop the bound ends: the same poison files dropped into the folder of a daemon
/// under the data-segment limit. Before, the daemon aborted on the JSON element and, the file
/// still being in the folder, aborted again on every restart. Now it stays up, queues the
/// good rows, and reports each poison record at its line in the file's `errors.txt`.
#[test]
fn the_daemon_under_a_memory_limit_takes_poison_files_and_stays_up() {
    use common::daemon::{poll_until, DaemonEnv};
    use std::time::Duration;
    if !prlimit_works() {
        eprintln!("skipped: prlimit --data is not available here");
        return;
    }
    let deadline = Duration::from_secs(180);
    let env = DaemonEnv::new("http://127.0.0.1:9", "drop_quiet_ms = 200");
    let mut daemon = env.start_daemon(&[]);
    let limited = Command::new("prlimit")
        .arg(format!("--data={DATA_LIMIT_BYTES}"))
        .arg(format!("--pid={}", daemon.pid()))
        .status()
        .unwrap();
    assert!(limited.success());
    let drop = env.drop_dir();
    let stage = env.dir.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    poison_json(&stage.join("elements.json"));
    poison_csv(&stage.join("rows.csv"));
    for name in ["elements.json", "rows.csv"] {
        std::fs::rename(stage.join(name), drop.join(name)).unwrap();
    }
    let rejected = drop.join("rejected");
    for (report, line) in [
        (
            "elements.errors.txt",
            "line 2 (element 1): (record): record is over 1 MiB",
        ),
        ("rows.errors.txt", "line 3: (record): record is over 1 MiB"),
    ] {
        let text = poll_until(report, deadline, || {
            std::fs::read_to_string(rejected.join(report)).map_err(|e| e.to_string())
        });
        assert!(text.contains(line), "{text}");
    }
    env.wait_status("4 good rows queued", deadline, |s| s["total"] == 4);
    assert!(daemon.is_running(), "the daemon died: {}", daemon.stderr());
    // Nothing else was refused, so there is no copy to fix: only the first 1 MiB of each
    // poison record was ever read, and it is not copied.
    let mut left: Vec<String> = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    for name in &left {
        let len = std::fs::metadata(rejected.join(name)).unwrap().len();
        assert!(len < 4096, "{name}: {len} bytes");
    }
}
