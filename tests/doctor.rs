//! `icsync doctor` as a real process against real setups: each test plants one
//! misconfiguration on purpose (a bad config key, plain http to a remote host, a key file
//! others can read, a key the sandbox refuses, an API nobody answers on, a data dir others
//! can list, a stale socket, a corrupted index, a lost encryption key file) and asserts that
//! doctor names it with its fix and the right exit status. No output may carry the API key.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::daemon::{reserve_port, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::Value;

/// A config line keeping the store's key file inside the test's temp dir.
fn key_file_line(env: &DaemonEnv) -> String {
    format!(
        "key_file = \"{}\"",
        env.dir.path().join("data.key").display()
    )
}

/// An environment with a key (in the environment) and a private key file, so only what a
/// test plants can fail.
fn env_for(api_url: &str) -> DaemonEnv {
    let env = DaemonEnv::new(api_url, "").with_env_key(DEMO_KEY);
    env.add_config(&key_file_line(&env));
    env
}

struct Doctor {
    code: i32,
    checks: Vec<Value>,
}

impl Doctor {
    fn run(env: &DaemonEnv) -> Doctor {
        let out = env.cli(&["doctor", "--json"]);
        let text = String::from_utf8(out.stdout).unwrap();
        let checks: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("doctor --json is not a JSON array ({e}):\n{text}"));
        Doctor {
            code: out.status.code().unwrap(),
            checks,
        }
    }

    fn check(&self, name: &str) -> &Value {
        self.checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {:#?}", self.checks))
    }

    fn status(&self, name: &str) -> &str {
        self.check(name)["status"].as_str().unwrap()
    }

    fn message(&self, name: &str) -> &str {
        self.check(name)["message"].as_str().unwrap()
    }

    fn fix(&self, name: &str) -> &str {
        self.check(name)["fix"].as_str().unwrap_or_default()
    }

    fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| c["check"].as_str().unwrap())
            .collect()
    }
}

fn unreachable_api() -> String {
    format!("http://127.0.0.1:{}", reserve_port())
}

#[test]
fn a_setup_with_only_warnings_exits_zero_and_an_unreachable_api_is_a_warning() {
    let env = env_for(&unreachable_api());
    let d = Doctor::run(&env);
    assert_eq!(d.failed(), Vec::<&str>::new(), "{:#?}", d.checks);
    assert_eq!(d.code, 0);
    assert_eq!(d.status("config"), "ok");
    assert_eq!(d.status("api_auth"), "warn");
    assert!(
        d.message("api_auth").contains("cannot reach the API"),
        "{}",
        d.message("api_auth")
    );
    assert_eq!(d.status("daemon"), "warn");
    assert!(d.message("daemon").contains("not running"));
    // Doctor looks without touching: no data dir, store or key file was created.
    assert!(!env.data_dir.exists());
    assert!(!env.dir.path().join("data.key").exists());
}

#[test]
fn the_text_screen_gives_each_check_a_verdict_and_a_summary() {
    let env = env_for(&unreachable_api());
    let out = env.cli(&["doctor"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("icsync 0.1.0 (commit "), "{text}");
    assert!(text.contains("\nwarn  api_auth "), "{text}");
    assert!(text.contains("-> check the network"), "{text}");
    assert!(text.trim_end().ends_with("warning(s)"), "{text}");
}

#[test]
fn an_unknown_config_key_fails_and_is_named() {
    let env = env_for(&unreachable_api());
    env.add_config("api_urll = \"https://typo.example\"");
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("config"), "fail");
    assert!(
        d.message("config").contains("api_urll"),
        "{}",
        d.message("config")
    );
}

#[test]
fn plain_http_to_a_remote_host_fails_with_the_https_fix() {
    let env = env_for("http://api.example.com");
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("api_url"), "fail");
    assert!(d.message("api_url").contains("api.example.com"));
    assert!(d.fix("api_url").contains("https://"));
    // The key is not sent over a URL that is refused.
    assert_eq!(d.status("api_auth"), "info");
}

#[test]
fn a_key_file_others_can_read_fails_with_chmod_600() {
    let env = DaemonEnv::new(&unreachable_api(), "");
    env.add_config(&key_file_line(&env));
    let path = env.write_key_file(DEMO_KEY, 0o644);
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("api_key"), "fail");
    assert!(
        d.message("api_key").contains("mode 644"),
        "{}",
        d.message("api_key")
    );
    assert_eq!(d.fix("api_key"), format!("chmod 600 {}", path.display()));
}

