//! Each verdict from planted facts: the rules `doctor` applies, without a process or a disk.

use std::path::PathBuf;

use chrono::{Duration, TimeZone, Utc};

use super::*;

fn dir(mode: u32, writable: bool) -> DirFact {
    DirFact {
        path: "/d".into(),
        state: DirState::Present { mode, writable },
    }
}

fn healthy() -> SettingsFacts {
    SettingsFacts {
        api_url: "https://api.example".into(),
        url: UrlFact::Https,
        api_key: ApiKeyFact::File {
            path: "/k".into(),
            problem: None,
        },
        probe: ProbeFact::Answered {
            status: 404,
            date: Some("Tue, 15 Nov 1994 08:12:31 GMT".into()),
            received: Utc.with_ymd_and_hms(1994, 11, 15, 8, 12, 32).unwrap(),
        },
        data_dir: dir(0o700, true),
        drop_dir: dir(0o700, true),
        drop_place: DropPlaceFact::Apart,
        daemon: DaemonFact::Running {
            version: env!("CARGO_PKG_VERSION").into(),
        },
        store: StoreFact::HeldByDaemon,
        encryption: EncryptionFact::KeyFile {
            path: "/c/data.key".into(),
            problem: None,
        },
        disk: DiskFact::Free {
            path: "/".into(),
            bytes: 50 << 30,
        },
    }
}

fn facts(s: SettingsFacts) -> Facts {
    Facts {
        config: ConfigFact::Loaded("/c/icsync.toml".into()),
        settings: Some(s),
    }
}

#[test]
fn a_healthy_setup_has_no_warning_and_exits_zero() {
    let checks = judge(&facts(healthy()));
    let names: Vec<&str> = checks.iter().map(|c| c.check).collect();
    assert_eq!(
        names,
        [
            "config",
            "api_url",
            "api_key",
            "api_auth",
            "data_dir",
            "drop_dir",
            "daemon",
            "store",
            "encryption",
            "clock",
            "disk"
        ]
    );
    for c in &checks {
        assert!(c.status <= Status::Info, "{c:?}");
        assert!(c.status == Status::Info || c.fix.is_none(), "{c:?}");
    }
    assert_eq!(exit_code(&checks), 0);
}

#[test]
fn an_invalid_config_is_the_only_verdict_and_fails() {
    let checks = judge(&Facts {
        config: ConfigFact::Invalid("config file /c is not valid: unknown field `api_urll`".into()),
        settings: None,
    });
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].message.contains("api_urll"));
    assert_eq!(exit_code(&checks), 1);
}

#[test]
fn no_config_file_is_a_warning_naming_where_to_put_one() {
    let c = judge_config(&ConfigFact::Absent(
        "/home/u/.config/icsync/icsync.toml".into(),
    ));
    assert_eq!(c.status, Status::Warn);
    assert!(c
        .fix
        .unwrap()
        .contains("/home/u/.config/icsync/icsync.toml"));
}

#[test]
fn plain_http_is_ok_on_loopback_warns_when_allowed_and_fails_otherwise() {
    let u = "http://x";
    assert_eq!(judge_api_url(u, &UrlFact::LoopbackHttp).status, Status::Ok);
    let allowed = judge_api_url(u, &UrlFact::InsecureAllowed { host: "x".into() });
    assert_eq!(allowed.status, Status::Warn);
    let refused = judge_api_url(u, &UrlFact::InsecureRefused { host: "x".into() });
    assert_eq!(refused.status, Status::Fail);
    assert!(refused.fix.unwrap().contains("https://"));
    assert_eq!(
        judge_api_url("ftp://x", &UrlFact::Invalid("bad scheme".into())).status,
        Status::Fail
    );
}

#[test]
fn a_key_file_others_can_read_fails_with_the_chmod_to_run() {
    let c = judge_api_key(&ApiKeyFact::File {
        path: "/home/u/api-key".into(),
        problem: Some(KeyFileProblem::TooOpen(0o644)),
    });
    assert_eq!(c.status, Status::Fail);
    assert!(c.message.contains("mode 644"), "{}", c.message);
    assert_eq!(c.fix.as_deref(), Some("chmod 600 /home/u/api-key"));
    assert_eq!(judge_api_key(&ApiKeyFact::Missing).status, Status::Fail);
    assert_eq!(judge_api_key(&ApiKeyFact::Inline).status, Status::Ok);
    let invalid = judge_api_key(&ApiKeyFact::InlineInvalid("the API key is empty".into()));
    assert_eq!(invalid.status, Status::Fail);
    assert!(invalid.message.contains("not valid"), "{}", invalid.message);
}

#[test]
fn a_401_fails_any_other_answer_passes_and_no_answer_warns() {
    let answered = |status| ProbeFact::Answered {
        status,
        date: None,
        received: Utc::now(),
    };
    assert_eq!(judge_api_auth(&answered(401)).status, Status::Fail);
    for status in [200, 404, 403, 429, 500] {
        assert_eq!(
            judge_api_auth(&answered(status)).status,
            Status::Ok,
            "{status}"
        );
    }
    let offline = judge_api_auth(&ProbeFact::NoAnswer("cannot connect: refused".into()));
    assert_eq!(offline.status, Status::Warn);
    assert!(offline.message.contains("cannot reach the API"));
    assert_eq!(
        judge_api_auth(&ProbeFact::NotTried("no usable API key".into())).status,
        Status::Info
    );
}

