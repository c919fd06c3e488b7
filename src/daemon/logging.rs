//! The daemon's log: `logs/icsync.log` in the data dir (created 0600), and stderr too with
//! `--verbose`. Level from `RUST_LOG` (default `info`). Nothing logged anywhere may carry the
//! API key or customer fields: log record ids, states and statuses instead.
//!
//! Bounded: the file rotates by size (`file-rotate`: `icsync.log.1` is the newest old file,
//! at most [`DEFAULT_KEEP`] are kept, each 0600), and warnings and errors from one place in
//! the code are rate-limited ([`RateLimiter`]): past a burst, they are counted and the count
//! is written with the next one let through ("N similar warnings suppressed").

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing::callsite::Identifier;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Environment variable overriding [`DEFAULT_MAX_BYTES`].
pub const ENV_LOG_MAX_BYTES: &str = "ICSYNC_LOG_MAX_BYTES";
/// Environment variable overriding [`DEFAULT_KEEP`].
pub const ENV_LOG_KEEP: &str = "ICSYNC_LOG_KEEP";
/// The size past which `icsync.log` is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 20;
/// How many rotated files are kept (`icsync.log.1` .. `icsync.log.5`): with the live file,
/// the log never takes much more than 6 x [`DEFAULT_MAX_BYTES`].
pub const DEFAULT_KEEP: usize = 5;

/// Warnings and errors one call site may write per [`RATE_WINDOW`] before the rest are
/// counted instead of written.
pub const RATE_BURST: u32 = 10;
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Installs the global subscriber. Returns the log file's path.
pub fn init(log_dir: &Path, verbose: bool) -> Result<PathBuf, LogError> {
    let path = log_dir.join("icsync.log");
    let open = || -> std::io::Result<()> {
        std::fs::create_dir_all(log_dir)?;
        #[cfg(unix)]
        std::fs::set_permissions(log_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        options().open(&path).map(drop)
    };
    open().map_err(|source| LogError::Open {
        path: path.clone(),
        source,
    })?;
    let (max_bytes, keep) = rotation_from_env();
    let writer = LogWriter::new(
        &path,
        max_bytes,
        keep,
        RateLimiter::new(RATE_BURST, RATE_WINDOW),
    );
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(filter());
    let stderr_layer = verbose.then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(crate::cli::error::stderr_colour())
            .with_filter(filter())
    });
    // A second init (tests running several daemons in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(path)
}

/// How every log file is opened: appended to, created 0600.
fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    // `read` as file-rotate asks of the options it is given.
    options.read(true).create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// The rotation size and count, from the environment where it holds positive numbers.
fn rotation_from_env() -> (u64, usize) {
    let positive = |name| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
    };
    let max = positive(ENV_LOG_MAX_BYTES).unwrap_or(DEFAULT_MAX_BYTES);
    let keep = positive(ENV_LOG_KEEP)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(DEFAULT_KEEP);
    (max, keep)
}

/// The file layer's writer: the rotating file, behind the rate limiter.
struct LogWriter {
    path: PathBuf,
    file: Mutex<FileRotate<AppendCount>>,
    limiter: Mutex<RateLimiter<Identifier>>,
}

impl LogWriter {
    fn new(path: &Path, max_bytes: u64, keep: usize, limiter: RateLimiter<Identifier>) -> Self {
        LogWriter {
            path: path.to_path_buf(),
            file: Mutex::new(FileRotate::new(
                path,
                AppendCount::new(keep),
                ContentLimit::BytesSurpassed(usize::try_from(max_bytes).unwrap_or(usize::MAX)),
                Compression::None,
                Some(options()),
            )),
            limiter: Mutex::new(limiter),
        }
    }
}

/// One event's output: the file, or nowhere when the event is suppressed.
enum LogLine<'a> {
    File {
        path: &'a Path,
        file: MutexGuard<'a, FileRotate<AppendCount>>,
    },
    Suppressed,
}

impl Write for LogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LogLine::File { path, file } => guarded_write(path, file, buf),
            LogLine::Suppressed => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LogLine::File { file, .. } => file.flush(),
            LogLine::Suppressed => Ok(()),
        }
    }
}

