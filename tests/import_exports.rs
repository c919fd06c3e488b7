//! Real export files, as CRMs, address books and spreadsheets write them (5,000 rows each;
//! `tests/fixtures/exports/README.md` says where each header set comes from), through the
//! real binary: `icsync import` with no flags (the German file too: its headers are synonyms), and the
//! drop folder of a real daemon syncing to a real sandbox. Every file queues at least 98 %
//! of its rows, the refused ones are exactly the rows made bad on purpose, the folder gives
//! the same counts as the command, and taking any file again creates nothing on the server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::daemon::{poll_until, BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::Value;

/// Debug builds on a loaded 2-core CI machine; 37,000 records in all.
const DEADLINE: Duration = Duration::from_secs(300);

/// Each fixture, the preset it must be recognised as, and whether it needs the mapping.
const FILES: [(&str, Option<&str>, bool); 8] = [
    (
        "salesforce-contacts.csv",
        Some("Salesforce contacts"),
        false,
    ),
    ("salesforce-leads.csv", Some("Salesforce leads"), false),
    ("hubspot-contacts.csv", Some("HubSpot contacts"), false),
    ("google-contacts.csv", Some("Google Contacts"), false),
    ("outlook-contacts.csv", Some("Outlook contacts"), false),
    ("icsync-locales.csv", None, false),
    ("stripe-customers.json", Some("Stripe customers"), false),
    // German headers (Kundennummer, Vorname, E-Mail-Adresse, ...) are synonyms: no mapping.
    ("excel-german.csv", None, false),
];

const MAPPING: &str = "excel-german.mapping.toml";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exports")
        .join(name)
}

/// The fixture copied into the environment's temp dir and its path: `import` writes the
/// refused rows beside the file it reads, and that must never be the checkout.
fn fixture_copy(env: &DaemonEnv, name: &str) -> String {
    let dir = env.dir.path().join("exports");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        std::fs::copy(fixture(name), &path).unwrap();
    }
    path.display().to_string()
}

/// The rows the generator made bad on purpose, and how many rows there are.
fn expected(name: &str) -> (u64, BTreeSet<u64>) {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let text = std::fs::read_to_string(fixture(&format!("{stem}.expected.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let bad = v["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    (v["rows"].as_u64().unwrap(), bad)
}

fn import_json(env: &DaemonEnv, args: &[&str]) -> Value {
    let out = env.cli(args);
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    reports[0].clone()
}

fn refused_lines(report: &Value) -> BTreeSet<u64> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect()
}

fn import_args<'a>(file: &'a str, mapping: &'a str, needs_mapping: bool) -> Vec<&'a str> {
    let mut args = vec!["import", "--json", file];
    if needs_mapping {
        args.extend(["--mapping", mapping]);
    }
    args
}

#[test]
fn every_vendor_export_imports_as_it_is_with_exactly_its_bad_rows_refused() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let mapping = fixture(MAPPING).display().to_string();
    for (name, preset, needs_mapping) in FILES {
        let path = fixture_copy(&env, name);
        let (rows, bad) = expected(name);
        let report = import_json(&env, &import_args(&path, &mapping, needs_mapping));
        assert_eq!(report["records"], rows, "{name}");
        assert_eq!(refused_lines(&report), bad, "{name}: refused rows");
        assert_eq!(report["refused"], bad.len(), "{name}");
        // A row can match an earlier one by email (a contact listed twice): an update.
        let queued = report["created"].as_u64().unwrap() + report["updated"].as_u64().unwrap();
        assert_eq!(
            queued,
            rows - bad.len() as u64,
            "{name}: created {} updated {}",
            report["created"],
            report["updated"]
        );
        assert!(queued * 100 >= rows * 98, "{name}: {queued} of {rows}");
        assert_eq!(
            report["preset"].as_str(),
            preset,
            "{name} is recognised as its vendor's export"
        );
        assert!(report["error"].is_null(), "{name}: {}", report["error"]);
    }
    let total = env.status()["total"].as_u64().unwrap();
    assert!(total > 36_000, "{total}");
}

#[test]
fn taking_a_file_again_queues_nothing_whatever_its_name() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let mapping = fixture(MAPPING).display().to_string();
    for (name, _, needs_mapping) in FILES {
        let path = fixture_copy(&env, name);
        let first = import_json(&env, &import_args(&path, &mapping, needs_mapping));
        let total = env.status()["total"].clone();
        // Under another name: known by its content.
        let copy = env.dir.path().join(format!("copy-{name}"));
        std::fs::copy(fixture(name), &copy).unwrap();
        let copy = copy.display().to_string();
        let again = import_json(&env, &import_args(&copy, &mapping, needs_mapping));
        assert!(
            again["skipped_as_imported"]
                .as_str()
                .is_some_and(|s| s.contains(name)),
            "{name}: {}",
            again["skipped_as_imported"]
        );
        assert_eq!(again["created"], 0, "{name}");
        // Forced: every row equals its record, so nothing is queued either.
        let mut args = import_args(&path, &mapping, needs_mapping);
        args.push("--again");
        let forced = import_json(&env, &args);
        assert_eq!(forced["created"], 0, "{name}");
        assert_eq!(forced["updated"], 0, "{name}");
        let queued = first["created"].as_u64().unwrap() + first["updated"].as_u64().unwrap();
        assert_eq!(
            forced["unchanged"].as_u64().unwrap() + forced["updated"].as_u64().unwrap(),
            queued,
            "{name}"
        );
        assert_eq!(env.status()["total"], total, "{name}");
    }
}

