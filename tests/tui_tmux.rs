//! End to end in a real terminal: `icsync demo` runs in tmux (its own server socket), and the
//! test reads the screen with capture-pane the way a new user would: the queue drains, a
//! conflict is opened and resolved, a customer is captured, the refused rows of the dropped
//! samples are listed, and quitting stops everything.
//!
//! Needs tmux (`.ci/run` installs it). Without it this test fails, unless ICSYNC_SKIP_TMUX=1
//! says to skip it on purpose.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server of its own (`name` makes the socket unique) running `command` in a
    /// `width`x`height` session named `demo`.
    fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("icsync-test-{}-{name}", std::process::id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let started = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        assert!(started.status.success(), "{started:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "demo"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "demo"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Polls the screen until `ok` holds, or fails with the last screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "demo"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is here; without it a test fails, unless ICSYNC_SKIP_TMUX=1 says to skip it
/// on purpose (then this says so and is false).
fn tmux_available() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var("ICSYNC_SKIP_TMUX").as_deref() == Ok("1") {
        eprintln!("skipped: tmux is not installed and ICSYNC_SKIP_TMUX=1");
        return false;
    }
    panic!("tmux is not installed (apt-get install tmux), or set ICSYNC_SKIP_TMUX=1");
}

/// A dashboard count line, e.g. `│ conflict             2 │`.
fn count(screen: &str, state: &str) -> Option<u64> {
    screen.lines().find_map(|line| {
        let rest = line.split(&format!("│ {state} ")).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn a_new_user_runs_the_demo_resolves_a_conflict_captures_and_quits() {
    if !tmux_available() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_icsync");
    let tmux = Tmux::start(
        "tour",
        80,
        24,
        &format!("env -u NO_COLOR RUST_BACKTRACE=0 {bin} demo"),
    );

    // The queue drains: every sample record is sent, two end in conflict.
    let screen = tmux.wait_for("the queue to drain", |s| {
        count(s, "queued") == Some(0)
            && count(s, "sending") == Some(0)
            && count(s, "conflict") == Some(2)
    });
    let total = count(&screen, "total").unwrap();
    assert_eq!(count(&screen, "synced"), Some(total - 2));
    assert!(screen.contains("ONLINE"), "{screen}");

    // Open the conflicts: the local record beside the existing customer.
    tmux.keys(&["3"]);
    tmux.wait_for("the conflicts screen", |s| {
        s.contains("Maria Garcia") && s.contains("Wei Zhang") && s.contains("customer_conflict")
    });
    // The daemon read the existing customer from the sandbox: its own external_id and its
    // server-only KYC state stand beside the local record, field by field.
    tmux.wait_for("the existing customer field by field", |s| {
        s.contains("beside existing customer")
            && s.contains("SF-0017")
            && s.contains("kyc_status NOT_STARTED")
    });
    // `U` sends the local fields over that customer: it asks first, then says so in words.
    tmux.keys(&["U"]);
    tmux.wait_for("the question before updating the existing customer", |s| {
        s.contains("Update the existing customer")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the update to be confirmed", |s| {
        s.contains("1 record queued to update the existing customer")
    });

    // Capture a new customer; "saved" appears only once the daemon flushed it.
    tmux.keys(&["4"]);
    tmux.wait_for("the capture form", |s| s.contains("full name"));
    tmux.keys(&["Tess Tester", "Tab", "tess@example.org"]);
    tmux.keys(&["C-s"]);
    tmux.wait_for("the save", |s| s.contains("saved: record created"));
    // Esc and the next key in one burst would read as Alt+key: wait for Esc to land first.
    tmux.keys(&["Escape"]);
    tmux.wait_for("the form to close", |s| !s.contains("New customer"));
    tmux.keys(&["1"]);
    tmux.wait_for("the resolved conflict and the new record to sync", |s| {
        count(s, "conflict") == Some(1)
            && count(s, "total") == Some(total + 1)
            && count(s, "synced") == Some(total)
    });

    // Quit: the demo stops its daemon and sandbox and the session ends.
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmux.alive() {
        assert!(
            Instant::now() < deadline,
            "demo did not exit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// At 80x24: the dashboard names the rows refused from the dropped samples and `r` lists them
/// by line and reason with the report's path; the header keeps its screen name and badge
/// whole; the demo says its engine runs in its own process, and leaves no daemon banner
/// behind when it quits (none was started).
#[test]
fn the_demo_shows_refused_drop_rows_and_says_its_engine_runs_in_process() {
    if !tmux_available() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_icsync");
    let tmux = Tmux::start(
        "refused",
        80,
        24,
        &format!("sh -c 'RUST_BACKTRACE=0 {bin} demo; echo demo-exited; sleep 60'"),
    );
    let screen = tmux.wait_for("the refused rows on the dashboard", |s| {
        s.contains("rows refused from 2 dropped files (not queued): press r")
    });
    assert!(screen.contains("sync engine in this process"), "{screen}");
    assert!(screen.contains("online · in-process"), "{screen}");
    assert!(!screen.contains("Nothing needs a person"), "{screen}");

    tmux.keys(&["r"]);
    let screen = tmux.wait_for("the refused rows of a dropped file", |s| {
        s.contains("Dropped files with refused rows: 2") && s.contains(" line ")
    });
    let header = screen.lines().next().unwrap_or_default();
    assert!(header.contains("› Refused rows "), "{header}");
    assert!(
        header.trim_end().ends_with("online · in-process"),
        "{header}"
    );
    assert!(screen.contains("/drop/rejected/"), "{screen}");
    assert!(screen.contains(".errors.txt"), "{screen}");
    // The two sample files are read at the same moment, so either may be listed first: the
    // detail names the one selected, and `j` moves to the other.
    let csv_rows = "crm-export.csv: 2 rows refused";
    let ndjson_rows = "field-captures.ndjson: 1 row refused";
    let other = if screen.contains(csv_rows) {
        ndjson_rows
    } else {
        assert!(screen.contains(ndjson_rows), "{screen}");
        csv_rows
    };
    tmux.keys(&["j"]);
    tmux.wait_for("the other file's rows", |s| {
        s.contains(other) && s.contains("is not a valid email")
    });

    tmux.keys(&["Escape"]);
    tmux.wait_for("the dashboard again", |s| s.contains("Needs a person"));
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the demo to exit", |s| s.contains("demo-exited"));
    assert!(!screen.contains("Stop it with Ctrl-C"), "{screen}");
    assert!(!screen.contains("icsync daemon"), "{screen}");
}

/// `pid` and every process below it, with their command lines.
fn process_tree(pid: u32) -> Vec<(u32, String)> {
    let mut all: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        all.push((p, ppid, cmdline));
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .filter(|(_, pp, _)| *pp == parent)
                .map(|(p, _, _)| *p),
        );
        i += 1;
    }
    all.into_iter()
        .filter(|(p, _, _)| tree.contains(p))
        .map(|(p, _, c)| (p, c))
        .collect()
}

/// Starts the demo in tmux with its temporary dir under `tmp`, stops it with `stop`, and
/// checks that the sandbox child is gone and nothing is left in `tmp`.
fn demo_stopped_from_outside_cleans_up(stop: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_icsync");
    let tmux = Tmux::start(
        stop,
        100,
        30,
        &format!(
            "env TMPDIR={} RUST_BACKTRACE=0 {bin} demo",
            tmp.path().display()
        ),
    );
    tmux.wait_for("the dashboard", |s| count(s, "total").is_some());
    let pane: u32 = String::from_utf8_lossy(
        &tmux
            .run(&["display-message", "-p", "-t", "demo", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    let tree = process_tree(pane);
    let find = |word: &str| {
        tree.iter()
            .find(|(_, c)| c.contains(bin) && c.split_whitespace().any(|w| w == word))
            .map(|(p, _)| *p)
            .unwrap_or_else(|| panic!("no `{word}` process under the pane: {tree:?}"))
    };
    let (demo, sandbox) = (find("demo"), find("sandbox"));
    let made: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(made.len(), 1, "the demo's temporary dir");

    match stop {
        "sigterm" => {
            let killed = Command::new("kill")
                .args(["-TERM", &demo.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        }
        // Closing the terminal: tmux hangs up on the pane's process.
        _ => assert!(tmux.run(&["kill-session", "-t", "demo"]).status.success()),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = |p: u32| !std::path::Path::new(&format!("/proc/{p}")).exists();
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if gone(demo) && gone(sandbox) && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {stop}: demo gone {}, sandbox gone {}, left behind {left:?}",
            gone(demo),
            gone(sandbox)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_cleans_up_on_sigterm_and_on_a_closed_terminal() {
    if !tmux_available() {
        return;
    }
    demo_stopped_from_outside_cleans_up("sigterm");
    demo_stopped_from_outside_cleans_up("sighup");
}
