//! The drop folder with the real watcher: a real `icsync daemon` process on a temp data dir,
//! files dropped into its folder, and the outcome read back through the CLI, the control
//! socket and the folder itself. No API runs (the daemon has no key), so every record stays
//! queued and `status` counts exactly what the folder queued. The daemons keep processed
//! files (`keep_processed = true`) so that archiving can be checked, except in the kill -9
//! test, which runs the default: files removed once their records are durable.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: debug builds on a loaded 2-core CI machine seal and index every record.
const DEADLINE: Duration = Duration::from_secs(180);

struct Daemon {
    child: Child,
    home: PathBuf,
}

/// The daemon's config for these tests. sled's cache is set small (8 MiB) so the memory test
/// measures what ingestion itself holds, not how much of the cache sled fills (with the
/// default 32 MiB, sled alone accounts for ~60 MB of resident growth).
fn config(home: &Path, quiet_ms: u64) {
    fs::write(
        home.join("icsync.toml"),
        format!(
            "api_url = \"http://127.0.0.1:9\"\ndata_dir = \"{}\"\ndrop_quiet_ms = {quiet_ms}\ncache_capacity_mb = 8\nkeep_processed = true\n",
            home.join("data").display()
        ),
    )
    .unwrap();
}

fn command(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_icsync"));
    c.arg("--config")
        .arg(home.join("icsync.toml"))
        .env(icsync::crypto::keyring::ENV_KEY_FILE, home.join("data.key"))
        .env_remove("ICSYNC_API_KEY")
        .env_remove("ICSYNC_DATA_DIR")
        .env_remove("ICSYNC_DROP_DIR")
        .env_remove("ICSYNC_API_URL");
    c
}

