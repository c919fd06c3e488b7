//! Support for process-level tests of `icsync daemon` and the record commands: a private
//! temp environment (config file, data dir, key), the CLI run as a real process, the daemon
//! as a real child process, polling with deadlines, and a blocking view of the sandbox's
//! admin API. It checks nothing by itself except that no CLI output ever carries a secret the
//! test registered.
//!
//! Every process gets `--config` pointing at the environment's own file and has the
//! `ICSYNC_*` variables of the machine removed, so a developer's real config or key can
//! never leak into (or out of) a test.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::http::AdminClient;
use super::{send_signal, wait_with_deadline, SandboxProcess};

/// How long a daemon may take to answer on its socket after it was spawned.
pub const DAEMON_READY: Duration = Duration::from_secs(20);
/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(50);
/// The log filter given to daemons: our own debug lines too, so the PII and key checks
/// cover everything we log.
pub const LOG_FILTER: &str = "info,icsync=debug";

/// Waits until `probe` returns `Some`, polling; panics with `what` and the last value seen
/// after `deadline`.
pub fn poll_until<T, L: std::fmt::Debug>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Result<T, L>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    Instant::now() < until,
                    "timed out after {deadline:?} waiting for {what}; last seen: {last:?}"
                );
            }
        }
        std::thread::sleep(POLL);
    }
}

/// A temp dir with a config file, a data dir inside it, and how to run icsync there.
pub struct DaemonEnv {
    pub dir: TempDir,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    /// Passed as `ICSYNC_API_KEY` to every process when set.
    pub env_key: Option<String>,
    /// More variables for every process (a private D-Bus session's address).
    pub extra_env: Vec<(String, String)>,
    /// Strings no CLI output may contain (API keys).
    secrets: Mutex<Vec<String>>,
    /// The stderr files of every daemon started here.
    daemon_logs: Mutex<Vec<PathBuf>>,
    spawned: AtomicUsize,
}

/// Config lines that keep tests fast: short backoff, timeouts and drain.
pub const FAST_CONFIG: &str = "backoff_base_ms = 20\n\
backoff_cap_secs = 1\n\
connect_timeout_secs = 2\n\
request_timeout_secs = 5\n\
drain_timeout_secs = 3\n";

impl DaemonEnv {
    /// An environment whose config names `api_url`, [`FAST_CONFIG`] and `extra` lines. The
    /// data dir (`<tmp>/data`) is not created: the first process creates it.
    pub fn new(api_url: &str, extra: &str) -> DaemonEnv {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let config = dir.path().join("icsync.toml");
        std::fs::write(
            &config,
            format!("api_url = \"{api_url}\"\n{FAST_CONFIG}{extra}\n"),
        )
        .unwrap();
        DaemonEnv {
            dir,
            data_dir,
            config,
            env_key: None,
            extra_env: Vec::new(),
            secrets: Mutex::new(Vec::new()),
            daemon_logs: Mutex::new(Vec::new()),
            spawned: AtomicUsize::new(0),
        }
    }

    /// The store's key file: inside the temp dir, never the user's config dir. Every process
    /// gets it as `ICSYNC_KEY_FILE`.
    pub fn data_key_file(&self) -> PathBuf {
        self.dir.path().join("data.key")
    }

    /// Opens this environment's store in the test process, with its own key file.
    pub fn open_store(&self) -> icsync::store::Store {
        super::open_store(&self.store_dir(), &self.data_key_file())
    }

    /// Appends a line to the config file.
    pub fn add_config(&self, line: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(&self.config, text).unwrap();
    }

    /// Writes `key` to `<tmp>/api-key` with `mode`, names it as `api_key_file` in the config
    /// (on first use) and registers it as a secret. Returns the file's path.
    pub fn write_key_file(&self, key: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join("api-key");
        let first = !path.exists();
        // Written aside and renamed over, so a daemon re-reading the file never sees half.
        let tmp = self.dir.path().join("api-key.tmp");
        std::fs::write(&tmp, format!("{key}\n")).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        if first {
            self.add_config(&format!("api_key_file = \"{}\"", path.display()));
        }
        self.secret(key);
        path
    }

    /// Every process gets `key` in `ICSYNC_API_KEY`; no output may contain it.
    pub fn with_env_key(mut self, key: &str) -> DaemonEnv {
        self.env_key = Some(key.to_string());
        self.secret(key);
        self
    }

    /// Every process gets `name=value` too.
    pub fn with_env(mut self, name: &str, value: &str) -> DaemonEnv {
        self.extra_env.push((name.to_string(), value.to_string()));
        self
    }

    /// Registers a string no CLI output may ever contain.
    pub fn secret(&self, s: &str) {
        self.secrets.lock().unwrap().push(s.to_string());
    }

