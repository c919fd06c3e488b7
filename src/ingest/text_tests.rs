//! End-to-end tests of encodings and delimiters through `read_records`: legacy and UTF-16
//! exports, semicolon and tab files, overrides, and the report of what was detected.

use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::store::Payload;

fn parse(format: Format, bytes: &[u8]) -> Vec<Parsed> {
    parse_all(format, bytes).unwrap()
}

fn payload(value: serde_json::Value) -> Payload {
    Payload::parse(&value).unwrap()
}

fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

const GERMAN: &str = "full_name;email;phone\r\n\
                      Jürgen Müller;j.mueller@example.de;+49 30 1234567\r\n\
                      Grete Weiß;grete@example.de;+49 89 7654321\r\n";

#[test]
fn windows_1252_semicolon_csv_reads_names_with_umlauts() {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(GERMAN);
    assert!(std::str::from_utf8(&bytes).is_err(), "really not UTF-8");
    let got = parse(Format::Csv, &bytes);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].position, Position::Line(2));
    assert_eq!(
        got[0].result,
        Ok(payload(json!({
            "full_name": "Jürgen Müller",
            "email": "j.mueller@example.de",
            "phone": "+49301234567"
        })))
    );
    assert_eq!(got[1].position, Position::Line(3));
    assert_eq!(
        got[1].result.as_ref().map(|p| p.full_name().to_string()),
        Ok("Grete Weiß".to_string())
    );
}

#[test]
fn utf16le_csv_with_a_bom_reads() {
    let bytes = utf16le_with_bom(GERMAN);
    let got = parse(Format::Csv, &bytes);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].result.as_ref().map(|p| p.full_name().to_string()),
        Ok("Grete Weiß".to_string())
    );
}

#[test]
fn tsv_reads_with_tabs_and_txt_sniffs() {
    let text = "full_name\temail\nAda Lovelace\tada@example.com\n";
    let got = parse(Format::Tsv, text.as_bytes());
    assert_eq!(
        got[0].result,
        Ok(payload(
            json!({"full_name": "Ada Lovelace", "email": "ada@example.com"})
        ))
    );
    assert_eq!(Format::from_path(Path::new("export.TSV")), Ok(Format::Tsv));
    assert_eq!(Format::from_path(Path::new("export.txt")), Ok(Format::Csv));
    // `.txt` (Csv) sniffs the same tabs.
    assert_eq!(parse(Format::Csv, text.as_bytes()), got);
}

#[test]
fn a_tsv_keeps_tab_even_when_its_header_is_full_of_commas() {
    let text = "full_name\ttrading_name\nAda\ta, b, c\n";
    let got = parse(Format::Tsv, text.as_bytes());
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].result,
        Ok(payload(
            json!({"full_name": "Ada", "trading_name": "a, b, c"})
        ))
    );
}

fn fields_of(parsed: &Parsed) -> Vec<&str> {
    match &parsed.result {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.field.as_str()).collect(),
    }
}

#[test]
fn utf16_json_and_ndjson_read() {
    let json = utf16le_with_bom("[{\"full_name\":\"Jürgen\"},\n{\"full_name\":\"Weiß\"}]");
    let got = parse(Format::Json, &json);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].result, Ok(payload(json!({"full_name": "Weiß"}))));
    let nd = utf16le_with_bom("{\"full_name\":\"Jürgen\"}\n{\"full_name\":\"Weiß\"}\n");
    assert_eq!(parse(Format::Ndjson, &nd).len(), 2);
}

#[test]
fn open_text_reports_what_it_detected() {
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(GERMAN);
    let (detected, mut text) = open_text(&bytes[..], &TextOptions::default(), None).unwrap();
    assert_eq!(
        detected.to_string(),
        "windows-1252 (detected), delimiter ';'"
    );
    let mut decoded = String::new();
    text.read_to_string(&mut decoded).unwrap();
    assert_eq!(decoded, GERMAN);

    let tsv = b"\xEF\xBB\xBFa\tb\n";
    let (detected, _) = open_text(&tsv[..], &TextOptions::default(), Some(b'\t')).unwrap();
    assert_eq!(
        detected.to_string(),
        "UTF-8 (byte order mark), delimiter tab"
    );
}

