//! Store faults, with the real binary, a real sled store on disk and the real sandbox:
//! - a truncated database file: `status` says "store damaged" with the recover hint and does
//!   not panic; a daemon started on it stays up saying so (no crash loop) and logs the error;
//!   `icsync recover` keeps the damaged store aside and reports what was lost;
//! - flipped bytes inside one stored record: the daemon stops sending, stays up and reports
//!   the damage; `icsync recover` recovers the readable records and counts the lost ones;
//!   a daemon on the recovered store syncs them with no duplicate on the sandbox;
//! - a full disk (a small tmpfs; skipped with a message where mounting is refused): the
//!   daemon stays up, status says "disk full", an import says so plainly, and once space is
//!   freed everything is sent, each record once; with no daemon, status reads the counts
//!   from the store's files and says "disk full";
//! - a store sled refuses to open at all (flipped bytes early in the log, in a node sled
//!   replays at open and in the last segment): `icsync recover` reads the files directly and
//!   a daemon syncs the recovered records with no duplicate on the sandbox;
//! - a flipped byte in the log sled replays at open, with intact messages after it: `status`,
//!   `doctor` and the daemon say "store damaged" without letting sled open (and zero) it, the
//!   database file stays byte-identical, and `recover` gets every record back; a message torn
//!   at the log's tip still opens normally;
//! - random damage (seeded): recover never panics and never returns a record that was not
//!   stored.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{daemon_answers, poll_until, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

/// `n` customers (numbered from `from`) as NDJSON, each with its own external_id.
fn write_records(dir: &Path, name: &str, from: usize, n: usize) -> PathBuf {
    let mut text = String::new();
    for i in from..from + n {
        text.push_str(&format!(
            "{{\"full_name\":\"Fault Person {i}\",\"external_id\":\"fault-{i}\",\"email\":\"fault{i}@example.com\"}}\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn db_file(env: &DaemonEnv) -> PathBuf {
    env.store_dir().join("sled").join("db")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_no_panic(what: &str, out: &std::process::Output) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr_of(out));
    assert!(
        !text.contains("panicked") && !text.contains("index out of bounds"),
        "{what} panicked: {text}"
    );
}

/// `icsync recover`'s "recovered N records, lost M" numbers.
fn recover(env: &DaemonEnv) -> (u64, u64, String) {
    let out = env.cli(&["recover"]);
    assert_no_panic("recover", &out);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "recover failed: {}{text}",
        stderr_of(&out)
    );
    let first = text.lines().next().unwrap_or_default().to_string();
    let nums: Vec<u64> = first
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        first.starts_with("recovered ") && nums.len() >= 2,
        "recover's summary: {text}"
    );
    (nums[0], nums[1], text)
}

fn kept_damaged_store(env: &DaemonEnv) -> bool {
    std::fs::read_dir(&env.data_dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("store.damaged-")
        })
}