/// Writes through file-rotate, which asserts that the live file exists when it rotates: when
/// it cannot be there (out of descriptors, the directory removed and not creatable) the line
/// is dropped rather than the thread that logged it panicking.
fn guarded_write(
    path: &Path,
    file: &mut FileRotate<AppendCount>,
    buf: &[u8],
) -> std::io::Result<usize> {
    if !path.exists() {
        let recreated = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| options().open(path).map(drop));
        if recreated.is_err() {
            return Ok(buf.len());
        }
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| file.write(buf)))
        .unwrap_or(Ok(buf.len()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> LogLine<'a> {
        LogLine::File {
            path: &self.path,
            file: lock(&self.file),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LogLine<'a> {
        // Levels order by verbosity: WARN and ERROR are the ones at or below WARN.
        if *meta.level() > Level::WARN {
            return self.make_writer();
        }
        let admitted = lock(&self.limiter).admit(meta.callsite(), Instant::now());
        let Admit::Write { suppressed } = admitted else {
            return LogLine::Suppressed;
        };
        let mut line = self.make_writer();
        if suppressed > 0 {
            let note = format!(
                "{}  WARN {}: {suppressed} similar warnings suppressed (from {}:{})\n",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                meta.target(),
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0),
            );
            let _ = line.write_all(note.as_bytes());
        }
        line
    }
}

/// Whether one event may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it; `suppressed` were dropped from the same site since the last one written.
    Write {
        suppressed: u64,
    },
    Suppress,
}

/// Per call site: at most `burst` events per `window`; the rest are counted, and the count
/// goes with the next event admitted.
#[derive(Debug)]
pub struct RateLimiter<K> {
    burst: u32,
    window: Duration,
    sites: HashMap<K, Site>,
}

#[derive(Debug)]
struct Site {
    window_start: Instant,
    written: u32,
    suppressed: u64,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    pub fn new(burst: u32, window: Duration) -> Self {
        RateLimiter {
            burst,
            window,
            sites: HashMap::new(),
        }
    }

    pub fn admit(&mut self, site: K, now: Instant) -> Admit {
        let s = self.sites.entry(site).or_insert(Site {
            window_start: now,
            written: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(s.window_start) >= self.window {
            s.window_start = now;
            s.written = 0;
        }
        if s.written < self.burst {
            s.written += 1;
            Admit::Write {
                suppressed: std::mem::take(&mut s.suppressed),
            }
        } else {
            s.suppressed += 1;
            Admit::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_past_its_burst_is_counted_and_the_count_is_told_next_window() {
        let mut r = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.admit("a", t0), Admit::Write { suppressed: 0 });
        }
        for _ in 0..1000 {
            assert_eq!(r.admit("a", t0 + Duration::from_secs(1)), Admit::Suppress);
        }
        // Another site is not held back by the first.
        assert_eq!(r.admit("b", t0), Admit::Write { suppressed: 0 });
        let later = t0 + Duration::from_secs(61);
        assert_eq!(r.admit("a", later), Admit::Write { suppressed: 1000 });
        assert_eq!(r.admit("a", later), Admit::Write { suppressed: 0 });
    }

    #[test]
    fn the_file_layer_writes_a_burst_per_site_then_tells_how_many_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("icsync.log");
        let window = Duration::from_millis(200);
        let writer = LogWriter::new(&path, 1 << 20, 2, RateLimiter::new(3, window));
        let subscriber =
            tracing_subscriber::registry().with(fmt::layer().with_ansi(false).with_writer(writer));
        let warn_many = |n: usize| {
            for i in 0..n {
                tracing::warn!(attempt = i, "the same trouble again");
            }
        };
        tracing::subscriber::with_default(subscriber, || {
            warn_many(1000);
            tracing::info!("info lines are never held back");
            // The window passes (time, not a synchronisation).
            std::thread::sleep(window + Duration::from_millis(50));
            warn_many(1);
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("the same trouble again").count(), 4, "{text}");
        assert!(text.contains("997 similar warnings suppressed"), "{text}");
        assert!(text.contains("info lines are never held back"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
