//! The drop folder under hostile and unlucky conditions, with the real `icsync daemon` on a
//! temp data dir (no API: every record stays queued, so `status` counts exactly what the
//! folder queued): a writer that pauses mid-file, a file that stops the daemon every time it
//! is taken, a 254-byte name, names carrying newlines and ESC, and a drop folder other users
//! can write to.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::daemon::{poll_until, DaemonEnv, DaemonProcess};

const DEADLINE: Duration = Duration::from_secs(120);
const QUIET_MS: u64 = 300;

fn env() -> DaemonEnv {
    DaemonEnv::new(
        "http://127.0.0.1:9",
        &format!("drop_quiet_ms = {QUIET_MS}\ncache_capacity_mb = 8\nkeep_processed = true"),
    )
}

fn drop_dir(env: &DaemonEnv) -> PathBuf {
    env.drop_dir()
}

/// Starts the daemon and waits until it watches its drop folder.
fn start(env: &DaemonEnv) -> DaemonProcess {
    let d = env.start_daemon(&[]);
    let processed = drop_dir(env).join("processed");
    poll_until("the drop folder to be prepared", DEADLINE, || {
        if processed.is_dir() {
            Ok(())
        } else {
            Err("no processed/")
        }
    });
    d
}

fn total(env: &DaemonEnv) -> u64 {
    env.status()["total"].as_u64().unwrap()
}

fn wait_for(what: &str, path: &Path) {
    poll_until(
        what,
        DEADLINE,
        || if path.exists() { Ok(()) } else { Err(()) },
    );
}

fn rows(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("Person {i},p{i}@example.com\n"))
        .collect()
}