#[test]
fn options_override_encoding_and_delimiter() {
    // 0xA4 is € in ISO-8859-15 and ¤ in windows-1252.
    let bytes = b"full_name|trading_name\nAda|5 \xA4\n";
    let options = TextOptions {
        encoding: encoding_by_label("iso-8859-15"),
        delimiter: Some(b'|'),
    };
    let (detected, _) = open_text(&bytes[..], &options, Some(b'\t')).unwrap();
    assert_eq!(detected.to_string(), "ISO-8859-15 (given), delimiter '|'");
    let mut got = Vec::new();
    let flow = read_records_with(Format::Tsv, &bytes[..], &options.into(), |p| {
        got.push(p);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]
            .result
            .as_ref()
            .map(|p| p.to_value()["trading_name"].clone()),
        Ok(serde_json::json!("5 €"))
    );
}

#[test]
fn malformed_utf16_is_a_file_error_with_the_line_after_earlier_records() {
    let mut bytes = utf16le_with_bom("full_name\nAda\nBo\n");
    bytes.extend([0x00, 0xDC]); // a lone low surrogate on line 4
    let mut names = Vec::new();
    let err = read_records(Format::Csv, &bytes[..], |p| {
        names.push(p.result.map(|p| p.full_name().to_string()));
        ControlFlow::<()>::Continue(())
    })
    .unwrap_err();
    assert_eq!(names, [Ok("Ada".to_string()), Ok("Bo".to_string())]);
    assert!(
        matches!(
            err,
            FileError::NotValidText {
                line: 4,
                encoding: "UTF-16LE"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.in_file("export.csv").to_string(),
        "export.csv line 4: not valid UTF-16LE"
    );
}

#[test]
fn a_file_utf8_in_its_sample_is_read_as_utf8_and_later_bad_bytes_are_the_parsers() {
    // The first 64 KiB are ASCII, so the file is taken as UTF-8; a windows-1252 byte after
    // them is reported as invalid UTF-8 (`--encoding` reads such a file).
    let mut bytes = b"full_name,email\n".to_vec();
    while bytes.len() <= SAMPLE_BYTES {
        bytes.extend_from_slice(b"Ada,ada@example.com\n");
    }
    let line = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    bytes.extend_from_slice(b"J\xFCrgen,j@example.de\n");
    match parse_all(Format::Csv, &bytes[..]).unwrap_err() {
        FileError::CellNotUtf8 { line: at, .. } => assert_eq!(at, line),
        other => panic!("unexpected {other:?}"),
    }
    let options = TextOptions {
        encoding: encoding_by_label("windows-1252"),
        delimiter: None,
    };
    let mut last = None;
    let flow = read_records_with(Format::Csv, &bytes[..], &options.into(), |p| {
        last = Some(p);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));
    let last = last.unwrap();
    assert_eq!(last.position, Position::Line(line));
    assert_eq!(
        last.result.map(|p| p.full_name().to_string()),
        Ok("Jürgen".to_string())
    );
}

#[test]
fn xlsx_rows_are_records_by_their_spreadsheet_row() {
    assert_eq!(
        Format::from_path(Path::new("Kunden.XLSX")),
        Ok(Format::Xlsx)
    );
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let rows: [&[&str]; 4] = [
        &["First Name", "Last Name", "E-Mail", "Mobile", "Country"],
        &[
            "Jürgen",
            "Müller",
            "j@example.de",
            "0151 23456789",
            "Deutschland",
        ],
        &[],
        &["", "Bo", "not-an-email", "", ""],
    ];
    for (r, cells) in rows.iter().enumerate() {
        for (c, text) in cells.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *text).unwrap();
        }
    }
    // A phone typed as a number, in the first data row.
    sheet.write_number(1, 3, 4915123456789.0).unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let got = parse(Format::Xlsx, &bytes);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].position, Position::Line(2));
    assert_eq!(
        got[0].result,
        Ok(payload(
            json!({"full_name": "Jürgen Müller", "email": "j@example.de",
                          "phone": "+4915123456789",
                          "risk": {"country_of_residence": "DE"}})
        ))
    );
    assert_eq!(got[1].position, Position::Line(4));
    assert_eq!(fields_of(&got[1]), ["E-Mail"]);
    let err = parse_all(Format::Xlsx, &b"PK"[..]).unwrap_err();
    assert!(matches!(err, FileError::Xlsx { .. }), "{err:?}");
}
