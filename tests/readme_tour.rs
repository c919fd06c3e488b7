//! README.md's "A short tour", run as written: the tour's `sh` block is read from README.md,
//! and its commands are fed one at a time to one bash session that runs the real `icsync`
//! binary against a real sandbox, with a real store on disk. So the README cannot drift from
//! the product: a verb renamed, a flag removed or an output changed fails here.
//!
//! Every command must exit 0 (`import` may exit 2: some rows refused); the steps named in
//! [`CHECKS`] also have their output checked, and a check whose command is no longer in the
//! tour fails too.
//!
//! The only differences from a person pasting the block, each needed to run it unattended
//! and side by side with other tests:
//! - `cargo install --locked --path .` is not run: the binary under test
//!   (`CARGO_BIN_EXE_icsync`) is first on `PATH` instead.
//! - The sandbox gets a free port: `ICSYNC_SANDBOX_LISTEN=127.0.0.1:0` is set (the
//!   sandbox's `--listen` default reads it). Once it prints `listening on URL`, the session
//!   runs `export ICSYNC_API_URL=URL`, and `http://127.0.0.1:7878` in later commands (the
//!   curl line) is replaced by URL. Waiting for that line is the test's only wait between
//!   commands; the wait for the daemon to send is the tour's own `icsync status --wait`.
//! - `HOME`, `XDG_CONFIG_HOME` and `XDG_DATA_HOME` point into a temp dir, and every
//!   `ICSYNC_*` variable of the machine is removed, so config, data dir and keys are the
//!   test's own. `NO_COLOR=1`.
//! - The working directory is a temp dir holding a copy of `tests/fixtures/exports`, so the
//!   files the tour writes (refused rows, `conflicts.csv`) never land in the checkout.
//! - `icsync tui` runs in a tmux session of its own (same environment and directory) until
//!   its dashboard shows, then gets `q`. Without tmux the step fails, unless
//!   `ICSYNC_SKIP_TMUX=1` says to skip it on purpose (as `tests/tui_tmux.rs`).
//! - stderr is joined to stdout (`exec 2>&1`), and after each command the session prints a
//!   marker line with its exit status (and `$!` after a `&` line); the background jobs (the
//!   sandbox and the daemon) get SIGTERM at the end and are killed if the test fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The address the README names for the sandbox.
const README_URL: &str = "http://127.0.0.1:7878";
/// How long one step may take (the daemon sending ~10,000 records on a busy 2-core machine,
/// in a debug build, is the slowest).
const STEP_DEADLINE: Duration = Duration::from_secs(300);
/// How long the sandbox may take to say where it listens.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// The commands of the tour's code block: blank and comment-only lines left out, a line
/// ending in `\` joined with the next (as bash reads it).
fn tour_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## A short tour")
        .nth(1)
        .expect("README.md has a section `## A short tour`");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the tour section has a ```sh block");
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        pending.push_str(line);
        if let Some(joined) = pending.strip_suffix('\\') {
            pending = format!("{joined}\\\n");
        } else {
            commands.push(std::mem::take(&mut pending));
        }
    }
    assert!(pending.is_empty(), "the tour ends inside a continued line");
    commands
}

/// The command itself, without a trailing `# comment` (a `#` inside quotes is kept).
fn without_comment(command: &str) -> &str {
    let (mut single, mut double) = (false, false);
    for (i, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (i == 0 || command[..i].ends_with(' ')) => {
                return command[..i].trim_end();
            }
            _ => {}
        }
    }
    command.trim_end()
}

/// What one command printed (stdout and stderr together) and its exit status.
#[derive(Debug)]
struct Step {
    command: String,
    status: i32,
    output: String,
}

/// Checks one step's output; the path is the tour's working directory.
type Check = fn(&Step, &Path);

