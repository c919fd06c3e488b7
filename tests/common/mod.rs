//! Shared test support: start the real `icsync sandbox` binary on an ephemeral port and talk
//! to it over real HTTP. Used by the sandbox tests and by any test that needs a live API
//! (the sync daemon's tests), so it knows nothing about what a test checks.
//!
//! [`SandboxProcess`] owns the child process and kills it on drop, so a failing test never
//! leaves a server behind; [`http`] wraps reqwest with the contract's headers.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the sandbox may take to print its `listening on` line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// How long a terminated sandbox may take to exit.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// The demo organisation's key, used when no `--org` is given.
pub const DEMO_KEY: &str = "ic_test_demo";

/// A running `icsync sandbox` child process.
pub struct SandboxProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, as printed by the sandbox.
    pub base_url: String,
    /// The admin token it was started with, if any.
    pub admin_token: Option<String>,
    /// The stdout lines printed before `listening on` (such as the demo key notice).
    pub banner: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

/// What to start the sandbox with.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Extra arguments after `sandbox` (`--listen 127.0.0.1:0` is added unless given).
    pub args: Vec<String>,
    /// Starts the admin API with this token.
    pub admin_token: Option<String>,
}

impl SandboxOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Enables the admin API with a fixed test token.
    pub fn admin(mut self) -> Self {
        self.admin_token = Some("test-admin-token".to_string());
        self
    }

    pub fn start(self) -> SandboxProcess {
        SandboxProcess::start(self)
    }
}

fn drain_to(reader: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl SandboxProcess {
    /// Starts the sandbox and waits (with a deadline) for its `listening on` line.
    pub fn start(options: SandboxOptions) -> SandboxProcess {
        let mut args = vec!["sandbox".to_string()];
        if !options.args.iter().any(|a| a == "--listen") {
            args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        if let Some(token) = &options.admin_token {
            args.extend(["--admin-token".to_string(), token.clone()]);
        }
        args.extend(options.args.iter().cloned());
        let mut child = Command::new(env!("CARGO_BIN_EXE_icsync"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn icsync sandbox");

        let stderr = Arc::new(Mutex::new(String::new()));
        drain_to(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            // Keeps reading after the interesting line so the pipe never fills up.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut banner = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => match line.strip_prefix("listening on ") {
                    Some(url) => {
                        return SandboxProcess {
                            child,
                            base_url: url.trim().to_string(),
                            admin_token: options.admin_token,
                            banner,
                            stderr,
                        }
                    }
                    None => banner.push(line),
                },
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(100)); // let stderr drain
                    panic!(
                        "sandbox did not print `listening on` ({e:?}); args {args:?}; exit {status:?}; stdout {banner:?}; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Starts a sandbox with default options plus `args`.
    pub fn with_args(args: &[&str]) -> SandboxProcess {
        SandboxOptions::new().args(args.iter().copied()).start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the sandbox wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    pub fn terminate(self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends the named signal (`TERM`, `INT`) and waits (with a deadline) for the exit status.
    pub fn stop_with(self, signal: &str) -> ExitStatus {
        self.signal(signal);
        self.wait()
    }

    /// Sends the named signal without waiting.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits (with a deadline) for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        wait_with_deadline(&mut self.child, EXIT_DEADLINE)
    }

    /// Kills the process outright (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`) to one process id.
pub fn send_signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Runs `cmd` to completion with `stdin` written to its standard input (passphrases on fd 0);
/// stdout and stderr are captured.
pub fn output_with_stdin(cmd: &mut Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A process that exits without reading its stdin is not this helper's failure.
    let _ = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("wait for child")
}

/// Polls the child until it exits; panics after `deadline`.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return status;
        }
        assert!(
            Instant::now() < until,
            "process did not exit within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion with `args` (for start-up failures); returns
/// (status, stdout, stderr).
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_icsync"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run icsync");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The Unix permission bits of a file.
#[cfg(unix)]
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
pub mod daemon;

/// Opens the store in `store_dir` in the test process, unlocked with the key file at
/// `key_file` (created with the store): tests never touch the user's own key file.
pub fn open_store(store_dir: &Path, key_file: &Path) -> icsync::store::Store {
    icsync::store::Store::open_with_key(
        store_dir,
        icsync::store::StoreOptions::default(),
        &icsync::crypto::KeyConfig::file(key_file),
        None,
    )
    .expect("open the test store")
}

/// Runs `cmd` (the icsync binary, or a wrapper such as `prlimit` around it) with `args` as a
/// command of its own: working dir `dir`, data dir `dir/data`, an empty config
/// `dir/icsync.toml`, the store key file `dir/data.key`, and no API key.
pub fn run_isolated(dir: &Path, mut cmd: Command, args: &[&str]) -> std::process::Output {
    let config = dir.join("icsync.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    cmd.current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("ICSYNC_CONFIG", config)
        .env(icsync::crypto::keyring::ENV_KEY_FILE, dir.join("data.key"))
        .env_remove("ICSYNC_API_KEY")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}
