//! Export then parse gives back the same payloads, over seeded random payloads whose text
//! is full of what breaks naive CSV and JSON writers (commas, quotes, line breaks, BOM-like
//! and non-ASCII characters, the word "null").

use std::ops::ControlFlow;

use icsync::ingest::{
    read_records, write_csv, write_json, write_ndjson, write_xlsx, ExportRow, Format, Parsed,
    Position, CSV_HEADER,
};
use icsync::store::Payload;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

const PIECES: &[&str] = &[
    "Ada",
    "Lovelace",
    "O'Brien",
    "Zoë",
    "中村",
    "a,b",
    "say \"hi\"",
    "null",
    "x",
    "#1",
    "=SUM(A1)",
    "\u{feff}bom",
    "  ",
    ";",
    "😀",
];

fn text(rng: &mut StdRng, max_chars: usize) -> String {
    let n = rng.random_range(1..5);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES[rng.random_range(0..PIECES.len())]);
        s.push(' ');
    }
    let s: String = s.trim().chars().take(max_chars).collect();
    let s = s.trim().to_string();
    if s.is_empty() {
        "X".to_string()
    } else {
        s
    }
}

/// Absent, null or a value, chosen at random.
fn maybe(
    rng: &mut StdRng,
    m: &mut Map<String, Value>,
    name: &str,
    value: impl FnOnce(&mut StdRng) -> Value,
) {
    match rng.random_range(0..4) {
        0 => {}
        1 => {
            m.insert(name.to_string(), Value::Null);
        }
        _ => {
            let v = value(rng);
            m.insert(name.to_string(), v);
        }
    }
}

fn random_payload(rng: &mut StdRng) -> Payload {
    let mut m = Map::new();
    maybe(rng, &mut m, "type", |r| {
        Value::from(if r.random_bool(0.5) {
            "INDIVIDUAL"
        } else {
            "SOLE_TRADER"
        })
    });
    m.insert("full_name".into(), Value::from(text(rng, 255)));
    maybe(rng, &mut m, "email", |r| {
        Value::from(format!(
            "p.{}+x@Example-{}.com",
            r.random_range(0..10_000),
            r.random_range(0..9)
        ))
    });
    // external_id is matched exactly, so surrounding spaces must survive the round trip.
    maybe(rng, &mut m, "external_id", |r| {
        let pad = if r.random_bool(0.3) { "  " } else { "" };
        Value::from(format!("{pad}{}{pad}", text(r, 200)))
    });
    maybe(rng, &mut m, "trading_name", |r| Value::from(text(r, 255)));
    maybe(rng, &mut m, "phone", |r| {
        // E.164, as reading writes every phone (a spaced one comes back without spaces).
        Value::from(format!("+4420{}", r.random_range(10_000_000..99_999_999)))
    });
    maybe(rng, &mut m, "risk", |r| {
        let mut risk = Map::new();
        maybe(r, &mut risk, "occupation", |r| Value::from(text(r, 255)));
        maybe(r, &mut risk, "source_of_funds", |r| {
            Value::from(text(r, 255))
        });
        maybe(r, &mut risk, "country_of_residence", |r| {
            Value::from(["GB", "FR", "DE", "US", "JP"][r.random_range(0..5)])
        });
        maybe(r, &mut risk, "expected_monthly_volume", |r| {
            Value::from(match r.random_range(0..3) {
                0 => 0,
                1 => u64::MAX,
                _ => r.random_range(1..1_000_000u64),
            })
        });
        maybe(r, &mut risk, "is_pep", |r| Value::from(r.random_bool(0.5)));
        Value::Object(risk)
    });
    Payload::parse(&Value::Object(m.clone()))
        .unwrap_or_else(|e| panic!("generator made an invalid payload {m:?}: {e:?}"))
}

/// What CSV can carry: a `null` and an absent member are both an empty cell, and a risk
/// object with no cells is no risk object.
fn as_csv_sees_it(payload: &Payload) -> Payload {
    let mut m = payload.as_map().clone();
    m.retain(|_, v| !v.is_null());
    if let Some(Value::Object(risk)) = m.get_mut("risk") {
        risk.retain(|_, v| !v.is_null());
        if risk.is_empty() {
            m.remove("risk");
        }
    }
    Payload::parse(&Value::Object(m)).unwrap()
}