/// Waits until the daemon's status says the store is damaged, then checks it is still up a
/// moment later and that its log says why.
fn assert_daemon_stays_up_damaged(env: &DaemonEnv, daemon: &mut common::daemon::DaemonProcess) {
    poll_until("the daemon to answer", SETTLE, || {
        if daemon_answers(&env.socket()) {
            Ok(())
        } else {
            Err(daemon.stderr())
        }
    });
    let s = env.wait_status("status to say the store is damaged", SETTLE, |s| {
        s["damaged"] == Value::Bool(true)
    });
    let paused = s["paused"].as_str().unwrap_or_default();
    assert!(
        paused.contains("store damaged") && paused.contains("icsync recover"),
        "{s}"
    );
    // Still answering a while later: it did not exit (a service manager would restart it
    // into the same damage, over and over).
    poll_until("the damage to reach the log", SETTLE, || {
        let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
        if log.contains("ERROR") && log.contains("store damaged") {
            Ok(())
        } else {
            Err(log.len())
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.is_running(), "the daemon exited on a damaged store");
    let human = env.ok(&["status"]);
    assert!(human.contains("store damaged"), "{human}");
    let doctor = env.cli(&["doctor"]);
    let doctor_text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor_text.contains("store damaged") && doctor_text.contains("icsync recover"),
        "doctor on a damaged store: {doctor_text}"
    );
}

#[test]
fn a_truncated_store_is_reported_as_damaged_and_recover_keeps_it_aside() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "").with_env_key(DEMO_KEY);
    let file = write_records(env.dir.path(), "people.ndjson", 0, 300);
    env.ok(&["import", file.to_str().unwrap()]);
    // Cut after the first page: the header survives, the records and counters do not.
    std::fs::OpenOptions::new()
        .write(true)
        .open(db_file(&env))
        .unwrap()
        .set_len(4096)
        .unwrap();

    let out = env.cli(&["status"]);
    assert_no_panic("status", &out);
    assert!(
        !out.status.success(),
        "status on a truncated store: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = stderr_of(&out);
    assert!(
        err.contains("store damaged") && err.contains("icsync recover"),
        "status on a truncated store: {err}"
    );

    let mut daemon = env.spawn_daemon(&[]);
    assert_daemon_stays_up_damaged(&env, &mut daemon);
    let refused = env.cli(&["list"]);
    assert!(
        stderr_of(&refused).contains("icsync recover"),
        "{}",
        stderr_of(&refused)
    );
    daemon.stop_with("TERM", Duration::from_secs(15));

    let (recovered, lost, text) = recover(&env);
    assert!(recovered <= 300, "{text}");
    assert_eq!(
        recovered + lost,
        300,
        "the records the floor file knew of are counted: {text}"
    );
    assert!(text.contains("store.damaged-"), "{text}");
    assert!(kept_damaged_store(&env));
    // The fresh store opens: status works again and counts what was recovered.
    let s = env.status();
    assert_eq!(s["total"].as_u64(), Some(recovered), "{s}");
}

/// Flips a byte in every copy of `needle` inside `file`; returns how many copies there were.
fn flip_copies(file: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(file).unwrap();
    let mut found = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + at)
    {
        bytes[pos + needle.len() / 2] ^= 0x5a;
        found += 1;
        at = pos + needle.len();
    }
    std::fs::write(file, bytes).unwrap();
    found
}

#[test]
fn flipped_bytes_in_a_record_are_reported_and_recover_syncs_the_rest_once() {
    const N: usize = 1500;
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let file = write_records(env.dir.path(), "people.ndjson", 0, N);
    env.ok(&["import", file.to_str().unwrap()]);
    // The stored (sealed) bytes of some records, to be found in the database file.
    let victims: Vec<Vec<u8>> = {
        let store = env.open_store();
        let ids = store.in_state(icsync::store::RecordState::Queued).unwrap();
        [2, 3, 4, 5]
            .iter()
            .map(|d| store.raw_record(ids[ids.len() / d]).unwrap().unwrap())
            .collect()
    };
    // Damage one record's bytes wherever they are. When a copy sits in the part of the log
    // sled replays at open, sled refuses the whole file (recover then says so); this test
    // is about damage sled opens over, so the first victim that leaves it openable is kept.
    let db = db_file(&env);
    let pristine = std::fs::read(&db).unwrap();
    let damaged = victims.iter().any(|victim| {
        std::fs::write(&db, &pristine).unwrap();
        assert!(
            flip_copies(&db, &victim[..64]) > 0,
            "a record's bytes were not found"
        );
        env.cli(&["status"]).status.success()
    });
    assert!(damaged, "no damage sled opens over was found");

    let mut daemon = env.spawn_daemon(&[]);
    assert_daemon_stays_up_damaged(&env, &mut daemon);
    daemon.stop_with("TERM", Duration::from_secs(15));

    let (recovered, lost, text) = recover(&env);
    assert!(lost >= 1, "the damaged record is counted as lost: {text}");
    assert!(recovered >= 1, "the readable records are recovered: {text}");
    assert_eq!(recovered + lost, N as u64, "{text}");

    sync_recovered_once(&env, &admin, recovered, N);
}

/// Starts a daemon on a recovered store and checks that every recovered record syncs and
/// that no customer is on the sandbox twice: records sent before the damage may be there
/// already, and a recovered record keeps its id and revision, so it is replayed, not made
/// again. At most `stored` customers.
fn sync_recovered_once(env: &DaemonEnv, admin: &BlockingAdmin, recovered: u64, stored: usize) {
    let _daemon = env.start_daemon(&[]);
    let s = env.wait_status("the recovered records to sync", SETTLE, |s| {
        s["queued"] == 0 && s["sending"] == 0 && s["damaged"] != true
    });
    assert_eq!(s["synced"].as_u64(), Some(recovered), "{s}");
    let customers = admin.customers();
    let ids: HashSet<&str> = customers
        .iter()
        .filter_map(|c| c["external_id"].as_str())
        .collect();
    assert_eq!(ids.len(), customers.len(), "a customer was created twice");
    assert!(
        customers.len() as u64 >= recovered && customers.len() <= stored,
        "{} customers",
        customers.len()
    );
}