#[test]
fn directories_must_be_private_and_writable() {
    assert_eq!(
        judge_dir("data_dir", "data dir", &dir(0o700, true)).status,
        Status::Ok
    );
    let listable = judge_dir("data_dir", "data dir", &dir(0o755, true));
    assert_eq!(listable.status, Status::Warn);
    assert!(listable.message.contains("mode 755"));
    assert_eq!(listable.fix.as_deref(), Some("chmod 700 /d"));
    assert_eq!(
        judge_dir("data_dir", "data dir", &dir(0o777, true)).status,
        Status::Fail
    );
    assert_eq!(
        judge_dir("data_dir", "data dir", &dir(0o700, false)).status,
        Status::Fail
    );
    let missing = |under: Option<PathBuf>| DirFact {
        path: "/d".into(),
        state: DirState::Missing {
            creatable_under: under,
        },
    };
    assert_eq!(
        judge_dir("data_dir", "data dir", &missing(Some("/".into()))).status,
        Status::Ok
    );
    assert_eq!(
        judge_dir("drop_dir", "drop dir", &missing(None)).status,
        Status::Fail
    );
}

#[test]
fn daemon_states_each_have_their_verdict() {
    let s = PathBuf::from("/d/icsync.sock");
    assert_eq!(
        judge_daemon(&DaemonFact::NotRunning { socket: s.clone() }).status,
        Status::Warn
    );
    let stale = judge_daemon(&DaemonFact::StaleSocket { socket: s.clone() });
    assert_eq!(stale.status, Status::Warn);
    assert!(stale.message.contains("stale socket /d/icsync.sock"));
    assert_eq!(
        judge_daemon(&DaemonFact::Stuck { socket: s }).status,
        Status::Fail
    );
    let same = judge_daemon(&DaemonFact::Running {
        version: env!("CARGO_PKG_VERSION").into(),
    });
    assert_eq!(same.status, Status::Ok);
    let older = judge_daemon(&DaemonFact::Running {
        version: "0.0.1".into(),
    });
    assert_eq!(
        older.status,
        Status::Warn,
        "another release on the same protocol"
    );
    assert!(older.message.contains("icsync 0.0.1"), "{}", older.message);
    assert!(older.fix.unwrap().contains("restart"));
    let other = judge_daemon(&DaemonFact::OtherVersion {
        detail: "the running daemon speaks control protocol 2".into(),
    });
    assert_eq!(other.status, Status::Fail);
    assert!(other.fix.unwrap().contains("restart"));
}

#[test]
fn index_problems_fail_and_are_summarised() {
    let problems: Vec<String> = (0..5)
        .map(|i| format!("email index: problem {i}"))
        .collect();
    let c = judge_store(&StoreFact::Checked {
        records: 9,
        problems,
    });
    assert_eq!(c.status, Status::Fail);
    assert!(c.message.contains("5 index problem(s)"), "{}", c.message);
    assert!(c.message.contains("and 2 more"), "{}", c.message);
    let ok = judge_store(&StoreFact::Checked {
        records: 9,
        problems: vec![],
    });
    assert_eq!(ok.status, Status::Ok);
    assert_eq!(
        judge_store(&StoreFact::Locked { records: 1 }).status,
        Status::Info
    );
}

#[test]
fn encryption_key_missing_fails_and_a_passphrase_keyring_is_information() {
    let missing = judge_encryption(&EncryptionFact::KeyFile {
        path: "/c/data.key".into(),
        problem: Some(KeyFileProblem::Missing),
    });
    assert_eq!(missing.status, Status::Fail);
    assert!(missing.message.contains("/c/data.key is missing"));
    let pass = judge_encryption(&EncryptionFact::Passphrase);
    assert_eq!(pass.status, Status::Info);
    assert!(pass.message.contains("locked until `icsync unlock`"));
    assert_eq!(
        judge_encryption(&EncryptionFact::KeyringMissing {
            keyring: "/s/keyring.json".into(),
            records: 3
        })
        .status,
        Status::Warn
    );
}

#[test]
fn a_keychain_keyring_names_its_entry_and_an_unreachable_one_fails_with_the_hint() {
    let ok = judge_encryption(&EncryptionFact::Keychain {
        entry: "icsync/store-ab".into(),
        problem: None,
    });
    assert_eq!(ok.status, Status::Ok);
    assert!(
        ok.message.contains("icsync/store-ab is reachable"),
        "{}",
        ok.message
    );
    let down = judge_encryption(&EncryptionFact::Keychain {
        entry: "icsync/store-ab".into(),
        problem: Some((
            "no Secret Service".into(),
            Some("start gnome-keyring".into()),
        )),
    });
    assert_eq!(down.status, Status::Fail);
    assert!(down
        .message
        .contains("keychain keyring (entry icsync/store-ab)"));
    assert_eq!(down.fix.as_deref(), Some("start gnome-keyring"));
    let new = judge_encryption(&EncryptionFact::NewStore {
        wraps_with: "a key in the OS credential store".into(),
    });
    assert!(new
        .message
        .ends_with("wrapped with a key in the OS credential store"));
}

