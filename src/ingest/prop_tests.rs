//! Property tests of every format's reader: random bytes never panic, and a generated file
//! of good, oversized and malformed records gives back every record written, in order, at
//! its position, each either read or refused for the reason it was made to fail. The record
//! bound is small here (`LIMIT`) so that oversized records are cheap to make.

use std::ops::ControlFlow;

use proptest::prelude::*;

use super::bounds::MAX_NESTING;
use super::{read_file_with_limit, Format, Parsed, Position, ReadOptions};

const LIMIT: usize = 300;

fn read_all(format: Format, bytes: &[u8]) -> Result<Vec<Parsed>, super::FileError> {
    let mut all = Vec::new();
    let (flow, _) = read_file_with_limit(format, bytes, &ReadOptions::default(), LIMIT, |p| {
        all.push(p);
        ControlFlow::<()>::Continue(())
    })?;
    assert_eq!(flow, ControlFlow::Continue(()));
    Ok(all)
}

/// What a generated record is made to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Good,
    /// Over `LIMIT`.
    Oversized,
    /// Nested past `MAX_NESTING` (JSON) / malformed (NDJSON) / ragged (CSV, xlsx).
    Broken,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![6 => Just(Kind::Good), 2 => Just(Kind::Oversized), 1 => Just(Kind::Broken)]
}

/// A note cell or member: text with the characters formats must quote or escape.
fn note() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just(" "),
            Just(","),
            Just("\""),
            Just("\n"),
            Just("é"),
            Just("\\"),
            Just("\t")
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