/// The German file reads the same with its mapping as without: its headers are synonyms.
/// A file whose name column is not one still gets one line with the way out.
#[test]
fn the_german_file_needs_no_mapping_and_an_unknown_name_column_gets_a_way_out() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let path = fixture_copy(&env, "excel-german.csv");
    let mapping = fixture(MAPPING).display().to_string();
    let dry = |args: &[&str]| {
        let mut all = vec!["import", "--dry-run", "--json"];
        all.extend(args);
        all.push(&path);
        let report = import_json(&env, &all);
        (report["records"].clone(), refused_lines(&report))
    };
    let (records, refused) = dry(&[]);
    assert_eq!(
        (records.clone(), refused.clone()),
        dry(&["--mapping", &mapping])
    );
    assert_eq!(records, 5000);
    assert_eq!(refused, expected("excel-german.csv").1);

    let file = env.dir.path().join("kunden.csv");
    std::fs::write(&file, "Kunde;E-Mail\nPaolo Kraushaar;paolo@example.de\n").unwrap();
    let out = env.cli(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no column holds the customer's name")
            && stderr.contains("\"Kunde\"")
            && stderr.contains("--mapping"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one message for the file: {stderr}"
    );
    assert_eq!(env.status()["total"], 0, "nothing was queued");
}

#[test]
fn national_phones_in_a_file_with_no_country_column_need_a_default_country() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let file = env.dir.path().join("phones.csv");
    std::fs::write(
        &file,
        "Name,E-mail,Phone\nAda King,ada@example.com,0151 23456789\n\
         Bo Li,bo@example.com,+44 20 7946 0958 ext. 12\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let report = import_json(&env, &["import", "--json", "--dry-run", &file]);
    assert_eq!(report["refused"], 1, "the national number has no country");
    let problem = &report["problems"][0];
    assert_eq!(problem["line"], 2);
    let message = problem["message"].as_str().unwrap();
    assert!(
        message.contains("default_country") && message.contains("ICSYNC_DEFAULT_COUNTRY"),
        "{message}"
    );

    let mut with_country = env.command(&["import", "--json", &file]);
    with_country.env("ICSYNC_DEFAULT_COUNTRY", "Germany");
    let out = with_country.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["created"], 2);
    // The extension E.164 cannot hold is dropped with a note on that row.
    let note = &report[0]["notes"][0];
    assert_eq!(note["line"], 3);
    assert!(note["message"].as_str().unwrap().contains("12"), "{note}");
    let list = env.json(&["list", "--json"]);
    let phones: BTreeSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let shown = env.json(&["show", r["id"].as_str().unwrap(), "--json"]);
            shown["payload"]["phone"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        phones,
        BTreeSet::from(["+4915123456789".to_string(), "+442079460958".to_string()])
    );
}