    /// The drop folder by default: beside the data dir (`<tmp>/data-drop`), never in it.
    pub fn drop_dir(&self) -> PathBuf {
        self.dir.path().join("data-drop")
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("icsync.sock")
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("logs").join("icsync.log")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// `icsync --config C --data-dir D ARGS` with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_icsync"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("ICSYNC_API_KEY")
            .env_remove("ICSYNC_API_URL")
            .env_remove("ICSYNC_DATA_DIR")
            .env_remove("ICSYNC_DROP_DIR")
            .env_remove("ICSYNC_DEFAULT_COUNTRY")
            .env("ICSYNC_CONFIG", &self.config)
            .env(icsync::crypto::keyring::ENV_KEY_FILE, self.data_key_file())
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LOG", LOG_FILTER);
        if let Some(key) = &self.env_key {
            cmd.env("ICSYNC_API_KEY", key);
        }
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Panics if `text` carries a registered secret.
    pub fn assert_no_secret(&self, what: &str, text: &str) {
        for s in self.secrets.lock().unwrap().iter() {
            assert!(!text.contains(s.as_str()), "{what} contains the API key");
        }
    }

    /// Runs a CLI command to completion; its output is checked for secrets.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        self.assert_no_secret(
            &format!("stdout of {args:?}"),
            &String::from_utf8_lossy(&out.stdout),
        );
        self.assert_no_secret(
            &format!("stderr of {args:?}"),
            &String::from_utf8_lossy(&out.stderr),
        );
        out
    }

    /// A CLI command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "icsync {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// `icsync status --json`.
    pub fn status(&self) -> Value {
        self.json(&["status", "--json"])
    }

    /// Polls `status --json` until `cond` holds; returns that status.
    pub fn wait_status(
        &self,
        what: &str,
        deadline: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        poll_until(what, deadline, || {
            let s = self.status();
            if cond(&s) {
                Ok(s)
            } else {
                Err(s)
            }
        })
    }

    /// `icsync add ARGS`: the new record's id.
    pub fn add(&self, args: &[&str]) -> String {
        let mut all = vec!["add"];
        all.extend_from_slice(args);
        let q = self.json(&[all.as_slice(), &["--json"]].concat());
        q["id"].as_str().unwrap().to_string()
    }

    /// Spawns `icsync daemon` (stderr to a file in the temp dir) without waiting for it.
    pub fn spawn_daemon(&self, extra: &[&str]) -> DaemonProcess {
        let n = self.spawned.fetch_add(1, Ordering::SeqCst);
        let stderr_path = self.dir.path().join(format!("daemon-{n}.stderr"));
        let stderr = File::create(&stderr_path).unwrap();
        let mut args = vec!["daemon"];
        args.extend_from_slice(extra);
        // Its start-up banner (stdout) lands in the same file, ahead of any error.
        let child = self
            .command(&args)
            .stdout(Stdio::from(stderr.try_clone().unwrap()))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        self.daemon_logs.lock().unwrap().push(stderr_path.clone());
        DaemonProcess { child, stderr_path }
    }

    /// Starts `icsync daemon` and waits (with a deadline) until it answers on its socket.
    pub fn start_daemon(&self, extra: &[&str]) -> DaemonProcess {
        let mut daemon = self.spawn_daemon(extra);
        let until = Instant::now() + DAEMON_READY;
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}) before answering; stderr:\n{}",
                    daemon.stderr()
                );
            }
            if daemon_serves(&self.socket()) {
                return daemon;
            }
            assert!(
                Instant::now() < until,
                "the daemon did not answer on {} within {DAEMON_READY:?}; stderr:\n{}",
                self.socket().display(),
                daemon.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// The daemon log file and every daemon's stderr, concatenated.
    pub fn all_daemon_output(&self) -> String {
        let mut text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        for path in self.daemon_logs.lock().unwrap().iter() {
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        text
    }

    /// Asserts that the daemon's log file and stderr hold no registered secret and none of
    /// `pii` (customer names, emails).
    pub fn assert_daemon_output_clean(&self, pii: &[&str]) {
        let log = self.all_daemon_output();
        assert!(
            self.log_file().exists(),
            "the daemon wrote no log file at {}",
            self.log_file().display()
        );
        self.assert_no_secret("the daemon's log or stderr", &log);
        for p in pii {
            assert!(
                !log.contains(p),
                "the daemon's log or stderr contains customer data {p:?}"
            );
        }
    }
}

/// True when something on `socket` greets like an icsync daemon.
/// The daemon answers `status`: its first session serves (store open, key read, engine
/// built), so what it printed at start is on its stderr and its status is the real one.
pub fn daemon_serves(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"{\"id\": 1, \"request\": {\"method\": \"status\"}}\n")
        .is_err()
    {
        return false;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // The hello, then the reply to request 1.
    for _ in 0..2 {
        line.clear();
        if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            return false;
        }
    }
    line.contains("\"id\":1") || line.contains("\"id\": 1")
}

pub fn daemon_answers(socket: &Path) -> bool {
    let Ok(stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    matches!(BufReader::new(stream).read_line(&mut line), Ok(n) if n > 0)
        && line.contains("\"hello\"")
}

/// A running `icsync daemon`, killed on drop.
pub struct DaemonProcess {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl DaemonProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL, as a crash or power loss would; waits until the process is gone.
    pub fn kill(mut self) {
        send_signal(self.pid(), "KILL");
        let _ = wait_with_deadline(&mut self.child, Duration::from_secs(10));
    }

    /// Sends `signal` and waits up to `deadline` for the exit; returns the status and how
    /// long the exit took.
    pub fn stop_with(mut self, signal: &str, deadline: Duration) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        send_signal(self.pid(), signal);
        let status = wait_with_deadline(&mut self.child, deadline);
        (status, sent.elapsed())
    }

    /// Waits up to `deadline` for the process to exit by itself.
    pub fn wait(mut self, deadline: Duration) -> ExitStatus {
        wait_with_deadline(&mut self.child, deadline)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The sandbox's admin API for synchronous tests (each call runs on a private runtime).
pub struct BlockingAdmin {
    runtime: tokio::runtime::Runtime,
    admin: AdminClient,
}

impl BlockingAdmin {
    pub fn new(sandbox: &SandboxProcess) -> BlockingAdmin {
        BlockingAdmin {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            admin: AdminClient::new(sandbox),
        }
    }

    /// The demo organisation's customers, oldest first.
    pub fn customers(&self) -> Vec<Value> {
        self.runtime.block_on(self.admin.customers("demo"))
    }

    pub fn set_faults(&self, faults: Value) {
        self.runtime.block_on(self.admin.set_faults(faults));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then released), for a server
/// started later on a known address.
pub fn reserve_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