/// A tmpfs mounted over a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}); the disk-full test needs root",
                stderr_of(&out).trim()
            );
            return None;
        }
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros to `path` until the disk refuses.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_pauses_the_daemon_and_it_resumes_when_space_is_freed() {
    const N: usize = 200;
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let Some(_tmpfs) = Tmpfs::mount(&env.data_dir, "24m") else {
        return;
    };
    let mut daemon = env.start_daemon(&[]);
    let first = write_records(env.dir.path(), "first.ndjson", 0, N);
    env.ok(&["import", first.to_str().unwrap()]);
    env.wait_status("the first records to sync", SETTLE, |s| s["synced"] == N);

    let filler = env.data_dir.join("filler");
    fill_disk(&filler);
    let s = env.wait_status("status to say disk full", SETTLE, |s| {
        s["disk_full"] == Value::Bool(true)
    });
    assert!(
        s["paused"]
            .as_str()
            .unwrap_or_default()
            .contains("disk full"),
        "{s}"
    );
    assert_eq!(
        s["synced"].as_u64(),
        Some(N as u64),
        "status keeps its counts: {s}"
    );
    assert!(env.ok(&["status"]).contains("disk full"));
    let doctor = env.cli(&["doctor"]);
    let doctor_text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor_text.contains("disk full"),
        "doctor on a full disk: {doctor_text}"
    );

    // Intake is refused with a plain line, not an OS error dump.
    let second = write_records(env.dir.path(), "second.ndjson", N, N);
    let out = env.cli(&["import", second.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("disk full"), "{err}");
    assert!(!err.contains("Os {") && !err.contains("code: 28"), "{err}");
    assert!(daemon.is_running(), "the daemon exited on a full disk");

    std::fs::remove_file(&filler).unwrap();
    env.wait_status("the daemon to resume", SETTLE, |s| {
        s["disk_full"] == Value::Bool(false) && s["daemon"] == true
    });
    let text = poll_until("the import to be taken again", SETTLE, || {
        let out = env.cli(&["import", second.to_str().unwrap()]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(stderr_of(&out))
        }
    });
    assert!(text.contains("records"), "{text}");
    env.wait_status("every record to sync", SETTLE, |s| s["synced"] == 2 * N);
    let customers = admin.customers();
    let ids: HashSet<&str> = customers
        .iter()
        .filter_map(|c| c["external_id"].as_str())
        .collect();
    assert_eq!(customers.len(), 2 * N, "every record arrives");
    assert_eq!(ids.len(), customers.len(), "each record arrives once");
    assert!(daemon.is_running());
}

/// `synced` records sent by a daemon (stopped afterwards), then `queued` more imported with
/// no daemon: a store whose records and counters changed over time.
fn synced_then_queued(env: &DaemonEnv, synced: usize, queued: usize) {
    let daemon = env.start_daemon(&[]);
    let first = write_records(env.dir.path(), "first.ndjson", 0, synced);
    env.ok(&["import", first.to_str().unwrap()]);
    env.wait_status("the first records to sync", SETTLE, |s| {
        s["synced"] == synced
    });
    daemon.stop_with("TERM", Duration::from_secs(15));
    let second = write_records(env.dir.path(), "second.ndjson", synced, queued);
    env.ok(&["import", second.to_str().unwrap()]);
}

