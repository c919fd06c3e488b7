//! What a person sees when something is wrong, from the real `icsync` binary: a user's error
//! is one plain `error:` line (and a `hint:`), with no colour or backtrace text when piped or
//! with `NO_COLOR`; a TOML mistake is named by line and key; a URL's password is never echoed;
//! `show` spells enums as the API does; a key file saved by Notepad (BOM, CRLF) works, and a
//! malformed key is reported as invalid by `status` and in the log, also when the daemon
//! re-reads a replaced key file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::daemon::{poll_until, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};

const DEADLINE: Duration = Duration::from_secs(30);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A user's error as it must look when piped: exit status 1, `error: ` first, at most an
/// `error:` and a `hint:` line, no ESC byte and no backtrace text.
fn assert_plain_user_error(what: &str, out: &Output) -> String {
    let text = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {text}");
    assert!(text.starts_with("error: "), "{what}: {text}");
    assert!(!text.contains('\u{1b}'), "{what}: ESC in {text:?}");
    assert!(!text.to_lowercase().contains("backtrace"), "{what}: {text}");
    assert!(!text.contains("Location:"), "{what}: {text}");
    let lines: Vec<_> = text.lines().collect();
    assert!(lines.len() <= 2, "{what}: {text}");
    if let Some(second) = lines.get(1) {
        assert!(second.starts_with("hint: "), "{what}: {text}");
    }
    text
}

/// `env`'s command with no `RUST_BACKTRACE` at all (the helper sets it to 0).
fn piped(env: &DaemonEnv, args: &[&str]) -> Output {
    let out = env
        .command(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    env.assert_no_secret(&format!("{args:?}"), &stderr(&out));
    out
}

#[test]
fn a_bad_id_a_bad_config_and_no_daemon_are_each_one_plain_line_when_piped() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");

    let text = assert_plain_user_error("show zzzzzzzz", &piped(&env, &["show", "zzzzzzzz"]));
    assert!(text.contains("zzzzzzzz"), "{text}");
    assert!(
        !text.contains("Some("),
        "a Debug form reached the user: {text}"
    );

    let text = assert_plain_user_error("show 01234567", &piped(&env, &["show", "01234567"]));
    assert!(text.contains("hint: `icsync list`"), "{text}");

    let usage = piped(&env, &["list", "--state", "nope"]);
    assert_eq!(usage.status.code(), Some(1), "{}", stderr(&usage));
    assert!(stderr(&usage).starts_with("error: invalid value 'nope'"));
    assert!(!stderr(&usage).contains('\u{1b}'));

    let text = assert_plain_user_error("unlock", &piped(&env, &["unlock"]));
    assert!(text.contains("no daemon is running"), "{text}");

    env.add_config("concurrency = \"eight\"");
    let line = std::fs::read_to_string(&env.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("concurrency"))
        .unwrap()
        + 1;
    let text = assert_plain_user_error("a bad config", &piped(&env, &["status"]));
    assert!(text.contains(&format!("line {line}, ")), "{text}");
    assert!(text.contains("key `concurrency`"), "{text}");
    assert!(text.contains(&env.config.display().to_string()), "{text}");
    assert!(text.contains("hint: "), "{text}");
}

#[test]
fn a_missing_config_file_is_one_line_naming_it_even_with_rust_backtrace_1() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let missing = env.config.with_file_name("nowhere.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_icsync"))
        .args(["--config", missing.to_str().unwrap(), "status"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let text = assert_plain_user_error("a missing config", &out);
    assert!(text.contains("nowhere.toml"), "{text}");
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
}

/// Runs `icsync ARGS` on a pseudo-terminal (util-linux `script`), so that colour would be
/// allowed; returns everything it wrote, or None (with the reason printed) without `script`.
fn on_a_terminal(env: &DaemonEnv, args: &[&str], no_color: bool) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed (needed for a terminal)");
        return None;
    }
    let bin = env!("CARGO_BIN_EXE_icsync");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let cmd = env.command(&[]);
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    script
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm-256color");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script.output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn no_color_turns_colour_off_even_on_a_terminal() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let args = [
        "--config",
        env.config.to_str().unwrap(),
        "--data-dir",
        env.data_dir.to_str().unwrap(),
        "lock",
        "--no-such-flag",
    ];
    // On a terminal the usage error is coloured (so the check below can see colour)...
    let Some(coloured) = on_a_terminal(&env, &args, false) else {
        return;
    };
    assert!(
        coloured.contains('\u{1b}'),
        "no colour on a terminal: {coloured:?}"
    );
    // ...and NO_COLOR takes every ESC away, from usage errors and from ours.
    let plain = on_a_terminal(&env, &args, true).unwrap();
    assert!(plain.contains("--no-such-flag"), "{plain:?}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR: {plain:?}"
    );
    let args = &args[..args.len() - 1];
    let ours = on_a_terminal(&env, args, true).unwrap();
    assert!(ours.contains("error: no daemon is running"), "{ours:?}");
    assert!(
        !ours.contains('\u{1b}'),
        "colour despite NO_COLOR: {ours:?}"
    );
    assert!(!ours.to_lowercase().contains("backtrace"), "{ours:?}");
}