#[test]
fn a_dry_run_shows_each_column_and_queues_nothing() {
    let env = DaemonEnv::new("http://127.0.0.1:9", "");
    let path = fixture("excel-german.csv").display().to_string();
    let mapping = fixture(MAPPING).display().to_string();
    let out = env.cli(&["import", "--dry-run", "--mapping", &mapping, &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("windows-1252 (detected)"), "{stdout}");
    assert!(stdout.contains("delimiter ';'"), "{stdout}");
    assert!(
        stdout.contains("4,950 would be queued, 50 refused"),
        "{stdout}"
    );
    let land = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Land "))
        .unwrap_or_else(|| panic!("no row for Land: {stdout}"));
    assert!(land.contains("risk.country_of_residence"), "{land}");
    assert!(land.contains("mapping"), "{land}");
    assert_eq!(env.status()["total"], 0);
}

#[test]
fn the_same_exports_dropped_in_the_folder_give_the_same_counts_and_reach_the_server_once() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(
        &sandbox.base_url,
        &format!(
            "drop_quiet_ms = 200\nkeep_processed = true\nmapping = \"{}\"\n",
            fixture(MAPPING).display()
        ),
    )
    .with_env_key(DEMO_KEY);
    let _daemon = env.start_daemon(&[]);
    let drop_dir = env.drop_dir();
    let processed = drop_dir.join("processed");

    for (name, _, _) in FILES {
        // Written under a temporary name, then renamed: a whole file appears at once.
        let part = drop_dir.join(format!("{name}.part"));
        std::fs::copy(fixture(name), &part).unwrap();
        std::fs::rename(&part, drop_dir.join(name)).unwrap();
    }
    poll_until("every file archived", DEADLINE, || {
        let done = FILES
            .iter()
            .filter(|(n, _, _)| processed.join(n).exists())
            .count();
        if done == FILES.len() {
            Ok(())
        } else {
            Err(done)
        }
    });
    // The folder's counts are the command's: the report of each file names its bad rows.
    let reports: BTreeMap<String, BTreeSet<u64>> = FILES
        .iter()
        .map(|(name, _, _)| {
            let stem = name.rsplit_once('.').unwrap().0;
            let report = std::fs::read_to_string(
                drop_dir.join("rejected").join(format!("{stem}.errors.txt")),
            )
            .unwrap();
            let lines = report
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| {
                    l.strip_prefix("line ")
                        .and_then(|l| l.split([':', ' ']).next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("{name}: {l}"))
                })
                .collect();
            (name.to_string(), lines)
        })
        .collect();
    for (name, _, _) in FILES {
        assert_eq!(reports[name], expected(name).1, "{name}: the report");
    }
    // Settled: nothing left to send (a contact in two vendors' files under two external
    // ids is a conflict on the server, for a person).
    let settled = |s: &Value| s["queued"] == 0 && s["sending"] == 0 && s["paused"].is_null();
    let before = env.wait_status("every good row sent", DEADLINE, settled);
    let customers = admin.customers().len();
    assert!(before["synced"].as_u64().unwrap() > 36_000, "{before}");
    assert!(customers > 30_000, "{customers}");

    // Dropped again under other names, and imported again by hand: nothing new anywhere.
    for (name, _, _) in FILES {
        let again = format!("again-{name}");
        let part = drop_dir.join(format!("{again}.part"));
        std::fs::copy(fixture(name), &part).unwrap();
        std::fs::rename(&part, drop_dir.join(&again)).unwrap();
    }
    poll_until("every repeat archived as a duplicate", DEADLINE, || {
        let done = FILES
            .iter()
            .filter(|(n, _, _)| processed.join(format!("again-{n}.duplicate.txt")).exists())
            .count();
        if done == FILES.len() {
            Ok(())
        } else {
            Err(done)
        }
    });
    assert_eq!(
        env.status()["total"],
        before["total"],
        "a re-drop queues nothing"
    );
    let mapping = fixture(MAPPING).display().to_string();
    for (name, _, needs_mapping) in FILES {
        let path = fixture_copy(&env, name);
        let mut args = import_args(&path, &mapping, needs_mapping);
        args.push("--again");
        // A contact in several vendors' files may flip back to this file's values: an
        // update of the same record and customer, never a new one.
        let forced = import_json(&env, &args);
        assert_eq!(forced["created"], 0, "{name}");
        assert_eq!(forced["refused"], expected(name).1.len(), "{name}");
    }
    let after = env.wait_status("everything sent again", DEADLINE, settled);
    assert_eq!(after["total"], before["total"], "{before} then {after}");
    assert_eq!(
        admin.customers().len(),
        customers,
        "no new customer on the server"
    );
}