/// With no daemon, `status` on a full disk cannot open the store (sled writes when it
/// opens): it reads the counts from the store's files instead and says the disk is full.
#[test]
fn status_without_a_daemon_on_a_full_disk_prints_the_counts() {
    const SYNCED: usize = 150;
    const QUEUED: usize = 90;
    let sandbox = SandboxOptions::new().admin().start();
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    let Some(_tmpfs) = Tmpfs::mount(&env.data_dir, "24m") else {
        return;
    };
    // Counts that changed over time (queued, then synced), so the newest counters are read.
    synced_then_queued(&env, SYNCED, QUEUED);

    let filler = env.data_dir.join("filler");
    fill_disk(&filler);
    let s = env.status();
    assert_eq!(s["disk_full"], Value::Bool(true), "{s}");
    assert_eq!(s["daemon"], Value::Bool(false), "{s}");
    assert_eq!(s["synced"].as_u64(), Some(SYNCED as u64), "{s}");
    assert_eq!(s["queued"].as_u64(), Some(QUEUED as u64), "{s}");
    assert_eq!(s["total"].as_u64(), Some((SYNCED + QUEUED) as u64), "{s}");
    let human = env.ok(&["status"]);
    assert!(
        human.contains("disk full") && human.contains(&format!("total {}", SYNCED + QUEUED)),
        "{human}"
    );
    // Other commands still say plainly why they cannot run.
    let list = env.cli(&["list"]);
    assert!(!list.status.success());
    assert!(
        stderr_of(&list).contains("disk full"),
        "{}",
        stderr_of(&list)
    );

    std::fs::remove_file(&filler).unwrap();
    let s = env.status();
    assert_eq!(s["disk_full"], Value::Bool(false), "{s}");
    assert_eq!(s["total"].as_u64(), Some((SYNCED + QUEUED) as u64), "{s}");
}

/// A subscriber (as the TUI is) that subscribed before the disk filled keeps receiving
/// pushed events after the daemon reopens its store: it is told of the fault, of the reopen,
/// and of the records queued after it, on the same connection.
#[test]
fn a_subscription_survives_a_full_disk_and_the_store_reopen() {
    use icsync::control::{Client, Event};
    const N: usize = 40;
    let env = DaemonEnv::new("http://127.0.0.1:9", "").with_env_key(DEMO_KEY);
    let Some(_tmpfs) = Tmpfs::mount(&env.data_dir, "24m") else {
        return;
    };
    let mut daemon = env.start_daemon(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(&env.socket()).await.unwrap();
        client.subscribe().await.unwrap();
        let deadline = tokio::time::Instant::now() + SETTLE;
        let mut wait_for = async |what: &str, want: &dyn Fn(&Event) -> bool| loop {
            match tokio::time::timeout_at(deadline, client.next_event()).await {
                Ok(Ok(event)) if want(&event) => return,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the subscription ended while waiting for {what}: {e}"),
                Err(_) => panic!("no event for {what}"),
            }
        };
        let filler = env.data_dir.join("filler");
        fill_disk(&filler);
        wait_for(
            "disk full",
            &|e| matches!(e, Event::Status(s) if s.disk_full),
        )
        .await;
        std::fs::remove_file(&filler).unwrap();
        wait_for(
            "the reopen",
            &|e| matches!(e, Event::Status(s) if !s.disk_full && !s.damaged),
        )
        .await;
        let file = write_records(env.dir.path(), "after.ndjson", 0, N);
        env.ok(&["import", file.to_str().unwrap()]);
        wait_for("a record queued after the reopen", &|e| {
            matches!(e, Event::RecordChanged { .. })
        })
        .await;
    });
    assert!(daemon.is_running());
}

/// sled 0.34 panics (index out of bounds in its segment code) on a database file cut in the
/// middle of a store that spans several segments; the panic is caught at the store boundary.
#[test]
fn a_store_that_makes_sled_panic_is_reported_as_damaged_without_a_panic() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "").with_env_key(DEMO_KEY);
    let file = write_records(env.dir.path(), "people.ndjson", 0, 4000);
    env.ok(&["import", file.to_str().unwrap()]);
    let db = db_file(&env);
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = env.cli(&["status"]);
    assert_no_panic("status", &out);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("store damaged") && err.contains("icsync recover"),
        "status on a store sled panics on: {err}"
    );

    let mut daemon = env.spawn_daemon(&[]);
    assert_daemon_stays_up_damaged(&env, &mut daemon);
    daemon.stop_with("TERM", Duration::from_secs(15));
    let (recovered, lost, text) = recover(&env);
    assert_eq!(recovered + lost, 4000, "{text}");
}