struct Exported {
    id: String,
    payload: Payload,
    error: Option<String>,
    customer: Option<String>,
}

fn random_records(seed: u64, n: usize) -> Vec<Exported> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Exported {
            id: format!("0190a1b2-{i:04}"),
            payload: random_payload(&mut rng),
            // A note may span lines (field values may not: the contract refuses control
            // characters), which keeps multi-line cells in the exported files.
            error: rng.random_bool(0.5).then(|| {
                let line_break = ["\n", "\r\n", " "][rng.random_range(0..3)];
                format!("email: {}{line_break}phone: x", text(&mut rng, 80))
            }),
            customer: rng
                .random_bool(0.5)
                .then(|| uuid::Uuid::from_u128(rng.random()).to_string()),
        })
        .collect()
}

fn rows(records: &[Exported]) -> impl Iterator<Item = ExportRow<'_>> {
    records.iter().map(|r| ExportRow {
        id: r.id.as_str(),
        payload: &r.payload,
        error: r.error.as_deref(),
        customer_id: r.customer.as_deref(),
    })
}

fn read_back(format: Format, bytes: &[u8]) -> Vec<Parsed> {
    let mut all = Vec::new();
    let flow = read_records(format, bytes, |p| {
        all.push(p);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));
    all
}

#[test]
fn ndjson_export_reads_back_to_the_same_payloads_and_ids() {
    for seed in 0..4 {
        let records = random_records(seed, 400);
        let mut out = Vec::new();
        write_ndjson(rows(&records), &mut out).unwrap();
        let back = read_back(Format::Ndjson, &out);
        assert_eq!(back.len(), records.len(), "seed {seed}");
        for (i, (r, p)) in records.iter().zip(&back).enumerate() {
            assert_eq!(p.position, Position::Line(i as u64 + 1));
            assert_eq!(p.record_id.as_deref(), Some(r.id.as_str()));
            assert_eq!(p.result.as_ref(), Ok(&r.payload), "seed {seed} record {i}");
        }
    }
}

#[test]
fn json_export_reads_back_to_the_same_payloads_and_ids() {
    for seed in 200..203 {
        let records = random_records(seed, 300);
        let mut out = Vec::new();
        write_json(rows(&records), &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("[\n{") && text.ends_with("}\n]\n"),
            "{text}"
        );
        let back = read_back(Format::Json, &out);
        assert_eq!(back.len(), records.len(), "seed {seed}");
        for (i, (r, p)) in records.iter().zip(&back).enumerate() {
            // One element per line, after the `[` line.
            assert_eq!(
                p.position,
                Position::Element {
                    index: i as u64,
                    line: i as u64 + 2
                }
            );
            assert_eq!(p.record_id.as_deref(), Some(r.id.as_str()));
            assert_eq!(p.result.as_ref(), Ok(&r.payload), "seed {seed} record {i}");
        }
    }
    let mut empty = Vec::new();
    write_json(rows(&[]), &mut empty).unwrap();
    assert_eq!(empty, b"[]\n");
    assert!(read_back(Format::Json, &empty).is_empty());
}

#[test]
fn exports_carry_the_customer_id_and_the_readers_ignore_it() {
    let records = random_records(9, 50);
    let with_customer = records.iter().filter(|r| r.customer.is_some()).count();
    assert!(with_customer > 0 && with_customer < records.len());
    let mut csv = Vec::new();
    write_csv(rows(&records), &mut csv).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(&csv[..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let at = header.iter().position(|h| h == "customer_id").unwrap();
    assert_eq!(header[at - 1], "external_id", "right after external_id");
    for (r, row) in records.iter().zip(reader.records()) {
        assert_eq!(&row.unwrap()[at], r.customer.as_deref().unwrap_or(""));
    }
    let mut ndjson = Vec::new();
    write_ndjson(rows(&records), &mut ndjson).unwrap();
    for (r, line) in records.iter().zip(ndjson.split(|b| *b == b'\n')) {
        let v: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(v["customer_id"], serde_json::json!(r.customer));
    }
    // A customer_id typed into a file that was not exported is ignored all the same.
    let typed = br#"{"full_name": "Ann", "customer_id": "c-1"}"#;
    let back = read_back(Format::Ndjson, typed);
    assert_eq!(back[0].result.as_ref().unwrap().full_name(), "Ann");
    let typed = b"full_name,customer_id\nAnn,c-1\n";
    assert!(read_back(Format::Csv, typed)[0].result.is_ok());
}

/// Every cell of the workbook's only sheet as text, rows padded to the widest; panics on a
/// cell that is not text or empty (a number or a formula).
fn xlsx_cells(bytes: Vec<u8>) -> Vec<Vec<String>> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), ["records"]);
    let range = book.worksheet_range("records").unwrap();
    assert_eq!(range.start(), Some((0, 0)));
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => panic!("a cell that is not text: {other:?}"),
                })
                .collect()
        })
        .collect()
}