fn icsync(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let out = icsync(home, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    fn start(home: &Path) -> Daemon {
        let log = fs::File::create(home.join("daemon.stderr")).unwrap();
        let child = command(home)
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            home: home.to_path_buf(),
        };
        wait_until("the daemon to answer", || {
            let out = icsync(home, &["status", "--json"]);
            out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v["daemon"] == true)
        });
        wait_until("the drop folder to exist", || {
            d.drop_dir().join("rejected").is_dir()
        });
        d
    }

    fn drop_dir(&self) -> PathBuf {
        self.home.join("data-drop")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn total(&self) -> u64 {
        json(&self.home, &["status", "--json"])["total"]
            .as_u64()
            .unwrap()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn request(&self, request: icsync::control::Request) -> icsync::control::Reply {
        let socket = self.home.join("data").join("icsync.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = icsync::control::Client::connect(&socket).await.unwrap();
            client.request(request).await.unwrap()
        })
    }

    fn drop_files(&self) -> Vec<Value> {
        match self.request(icsync::control::Request::DropFiles) {
            icsync::control::Reply::DropFiles { files, .. } => files
                .into_iter()
                .map(|f| serde_json::to_value(f).unwrap())
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Drops a sentinel file and waits until it is archived: every file that was ready
    /// before it has had its turn by then (files are taken in the order they settle).
    fn settle_with_sentinel(&self, tag: &str) {
        let name = format!("sentinel-{tag}.ndjson");
        fs::write(
            self.drop_dir().join(&name),
            format!("{{\"full_name\":\"Sentinel {tag}\"}}\n"),
        )
        .unwrap();
        let archived = self.drop_dir().join("processed").join(&name);
        wait_until("the sentinel to be archived", || archived.exists());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(home: &Path) -> Vec<String> {
    json(home, &["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn setup(quiet_ms: u64) -> (tempfile::TempDir, Daemon) {
    let tmp = tempfile::tempdir().unwrap();
    config(tmp.path(), quiet_ms);
    let d = Daemon::start(tmp.path());
    (tmp, d)
}

#[test]
fn a_partial_name_waits_until_renamed_then_is_taken() {
    let (_tmp, d) = setup(200);
    let drop = d.drop_dir();
    assert_eq!(mode(&drop), 0o700);
    fs::write(
        drop.join("x.csv.part"),
        "full_name,email\nAnn,ann@x.io\nBob,bob@x.io\n",
    )
    .unwrap();
    fs::write(drop.join(".hidden.csv"), "full_name\nHid\n").unwrap();
    d.settle_with_sentinel("1");
    assert!(
        drop.join("x.csv.part").exists(),
        "a .part file is not taken"
    );
    assert!(
        drop.join(".hidden.csv").exists(),
        "a hidden file is not taken"
    );
    assert_eq!(d.total(), 1, "only the sentinel is queued");

    fs::rename(drop.join("x.csv.part"), drop.join("x.csv")).unwrap();
    wait_until("x.csv to be archived", || {
        drop.join("processed").join("x.csv").exists()
    });
    assert_eq!(mode(&drop.join("processed").join("x.csv")), 0o600);
    let mut got = names(&d.home);
    got.sort();
    assert_eq!(got, ["Ann", "Bob", "Sentinel 1"]);
    let list = json(&d.home, &["list", "--json"]);
    let ann = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["full_name"] == "Ann")
        .unwrap();
    let shown = json(&d.home, &["show", ann["id"].as_str().unwrap(), "--json"]);
    assert_eq!(
        shown["origin"],
        serde_json::json!({"kind": "drop", "file": "x.csv", "line": 2})
    );
}

#[test]
fn a_file_written_in_place_is_taken_only_after_it_stays_unchanged() {
    // A long quiet period; each pause of the writer below is shorter than it.
    let (_tmp, d) = setup(1500);
    let drop = d.drop_dir();
    let path = drop.join("slow.csv");
    let mut rows = vec!["full_name,external_id".to_string()];
    rows.extend((0..300).map(|i| format!("Slow {i},slow-{i}")));
    let text = rows.join("\n") + "\n";
    let (first, rest) = text.split_at(text.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let started = Instant::now();
    let mut f = fs::File::create(&path).unwrap();
    use std::io::Write;
    for part in [first, second] {
        f.write_all(part.as_bytes()).unwrap();
        f.flush().unwrap();
        // The scenario's own pause: a writer that stalls for less than the quiet period.
        std::thread::sleep(Duration::from_millis(900));
        assert!(path.exists(), "taken while still being written");
        assert_eq!(d.total(), 0);
    }
    f.write_all(third.as_bytes()).unwrap();
    std::mem::drop(f);
    assert!(started.elapsed() > Duration::from_millis(1500));
    wait_until("slow.csv to be archived", || {
        drop.join("processed").join("slow.csv").exists()
    });
    assert_eq!(d.total(), 300, "every row, not the part written first");
    // The history line is written just after the move.
    wait_until("the file's history line", || d.drop_files().len() == 1);
    let files = d.drop_files();
    assert_eq!(files[0]["accepted"], 300);
    assert_eq!(files[0]["outcome"], "processed");
}

#[test]
fn fifty_files_at_once_are_all_taken() {
    let (_tmp, d) = setup(200);
    let drop = d.drop_dir();
    for f in 0..50 {
        let body: String = (0..20)
            .map(|i| format!("{{\"full_name\":\"F{f} R{i}\",\"external_id\":\"f{f}-{i}\"}}\n"))
            .collect();
        fs::write(drop.join(format!("batch-{f}.jsonl")), body).unwrap();
    }
    wait_until("1000 records", || d.total() == 1000);
    wait_until("50 archived files", || {
        fs::read_dir(drop.join("processed")).unwrap().count() == 50
    });
    // Each file's history line is written just after its move.
    wait_until("50 history lines", || d.drop_files().len() == 50);
    let files = d.drop_files();
    assert!(files
        .iter()
        .all(|f| f["accepted"] == 20 && f["rejected"] == 0));
    let unique: HashSet<String> = names(&d.home).into_iter().collect();
    assert_eq!(unique.len(), 1000);
}

#[test]
fn bad_rows_are_reported_by_line_and_copied_for_fixing_while_good_rows_are_queued() {
    let (_tmp, d) = setup(200);
    let drop = d.drop_dir();
    let csv = "\u{feff}fullName,email,risk.is_pep\r\n\
               Ann,ann@x.io,no\r\n\
               Bob,not-an-email,no\r\n\
               Cid,cid@x.io,yes\r\n\
               ,dee@x.io,maybe\r\n";
    fs::write(drop.join("crm.csv"), csv).unwrap();
    wait_until("crm.csv to be archived", || {
        drop.join("processed").join("crm.csv").exists()
    });
    let mut got = names(&d.home);
    got.sort();
    assert_eq!(got, ["Ann", "Cid"]);

    let report_path = drop.join("rejected").join("crm.errors.txt");
    let report = fs::read_to_string(&report_path).unwrap();
    let problems: Vec<&str> = report.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        problems,
        [
            "line 3: email: is not a valid email address",
            "line 5: risk.is_pep: \"maybe\" is not yes or no: write true or false \
             (yes/no, 1/0, ja/nein, oui/non, sí/no are read too)",
            "line 5: fullName: is required (the column is empty)",
        ],
        "{report}"
    );
    assert!(
        report.contains("2 record(s) queued, 2 refused (never queued, never sent)"),
        "{report}"
    );

    let copy_path = drop.join("rejected").join("crm.rejected.csv");
    let copy = fs::read_to_string(&copy_path).unwrap();
    let mut rows = csv::Reader::from_reader(copy.as_bytes());
    assert_eq!(
        rows.headers().unwrap(),
        vec!["_error", "fullName", "email", "risk.is_pep"]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][1], "Bob");
    assert_eq!(&rows[0][0], "email: is not a valid email address");
    assert_eq!(&rows[1][2], "dee@x.io");
    for p in [&report_path, &copy_path] {
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }

    // The TUI's view of the same: the refused rows by line and reason, and both paths.
    let folder = match d.request(icsync::control::Request::DropFiles) {
        icsync::control::Reply::DropFiles { files, folder } => {
            assert_eq!(
                files[0].rejected_copy.as_deref(),
                Some("rejected/crm.rejected.csv")
            );
            folder
        }
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(folder.as_deref(), Some(drop.to_str().unwrap()));
    let asked = icsync::control::Request::DropReport {
        report: "rejected/crm.errors.txt".into(),
    };
    let icsync::control::Reply::DropReport(r) = d.request(asked) else {
        panic!("no drop_report reply")
    };
    assert_eq!(r.file, "crm.csv");
    assert_eq!(r.report, report_path.display().to_string());
    assert_eq!(r.rejected_copy, Some(copy_path.display().to_string()));
    let shape: Vec<(&str, usize)> = r
        .rows
        .iter()
        .map(|row| (row.position.as_str(), row.reasons.len()))
        .collect();
    assert_eq!(shape, [("line 3", 1), ("line 5", 2)]);
    assert_eq!(r.rows[0].reasons, ["email: is not a valid email address"]);
    assert_eq!((r.more, r.missing), (0, false));
    // Only a report a recent file names is read: no other path, inside the folder or not.
    for other in [
        "rejected/../../etc/passwd",
        "processed/crm.csv",
        "/etc/passwd",
    ] {
        let asked = icsync::control::Request::DropReport {
            report: other.into(),
        };
        match d.request(asked) {
            icsync::control::Reply::Error(e) => {
                assert_eq!(
                    e.code,
                    icsync::control::ControlErrorCode::NotFound,
                    "{other}"
                )
            }
            reply => panic!("{other}: {reply:?}"),
        }
    }

    // Fixed in a spreadsheet and dropped again: the fixed rows are queued.
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["_error", "fullName", "email", "risk.is_pep"])
        .unwrap();
    out.write_record([&rows[0][0], "Bob", "bob@x.io", "no"])
        .unwrap();
    out.write_record([&rows[1][0], "Dee", "dee@x.io", "yes"])
        .unwrap();
    let fixed = out.into_inner().unwrap();
    fs::write(drop.join("crm-fixed.csv"), fixed).unwrap();
    wait_until("the fixed file to be archived", || {
        drop.join("processed").join("crm-fixed.csv").exists()
    });
    let mut got = names(&d.home);
    got.sort();
    assert_eq!(got, ["Ann", "Bob", "Cid", "Dee"]);
    assert!(!drop.join("rejected").join("crm-fixed.errors.txt").exists());
}

#[test]
fn unreadable_and_unsupported_files_move_to_rejected_with_a_report() {
    let (_tmp, d) = setup(200);
    let drop = d.drop_dir();
    fs::write(
        drop.join("broken.json"),
        "[{\"full_name\":\"Ann\"},\n{\"full_",
    )
    .unwrap();
    fs::write(drop.join("notes.pdf"), "hello").unwrap();
    fs::write(drop.join("nohead.csv"), "").unwrap();
    let rejected = drop.join("rejected");
    wait_until("three rejected files", || {
        ["broken.json", "notes.pdf", "nohead.csv"]
            .iter()
            .all(|n| rejected.join(format!("{n}.errors.txt")).exists() && rejected.join(n).exists())
    });
    let broken = fs::read_to_string(rejected.join("broken.json.errors.txt")).unwrap();
    assert!(broken.contains("broken.json line 2"), "{broken}");
    assert!(broken.contains("nothing from it was queued"), "{broken}");
    let notes = fs::read_to_string(rejected.join("notes.pdf.errors.txt")).unwrap();
    assert!(notes.contains("not a supported file type"), "{notes}");
    assert!(fs::read_to_string(rejected.join("nohead.csv.errors.txt"))
        .unwrap()
        .contains("no header row"));
    assert_eq!(mode(&rejected.join("broken.json")), 0o600);
    assert_eq!(d.total(), 0, "nothing from a broken file is queued");
    wait_until("3 history lines", || d.drop_files().len() == 3);
    let outcomes: Vec<Value> = d
        .drop_files()
        .iter()
        .map(|f| f["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["rejected", "rejected", "rejected"]);
}

#[test]
fn the_same_content_dropped_again_is_archived_as_a_duplicate_and_not_queued() {
    let (_tmp, d) = setup(200);
    let drop = d.drop_dir();
    let body = "{\"full_name\":\"Ann\",\"external_id\":\"a-1\"}\n{\"full_name\":\"Bob\"}\n";
    fs::write(drop.join("a.ndjson"), body).unwrap();
    wait_until("a.ndjson archived", || {
        drop.join("processed").join("a.ndjson").exists()
    });
    let ann = json(&d.home, &["list", "--json"])[0].clone();
    fs::write(drop.join("a.ndjson"), body).unwrap();
    wait_until("the second a.ndjson archived", || {
        drop.join("processed").join("a.2.ndjson").exists()
    });
    fs::write(drop.join("again.ndjson"), body).unwrap();
    wait_until("again.ndjson archived", || {
        drop.join("processed").join("again.ndjson").exists()
    });
    assert_eq!(d.total(), 2);
    let after = json(&d.home, &["show", ann["id"].as_str().unwrap(), "--json"]);
    assert_eq!(
        after["revision"], ann["revision"],
        "not even a new revision"
    );
    let note =
        fs::read_to_string(drop.join("processed").join("again.ndjson.duplicate.txt")).unwrap();
    assert!(
        note.contains("same content") && note.contains("as a.ndjson"),
        "{note}"
    );
    assert!(drop
        .join("processed")
        .join("a.2.ndjson.duplicate.txt")
        .exists());
    wait_until("3 history lines", || d.drop_files().len() == 3);
    let outcomes: Vec<Value> = d
        .drop_files()
        .iter()
        .map(|f| f["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["duplicate", "duplicate", "processed"]);
}

fn big_ndjson(rows: usize, bad_every: usize) -> (String, usize) {
    let mut out = String::with_capacity(rows * 80);
    let mut good = 0;
    for i in 0..rows {
        if i % bad_every == bad_every - 1 {
            out.push_str(&format!(
                "{{\"full_name\":\"Bad {i}\",\"email\":\"nope\"}}\n"
            ));
        } else {
            good += 1;
            out.push_str(&format!(
                "{{\"full_name\":\"Person {i}\",\"external_id\":\"crm-{i}\",\"email\":\"p{i}@example.com\"}}\n"
            ));
        }
    }
    (out, good)
}

#[test]
fn kill_9_while_a_file_is_ingested_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    config(home, 200);
    // The default: the file is removed once its records are durable, so a kill anywhere must
    // neither lose its records nor leave it half-removed.
    let text = fs::read_to_string(home.join("icsync.toml")).unwrap();
    fs::write(
        home.join("icsync.toml"),
        text.replace("keep_processed = true\n", ""),
    )
    .unwrap();
    let (body, good) = big_ndjson(40_000, 500);
    let mut d = Daemon::start(home);
    let drop = d.drop_dir();
    fs::write(drop.join("big.ndjson.part"), &body).unwrap();
    fs::rename(drop.join("big.ndjson.part"), drop.join("big.ndjson")).unwrap();
    let mut kills = 0;
    let mut last = 0;
    // Kill it part-way, several times, each time further in.
    while kills < 3 {
        let total = d.total();
        if total > last && (total as usize) < good {
            d.kill9();
            kills += 1;
            last = total;
            d = Daemon::start(home);
        } else if total as usize >= good {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(kills >= 1, "the daemon was never caught mid-file");
    eprintln!("killed {kills} time(s) mid-file, the last at {last} of {good} records");
    wait_until("big.ndjson processed", || {
        d.drop_files().iter().any(|f| f["file"] == "big.ndjson")
    });
    let entry = d.drop_files().into_iter().next().unwrap();
    assert_eq!(entry["outcome"], "partly_rejected", "{entry}");
    assert!(entry["archived_as"].is_null(), "{entry}");
    assert!(!drop.join("processed").exists());
    let work: Vec<_> = fs::read_dir(drop.join(".icsync-work")).unwrap().collect();
    assert!(work.is_empty(), "left in the work folder: {work:?}");
    assert_eq!(d.total() as usize, good, "every good row exactly once");
    let all = names(home);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), good);
    assert_eq!(unique.len(), good);
    assert!(all.iter().all(|n| n.starts_with("Person ")));
    let report = fs::read_to_string(drop.join("rejected").join("big.errors.txt")).unwrap();
    let problems = report.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(problems, 40_000 - good, "every bad row reported once");
    assert!(!drop.join("big.ndjson").exists());
}

fn vm_kb(pid: u32, key: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A CSV of `copies` passes over the same `rows` customers, each row padded with `pad` bytes
/// in a column that feeds no field. Every pass after the first names records already queued,
/// so they come back unchanged and the store does the same work whatever `copies` and `pad`.
fn padded_csv(rows: usize, copies: usize, pad: usize) -> String {
    let mut out = String::with_capacity(rows * copies * (pad + 80));
    out.push_str("full_name,email,external_id,notes\n");
    for _ in 0..copies {
        for i in 0..rows {
            out.push_str(&format!(
                "Person {i},p{i}@example.com,crm-{i},{}\n",
                "x".repeat(pad + i % 50)
            ));
        }
    }
    out
}

/// Drops `body` as `name` (written beside the folder, renamed in) and waits until archived.
fn drop_and_wait(d: &Daemon, name: &str, body: &str) {
    let staging = d.home.join(name);
    fs::write(&staging, body).unwrap();
    fs::rename(&staging, d.drop_dir().join(name)).unwrap();
    wait_until(name, || d.drop_dir().join("processed").join(name).exists());
}

/// Memory bounded by the batch, not the file (issue 18): the peak resident memory a large file
/// adds is measured against a small file of the same customers taken first by the same daemon
/// (two passes: created, then found unchanged) and their index terms folded, so sled's cache
/// and the store's pages are already in the baseline and what is left is what
/// reading the file holds. The large file is 4 times the bound: holding it whole (its bytes, or
/// its 48,000 parsed rows) fails the test.
#[test]
fn a_large_file_adds_no_more_peak_memory_than_a_batch() {
    const ROWS: usize = 8_000;
    const BOUND_KB: u64 = 16 << 10;
    let (_tmp, d) = setup(200);
    let idle = vm_kb(d.pid(), "VmHWM:");
    // The customers created, then looked up again as the large file will (its rows come
    // back unchanged), so sled's cache is as full as it gets: the baseline.
    drop_and_wait(&d, "small.csv", &padded_csv(ROWS, 2, 0));
    assert_eq!(d.total() as usize, ROWS);
    // The new records' index terms are folded into their trees once the file is taken
    // (`store::pending`), which builds those trees' pages: part of the baseline too. The
    // drop folder takes the next file only after that fold, so one more (unchanged) row
    // taken means it is done.
    drop_and_wait(&d, "one.csv", &padded_csv(1, 1, 0));
    assert_eq!(d.total() as usize, ROWS);
    let baseline = vm_kb(d.pid(), "VmHWM:");
    // Six passes over the same customers, each row ~1.4 KB wider: ~66 MB read twice over
    // (fingerprint, then records), no record created.
    let large = padded_csv(ROWS, 6, 1_350);
    let large_kb = large.len() as u64 >> 10;
    assert!(large_kb > 4 * BOUND_KB, "the file must dwarf the bound");
    drop_and_wait(&d, "large.csv", &large);
    drop(large);
    assert_eq!(d.total() as usize, ROWS, "the same customers, unchanged");
    let peak = vm_kb(d.pid(), "VmHWM:");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "peak RSS: idle {} MB, after the small file {} MB, after the {} MB file {} MB (+{} KB)",
        idle >> 10,
        baseline >> 10,
        large_kb >> 10,
        peak >> 10,
        growth
    );
    assert!(
        growth < BOUND_KB,
        "a {} MB file raised the daemon's peak RSS by {} MB over a small file's (bound {} MB)",
        large_kb >> 10,
        growth >> 10,
        BOUND_KB >> 10
    );
}

#[test]
fn an_export_fixed_and_dropped_revises_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    config(home, 200);
    fs::write(
        home.join("in.csv"),
        "full_name,email,external_id\nAnn,ann@x.io,crm-1\nBob,bob@x.io,crm-2\n",
    )
    .unwrap();
    let out = icsync(
        home,
        &["import", &home.join("in.csv").display().to_string()],
    );
    assert!(out.status.success(), "{out:?}");
    // Both collide with customers on the server (set here, as the engine would).
    {
        let store = icsync::store::Store::open_with_key(
            &home.join("data").join("store"),
            icsync::store::StoreOptions::default(),
            &icsync::crypto::KeyConfig::file(home.join("data.key")),
            None,
        )
        .unwrap();
        for id in store.in_state(icsync::store::RecordState::Queued).unwrap() {
            store
                .update(id, icsync::store::Durability::Flush, |r| {
                    r.state = icsync::store::RecordState::Conflict;
                    r.last_error = Some(icsync::store::RecordError::Api {
                        error: icsync::contract::ApiError::CustomerConflict {
                            message: "email taken".into(),
                            conflicting_customer_id: uuid::Uuid::from_u128(9),
                            conflicting_external_id: Some("other".into()),
                        },
                    });
                })
                .unwrap();
        }
    }
    let d = Daemon::start(home);
    let before = json(home, &["list", "--json"]);
    let export = home.join("fix.csv");
    let out = icsync(
        home,
        &[
            "export",
            "--state",
            "conflict",
            &export.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // The operator fixes the emails (and even an external_id) and drops the file.
    let fixed = fs::read_to_string(&export)
        .unwrap()
        .replace("ann@x.io", "ann@fixed.io")
        .replace("bob@x.io", "bob@fixed.io")
        .replace("crm-2", "crm-2b");
    fs::write(d.drop_dir().join("fix.csv.part"), fixed).unwrap();
    fs::rename(
        d.drop_dir().join("fix.csv.part"),
        d.drop_dir().join("fix.csv"),
    )
    .unwrap();
    wait_until("fix.csv archived", || {
        d.drop_dir().join("processed").join("fix.csv").exists()
    });
    assert_eq!(d.total(), 2, "no new record");
    let after = json(home, &["list", "--json"]);
    for (b, a) in before
        .as_array()
        .unwrap()
        .iter()
        .zip(after.as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(
            (a["revision"].as_u64(), a["state"].as_str()),
            (Some(2), Some("queued"))
        );
        assert!(a["email"].as_str().unwrap().ends_with("@fixed.io"), "{a}");
    }
    assert_eq!(after[1]["external_id"], "crm-2b");
}