#[test]
fn a_key_the_api_refuses_fails_and_the_right_one_passes_with_the_clock_checked() {
    let sandbox = SandboxOptions::new().start();
    let env = DaemonEnv::new(&sandbox.base_url, "");
    env.add_config(&key_file_line(&env));
    env.secret(DEMO_KEY);
    env.write_key_file("ic_test_wrong_key_for_doctor_91ab", 0o600);
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("api_key"), "ok");
    assert_eq!(d.status("api_auth"), "fail");
    assert!(
        d.message("api_auth").contains("401"),
        "{}",
        d.message("api_auth")
    );

    env.write_key_file(DEMO_KEY, 0o600);
    let d = Doctor::run(&env);
    assert_eq!(d.status("api_auth"), "ok", "{}", d.message("api_auth"));
    assert_eq!(d.status("clock"), "ok", "{}", d.message("clock"));
    assert_eq!(d.code, 0, "{:#?}", d.checks);
}

#[test]
fn a_data_dir_others_can_list_is_a_warning_with_chmod_700() {
    let env = env_for(&unreachable_api());
    std::fs::create_dir(&env.data_dir).unwrap();
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Doctor::run(&env);
    assert_eq!(d.status("data_dir"), "warn");
    assert!(
        d.message("data_dir").contains("mode 755"),
        "{}",
        d.message("data_dir")
    );
    assert_eq!(
        d.fix("data_dir"),
        format!("chmod 700 {}", env.data_dir.display())
    );

    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let d = Doctor::run(&env);
    assert_eq!(d.status("data_dir"), "fail");
    assert_eq!(d.code, 1);
}

#[test]
fn a_socket_file_nobody_answers_on_is_reported_stale() {
    let env = env_for(&unreachable_api());
    std::fs::create_dir(&env.data_dir).unwrap();
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    assert!(env.socket().exists());
    let d = Doctor::run(&env);
    assert_eq!(d.status("daemon"), "warn");
    assert!(
        d.message("daemon").contains("stale socket"),
        "{}",
        d.message("daemon")
    );
}

#[test]
fn a_running_daemon_is_reported_and_runs_the_store_check() {
    let sandbox = SandboxOptions::new().start();
    let env = env_for(&sandbox.base_url);
    let daemon = env.start_daemon(&[]);
    let d = Doctor::run(&env);
    assert_eq!(d.status("daemon"), "ok");
    assert!(
        d.message("daemon").contains("running (icsync 0.1.0"),
        "{}",
        d.message("daemon")
    );
    // The daemon runs the index check on the store it holds.
    assert_eq!(d.status("store"), "ok", "{}", d.message("store"));
    assert!(
        d.message("store").contains("indexes agree"),
        "{}",
        d.message("store")
    );
    assert_eq!(d.status("encryption"), "ok", "{}", d.message("encryption"));
    assert_eq!(d.code, 0, "{:#?}", d.checks);
    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success());
}

/// Queues one record with no daemon running: the CLI creates the store, keyring and key file.
fn store_with_a_record(env: &DaemonEnv) {
    env.add(&["--full-name", "Doctor Record", "--email", "doc@example.com"]);
}

#[test]
fn a_corrupted_index_entry_fails_the_store_check() {
    let env = env_for(&unreachable_api());
    store_with_a_record(&env);
    let d = Doctor::run(&env);
    assert_eq!(d.status("store"), "ok", "{}", d.message("store"));
    assert!(
        d.message("store").contains("1 records"),
        "{}",
        d.message("store")
    );

    // Planted from outside the store module on purpose: an email index entry no record holds.
    {
        let db = sled::open(env.store_dir().join("sled")).unwrap();
        db.open_tree("index.email")
            .unwrap()
            .insert(b"planted-term", b"not an id set".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("store"), "fail");
    assert!(
        d.message("store").contains("email index"),
        "{}",
        d.message("store")
    );
    assert!(!d.message("store").contains("doc@example.com"));
}

#[test]
fn a_lost_key_file_of_an_encrypted_store_fails_the_encryption_check() {
    let env = env_for(&unreachable_api());
    store_with_a_record(&env);
    let key_file = env.dir.path().join("data.key");
    assert_eq!(common::mode_of(&key_file), 0o600);
    assert_eq!(Doctor::run(&env).status("encryption"), "ok");

    std::fs::remove_file(&key_file).unwrap();
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("encryption"), "fail");
    assert!(
        d.message("encryption").contains("is missing"),
        "{}",
        d.message("encryption")
    );
    assert!(d
        .fix("encryption")
        .contains(&key_file.display().to_string()));
    assert!(!key_file.exists(), "doctor must not create a new key file");
}