#[test]
fn a_url_with_a_password_is_never_echoed_with_it() {
    const PASSWORD: &str = "hunter2pw";
    let url = format!("https://alice:{PASSWORD}@api.example.invalid");
    let env = DaemonEnv::new(&url, "");
    env.secret(PASSWORD);

    let out = piped(&env, &["daemon"]);
    let text = assert_plain_user_error("daemon with user:pass in api_url", &out);
    assert!(
        text.contains("https://alice:***@api.example.invalid"),
        "{text}"
    );

    let flag = env
        .command(&["--api-url", &url, "doctor"])
        .output()
        .unwrap();
    let shown = format!("{}{}", String::from_utf8_lossy(&flag.stdout), stderr(&flag));
    assert!(
        !shown.contains(PASSWORD),
        "doctor echoed the password: {shown}"
    );
    assert!(shown.contains("alice:***@"), "{shown}");
    let json = env
        .command(&["--api-url", &url, "doctor", "--json"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&json.stdout).contains(PASSWORD));

    let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
    assert!(!log.contains(PASSWORD), "the log holds the password");
}

/// Writes `bytes` as the API key file (mode 0600, replaced atomically) and names it in the
/// config on first use.
fn write_raw_key_file(env: &DaemonEnv, bytes: &[u8]) -> PathBuf {
    let path = env.config.with_file_name("api-key");
    let first = !path.exists();
    let tmp = env.config.with_file_name("api-key.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    if first {
        env.add_config(&format!("api_key_file = \"{}\"", path.display()));
    }
    path
}

#[test]
fn a_notepad_key_file_syncs_and_show_prints_the_api_spelling() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "");
    env.secret(DEMO_KEY);
    write_raw_key_file(&env, format!("\u{feff}{DEMO_KEY}\r\n").as_bytes());

    let status = env.status();
    assert!(status["api_key_problem"].is_null(), "{status}");
    let daemon = env.start_daemon(&[]);
    let id = env.add(&["--full-name", "Zqpii Notepad"]);
    let status = env.wait_status("the record synced", DEADLINE, |s| s["synced"] == 1);
    assert!(status["paused"].is_null(), "{status}");
    assert_eq!(admin.customers().len(), 1);

    let shown = env.ok(&["show", &id]);
    assert!(shown.contains("kyc_status NOT_STARTED"), "{shown}");
    assert!(shown.contains("added_via INTEGRATION"), "{shown}");
    assert!(!shown.contains("NotStarted"), "{shown}");
    assert!(shown.contains(" created r1"), "{shown}");

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    env.assert_daemon_output_clean(&["Zqpii"]);
}

fn log_count(env: &DaemonEnv, needle: &str) -> usize {
    std::fs::read_to_string(env.log_file())
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn a_malformed_key_is_reported_as_invalid_at_start_and_when_the_file_is_replaced() {
    const BROKEN: &str = "ic_test_demo pasted twice ic_test_demo";
    let sandbox = SandboxOptions::new().admin().start();
    let env = DaemonEnv::new(&sandbox.base_url, "");
    env.secret(DEMO_KEY);
    env.secret("pasted twice");
    let key_file = write_raw_key_file(&env, format!("{BROKEN}\n").as_bytes());
    let invalid = format!("API key in file {} is not valid", key_file.display());

    // At start: paused as invalid (not "no API key configured"), in status and in the log.
    let daemon = env.start_daemon(&[]);
    let status = env.status();
    let paused = status["paused"].as_str().unwrap_or_default();
    assert!(paused.contains(&invalid), "{status}");
    assert!(!paused.contains("no API key configured"), "{status}");
    assert!(
        status["api_key_problem"]
            .as_str()
            .is_some_and(|p| p.contains(&invalid)),
        "{status}"
    );
    poll_until("the invalid key in the log", DEADLINE, || {
        (log_count(&env, &invalid) >= 1).then_some(()).ok_or(())
    });

    let doctor = env.cli(&["doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "api_key")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "fail", "{check}");
    assert!(
        check["message"]
            .as_str()
            .is_some_and(|m| m.contains("other than visible ASCII")),
        "{check}"
    );

    // A good key lifts the pause by itself.
    write_raw_key_file(&env, format!("{DEMO_KEY}\n").as_bytes());
    env.add(&["--full-name", "Zqpii Replaced"]);
    env.wait_status("the record synced", DEADLINE, |s| s["synced"] == 1);

    // Replaced by a malformed key: the log says so (once), status names the problem.
    let before = log_count(&env, &invalid);
    write_raw_key_file(&env, format!("{BROKEN}\r\n").as_bytes());
    poll_until("the replaced invalid key in the log", DEADLINE, || {
        (log_count(&env, &invalid) > before).then_some(()).ok_or(())
    });
    let text = env.ok(&["status"]);
    assert!(text.contains(&format!("api key: the {invalid}")), "{text}");
    let status = env.status();
    assert!(
        status["api_key_problem"]
            .as_str()
            .is_some_and(|p| p.contains(&invalid)),
        "{status}"
    );

    let (exit, _) = daemon.stop_with("TERM", Duration::from_secs(15));
    assert!(exit.success(), "{exit}");
    assert_eq!(
        log_count(&env, &invalid),
        before + 1,
        "logged more than once"
    );
    env.assert_daemon_output_clean(&["Zqpii"]);
}