/// Output checks for the tour's key steps, by the command as the README writes it (without
/// its comment).
const CHECKS: &[(&str, Check)] = &[
    ("icsync add --full-name \"Ada Lovelace\"", |s, _| {
        assert!(
            s.output.contains("queued ") && s.output.contains("a new record"),
            "{s:?}"
        );
    }),
    ("icsync edit crm-1001", |s, _| {
        assert!(s.output.contains("revision 2"), "{s:?}");
    }),
    ("curl -s http://127.0.0.1:7878/v1/customers", |s, _| {
        assert!(s.output.contains("\"external_id\":\"erp-77\""), "{s:?}");
    }),
    ("icsync import --dry-run hubspot-contacts.csv", |s, _| {
        assert!(s.output.contains("would be queued"), "{s:?}");
    }),
    ("icsync import salesforce-contacts.csv", |s, dir| {
        assert_eq!(s.status, 2, "some rows are refused: {s:?}");
        assert!(
            s.output.contains("5,000 records: 4,950 queued")
                && s.output.contains("50 refused at import"),
            "{s:?}"
        );
        let exports = dir.join("tests/fixtures/exports");
        let refused = std::fs::read_to_string(exports.join("salesforce-contacts.refused.csv"))
            .expect("the refused rows are written beside the file");
        let mut rows = csv::Reader::from_reader(refused.as_bytes());
        assert_eq!(rows.records().count(), 50, "{refused}");
        assert!(exports.join("salesforce-contacts.errors.txt").exists());
    }),
    ("icsync status --wait", |s, _| {
        assert!(s.output.contains("queued 0  sending 0"), "{s:?}");
        assert!(s.output.contains("daemon: running"), "{s:?}");
    }),
    ("icsync list --state conflict", |s, _| {
        let rows: Vec<&str> = s
            .output
            .lines()
            .filter(|l| l.contains("conflict"))
            .collect();
        assert_eq!(rows.len(), 5, "Ada and 4 German rows: {s:?}");
        assert!(rows.iter().any(|r| r.contains("crm-1001")), "{s:?}");
    }),
    ("icsync show crm-1001", |s, _| {
        assert!(s.output.contains("existing customer"), "{s:?}");
        assert!(s.output.contains("erp-77"), "{s:?}");
    }),
    ("icsync resolve crm-1001", |s, _| {
        assert!(s.output.contains("1 record"), "{s:?}");
    }),
    ("icsync export --state conflict conflicts.csv", |s, dir| {
        assert!(s.output.contains("wrote 4 record(s)"), "{s:?}");
        let text = std::fs::read_to_string(dir.join("conflicts.csv")).unwrap();
        assert_eq!(text.lines().count(), 5, "a header and 4 rows: {text}");
        assert!(
            !text.contains("crm-1001"),
            "Ada's conflict was resolved: {text}"
        );
    }),
];

/// One bash session fed a command at a time.
struct Session {
    bash: Child,
    stdin: ChildStdin,
    output: Receiver<Vec<u8>>,
    /// Everything printed so far, for failure messages.
    transcript: String,
    /// Printed but not yet claimed by a step.
    unread: String,
    /// Background jobs (`&`) started by the tour.
    jobs: Vec<u32>,
    /// The tmux socket name, once a tmux server was started.
    tmux: Option<String>,
    steps: usize,
}