#[test]
fn xlsx_export_holds_the_csv_cells_all_as_text() {
    let mut records = random_records(300, 200);
    // What a spreadsheet would turn into a number or a formula if it were not text.
    let tricky = Payload::parse(&serde_json::json!({
        "full_name": "=HYPERLINK(\"x\")",
        "external_id": "000123",
        "phone": "0044 20 7946 0000",
        "risk": {"expected_monthly_volume": 12345678901234567u64, "is_pep": true}
    }))
    .unwrap();
    records.push(Exported {
        id: "0190a1b2-tricky".into(),
        payload: tricky,
        error: None,
        customer: Some("00000000-0000-0000-0000-000000000001".into()),
    });
    let mut out = Vec::new();
    write_xlsx(rows(&records), &mut out).unwrap();
    let cells = xlsx_cells(out);
    let mut csv = Vec::new();
    write_csv(rows(&records), &mut csv).unwrap();
    // The CSV marks formula-like cells with an apostrophe for spreadsheets; the workbook's
    // cells are text already and need no mark, so they equal the CSV's cells as read.
    let expected: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&csv[..])
        .records()
        .map(|r| {
            r.unwrap()
                .iter()
                .map(|c| icsync::ingest::formula::read_cell(c).to_string())
                .collect()
        })
        .collect();
    assert!(String::from_utf8_lossy(&csv).contains("'=HYPERLINK"));
    assert_eq!(cells[0], CSV_HEADER);
    assert_eq!(cells.len(), expected.len());
    for (i, (got, want)) in cells.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "row {i}");
    }
    let last = cells.last().unwrap();
    assert_eq!(last[3], "=HYPERLINK(\"x\")");
    assert_eq!(last[5], "000123");
    assert_eq!(last[8], "0044 20 7946 0000");
    assert_eq!(last[12], "12345678901234567");
}

#[test]
fn csv_export_reads_back_to_the_same_payloads_and_ids() {
    let mut with_nulls = 0;
    for seed in 100..104 {
        let records = random_records(seed, 400);
        let mut out = Vec::new();
        write_csv(rows(&records), &mut out).unwrap();
        let back = read_back(Format::Csv, &out);
        assert_eq!(back.len(), records.len(), "seed {seed}");
        let mut last_line = 1;
        for (i, (r, p)) in records.iter().zip(&back).enumerate() {
            let line = p.position.number();
            assert!(line > last_line, "lines increase: {line} after {last_line}");
            last_line = line;
            assert_eq!(p.record_id.as_deref(), Some(r.id.as_str()));
            let expected = as_csv_sees_it(&r.payload);
            if expected == r.payload {
                assert_eq!(p.result.as_ref(), Ok(&r.payload), "seed {seed} record {i}");
            } else {
                with_nulls += 1;
                assert_eq!(p.result.as_ref(), Ok(&expected), "seed {seed} record {i}");
            }
        }
    }
    assert!(with_nulls > 0, "the generator exercises nulls");
}

#[test]
fn csv_export_line_numbers_match_the_physical_lines_written() {
    let records = random_records(7, 200);
    let mut out = Vec::new();
    write_csv(rows(&records), &mut out).unwrap();
    let back = read_back(Format::Csv, &out);
    // Each record's first field is its id, which starts its physical line.
    let text = String::from_utf8(out).unwrap();
    for (r, p) in records.iter().zip(&back) {
        let line = p.position.number() as usize;
        let physical = text.split('\n').nth(line - 1).unwrap();
        assert!(physical.starts_with(&r.id), "line {line} is {physical:?}");
    }
}