/// Whether the store's database is one that cannot be opened at all (as opposed to one sled
/// opens with records missing, which the floor check reports): `status` says the engine failed
/// while opening it, that the file holds corrupted data, or that the log is damaged before
/// intact messages (the store then keeps sled from opening it).
fn sled_refuses(env: &DaemonEnv) -> bool {
    let out = env.cli(&["status"]);
    assert_no_panic("status", &out);
    let err = stderr_of(&out);
    !out.status.success()
        && (err.contains("failed while opening the store")
            || err.contains("corrupted or truncated")
            || err.contains(GUARD_REFUSED))
}

/// What `status` says when the store refuses to let sled open a damaged log.
const GUARD_REFUSED: &str = "has a damaged message";

/// A store (no server) holding `n` imported records.
fn imported_store(n: usize) -> DaemonEnv {
    let env = DaemonEnv::new("http://127.0.0.1:9", "").with_env_key(DEMO_KEY);
    let file = write_records(env.dir.path(), "people.ndjson", 0, n);
    env.ok(&["import", file.to_str().unwrap()]);
    env
}

/// A flipped byte in the part of the log sled replays at open, with intact messages after it:
/// `status` and the daemon say "store damaged" without letting sled open the file (sled 0.34
/// would take the flip for a torn write and zero the rest of its segment), the database file
/// is byte-identical afterwards, and `recover` gets every record back.
#[test]
fn damage_in_the_replayed_log_is_refused_before_sled_rewrites_it() {
    const N: usize = 1500;
    // Nothing opens the store after the import: all of it is in the log sled replays.
    let env = imported_store(N);
    let db = db_file(&env);
    let pristine = env.dir.path().join("pristine-store");
    copy_tree(&env.store_dir(), &pristine);
    let len = std::fs::metadata(&db).unwrap().len();
    // Probe flips from the middle of the file on, each on a fresh copy of the store (a flip in
    // padding or a stale area is not damage; an open that succeeds writes a new snapshot).
    let damaged = (0..40u64).find_map(|k| {
        std::fs::remove_dir_all(env.store_dir()).unwrap();
        copy_tree(&pristine, &env.store_dir());
        let at = len / 2 + k * 997;
        flip_at(&db, &[at]);
        let before = std::fs::read(&db).unwrap();
        let out = env.cli(&["status"]);
        assert_no_panic("status", &out);
        let err = stderr_of(&out);
        (!out.status.success() && err.contains(GUARD_REFUSED)).then_some((at, before, err))
    });
    let (at, before, err) = damaged.expect("no flipped byte in the replayed log was refused");
    assert!(
        err.contains("store damaged") && err.contains("icsync recover"),
        "flipped at {at}: {err}"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "status let sled rewrite the log"
    );

    let mut daemon = env.spawn_daemon(&[]);
    assert_daemon_stays_up_damaged(&env, &mut daemon);
    daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the daemon, status or doctor let sled rewrite the log"
    );

    let (recovered, lost, text) = recover(&env);
    // One flipped byte can hit the only copy of what it lands in (a value: that record; a
    // key length: the records of one node, at most 32, as in the three-flip test above);
    // everything else comes back. Usually nothing is lost.
    assert_eq!(recovered + lost, N as u64, "flipped at {at}: {text}");
    assert!(lost <= 32, "flipped at {at}: {text}");
    // recover did not let sled open the damaged store it keeps either.
    let kept = std::fs::read_dir(&env.data_dir)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("store.damaged-")
        })
        .expect("the damaged store is kept");
    assert!(
        std::fs::read(kept.path().join("sled").join("db")).unwrap() == before,
        "recover let sled rewrite the damaged store it keeps"
    );
    assert_eq!(env.status()["total"].as_u64(), Some(recovered));
}

/// A message torn at the tip of the log (a write a crash or power loss cut) is no damage: the
/// store opens as before, with every record, and sled cuts the torn message.
#[test]
fn a_torn_message_at_the_tip_of_the_log_still_opens() {
    const N: usize = 300;
    let env = imported_store(N);
    let db = db_file(&env);
    let mut bytes = std::fs::read(&db).unwrap();
    let tip = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    // A node message's header with a CRC that fails and half its body: what a write cut in
    // the middle leaves.
    let torn = [0xde, 0xad, 0xbe, 0xef, 8, 60, 0, 1, 0, 0, 0, 1, 7, 7, 7, 7];
    let end = tip + torn.len();
    // Zeros after it, so that its body is there to fail its CRC (a file cut at the torn
    // message's end is a torn tail too, but then not even its header is checked).
    if bytes.len() < end + 64 {
        bytes.resize(end + 64, 0);
    }
    bytes[tip..end].copy_from_slice(&torn);
    std::fs::write(&db, &bytes).unwrap();

    let out = env.cli(&["status"]);
    assert_no_panic("status", &out);
    assert!(out.status.success(), "a torn tail: {}", stderr_of(&out));
    assert_eq!(env.status()["total"].as_u64(), Some(N as u64));
}

