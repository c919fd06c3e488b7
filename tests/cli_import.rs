//! `icsync import` and `icsync export` as the real binary, with no daemon (store opened
//! directly): bad records are reported by file, line and field and never block good ones; an
//! export of records that need a person can be fixed and imported onto the same records.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use icsync::contract::ApiError;
use icsync::crypto::KeyConfig;
use icsync::store::{Durability, RecordError, RecordState, Store, StoreOptions};
use serde_json::Value;
use uuid::Uuid;

fn icsync(dir: &Path, args: &[&str]) -> Output {
    common::run_isolated(dir, Command::new(env!("CARGO_BIN_EXE_icsync")), args)
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = icsync(dir, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_records_are_named_by_line_and_field_and_good_ones_still_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "a.ndjson",
        b"{\"full_name\":\"Ann\",\"email\":\"ann@x.io\"}\n{\"full_name\":\"Bob\",\"email\":\"bob\"}\nnot json\n\n{\"fullName\":\"Cid\",\"externalId\":\"c-1\"}\n",
    );
    write(
        d,
        "b.csv",
        "\u{feff}full_name,email,risk.is_pep,risk.expected_monthly_volume\r\nDee,dee@x.io,yes,100\r\nEve,eve@x.io,maybe,\r\n"
            .as_bytes(),
    );
    write(
        d,
        "c.json",
        br#"[{"full_name":"Fay"},{"full_name":"Ann B","email":"ANN@x.io"}]"#,
    );
    write(d, "d.txt", b"hello");
    let out = icsync(d, &["import", "a.ndjson", "b.csv", "c.json", "d.txt"]);
    assert_eq!(out.status.code(), Some(2), "some records were refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("a.ndjson line 2: email: is not a valid email address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a.ndjson line 3: not valid JSON"),
        "{stderr}"
    );
    assert!(stderr.contains("b.csv line 3: risk.is_pep"), "{stderr}");
    assert!(
        stdout.contains("d.txt: not imported: nothing from it was queued"),
        "{stdout}"
    );
    assert!(
        stderr.contains("d.txt: no column holds the customer's name"),
        "{stderr}"
    );

    let list = json(d, &["list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    // "Ann B" matched Ann by email: one row, revision 2.
    assert_eq!(names, ["Ann B", "Cid", "Dee", "Fay"]);
    assert_eq!(list[0]["revision"], 2);
    let dee = json(d, &["show", list[2]["id"].as_str().unwrap(), "--json"]);
    assert_eq!(
        dee["payload"]["risk"],
        serde_json::json!({"is_pep": true, "expected_monthly_volume": 100})
    );
    assert_eq!(
        dee["origin"],
        serde_json::json!({"kind": "import", "file": "b.csv", "line": 2})
    );
}

#[test]
fn a_clean_import_exits_zero_and_the_same_file_twice_makes_no_new_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut ndjson = String::new();
    for i in 0..2500 {
        ndjson.push_str(&format!(
            "{{\"full_name\":\"P{i}\",\"external_id\":\"crm-{i}\"}}\n"
        ));
    }
    write(d, "many.jsonl", ndjson.as_bytes());
    let summary = json(d, &["import", "many.jsonl", "--json"]);
    assert_eq!(summary[0]["created"], 2500);
    // The same content again, under another name: recognised, nothing read into the queue.
    std::fs::copy(d.join("many.jsonl"), d.join("copy.jsonl")).unwrap();
    let again = json(d, &["import", "copy.jsonl", "--json"]);
    assert_eq!(again[0]["created"], 0);
    assert!(
        again[0]["skipped_as_imported"]
            .as_str()
            .unwrap()
            .contains("many.jsonl"),
        "{again}"
    );
    // Forced: every row equals its record, so nothing is queued either.
    let forced = json(d, &["import", "many.jsonl", "--again", "--json"]);
    assert_eq!(forced[0]["created"], 0);
    assert_eq!(forced[0]["updated"], 0);
    assert_eq!(forced[0]["unchanged"], 2500, "nothing new to send");
    let shown = json(d, &["list", "--json"]);
    assert!(
        shown.as_array().unwrap().iter().all(|r| r["revision"] == 1),
        "no record got a revision"
    );
    assert_eq!(json(d, &["status", "--json"])["total"], 2500);
}

#[test]
fn exported_cells_cannot_run_as_spreadsheet_formulas_and_import_back_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let formulas = [
        (
            "=HYPERLINK(\"http://evil.example\",\"Click\")",
            "+442079460958",
            "crm-1",
        ),
        ("@SUM(1+1)*cmd", "+33142685300", "-crm-2"),
        ("Ada Lovelace", "", "crm-3"),
    ];
    let mut ndjson = String::new();
    for (name, phone, external_id) in formulas {
        let mut row = serde_json::json!({"full_name": name, "external_id": external_id});
        if !phone.is_empty() {
            row["phone"] = Value::from(phone);
        }
        ndjson.push_str(&format!("{row}\n"));
    }
    write(d, "in.ndjson", ndjson.as_bytes());
    json(d, &["import", "in.ndjson", "--json"]);
    let out = icsync(d, &["export", "--state", "queued", "out.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every cell a spreadsheet would run starts with an apostrophe; other cells are as they were.
    let mut reader = csv::Reader::from_path(d.join("out.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
    let names: Vec<&str> = rows.iter().map(|r| &r[col("full_name")]).collect();
    assert!(
        names.contains(&"'=HYPERLINK(\"http://evil.example\",\"Click\")"),
        "{names:?}"
    );
    assert!(names.contains(&"Ada Lovelace"), "{names:?}");
    assert!(rows.iter().any(|r| &r[col("phone")] == "'+442079460958"));

    // The export imports back onto the same records with nothing changed.
    let again = json(d, &["import", "out.csv", "--json"]);
    assert_eq!(again[0]["refused"], 0, "{again}");
    assert_eq!(again[0]["unchanged"], 3, "{again}");
    let listed = json(d, &["list", "--json"]);
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "=HYPERLINK(\"http://evil.example\",\"Click\")",
            "@SUM(1+1)*cmd",
            "Ada Lovelace"
        ]
    );
}

#[test]
fn exported_conflicts_fixed_in_a_spreadsheet_import_onto_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "in.csv",
        b"full_name,email,external_id\nAnn,ann@x.io,crm-1\nBob,bob@x.io,crm-2\n",
    );
    assert!(icsync(d, &["import", "in.csv"]).status.success());
    {
        let store = Store::open_with_key(
            &d.join("data/store"),
            StoreOptions::default(),
            &KeyConfig::file(d.join("data.key")),
            None,
        )
        .unwrap();
        for id in store.in_state(RecordState::Queued).unwrap() {
            store
                .update(id, Durability::Flush, |r| {
                    r.state = RecordState::Conflict;
                    r.last_error = Some(RecordError::Api {
                        error: ApiError::CustomerConflict {
                            message: "email taken".into(),
                            conflicting_customer_id: Uuid::from_u128(9),
                            conflicting_external_id: Some("other".into()),
                        },
                    });
                })
                .unwrap();
        }
    }
    let out = icsync(d, &["export", "--state", "conflict", "fix.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("fix.csv")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(d.join("fix.csv")).unwrap();
    assert!(text.starts_with("_icsync_id,_error,"), "{text}");
    assert!(text.contains("email taken"), "{text}");
    // The operator fixes the emails (and even an external_id) in a spreadsheet.
    let fixed = text
        .replace("ann@x.io", "ann.new@x.io")
        .replace("bob@x.io", "bob.new@x.io")
        .replace("crm-2", "crm-2b");
    write(d, "fix.csv", fixed.as_bytes());
    let out = icsync(d, &["import", "fix.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = json(d, &["list", "--json"]);
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "fixed rows land on the same records"
    );
    for r in list.as_array().unwrap() {
        assert_eq!(r["state"], "queued");
        assert_eq!(r["revision"], 2);
        assert!(r["email"].as_str().unwrap().contains(".new@"));
    }
    assert_eq!(list[1]["external_id"], "crm-2b");

    // NDJSON works the same way.
    let out = icsync(d, &["export", "--state", "rejected", "none.ndjson"]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(d.join("none.ndjson")).unwrap(), "");
}

/// `list --sort` orders every record, across the daemon's pages (500 a page here): names
/// imported in a scrambled order come back sorted ignoring case, and an edit moves its
/// record to the front of `newest-change`.
#[test]
fn list_sort_orders_every_record_not_one_page() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let n = 1_200;
    let mut ndjson = String::new();
    for i in 0..n {
        // 7 is coprime with n, so this visits every number once in a scrambled order.
        let k = (i * 7) % n;
        let name = if k % 2 == 0 {
            format!("person {k:04}")
        } else {
            format!("Person {k:04}")
        };
        ndjson.push_str(&format!(
            "{{\"full_name\":\"{name}\",\"external_id\":\"s-{i}\"}}\n"
        ));
    }
    write(d, "scrambled.ndjson", ndjson.as_bytes());
    assert_eq!(
        json(d, &["import", "scrambled.ndjson", "--json"])[0]["created"],
        n
    );

    let names = |sort: &str| -> Vec<String> {
        json(d, &["list", "--sort", sort, "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["full_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_name = names("name");
    assert_eq!(by_name.len(), n);
    let mut expected = by_name.clone();
    expected.sort_by_key(|s| s.to_lowercase());
    assert_eq!(by_name, expected);
    assert_eq!(by_name[0].to_lowercase(), "person 0000");
    // Queue order is the import order, not the sorted one.
    assert_ne!(names("queue"), by_name);

    let first = json(d, &["list", "--limit", "1", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(icsync(d, &["edit", &first, "--full-name", "Zed Edited"])
        .status
        .success());
    let newest = names("newest-change");
    assert_eq!(newest.len(), n);
    assert_eq!(newest[0], "Zed Edited");
}

/// Rows refused at import are counted as rows (one with three bad fields is one), written
/// beside the file with an `_error` column to fix, never over a file already there, and
/// imported back once fixed.
#[test]
fn refused_rows_are_counted_as_rows_and_written_beside_the_file_to_fix() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "a.csv", b"full_name,email\nAnn,ann@x.io\nBob,bob@x.io\n");
    assert_eq!(icsync(d, &["import", "a.csv"]).status.code(), Some(0));
    let input =
        b"full_name,email,phone\nCid,cid@x.io,\nBob B,bob@x.io,\n,bad,notaphone\nDee,dee,\n";
    write(d, "b.csv", input);
    // A file of that name is someone's own: it is left alone.
    write(d, "b.refused.csv", b"mine");
    let out = icsync(d, &["import", "b.csv"]);
    assert_eq!(out.status.code(), Some(2), "some rows were refused");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("4 records: 2 queued (1 new, 1 updated), 2 refused at import"),
        "{stdout}"
    );
    assert!(
        stdout.contains("b.2.refused.csv") && stdout.contains("b.2.errors.txt"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(d.join("b.refused.csv")).unwrap(), b"mine");
    let copy = d.join("b.2.refused.csv");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&copy).unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        ["_error", "full_name", "email", "phone"]
    );
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0][0].contains("full_name: is required"), "{text}");
    assert_eq!(
        rows[1].iter().skip(1).collect::<Vec<_>>(),
        ["Dee", "dee", ""]
    );
    let report = std::fs::read_to_string(d.join("b.2.errors.txt")).unwrap();
    let problems: Vec<&str> = report.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(problems.len(), 4, "one line per problem: {report}");
    assert!(problems
        .iter()
        .all(|p| p.starts_with("line 4: ") || p.starts_with("line 5: ")));

    // Fixed in place and imported: both rows queue, and nothing more is written.
    let fixed = text
        .replace(",bad,notaphone", "Eve,eve@x.io,")
        .replace(",dee,", ",dee@x.io,");
    std::fs::write(&copy, fixed).unwrap();
    let out = icsync(d, &["import", "b.2.refused.csv"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!d.join("b.2.refused.refused.csv").exists());
    let names: Vec<String> = json(d, &["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["full_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Ann", "Bob B", "Cid", "Eve", "Dee"]);

    // --json names the files; --dry-run writes none.
    write(d, "c.ndjson", b"{\"full_name\":\"Fay\",\"email\":\"f\"}\n");
    let report = icsync(d, &["import", "--dry-run", "c.ndjson"]);
    assert_eq!(report.status.code(), Some(2));
    assert!(!d.join("c.refused.ndjson").exists());
    let out = icsync(d, &["import", "--json", "c.ndjson"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["refused"], 1);
    assert_eq!(
        v[0]["refused_rows"]["rows"].as_str().unwrap(),
        "./c.refused.ndjson"
    );
    assert!(d.join("c.refused.ndjson").exists() && d.join("c.errors.txt").exists());
}

/// The demo's sample CSV says 43 rows of which two are invalid (assets/demo/README.md):
/// import counts the same, 41 queued and 2 refused, as the drop folder's report does.
#[test]
fn the_demo_csv_counts_as_its_readme_says() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("assets/demo/README.md")).unwrap();
    assert!(
        readme.contains("43 rows") && readme.contains("Two rows are invalid"),
        "{readme}"
    );
    std::fs::copy(
        root.join("assets/demo/crm-export.csv"),
        d.join("crm-export.csv"),
    )
    .unwrap();
    let out = icsync(d, &["import", "crm-export.csv"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("43 records: 41 queued (41 new, 0 updated), 2 refused at import"),
        "{stdout}"
    );
}
