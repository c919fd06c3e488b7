//! `icsync demo`: everything a first look needs, started and stopped by one command: a
//! sandbox on a free loopback port (a child process), the daemon's engine, drop folder and
//! control socket on a fresh temporary data dir (run inside this process, not as a separate
//! `icsync daemon`: the banner, `demo --help` and the README say so), the sample files of
//! `assets/demo` dropped into its drop folder, and the TUI. Quitting the TUI, or SIGTERM,
//! SIGHUP (a closed terminal) or SIGINT, stops the engine and the sandbox and removes the
//! temporary dir; `--keep` leaves it and prints where the store and its key file are.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::interactive::{InProcess, InteractiveError};
use crate::config::{self, Defaults, FileConfig, Overrides, Settings};

/// The demo organisation's key on the sandbox (its default org).
const DEMO_KEY: &str = "ic_test_demo";

/// The sample files, built into the binary so the demo works from any directory.
const SAMPLES: [(&str, &str); 3] = [
    (
        "crm-export.csv",
        include_str!("../../assets/demo/crm-export.csv"),
    ),
    (
        "field-captures.ndjson",
        include_str!("../../assets/demo/field-captures.ndjson"),
    ),
    (
        "erp-batch.json",
        include_str!("../../assets/demo/erp-batch.json"),
    ),
];

