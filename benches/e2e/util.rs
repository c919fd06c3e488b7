//! Shared plumbing of the end-to-end benchmark: the sandbox and daemon child processes, the
//! data generators, key configuration, `/proc` readings and percentiles. It measures nothing
//! itself.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use icsync::crypto::{KdfParams, KeyConfig, KeySourceKind};
use icsync::store::Payload;
use serde_json::{json, Value};

pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The sandbox's demo organisation key.
pub const DEMO_KEY: &str = "ic_test_demo";

pub fn icsync_bin() -> &'static str {
    env!("CARGO_BIN_EXE_icsync")
}

/// Sizes, reduced with `BENCH_QUICK=1` for a smoke run of the harness itself.
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// The comma-separated items of a selection variable (`BENCH_ONLY`, `BENCH_SYNC`); none when
/// it is unset or empty, which selects everything.
pub fn selection(var: &str) -> Option<Vec<String>> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    Some(v.split(',').map(|i| i.trim().to_string()).collect())
}

/// Whether `item` is selected by `var` (everything when it selects nothing).
pub fn selected(var: &str, item: &str) -> bool {
    selection(var).is_none_or(|items| items.iter().any(|i| i == item))
}

/// Whether only some of the bench was asked for (`BENCH_ONLY`, `BENCH_SYNC`): such a run
/// leaves docs/benchmarks.md alone.
pub fn partial() -> bool {
    ["BENCH_ONLY", "BENCH_SYNC"]
        .iter()
        .any(|v| selection(v).is_some())
}

/// Whether a part was asked for (`BENCH_ONLY=sync,ingest,drop,latency,big,compact`; all by default).
pub fn wanted(part: &str) -> bool {
    selected("BENCH_ONLY", part)
}

/// The file-key configuration of a store made by the bench (never the user's own key).
pub fn keys(dir: &Path) -> KeyConfig {
    KeyConfig {
        source: KeySourceKind::File,
        key_file: dir.join("data.key"),
        kdf: KdfParams::default(),
    }
}

/// The `i`th customer of a run tagged `tag`, as a request body.
pub fn body(tag: &str, i: usize) -> Value {
    json!({
        "full_name": format!("Person {tag} {i}"),
        "email": format!("p{i}.{tag}@example.org"),
        "external_id": format!("{tag}-{i}"),
        "phone": "+44 7700 900123",
    })
}

pub fn payloads(tag: &str, n: usize) -> BenchResult<Vec<Payload>> {
    (0..n)
        .map(|i| Payload::parse(&body(tag, i)).map_err(|e| format!("{e:?}").into()))
        .collect()
}

pub fn write_ndjson(path: &Path, tag: &str, n: usize) -> BenchResult<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        serde_json::to_writer(&mut out, &body(tag, i))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

pub fn write_csv(path: &Path, tag: &str, n: usize) -> BenchResult<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "full_name,email,external_id,phone")?;
    for i in 0..n {
        writeln!(
            out,
            "Person {tag} {i},p{i}.{tag}@example.org,{tag}-{i},+44 7700 900123"
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A field of `/proc/<pid>/status` in kB (`pid` None: this process).
pub fn proc_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time this process has used so far, user and system, all threads.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct it is given, which is zeroed and ours.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The CPU time (on CPU, from the scheduler's nanosecond count) of this process's threads
/// whose name starts with `prefix`, those alive now: a thread that ended is not counted.
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .sum()
}

/// The `q` quantile (0..=1) of `samples`, nearest rank.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Polls `check` every `every` until it answers `Some` or `deadline` passes.
pub fn poll<T>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> BenchResult<T> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > until {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(every);
    }
}

/// `icsync sandbox` as a child process, killed on drop.
pub struct Sandbox {
    child: Child,
    pub url: String,
}

impl Sandbox {
    pub fn start(latency_ms: u64) -> BenchResult<Sandbox> {
        let mut child = Command::new(icsync_bin())
            .args(["sandbox", "--listen", "127.0.0.1:0", "--latency-ms"])
            .arg(latency_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no sandbox stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(url) = line?.trim().strip_prefix("listening on ") {
                        break url.to_string();
                    }
                }
                None => return Err("the sandbox exited before listening".into()),
            }
        };
        // Keep reading so the sandbox never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Sandbox { child, url })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `icsync daemon` with its own config, killed on drop.
pub struct Daemon {
    child: Child,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
}

impl Daemon {
    /// `home` holds the config; the store is `<data_dir>/store`, the key `home/data.key`.
    /// Returns once the control socket accepts a connection.
    pub fn start(home: &Path, api_url: &str, data_dir: &Path, extra: &str) -> BenchResult<Daemon> {
        let d = Daemon::spawn(home, api_url, data_dir, extra)?;
        d.wait_socket()?;
        Ok(d)
    }

    /// The daemon process, started and not waited for.
    pub fn spawn(home: &Path, api_url: &str, data_dir: &Path, extra: &str) -> BenchResult<Daemon> {
        let config = home.join("icsync.toml");
        std::fs::write(
            &config,
            format!(
                "api_url = \"{api_url}\"\ndata_dir = \"{}\"\ndrop_dir = \"{}\"\n{extra}\n",
                data_dir.display(),
                home.join("drop").display()
            ),
        )?;
        let key_file = keys(home).key_file;
        let child = Command::new(icsync_bin())
            .arg("--config")
            .arg(&config)
            .arg("daemon")
            .env("ICSYNC_API_KEY", DEMO_KEY)
            .env("ICSYNC_KEY_FILE", &key_file)
            .env_remove("ICSYNC_DATA_DIR")
            .env_remove("ICSYNC_DROP_DIR")
            .env_remove("ICSYNC_API_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Daemon {
            child,
            config,
            data_dir: data_dir.to_path_buf(),
            key_file,
        })
    }

    /// Waits until the control socket accepts a connection.
    pub fn wait_socket(&self) -> BenchResult<()> {
        let socket = self.socket();
        poll(
            "the daemon's control socket",
            Duration::from_secs(120),
            Duration::from_millis(2),
            || std::os::unix::net::UnixStream::connect(&socket).ok(),
        )?;
        Ok(())
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("icsync.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn drop_dir(&self) -> PathBuf {
        self.config.with_file_name("drop")
    }

    /// SIGTERM, then waits for it to exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes the files under `path` take on disk (allocated blocks, as `du`; 0 for what cannot
/// be read).
pub fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