/// A kill while sled writes one log buffer, with a later buffer (written by another of its
/// threads) already out, leaves a hole in the newest part of the log and intact messages
/// after it. That is a crash, not damage: the store opens (sled cuts its log at the hole, as
/// its crash recovery does; nothing past it was acknowledged as flushed), and importing the
/// file again brings every record back once.
#[test]
fn a_torn_buffer_before_a_later_one_in_the_newest_segment_is_a_crash_not_damage() {
    // About two and a half segments of log, so the newest is well filled.
    const N: usize = 750;
    let env = imported_store(N);
    let db = db_file(&env);
    let conf =
        std::fs::read_to_string(env.store_dir().join("sled").join("conf")).unwrap_or_default();
    let ss: usize = conf
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(512 * 1024);
    let mut bytes = std::fs::read(&db).unwrap();
    let tip = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let newest = (tip - 1) / ss * ss;
    // A page in the middle of the newest segment's written part, left unwritten by the kill.
    let page = (newest + tip) / 2 / 4096 * 4096;
    assert!(
        page >= newest + 4096 && page + 8192 <= tip,
        "too little in the newest segment: tip {tip}, newest from {newest}"
    );
    bytes[page..page + 4096].fill(0);
    std::fs::write(&db, &bytes).unwrap();

    let out = env.cli(&["status"]);
    assert_no_panic("status", &out);
    assert!(out.status.success(), "a crash's tear: {}", stderr_of(&out));
    let kept = env.status()["total"].as_u64().unwrap();
    assert!(kept <= N as u64);
    let doctor = env.cli(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&doctor.stdout).unwrap();
    let store = checks.iter().find(|c| c["check"] == "store").unwrap();
    assert_eq!(store["status"], "ok", "{store}");
    let file = env.dir.path().join("people.ndjson");
    env.ok(&["import", file.to_str().unwrap()]);
    assert_eq!(env.status()["total"].as_u64(), Some(N as u64));
}

