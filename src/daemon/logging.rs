//! The daemon's log: `logs/icsync.log` in the data dir (created 0600), and stderr too with
//! `--verbose`. Level from `RUST_LOG` (default `info`). Nothing logged anywhere may carry the
//! API key or customer fields: log record ids, states and statuses instead.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

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
    let open = || -> std::io::Result<std::fs::File> {
        std::fs::create_dir_all(log_dir)?;
        #[cfg(unix)]
        std::fs::set_permissions(log_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path)
    };
    let file = open().map_err(|source| LogError::Open {
        path: path.clone(),
        source,
    })?;
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .with_filter(filter());
    let stderr_layer = verbose.then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    // A second init (tests running several daemons in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(path)
}
