//! Issue 17's "done when" for the drop folder: with default settings, whatever comes in
//! through the drop folder leaves no customer field in any file of the data dir.
//!
//! The real binary runs with every default: `HOME`, `XDG_CONFIG_HOME` and `XDG_DATA_HOME`
//! point into a temp dir (so the defaults land there, never in the user's own folders), no
//! `--config`, `--data-dir` or `--drop-dir`, no `ICSYNC_*` variable but the API key. A CSV
//! (with one refused row), an NDJSON and a JSON file of generated people are dropped, the
//! daemon syncs them to a real sandbox, and then every file under the data dir (store, log,
//! socket, lock: every byte, recursively) is searched for each field value. The drop folder
//! holds nothing but the refused row's report and copy, and `purge` erases those.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::daemon::{poll_until, DaemonEnv, DaemonProcess, FAST_CONFIG, LOG_FILTER};
use common::{SandboxOptions, DEMO_KEY};

const DEADLINE: Duration = Duration::from_secs(120);

/// A temp home in which every icsync default lands.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(api_url: &str) -> Home {
        let home = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        let config_dir = home.path().join(".config/icsync");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("icsync.toml"),
            format!("api_url = \"{api_url}\"\n{FAST_CONFIG}drop_quiet_ms = 200\n"),
        )
        .unwrap();
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the platform default puts the data dir under this home (Linux).
    fn data_dir(&self) -> PathBuf {
        self.path().join(".local/share/icsync")
    }

    fn drop_dir(&self) -> PathBuf {
        self.path().join("icsync-drop")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_icsync"));
        cmd.args(args)
            .stdin(Stdio::null())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("XDG_DATA_HOME", self.path().join(".local/share"))
            .env_remove("ICSYNC_CONFIG")
            .env_remove("ICSYNC_API_URL")
            .env_remove("ICSYNC_DATA_DIR")
            .env_remove("ICSYNC_DROP_DIR")
            .env_remove("ICSYNC_DEFAULT_COUNTRY")
            .env_remove(icsync::crypto::keyring::ENV_KEY_FILE)
            .env("ICSYNC_API_KEY", DEMO_KEY)
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LOG", LOG_FILTER);
        cmd
    }

    fn cli(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_slice(&self.cli(args).stdout).unwrap()
    }

    /// The daemon, its output in a file beside (not in) the data dir.
    fn start_daemon(&self) -> DaemonProcess {
        let stderr_path = self.path().join("daemon.stderr");
        let out = std::fs::File::create(&stderr_path).unwrap();
        let child = self
            .command(&["daemon"])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let daemon = DaemonProcess { child, stderr_path };
        poll_until("the daemon to answer", DEADLINE, || {
            let out = self.command(&["status", "--json"]).output().unwrap();
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(s) if s["daemon"] == true => Ok(()),
                _ => Err(daemon.stderr()),
            }
        });
        daemon
    }
}

/// Generated people: a name and an email no other test or fixture holds.
fn person(i: usize) -> (String, String) {
    (
        format!("Zqvela Kartoffski{i}"),
        format!("zqvela{i}.kartoffski@faker-example.org"),
    )
}

/// Writes `text` under a temporary name and renames it into `dir`: a whole file appears.
fn drop_file(dir: &Path, name: &str, text: &str) {
    let part = dir.join(format!("{name}.part"));
    std::fs::write(&part, text).unwrap();
    std::fs::rename(&part, dir.join(name)).unwrap();
}

/// Every regular file under `root`, recursively (links not followed).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics naming the file and the value when any file under `root` holds any of `values`.
fn assert_no_value_in(root: &Path, values: &[String]) -> usize {
    let files = files_under(root);
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        for v in values {
            assert!(
                !find(&bytes, v.as_bytes()),
                "{} holds the customer value {v:?}",
                file.display()
            );
        }
    }
    files.len()
}