fn records() -> impl Strategy<Value = Vec<(Kind, String, bool)>> {
    proptest::collection::vec((kind(), note(), any::<bool>()), 0..12)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The record at index `i` as the reader must give it back.
fn check(i: usize, kind: Kind, got: &Parsed, position: Position) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.position, position, "record {}", i);
    let errors = got.result.as_ref().err().cloned().unwrap_or_default();
    match kind {
        Kind::Good => prop_assert!(got.result.is_ok(), "record {}: {:?}", i, errors),
        Kind::Oversized => prop_assert_eq!(
            errors.first().map(|e| e.message.as_str()),
            Some("record is over 300 bytes; not read"),
            "record {}",
            i
        ),
        Kind::Broken => prop_assert!(got.result.is_err(), "record {} was read", i),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        structural in proptest::collection::vec(
            prop_oneof![
                Just(b'['), Just(b']'), Just(b'{'), Just(b'}'), Just(b'"'), Just(b','),
                Just(b':'), Just(b'\\'), Just(b'\n'), Just(b'\r'), Just(b'a'), Just(b'1'),
                Just(0xC3), Just(0xA9)
            ],
            0..600,
        ),
    ) {
        for format in [Format::Json, Format::Ndjson, Format::Csv, Format::Tsv, Format::Xlsx] {
            let _ = read_all(format, &bytes);
            let _ = read_all(format, &structural);
            let mut prefixed = b"full_name,note\n".to_vec();
            prefixed.extend_from_slice(&structural);
            let _ = read_all(format, &prefixed);
        }
    }

    #[test]
    fn every_csv_record_is_read_or_refused_at_its_line(rows in records()) {
        let mut text = String::from("full_name,note\n");
        let mut line = 2u64;
        let mut lines = Vec::new();
        for (i, (kind, note, crlf)) in rows.iter().enumerate() {
            let note = match kind {
                Kind::Oversized => format!("{note}{}", "x\n".repeat(LIMIT)),
                _ => note.clone(),
            };
            let cell = format!("\"{}\"", note.replace('"', "\"\""));
            let row = match kind {
                Kind::Broken => format!("Person {i},{cell},extra"),
                _ => format!("Person {i},{cell}"),
            };
            lines.push(line);
            line += row.matches('\n').count() as u64 + 1;
            text.push_str(&row);
            text.push_str(if *crlf { "\r\n" } else { "\n" });
        }
        let got = read_all(Format::Csv, text.as_bytes()).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        for (i, (kind, _, _)) in rows.iter().enumerate() {
            check(i, *kind, &got[i], Position::Line(lines[i]))?;
        }
    }

    #[test]
    fn every_ndjson_line_is_read_or_refused_at_its_line(rows in records()) {
        let mut text = String::new();
        for (i, (kind, note, blank_after)) in rows.iter().enumerate() {
            let note = json_string(note);
            let line = match kind {
                Kind::Good => format!("{{\"full_name\":\"Person {i}\",\"note\":{note}}}"),
                Kind::Oversized => format!(
                    "{{\"full_name\":\"Person {i}\",\"note\":{note},\"n\":[{}]}}",
                    vec!["1"; LIMIT].join(",")
                ),
                Kind::Broken => format!("{{\"full_name\":\"Person {i}\",\"note\":{note}"),
            };
            text.push_str(&line);
            text.push_str(if *blank_after { "\n\n" } else { "\n" });
        }
        let got = read_all(Format::Ndjson, text.as_bytes()).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        let mut line = 1;
        for (i, (kind, _, blank_after)) in rows.iter().enumerate() {
            check(i, *kind, &got[i], Position::Line(line))?;
            line += if *blank_after { 2 } else { 1 };
        }
    }

    #[test]
    fn every_json_element_is_read_or_refused_at_its_index_and_line(rows in records()) {
        let mut text = String::from("[");
        let mut line = 1;
        let mut starts = Vec::new();
        for (i, (kind, note, newline)) in rows.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            if *newline {
                text.push('\n');
                line += 1;
            }
            let note = json_string(note);
            let element = match kind {
                Kind::Good => format!("{{\"full_name\":\"Person {i}\",\"note\":{note}}}"),
                // Half the oversized ones are one long string, half a long array.
                Kind::Oversized if i % 2 == 0 => format!(
                    "{{\"full_name\":\"Person {i}\",\"note\":{}}}",
                    json_string(&format!("{}{}", "é\\\"".repeat(LIMIT), note))
                ),
                Kind::Oversized => format!(
                    "{{\"full_name\":\"Person {i}\",\"n\":[{}],\"note\":{note}}}",
                    vec!["[1, 2.5e3, \"x\"]"; LIMIT / 8].join(",\n")
                ),
                Kind::Broken => {
                    let depth = MAX_NESTING as usize + 1;
                    format!(
                        "{{\"full_name\":\"Person {i}\",\"x\":{}0{}}}",
                        "[".repeat(depth),
                        "]".repeat(depth)
                    )
                }
            };
            starts.push(line);
            line += element.matches('\n').count() as u64;
            text.push_str(&element);
        }
        text.push(']');
        let got = read_all(Format::Json, text.as_bytes()).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        for (i, (kind, _, _)) in rows.iter().enumerate() {
            let position = Position::Element { index: i as u64, line: starts[i] };
            check(i, *kind, &got[i], position)?;
            if *kind == Kind::Broken {
                prop_assert_eq!(
                    &got[i].result.as_ref().unwrap_err()[0].message,
                    "record nests deeper than 64 levels; not read"
                );
            }
        }
    }
}

proptest! {
    // A workbook is slower to make than text.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_xlsx_row_is_read_or_refused_at_its_row(rows in records()) {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "full_name").unwrap();
        sheet.write_string(0, 1, "note").unwrap();
        for (i, (kind, note, _)) in rows.iter().enumerate() {
            let r = i as u32 + 1;
            sheet.write_string(r, 0, format!("Person {i}")).unwrap();
            match kind {
                Kind::Good => {}
                Kind::Oversized => {
                    sheet.write_string(r, 2, "y".repeat(LIMIT)).unwrap();
                }
                Kind::Broken => {
                    sheet.write_string(r, 2, "extra").unwrap();
                }
            }
            if !note.is_empty() {
                sheet.write_string(r, 1, note).unwrap();
            }
        }
        let bytes = book.save_to_buffer().unwrap();
        let got = read_all(Format::Xlsx, &bytes).unwrap();
        prop_assert_eq!(got.len(), rows.len());
        for (i, (kind, _, _)) in rows.iter().enumerate() {
            check(i, *kind, &got[i], Position::Line(i as u64 + 2))?;
        }
    }
}
