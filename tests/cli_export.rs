//! `icsync export` as the real binary against a real daemon and sandbox: synced records are
//! written to .csv, .xlsx, .json and .ndjson with the server's customer ids, private and
//! whole; an unknown extension and an existing file are refused.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::daemon::{BlockingAdmin, DaemonEnv};
use common::{SandboxOptions, DEMO_KEY};
use serde_json::Value;

const SYNC_DEADLINE: Duration = Duration::from_secs(60);

/// external_id -> customer_id, from a CSV export's rows.
fn csv_customers(path: &Path) -> BTreeMap<String, String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (x, c) = (col("external_id"), col("customer_id"));
    assert_eq!(c, x + 1, "customer_id right after external_id");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[x].to_string(), r[c].to_string())
        })
        .collect()
}

fn json_customers(objects: &[Value]) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|o| {
            (
                o["external_id"].as_str().unwrap().to_string(),
                o["customer_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn xlsx_customers(path: &Path) -> BTreeMap<String, String> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = book.worksheet_range("records").unwrap();
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (x, c) = (col("external_id"), col("customer_id"));
    rows.map(|r| match (&r[x], &r[c]) {
        (Data::String(x), Data::String(c)) => (x.clone(), c.clone()),
        other => panic!("cells that are not text: {other:?}"),
    })
    .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn synced_records_export_to_every_format_with_the_servers_customer_ids() {
    let sandbox = SandboxOptions::new().admin().start();
    let admin = BlockingAdmin::new(&sandbox);
    let env = DaemonEnv::new(&sandbox.base_url, "").with_env_key(DEMO_KEY);
    env.add(&["--full-name", "Ada", "--external-id", "crm-1"]);
    env.add(&[
        "--full-name",
        "Bob",
        "--external-id",
        "007",
        "--phone",
        "0044 1",
    ]);
    env.add(&["--full-name", "Cid", "--external-id", "crm-3"]);
    let _daemon = env.start_daemon(&[]);
    env.wait_status("3 records synced", SYNC_DEADLINE, |s| s["synced"] == 3);
    let on_server: BTreeMap<String, String> = admin
        .customers()
        .iter()
        .map(|c| {
            (
                c["external_id"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(on_server.len(), 3);

    let dir = env.dir.path();
    let export = |name: &str| {
        let path = dir.join(name);
        env.ok(&["export", "--state", "synced", &path.display().to_string()]);
        assert_eq!(mode(&path), 0o600, "{name}");
        path
    };
    assert_eq!(csv_customers(&export("out.csv")), on_server);
    assert_eq!(xlsx_customers(&export("out.xlsx")), on_server);
    let json: Vec<Value> =
        serde_json::from_slice(&std::fs::read(export("out.json")).unwrap()).unwrap();
    assert_eq!(json_customers(&json), on_server);
    let ndjson: Vec<Value> = std::fs::read_to_string(export("out.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json_customers(&ndjson), on_server);
    // Nothing but the four files: no temporary file is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An extension that names no format is a usage error, and nothing is written.
    let out = env.cli(&["export", "--state", "synced", "fix.txt"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot tell the format of fix.txt: use .csv, .ndjson, .json or .xlsx"),
        "{stderr}"
    );

    // An existing file is kept unless --force; a symlink there is replaced, not followed.
    let existing = dir.join("out.csv");
    std::fs::write(&existing, "keep me").unwrap();
    let path = existing.display().to_string();
    let out = env.cli(&["export", "--state", "synced", &path]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists: use --force"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    env.ok(&["export", "--state", "synced", "--force", &path]);
    assert_eq!(csv_customers(&existing), on_server);
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link_path = link.display().to_string();
    assert!(!env
        .cli(&["export", "--state", "synced", &link_path])
        .status
        .success());
    env.ok(&["export", "--state", "synced", "--force", &link_path]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(mode(&link), 0o600);
}