fn flip_at(file: &Path, offsets: &[u64]) {
    let mut bytes = std::fs::read(file).unwrap();
    for &at in offsets {
        bytes[at as usize] ^= 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
}

/// Flips bytes so that sled cannot open the store: one early in the log (its first segment),
/// one in the last segment's tail, and the first of a walk back from the end of the file that
/// makes sled refuse the whole database on its own (in sled 0.34 a flipped byte in a node it
/// replays at open makes it panic). Returns the offsets flipped.
///
/// Each try is made on a copy of the whole store, and the chosen flips are then made on the
/// store itself, which sled has not opened since: sled 0.34 writes when it opens a damaged
/// log, even when it then refuses it (it takes the first message whose CRC fails for a torn
/// write and overwrites the rest of that segment with zeros, `pagecache/snapshot.rs`), and an
/// open that succeeds writes a new snapshot. Probing in place handed `recover` a log with up
/// to a segment erased by sled (hundreds of records, every copy), not three flipped bytes.
fn damage_until_sled_refuses(env: &DaemonEnv) -> Vec<u64> {
    let pristine = env.dir.path().join("pristine-store");
    copy_tree(&env.store_dir(), &pristine);
    let len = std::fs::metadata(db_file(env)).unwrap().len();
    let early = 4096 + 17;
    let tail = len - 3000;
    let damage = |flips: &[u64]| {
        std::fs::remove_dir_all(env.store_dir()).unwrap();
        copy_tree(&pristine, &env.store_dir());
        flip_at(&db_file(env), flips);
    };
    for k in 1..40u64 {
        let flips = [early, len - k * len / 40, tail];
        damage(&flips);
        if sled_refuses(env) {
            damage(&flips);
            std::fs::remove_dir_all(&pristine).unwrap();
            return flips.to_vec();
        }
    }
    panic!("no flipped byte made sled refuse the store ({len} bytes)");
}

#[test]
fn a_store_sled_cannot_open_is_recovered_from_its_files_and_syncs_once() {
    const SYNCED: usize = 400;
    const QUEUED: usize = 1100;
    const N: usize = SYNCED + QUEUED;
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    // Some records are on the server before the damage: recovering them under new ids or
    // revisions would create them there twice.
    synced_then_queued(&env, SYNCED, QUEUED);
    assert_eq!(admin.customers().len(), SYNCED);

    let flipped = damage_until_sled_refuses(&env);
    let (recovered, lost, text) = recover(&env);
    eprintln!("flipped at {flipped:?}:\n{text}");
    assert!(
        text.contains("could not open the damaged store") && text.contains("read directly"),
        "recover read the files without sled: {text}"
    );
    assert_eq!(recovered + lost, N as u64, "{text}");
    // A flipped byte damages one log message: a link (one record) or a node (one leaf: sled
    // 0.34 splits a leaf of more than 16 entries, and no node message in these stores holds
    // more than 17), and the reader's resynchronisation costs nothing beyond it. So three
    // flips lose at most the records of three leaves (with margin), and only those whose
    // every older copy is gone too: measured 0 lost in 6 of 6 runs.
    const RECORDS_PER_MESSAGE_MAX: u64 = 32;
    assert!(
        lost <= 3 * RECORDS_PER_MESSAGE_MAX,
        "flipped at {flipped:?}: {text}"
    );
    assert!(kept_damaged_store(&env));
    let s = env.status();
    assert_eq!(s["total"].as_u64(), Some(recovered), "{s}");

    sync_recovered_once(&env, &admin, recovered, N);
}

/// Copies a directory tree (the store, for a pristine copy to damage again and again).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Random damage, seeded: recover never panics, and every record it brings back is one that
/// was stored (same id, same content): authentication under the record id means a misread
/// key or value is refused, never turned into a record.
#[test]
fn recover_after_random_damage_never_panics_and_never_invents_a_record() {
    const N: usize = 300;
    const ROUNDS: u64 = 10;
    let env = DaemonEnv::new("http://127.0.0.1:9", "").with_env_key(DEMO_KEY);
    let file = write_records(env.dir.path(), "people.ndjson", 0, N);
    env.ok(&["import", file.to_str().unwrap()]);
    let stored: std::collections::HashMap<String, Value> = {
        let store = env.open_store();
        let ids = store.in_state(icsync::store::RecordState::Queued).unwrap();
        ids.iter()
            .map(|id| {
                let r = store.get(*id).unwrap().unwrap();
                (id.0.to_string(), serde_json::to_value(r).unwrap())
            })
            .collect()
    };
    assert_eq!(stored.len(), N);
    let pristine = env.dir.path().join("pristine");
    copy_tree(&env.store_dir(), &pristine);

    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..ROUNDS {
        std::fs::remove_dir_all(env.store_dir()).unwrap();
        copy_tree(&pristine, &env.store_dir());
        let db = db_file(&env);
        let len = std::fs::metadata(&db).unwrap().len();
        let flips: Vec<u64> = (0..1 + next() % 64).map(|_| next() % len).collect();
        flip_at(&db, &flips);
        let out = env.cli(&["recover"]);
        assert_no_panic("recover", &out);
        assert!(
            out.status.success(),
            "round {round}: recover failed: {}",
            stderr_of(&out)
        );
        let store = env.open_store();
        let mut found = 0;
        for state in icsync::store::RecordState::ALL {
            for id in store.in_state(state).unwrap() {
                let record = store.get(id).unwrap().unwrap();
                let original = stored
                    .get(&id.0.to_string())
                    .unwrap_or_else(|| panic!("round {round}: recover invented record {id:?}"));
                assert_eq!(
                    &serde_json::to_value(record).unwrap(),
                    original,
                    "round {round}: record {id:?} differs from the one stored"
                );
                found += 1;
            }
        }
        drop(store);
        eprintln!(
            "round {round}: {} flips, {found} of {N} recovered",
            flips.len()
        );
        // Clear the kept damaged stores so each round starts alike.
        for entry in std::fs::read_dir(&env.data_dir).unwrap() {
            let entry = entry.unwrap();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("store.damaged-")
            {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
    }
}