impl Session {
    fn start(dir: &Path, home: &Path) -> Session {
        let bin = Path::new(env!("CARGO_BIN_EXE_icsync"))
            .parent()
            .expect("the binary's folder")
            .to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&path));
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-s"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PATH", std::env::join_paths(paths).unwrap())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("ICSYNC_SANDBOX_LISTEN", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .env_remove("RUST_LOG")
            .env_remove("TMUX");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ICSYNC_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ICSYNC_SANDBOX_LISTEN", "127.0.0.1:0");
        let mut bash = cmd.spawn().expect("bash runs");
        let stdin = bash.stdin.take().unwrap();
        let (tx, output) = mpsc::channel();
        for mut pipe in [
            Box::new(bash.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(bash.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        let mut session = Session {
            bash,
            stdin,
            output,
            transcript: String::new(),
            unread: String::new(),
            jobs: Vec::new(),
            tmux: None,
            steps: 0,
        };
        session.send("exec 2>&1");
        session
    }

    fn send(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").expect("bash reads its commands");
    }

    /// Reads until `found` picks something out of the output not yet claimed; panics with
    /// the transcript after `deadline`.
    fn read_until<T>(
        &mut self,
        what: &str,
        deadline: Duration,
        mut found: impl FnMut(&str) -> Option<(T, usize)>,
    ) -> T {
        let until = Instant::now() + deadline;
        loop {
            if let Some((value, end)) = found(&self.unread) {
                self.unread.drain(..end);
                return value;
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    self.transcript.push_str(&text);
                    self.unread.push_str(&text);
                }
                Err(_) => panic!(
                    "timed out after {deadline:?} waiting for {what}; transcript:\n{}",
                    self.transcript
                ),
            }
        }
    }

    /// Runs one command as written and returns what it printed and its status.
    fn run(&mut self, command: &str) -> Step {
        self.steps += 1;
        let marker = format!("@@tour-step-{}@@", self.steps);
        self.send(command);
        self.send(&format!("printf '\\n{marker} %s %s\\n' \"$?\" \"$!\""));
        let (output, status, job) = self.read_until(command, STEP_DEADLINE, |text| {
            let at = text.find(&marker)?;
            let end = at + text[at..].find('\n')?;
            let mut fields = text[at + marker.len()..end].split_whitespace();
            let status: i32 = fields.next()?.parse().ok()?;
            let job: Option<u32> = fields.next().and_then(|p| p.parse().ok());
            Some(((text[..at].to_string(), status, job), end + 1))
        });
        if without_comment(command).ends_with('&') {
            self.jobs.push(job.expect("a background job's pid"));
        }
        Step {
            command: command.to_string(),
            status,
            output,
        }
    }

    /// The URL of the sandbox's `listening on URL` line: in what its step printed, or
    /// waited for.
    fn sandbox_url(&mut self, step: &Step) -> String {
        fn url_in(text: &str) -> Option<(String, usize)> {
            let at = text.find("listening on ")?;
            let rest = &text[at + "listening on ".len()..];
            let end = rest.find('\n')?;
            let consumed = at + "listening on ".len() + end + 1;
            Some((rest[..end].trim().to_string(), consumed))
        }
        match url_in(&step.output) {
            Some((url, _)) => url,
            None => self.read_until("the sandbox's `listening on` line", LISTEN_DEADLINE, url_in),
        }
    }

    /// `icsync tui` in tmux until the dashboard shows, then `q`.
    fn tui(&mut self, command: &str) -> Step {
        let socket = format!("icsync-tour-{}", std::process::id());
        self.tmux = Some(socket.clone());
        let step = self.run(&format!(
            "tmux -L {socket} new-session -d -s tour -x 120 -y 40 {}",
            without_comment(command)
        ));
        assert_eq!(step.status, 0, "tmux starts: {step:?}");
        let tmux = |args: &[&str]| {
            Command::new("tmux")
                .arg("-L")
                .arg(&socket)
                .args(args)
                .output()
                .expect("tmux runs")
        };
        let until = Instant::now() + STEP_DEADLINE;
        let screen = loop {
            let screen =
                String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "tour"]).stdout)
                    .into_owned();
            if screen.contains("conflict") && screen.contains("synced") {
                break screen;
            }
            assert!(Instant::now() < until, "the TUI's dashboard:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        };
        tmux(&["send-keys", "-t", "tour", "q"]);
        let until = Instant::now() + STEP_DEADLINE;
        while tmux(&["has-session", "-t", "tour"]).status.success() {
            assert!(Instant::now() < until, "the TUI did not quit on q");
            std::thread::sleep(Duration::from_millis(100));
        }
        Step {
            command: command.to_string(),
            status: 0,
            output: screen,
        }
    }

    /// SIGTERM to the background jobs, then waits for them to go.
    fn stop_jobs(&mut self) {
        for &pid in &self.jobs {
            signal(pid, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(30);
        for &pid in &self.jobs {
            while alive(pid) {
                assert!(Instant::now() < until, "job {pid} did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.jobs.clear();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid this test started; it touches no memory of ours.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Whether the process exists and is not a zombie waiting for bash to reap it.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for &pid in &self.jobs {
            signal(pid, libc::SIGKILL);
        }
        if let Some(socket) = &self.tmux {
            let _ = Command::new("tmux")
                .args(["-L", socket, "kill-server"])
                .output();
        }
        let _ = self.bash.kill();
        let _ = self.bash.wait();
    }
}

/// Whether tmux is here; without it the TUI step fails, unless ICSYNC_SKIP_TMUX=1.
fn tmux_available() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    if std::env::var_os("ICSYNC_SKIP_TMUX").is_some_and(|v| v == "1") {
        eprintln!(
            "the tour's `icsync tui` step skipped: tmux is not installed and ICSYNC_SKIP_TMUX=1"
        );
        return false;
    }
    panic!("tmux is not installed (apt-get install tmux), or set ICSYNC_SKIP_TMUX=1");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = tour_commands(&readme);
    for (wanted, _) in CHECKS {
        assert!(
            commands
                .iter()
                .any(|c| without_comment(c).starts_with(wanted)),
            "the tour no longer has `{wanted}`: update the README or this test"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("icsync");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    copy_dir(
        &root.join("tests/fixtures/exports"),
        &dir.join("tests/fixtures/exports"),
    );
    let mut session = Session::start(&dir, &home);
    let mut url: Option<String> = None;
    let mut ran = Vec::new();
    for command in &commands {
        let plain = without_comment(command);
        if plain.starts_with("cargo install") {
            continue;
        }
        let step = if plain.starts_with("icsync tui") {
            if !tmux_available() {
                continue;
            }
            session.tui(command)
        } else {
            let written = match &url {
                Some(u) => command.replace(README_URL, u),
                None => command.clone(),
            };
            session.run(&written)
        };
        if plain.starts_with("icsync sandbox") {
            let u = session.sandbox_url(&step);
            let exported = session.run(&format!("export ICSYNC_API_URL={u}"));
            assert_eq!(exported.status, 0);
            url = Some(u);
        }
        let allowed: &[i32] = if plain.starts_with("icsync import") {
            &[0, 2]
        } else {
            &[0]
        };
        assert!(
            allowed.contains(&step.status),
            "`{}` exited {}:\n{}",
            step.command,
            step.status,
            step.output
        );
        for (wanted, check) in CHECKS {
            if plain.starts_with(wanted) {
                check(&step, &dir);
            }
        }
        ran.push(plain.to_string());
    }
    session.stop_jobs();
    assert!(
        ran.iter().any(|c| c.starts_with("icsync daemon")),
        "the tour starts a daemon: {ran:?}"
    );
}

#[test]
fn the_tour_block_is_read_with_continued_lines_joined_and_comments_left_out() {
    let readme = "intro\n## A short tour\n\ntext\n\n```sh\na &   # one\n\n# only a comment\nb \\\n  c \\\n  'd # e'\n```\n## Next\n";
    let commands = tour_commands(readme);
    assert_eq!(commands, ["a &   # one", "b \\\n  c \\\n  'd # e'"]);
    assert_eq!(without_comment(&commands[0]), "a &");
    assert_eq!(without_comment(&commands[1]), commands[1]);
}