/// Customers already on the sandbox before the files arrive: two hold emails that the CRM
/// export sends under other external_ids (409 conflicts), one has no external_id (adopted).
fn seed_customers() -> [serde_json::Value; 3] {
    [
        json!({"full_name": "Maria Garcia", "email": "maria.garcia@example.com", "external_id": "SF-0017"}),
        json!({"full_name": "Wei Zhang", "email": "wei.zhang@example.com", "external_id": "SF-0042"}),
        json!({"full_name": "James Smith", "email": "james.smith@example.com"}),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create the demo directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot start the sandbox: {0}")]
    Sandbox(String),
    #[error("cannot seed the sandbox: {0}")]
    Seed(String),
    #[error("cannot drop the sample files: {0}")]
    Drop(std::io::Error),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Interactive(#[from] InteractiveError),
}

/// The sandbox child, killed when stopped or dropped.
struct SandboxChild {
    child: Child,
    url: String,
}

impl SandboxChild {
    async fn start(latency_ms: u64) -> Result<SandboxChild, DemoError> {
        let exe = std::env::current_exe().map_err(|e| DemoError::Sandbox(e.to_string()))?;
        let mut child = Command::new(exe)
            .args(["sandbox", "--listen", "127.0.0.1:0", "--latency-ms"])
            .arg(latency_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| DemoError::Sandbox(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| DemoError::Sandbox("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(15), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| DemoError::Sandbox("it did not say where it listens".into()))?;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(SandboxChild { child, url })
    }

    /// The demo sandbox keeps nothing (no `--state`), so it is simply killed.
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn seed(url: &str) -> Result<(), DemoError> {
    let http = reqwest::Client::new();
    for body in seed_customers() {
        let reply = http
            .post(format!("{url}/v1/customers"))
            .bearer_auth(DEMO_KEY)
            .json(&body)
            .send()
            .await
            .map_err(|e| DemoError::Seed(e.to_string()))?;
        if !reply.status().is_success() {
            return Err(DemoError::Seed(format!(
                "the sandbox answered {}",
                reply.status()
            )));
        }
    }
    Ok(())
}

/// Writes each sample under a temporary name and renames it, as a careful script would.
fn drop_samples(drop_dir: &Path) -> Result<(), DemoError> {
    // Private, as the daemon makes it: a folder others can write to is refused.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(drop_dir)
        .map_err(DemoError::Drop)?;
    for (name, text) in SAMPLES {
        let part = drop_dir.join(format!("{name}.part"));
        std::fs::write(&part, text).map_err(DemoError::Drop)?;
        std::fs::rename(&part, drop_dir.join(name)).map_err(DemoError::Drop)?;
    }
    Ok(())
}

fn demo_settings(root: &Path, api_url: &str) -> Result<Settings, DemoError> {
    let file = FileConfig {
        api_url: Some(api_url.to_string()),
        api_key: Some(DEMO_KEY.to_string()),
        drop_quiet_ms: Some(300),
        backoff_base_ms: Some(200),
        backoff_cap_secs: Some(5),
        ..FileConfig::default()
    };
    let data_dir = root.join("data");
    let overrides = Overrides {
        data_dir: Some(data_dir.clone()),
        drop_dir: Some(root.join("drop")),
        ..Overrides::default()
    };
    let defaults = Defaults {
        config_file: root.join("icsync.toml"),
        data_dir,
        // The demo's data key lives with its throwaway data, not in the user's config dir.
        key_file: root.join("data.key"),
        drop_dir: root.join("drop"),
    };
    Ok(config::resolve(file, overrides, &defaults, None)?)
}

/// What `--keep` prints: the kept store opens only with its data key, which is beside it.
fn kept_message(root: &Path) -> String {
    let data = root.join("data");
    let key = root.join("data.key");
    format!(
        "demo files kept in {root}\n  store:    {data}\n  data key: {key} (the store cannot be \
         read without it)\n  read it: {env}={key} icsync --data-dir {data} list",
        root = root.display(),
        data = data.display(),
        key = key.display(),
        env = crate::config::ENV_KEY_FILE,
    )
}

fn make_root() -> Result<PathBuf, DemoError> {
    let root = std::env::temp_dir().join(format!("icsync-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&root).map_err(DemoError::TempDir)?;
    Ok(root)
}

/// SIGTERM, SIGHUP or SIGINT (the TUI reads Ctrl-C as a key; this is the signal sent from
/// outside). Never completes where the handlers cannot be installed: then `q` is the way out.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => crate::tui::run::detach_from_terminal(),
        _ = int.recv() => {}
    }
}

/// Runs the demo until the user quits the TUI. `keep` leaves the temporary dir in place.
pub async fn run(keep: bool) -> Result<(), DemoError> {
    let root = make_root()?;
    let cleanup = Cleanup {
        root: root.clone(),
        keep,
    };
    crate::daemon::logging::init(&root.join("data").join("logs"), false)
        .map_err(|e| DemoError::Sandbox(e.to_string()))?;
    // Enough latency that the queue is seen draining rather than already empty.
    let sandbox = SandboxChild::start(400).await?;
    let result = async {
        seed(&sandbox.url).await?;
        let settings = demo_settings(&root, &sandbox.url)?;
        let socket = settings.socket_path();
        let drop_dir = settings.drop_dir.clone();
        let daemon = InProcess::start(settings).await?;
        drop_samples(&drop_dir)?;
        // One footer line at 80 columns: the daemon's work runs here, not in another process.
        let message = format!(
            "demo: sandbox {} · sync engine in this process · ? keys",
            sandbox.url
        );
        // `kill`, a closed terminal or Ctrl-C from outside end the demo as `q` does: the TUI
        // is dropped (its guard gives the terminal back), then everything is stopped.
        let shown = tokio::select! {
            shown = crate::tui::run(&socket, Some(&message)) => shown,
            () = stop_signal() => Ok(()),
        };
        let stopped = daemon.stop().await;
        shown.map_err(InteractiveError::from)?;
        stopped?;
        Ok::<(), DemoError>(())
    }
    .await;
    sandbox.stop().await;
    drop(cleanup);
    result
}

/// Removes the demo's temporary dir (or says where it is kept) however `run` ends, a panic
/// included: the sandbox child is killed on drop the same way.
struct Cleanup {
    root: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{}", kept_message(&self.root));
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_demo_names_its_store_and_the_key_file_it_needs() {
        let text = kept_message(Path::new("/tmp/icsync-demo-x"));
        assert!(text.contains("store:    /tmp/icsync-demo-x/data"), "{text}");
        assert!(
            text.contains("data key: /tmp/icsync-demo-x/data.key"),
            "{text}"
        );
        assert!(text.contains("cannot be read without it"), "{text}");
        assert!(
            text.contains("ICSYNC_KEY_FILE=/tmp/icsync-demo-x/data.key icsync --data-dir"),
            "{text}"
        );
    }
}