#[test]
fn with_default_settings_no_dropped_value_rests_in_the_data_dir() {
    let sandbox = SandboxOptions::new().start();
    let home = Home::new(&sandbox.base_url);
    let daemon = home.start_daemon();
    let (data, drop) = (home.data_dir(), home.drop_dir());
    assert!(
        data.join("icsync.sock").exists(),
        "the data dir is not where expected"
    );
    assert!(drop.join("rejected").is_dir());
    assert!(!drop.starts_with(&data));

    let mut values = Vec::new();
    let mut csv = String::from("full_name,email\n");
    for i in 0..20 {
        let (n, e) = person(i);
        csv.push_str(&format!("{n},{e}\n"));
        values.extend([n, e]);
    }
    // One row refused: its values go to rejected/ in the drop folder, never the data dir.
    let refused = "Zqvela Refusedrow";
    csv.push_str(&format!("{refused},not-an-email-zqvela\n"));
    values.extend([refused.to_string(), "not-an-email-zqvela".to_string()]);
    let mut ndjson = String::new();
    for i in 20..40 {
        let (n, e) = person(i);
        ndjson.push_str(&serde_json::json!({"fullName": n, "email": e}).to_string());
        ndjson.push('\n');
        values.extend([n, e]);
    }
    let json: Vec<Value> = (40..60)
        .map(|i| {
            let (n, e) = person(i);
            values.extend([n.clone(), e.clone()]);
            serde_json::json!({"full_name": n, "email": e})
        })
        .collect();
    drop_file(&drop, "people.csv", &csv);
    drop_file(&drop, "people.ndjson", &ndjson);
    drop_file(&drop, "people.json", &serde_json::to_string(&json).unwrap());

    let status = poll_until("60 records synced", DEADLINE, || {
        let s = home.json(&["status", "--json"]);
        if s["synced"] == 60 && s["queued"] == 0 && s["sending"] == 0 {
            Ok(s)
        } else {
            Err(s)
        }
    });
    assert_eq!(status["total"], 60, "{status}");

    // The same content again under another name: a duplicate, removed, nothing queued.
    drop_file(&drop, "again.csv", &csv);
    let history = poll_until(
        "the duplicate to be noted",
        DEADLINE,
        || match drop_history(&home) {
            Some(h) if h.iter().any(|f| f["file"] == "again.csv") => Ok(h),
            other => Err(other),
        },
    );
    let again = history.iter().find(|f| f["file"] == "again.csv").unwrap();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert!(
        again["note"].as_str().unwrap().contains("removed"),
        "{again}"
    );
    assert!(again["archived_as"].is_null(), "{again}");

    // The drop folder: every dropped file removed, only the refused row's report and copy.
    let mut left: Vec<String> = files_under(&drop)
        .iter()
        .map(|p| p.strip_prefix(&drop).unwrap().display().to_string())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["rejected/people.errors.txt", "rejected/people.rejected.csv"]
    );
    assert!(!drop.join("processed").exists());
    let copy = std::fs::read_to_string(drop.join("rejected/people.rejected.csv")).unwrap();
    assert!(copy.contains(refused), "{copy}");

    // Every byte of every file of the data dir, the store and the log among them.
    assert!(data.join("logs/icsync.log").exists());
    let searched = assert_no_value_in(&data, &values);
    assert!(
        searched >= 3,
        "only {searched} files under {}",
        data.display()
    );
    let out = std::fs::read_to_string(&daemon.stderr_path).unwrap();
    for v in &values {
        assert!(!out.contains(v.as_str()), "the daemon's output holds {v:?}");
    }

    // Retention erases the refused rows with the synced records' data (here: all of it).
    let cutoff = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let before = files_under(&drop);
    let dry = home.cli(&["purge", "--dry-run", "--synced-before", &cutoff]);
    let dry = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.contains("2 file(s) of refused rows in the drop folder's rejected/ would be erased"),
        "{dry}"
    );
    assert_eq!(files_under(&drop), before, "a dry run removes nothing");
    let purged = home.cli(&["purge", "--synced-before", &cutoff]);
    let purged = String::from_utf8_lossy(&purged.stdout);
    assert!(
        purged.contains("2 file(s) of refused rows in the drop folder's rejected/ were erased"),
        "{purged}"
    );
    assert_eq!(files_under(&drop), Vec::<PathBuf>::new());
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    assert_no_value_in(&data, &values);
}

#[test]
fn files_left_in_the_old_default_drop_folder_are_named_in_the_log_not_taken() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "drop_quiet_ms = 200");
    let old = env.data_dir.join("drop");
    std::fs::create_dir_all(old.join("processed")).unwrap();
    std::fs::write(old.join("processed/crm.csv"), "full_name\nZqvela Oldcopy\n").unwrap();
    std::fs::write(old.join("waiting.csv"), "full_name\nZqvela Waiting\n").unwrap();
    let daemon = env.start_daemon(&[]);
    let line = poll_until("the warning in the log", DEADLINE, || {
        let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
        match log
            .lines()
            .find(|l| l.contains("the drop folder of an older release"))
        {
            Some(l) => Ok(l.to_string()),
            None => Err(log),
        }
    });
    assert!(line.contains("2 file(s) remain in"), "{line}");
    assert!(
        line.contains(&env.drop_dir().display().to_string()),
        "{line}"
    );
    assert!(
        !line.contains("crm.csv") && !line.contains("waiting.csv"),
        "{line}"
    );
    assert!(
        old.join("waiting.csv").exists(),
        "the old folder is not watched nor emptied"
    );
    assert_eq!(env.status()["total"], 0);
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqvela"]);
}

/// The daemon's recent drop-folder files, as the control socket gives them.
fn drop_history(home: &Home) -> Option<Vec<Value>> {
    let socket = home.data_dir().join("icsync.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = icsync::control::Client::connect(&socket).await.ok()?;
        match client
            .request(icsync::control::Request::DropFiles)
            .await
            .ok()?
        {
            icsync::control::Reply::DropFiles { files, .. } => Some(
                files
                    .into_iter()
                    .map(|f| serde_json::to_value(f).unwrap())
                    .collect(),
            ),
            _ => None,
        }
    })
}