#[test]
fn a_drop_dir_that_cannot_be_created_fails() {
    let env = env_for(&unreachable_api());
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    env.add_config(&format!("drop_dir = \"{}/drop\"", file.display()));
    let d = Doctor::run(&env);
    assert_eq!(d.code, 1);
    assert_eq!(d.status("drop_dir"), "fail", "{}", d.message("drop_dir"));
    assert!(d.message("drop_dir").contains("cannot be created"));
}

#[test]
fn a_daemon_of_another_version_is_named_with_the_restart_to_do() {
    use std::io::Write;
    let env = env_for(&unreachable_api());
    std::fs::create_dir(&env.data_dir).unwrap();
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(env.socket()).unwrap();
    // A daemon from a future release: it greets with protocol 99, then waits.
    let greeter = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"{\"hello\":{\"protocol\":99,\"version\":\"9.9.9\"}}\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut sink);
    });
    let d = Doctor::run(&env);
    greeter.join().unwrap();
    assert_eq!(d.code, 1);
    assert_eq!(d.status("daemon"), "fail");
    assert!(
        d.message("daemon").contains("icsync 9.9.9"),
        "{}",
        d.message("daemon")
    );
    assert!(d.fix("daemon").contains("restart"));
    assert_eq!(d.status("store"), "info", "a daemon holds the store");
}

/// A daemon of another release on the same control protocol answers, so nothing refuses it:
/// doctor warns with the restart to do, and every CLI command says so on stderr.
#[test]
fn a_daemon_of_another_release_on_the_same_protocol_is_flagged() {
    use std::io::{BufRead, Write};
    let env = env_for(&unreachable_api());
    std::fs::create_dir(&env.data_dir).unwrap();
    std::fs::set_permissions(&env.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(env.socket()).unwrap();
    let hello = format!(
        "{{\"hello\":{{\"protocol\":{},\"version\":\"0.0.1\"}}}}\n",
        icsync::control::PROTOCOL_VERSION
    );
    // Greets each connection as release 0.0.1, reads one request and hangs up without a
    // reply (the command then fails, after its warning).
    let greeter = std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.write_all(hello.as_bytes()).unwrap();
            let mut line = String::new();
            let _ = std::io::BufReader::new(&s).read_line(&mut line);
        }
    });
    let d = Doctor::run(&env);
    assert_eq!(d.status("daemon"), "warn", "{}", d.message("daemon"));
    assert!(
        d.message("daemon").contains("icsync 0.0.1"),
        "{}",
        d.message("daemon")
    );
    assert!(d.fix("daemon").contains("restart"));
    let out = env.cli(&["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: the running daemon is icsync 0.0.1"),
        "{stderr}"
    );
    drop(greeter);
}

/// A store key file kept inside the data dir works, but a copy of the data dir would carry
/// the key that opens it: doctor warns and says to move it.
#[test]
fn a_key_file_inside_the_data_dir_is_a_warning() {
    let env = env_for(&unreachable_api());
    let inside = env.data_dir.join("data.key");
    let run = |args: &[&str]| {
        env.command(args)
            .env(icsync::crypto::keyring::ENV_KEY_FILE, &inside)
            .output()
            .unwrap()
    };
    let added = run(&[
        "add",
        "--full-name",
        "Key Inside",
        "--email",
        "k@example.com",
    ]);
    assert!(added.status.success(), "{added:?}");
    assert!(
        inside.exists(),
        "the key file was created where ICSYNC_KEY_FILE said"
    );
    let out = run(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let d = Doctor {
        code: out.status.code().unwrap(),
        checks,
    };
    assert_eq!(
        d.status("encryption"),
        "warn",
        "{}",
        d.message("encryption")
    );
    assert!(
        d.message("encryption").contains("inside the data dir"),
        "{}",
        d.message("encryption")
    );
    assert!(d.fix("encryption").contains("move the key file"));
    // The store itself still opens and is checked.
    assert_eq!(d.status("store"), "ok", "{}", d.message("store"));
}

#[test]
fn files_left_in_an_older_releases_drop_folder_inside_the_data_dir_are_a_warning() {
    let env = env_for(&unreachable_api());
    let old = env.data_dir.join("drop").join("processed");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("crm.csv"), "full_name\nZqlegacy Person\n").unwrap();
    let d = Doctor::run(&env);
    assert_eq!(
        d.status("drop_place"),
        "warn",
        "{}",
        d.message("drop_place")
    );
    let message = d.message("drop_place");
    assert!(message.contains("1 file(s) remain in"), "{message}");
    assert!(
        message.contains(&env.drop_dir().display().to_string()),
        "{message}"
    );
    assert!(
        !message.contains("crm.csv") && !message.contains("Zqlegacy"),
        "{message}"
    );
}