fn names_listed(env: &DaemonEnv) -> Vec<String> {
    env.json(&["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect()
}

/// Whether this file system gives read leases (and so tells an open writer apart).
fn leases_work(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let probe = dir.join(".lease-probe");
    let writer = fs::File::create(&probe).unwrap();
    let reader = fs::File::open(&probe).unwrap();
    // SAFETY: fcntl on a descriptor held for the call.
    let r = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    drop(writer);
    let _ = fs::remove_file(&probe);
    r == -1 && errno == Some(libc::EAGAIN)
}

#[test]
fn a_writer_pausing_longer_than_the_quiet_period_loses_nothing() {
    let env = env();
    let _d = start(&env);
    let dir = drop_dir(&env);
    if !leases_work(&dir) {
        eprintln!(
            "skipped: this file system gives no read leases, so only the quiet period applies"
        );
        return;
    }
    let path = dir.join("slow.csv");
    let mut writer = fs::File::create(&path).unwrap();
    writer.write_all(b"full_name,email\n").unwrap();
    writer.write_all(rows(0, 500).as_bytes()).unwrap();
    // Half way through a row, as an export job flushing a buffer would leave it.
    writer.write_all(b"Person 500,p500@exa").unwrap();
    writer.flush().unwrap();
    // The pause itself is the scenario: many quiet periods with the file unchanged but open.
    std::thread::sleep(Duration::from_millis(QUIET_MS * 6));
    assert!(
        path.exists(),
        "the file was taken while its writer held it open"
    );
    assert_eq!(
        total(&env),
        0,
        "records were queued from a half-written file"
    );
    writer.write_all(b"mple.com\n").unwrap();
    writer.write_all(rows(501, 1000).as_bytes()).unwrap();
    drop(writer);
    wait_for(
        "slow.csv to be archived",
        &dir.join("processed").join("slow.csv"),
    );
    let mut names = names_listed(&env);
    assert_eq!(names.len(), 1000, "every row once");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 1000, "no row twice");
    assert!(names.contains(&"Person 500".to_string()));
    assert!(!dir.join("rejected").join("slow.errors.txt").exists());
}

#[test]
fn a_file_that_stops_the_daemon_every_time_is_set_aside_with_a_report() {
    let env = env();
    let d = start(&env);
    d.kill();
    let dir = drop_dir(&env);
    fs::write(
        dir.join("poison.ndjson"),
        "{\"full_name\":\"Ann\",\"email\":\"ann@example.com\"}\n",
    )
    .unwrap();
    // Each start takes the file and dies right after marking it (the debug-build fault hook
    // stands in for an out-of-memory kill while reading).
    for start in 1..=icsync::dropdir::MAX_STARTS {
        let mut child = env
            .command(&["daemon"])
            .env(icsync::dropdir::ABORT_AFTER_MARK_ENV, "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < until, "start {start} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "start {start}: {status}");
        assert!(dir.join("poison.ndjson").exists());
    }
    // The next start sets the file aside instead of taking it again, and goes on.
    let _d = start(&env);
    let report = dir.join("rejected").join("poison.ndjson.errors.txt");
    wait_for("the quarantine report", &report);
    // The report is written first, then the file moved beside it.
    wait_for(
        "the file set aside",
        &dir.join("rejected").join("poison.ndjson"),
    );
    assert!(!dir.join("poison.ndjson").exists());
    let text = fs::read_to_string(&report).unwrap();
    assert!(
        text.contains(&format!(
            "stopped {} times in a row",
            icsync::dropdir::MAX_STARTS
        )),
        "{text}"
    );
    assert!(text.contains("To retry"), "{text}");
    let log = env.all_daemon_output();
    assert!(log.contains("set aside"), "{log}");
    assert_eq!(total(&env), 0);
    // Moved back as it is, it is taken afresh (the mark went with the quarantine).
    fs::rename(
        dir.join("rejected").join("poison.ndjson"),
        dir.join("poison.ndjson"),
    )
    .unwrap();
    wait_for(
        "poison.ndjson to be archived",
        &dir.join("processed").join("poison.ndjson"),
    );
    assert_eq!(total(&env), 1);
}

#[test]
fn a_254_byte_name_is_taken_and_its_reports_and_copies_fit() {
    let env = env();
    let _d = start(&env);
    let dir = drop_dir(&env);
    let name = format!("{}.ndjson", "l".repeat(247));
    assert_eq!(name.len(), 254);
    let body = |n: &str| {
        format!(
            "{{\"full_name\":\"{n}\",\"email\":\"{n}@example.com\"}}\n{{\"full_name\":\"Bad {n}\",\"email\":\"nope\"}}\n"
        )
    };
    fs::write(dir.join(&name), body("first")).unwrap();
    wait_for("the long name archived", &dir.join("processed").join(&name));
    // The same name again, other content: its archived name is numbered and still fits.
    fs::write(dir.join(&name), body("second")).unwrap();
    poll_until("the second long file archived", DEADLINE, || {
        let n = fs::read_dir(dir.join("processed")).unwrap().count();
        if n == 2 && !dir.join(&name).exists() {
            Ok(())
        } else {
            Err(n)
        }
    });
    assert_eq!(total(&env), 2);
    let rejected: Vec<String> = fs::read_dir(dir.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected.iter().all(|n| n.len() <= 255));
    assert_eq!(
        rejected
            .iter()
            .filter(|n| n.ends_with(".errors.txt"))
            .count(),
        2
    );
    let log = env.all_daemon_output();
    assert!(!log.contains("no free name"), "{log}");
}

#[test]
fn names_with_newlines_and_escapes_are_shown_escaped_in_reports_and_logs() {
    let env = env();
    let _d = start(&env);
    let dir = drop_dir(&env);
    let name = "evil\nline 1: email: forged\u{1b}[31m.ndjson";
    fs::write(
        dir.join(name),
        "{\"full_name\":\"Ann\",\"email\":\"ann@example.com\"}\n{\"full_name\":\"Bob\",\"email\":\"nope\"}\n",
    )
    .unwrap();
    wait_for("the file archived", &dir.join("processed").join(name));
    let report = fs::read_dir(dir.join("rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".errors.txt"))
        .expect("a report");
    let report_name = report.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!report_name.contains(['\n', '\u{1b}']), "{report_name:?}");
    let text = fs::read_to_string(&report).unwrap();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains("evil\\nline 1: email: forged\\u{1b}[31m"),
        "{text}"
    );
    let problems: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(problems.len(), 1, "one problem line, none forged: {text}");
    assert!(problems[0].starts_with("line 2: email:"), "{text}");
    let log = env.all_daemon_output();
    assert!(!log.contains('\u{1b}'), "raw ESC in the log: {log:?}");
    assert!(!log.contains("\nline 1: email: forged"), "{log}");
    assert!(log.contains("forged"), "{log}");
    // The queued record's origin and the drop history carry the escaped name too.
    let listed = env.json(&["list", "--json"]);
    let id = listed[0]["id"].as_str().expect("an id").to_string();
    let shown = env.ok(&["show", &id]);
    assert!(!shown.contains('\u{1b}'), "raw ESC in show: {shown:?}");
    assert!(
        shown.contains("evil\\nline 1: email: forged\\u{1b}[31m.ndjson:1"),
        "{shown}"
    );
}

#[test]
fn a_drop_folder_others_can_write_to_is_refused_until_the_config_says_it_is_shared() {
    let env = env();
    let dir = drop_dir(&env);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    fs::write(
        dir.join("theirs.ndjson"),
        "{\"full_name\":\"Mallory\",\"email\":\"m@example.com\"}\n",
    )
    .unwrap();
    let d = env.start_daemon(&[]);
    poll_until("the refusal in the daemon's output", DEADLINE, || {
        let out = d.stderr();
        if out.contains("is not watched") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let out = d.stderr();
    assert!(out.contains("all other users can write to it"), "{out}");
    assert!(out.contains("drop_dir_shared = true"), "{out}");
    // The daemon stays up and answers; the folder is left alone.
    assert_eq!(total(&env), 0);
    assert!(dir.join("theirs.ndjson").exists());
    assert!(!dir.join("processed").exists());
    let log = fs::read_to_string(env.log_file()).unwrap_or_default();
    assert!(log.contains("not watched"), "{log}");
    // Status says so too, in words and in --json.
    let status = env.ok(&["status"]);
    assert!(
        status.contains("drop folder: not watched:") && status.contains("other users can write"),
        "{status}"
    );
    let problem = env.status()["drop_folder_problem"].to_string();
    assert!(problem.contains("drop_dir_shared"), "{problem}");
    d.kill();
    env.add_config("drop_dir_shared = true");
    let _d = env.start_daemon(&[]);
    wait_for(
        "the shared folder's file taken",
        &dir.join("processed").join("theirs.ndjson"),
    );
    assert_eq!(total(&env), 1);
}

#[test]
fn rows_appended_after_a_file_was_taken_are_ingested_not_cut() {
    let env = env();
    let _d = start(&env);
    let dir = drop_dir(&env);
    let first = 30_000;
    let body: String = (0..first)
        .map(|i| format!("{{\"full_name\":\"Person {i}\",\"email\":\"p{i}@example.com\"}}\n"))
        .collect();
    fs::write(dir.join("grows.ndjson.part"), body).unwrap();
    fs::rename(dir.join("grows.ndjson.part"), dir.join("grows.ndjson")).unwrap();
    // Append once the daemon is part-way through (it read the file as it was when taken).
    poll_until("the file to be part-way in", DEADLINE, || {
        let n = total(&env);
        if n > 0 {
            Ok(())
        } else {
            Err(n)
        }
    });
    let mut more = match fs::OpenOptions::new()
        .append(true)
        .open(dir.join("grows.ndjson"))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skipped: the file was archived before it could be appended to ({e})");
            return;
        }
    };
    let extra: String = (first..first + 100)
        .map(|i| format!("{{\"full_name\":\"Person {i}\",\"email\":\"p{i}@example.com\"}}\n"))
        .collect();
    more.write_all(extra.as_bytes()).unwrap();
    drop(more);
    let archived = dir.join("processed").join("grows.ndjson");
    wait_for("grows.ndjson archived", &archived);
    assert_eq!(
        fs::read_to_string(&archived).unwrap().lines().count(),
        first + 100
    );
    poll_until(
        "every row, appended ones too, queued once",
        DEADLINE,
        || {
            let n = total(&env);
            if n as usize == first + 100 {
                Ok(())
            } else {
                Err(n)
            }
        },
    );
    let log = env.all_daemon_output();
    assert!(log.contains("changed after it was taken"), "{log}");
}