#[test]
fn clock_skew_over_five_minutes_warns_in_either_direction() {
    let server = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
    let date = Some("Sat, 01 Mar 2025 12:00:00 GMT".to_string());
    let at = |received| ProbeFact::Answered {
        status: 404,
        date: date.clone(),
        received,
    };
    assert_eq!(
        judge_clock(&at(server + Duration::seconds(299))).status,
        Status::Ok
    );
    let ahead = judge_clock(&at(server + Duration::minutes(7)));
    assert_eq!(ahead.status, Status::Warn);
    assert!(ahead.message.contains("7 min ahead"), "{}", ahead.message);
    let behind = judge_clock(&at(server - Duration::hours(3)));
    assert!(behind.message.contains("3 h behind"), "{}", behind.message);
    let no_date = ProbeFact::Answered {
        status: 404,
        date: None,
        received: server,
    };
    assert_eq!(judge_clock(&no_date).status, Status::Info);
}

#[test]
fn http_dates_parse() {
    assert_eq!(
        parse_http_date("Tue, 15 Nov 1994 08:12:31 GMT"),
        Some(Utc.with_ymd_and_hms(1994, 11, 15, 8, 12, 31).unwrap())
    );
    assert_eq!(parse_http_date("yesterday"), None);
}

#[test]
fn free_space_thresholds() {
    let free = |bytes| DiskFact::Free {
        path: "/".into(),
        bytes,
    };
    assert_eq!(judge_disk(&free(DISK_WARN_BYTES)).status, Status::Ok);
    assert_eq!(judge_disk(&free(DISK_WARN_BYTES - 1)).status, Status::Warn);
    assert_eq!(judge_disk(&free(DISK_FAIL_BYTES - 1)).status, Status::Fail);
    assert!(judge_disk(&free(3 << 30))
        .message
        .starts_with("3.0 GiB free"));
}

#[test]
fn a_full_disk_and_a_damaged_store_say_so_and_what_to_do() {
    let full = judge_disk(&DiskFact::Free {
        path: "/d".into(),
        bytes: 100 << 10,
    });
    assert_eq!(full.status, Status::Fail);
    assert!(full.message.starts_with("disk full"), "{}", full.message);
    let damaged = judge_store(&StoreFact::Damaged("store damaged: truncated".into()));
    assert_eq!(damaged.status, Status::Fail);
    assert!(damaged.fix.unwrap_or_default().contains("icsync recover"));
    let faulted = judge_daemon(&DaemonFact::Faulted {
        version: "0.1.0".into(),
        disk_full: true,
        message: "disk full: 0 KiB free".into(),
    });
    assert_eq!(faulted.status, Status::Fail);
    assert!(faulted.message.contains("disk full"), "{}", faulted.message);
}

#[test]
fn first_run_advice_works_for_an_installed_user_and_names_the_tours_variable() {
    // An installed user has no repository: the advice must not send them to a file in it.
    let absent = judge_config(&ConfigFact::Absent(
        "/home/u/.config/icsync/icsync.toml".into(),
    ));
    let fix = absent.fix.unwrap();
    assert!(!fix.contains("config/icsync.example.toml"), "{fix}");
    assert!(
        fix.contains("api_url = ") && fix.contains("api_key_file = "),
        "{fix}"
    );
    let missing = judge_api_key(&ApiKeyFact::Missing).fix.unwrap();
    assert!(
        missing.contains("ICSYNC_API_KEY") && missing.contains("api_key_file"),
        "{missing}"
    );
    // An accepted key is said in words, not as a bare 404.
    let ok = judge_api_auth(&healthy().probe);
    assert_eq!(ok.status, Status::Ok);
    assert!(!ok.message.contains("probe"), "{}", ok.message);
    assert!(ok.message.contains("not 401"), "{}", ok.message);
}

#[test]
fn drop_files_left_in_the_data_dir_are_a_warning() {
    let left = SettingsFacts {
        drop_place: DropPlaceFact::OldDefaultHolds {
            old: "/data/drop".into(),
            files: 3,
        },
        ..healthy()
    };
    let checks = judge(&facts(left));
    let c = checks.iter().find(|c| c.check == "drop_place").unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.message.contains("3 file(s) remain in /data/drop"),
        "{c:?}"
    );
    let inside = SettingsFacts {
        drop_place: DropPlaceFact::InsideDataDir,
        ..healthy()
    };
    let checks = judge(&facts(inside));
    let c = checks.iter().find(|c| c.check == "drop_place").unwrap();
    assert_eq!(c.status, Status::Warn);
}
