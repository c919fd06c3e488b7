//! Unit tests for the readers, over small in-memory files.

use std::ops::ControlFlow;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::contract::FieldError;
use crate::store::Payload;

fn parse(format: Format, text: &str) -> Vec<Parsed> {
    parse_all(format, text.as_bytes()).unwrap()
}

fn file_error(format: Format, bytes: &[u8]) -> FileError {
    parse_all(format, bytes).unwrap_err()
}

fn payload(value: serde_json::Value) -> Payload {
    Payload::parse(&value).unwrap()
}

fn errors(parsed: &Parsed) -> &[FieldError] {
    parsed.result.as_ref().unwrap_err()
}

fn fields(parsed: &Parsed) -> Vec<&str> {
    errors(parsed).iter().map(|e| e.field.as_str()).collect()
}

// --- Format ---

#[test]
fn format_is_chosen_by_extension_in_any_case() {
    let f = |p: &str| Format::from_path(Path::new(p));
    assert_eq!(f("a.json"), Ok(Format::Json));
    assert_eq!(f("dir/A.JSON"), Ok(Format::Json));
    assert_eq!(f("a.ndjson"), Ok(Format::Ndjson));
    assert_eq!(f("a.JsonL"), Ok(Format::Ndjson));
    assert_eq!(f("export.CSV"), Ok(Format::Csv));
}

#[test]
fn unsupported_extension_is_rejected_with_the_file_name() {
    let err = Format::from_path(Path::new("/drop/customers.xls")).unwrap_err();
    assert_eq!(err.name, "customers.xls");
    assert!(err
        .to_string()
        .starts_with("customers.xls: not a supported file type"));
    assert!(Format::from_path(Path::new("noext")).is_err());
    assert!(Format::from_path(Path::new("a.json.tmp")).is_err());
}

// --- NDJSON ---

#[test]
fn ndjson_reads_one_record_per_line_and_normalises_to_snake_case() {
    let got = parse(
        Format::Ndjson,
        "{\"fullName\":\"Ada\",\"externalId\":\"A1\"}\n{\"full_name\":\"Bo\"}\n",
    );
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].position, Position::Line(1));
    assert_eq!(
        got[0].result,
        Ok(payload(json!({"full_name": "Ada", "external_id": "A1"})))
    );
    assert_eq!(got[1].position, Position::Line(2));
}

#[test]
fn ndjson_malformed_line_is_that_records_error_and_later_lines_still_parse() {
    let text = "{\"full_name\":\"Ada\"}\n{\"full_name\": oops}\n\n   \n{\"full_name\":\"Cy\"}";
    let got = parse(Format::Ndjson, text);
    assert_eq!(got.len(), 3, "blank lines are skipped: {got:?}");
    assert_eq!(got[1].position, Position::Line(2));
    let e = &errors(&got[1])[0];
    assert_eq!(e.field, "");
    assert!(e.message.starts_with("not valid JSON: "), "{}", e.message);
    assert!(e.message.contains("column"), "{}", e.message);
    // Blank lines still count: the last record is on line 5.
    assert_eq!(got[2].position, Position::Line(5));
    assert!(got[2].result.is_ok());
}

#[test]
fn ndjson_handles_bom_and_crlf() {
    let got = parse(
        Format::Ndjson,
        "\u{feff}{\"full_name\":\"Ada\"}\r\n{\"full_name\":\"Bo\"}\r\n",
    );
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|p| p.result.is_ok()), "{got:?}");
    assert_eq!(got[1].position, Position::Line(2));
}

#[test]
fn ndjson_contract_errors_are_per_record() {
    let got = parse(
        Format::Ndjson,
        "{\"full_name\":\"Ada\",\"email\":\"nope\",\"colour\":\"red\"}\n[1]\n",
    );
    assert_eq!(fields(&got[0]), ["email"]);
    assert_eq!(fields(&got[1]), [""]);
}

#[test]
fn ndjson_invalid_utf8_is_a_file_error_naming_line_and_column() {
    let err = file_error(
        Format::Ndjson,
        b"\xEF\xBB\xBF{\"full_name\":\"A\"}\n{\"full_name\":\"\xff\"}\n",
    );
    match err {
        FileError::NotUtf8 { line, column } => assert_eq!((line, column), (2, 15)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn ndjson_overlong_line_is_skipped_as_a_bad_record() {
    let long = format!(
        "{{\"full_name\":\"{}\"}}\n{{\"full_name\":\"Bo\"}}\n",
        "x".repeat(MAX_LINE_BYTES)
    );
    let got = parse(Format::Ndjson, &long);
    assert_eq!(got.len(), 2);
    assert_eq!(errors(&got[0])[0].message, "record is over 1 MiB; not read");
    assert_eq!(got[1].position, Position::Line(2));
    assert!(got[1].result.is_ok());
}

// --- JSON ---

#[test]
fn json_single_object_is_one_record_at_index_0_on_its_line() {
    let got = parse(Format::Json, "\u{feff}\r\n{\"fullName\":\"Ada\"}\r\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].position, Position::Element { index: 0, line: 2 });
    assert_eq!(got[0].position.to_string(), "line 2 (element 0)");
    assert_eq!(got[0].result, Ok(payload(json!({"full_name": "Ada"}))));
}

#[test]
fn json_array_yields_each_element_with_its_index_and_start_line() {
    let got = parse(
        Format::Json,
        "[{\"full_name\":\"Ada\"},\n {\"full_name\":\"\"},\n 7, {\"full_name\":\"Cy\"}]",
    );
    let positions: Vec<_> = got.iter().map(|p| p.position).collect();
    let expected: Vec<_> = [(0, 1), (1, 2), (2, 3), (3, 3)]
        .into_iter()
        .map(|(index, line)| Position::Element { index, line })
        .collect();
    assert_eq!(positions, expected);
    assert!(got[0].result.is_ok());
    assert_eq!(fields(&got[1]), ["full_name"]);
    assert_eq!(
        fields(&got[2]),
        [""],
        "a non-object element is a record error"
    );
    assert!(got[3].result.is_ok());
}

#[test]
fn json_malformed_array_element_ends_the_file_saying_how_many_came_before() {
    let text = "[{\"full_name\":\"Ada\"},\n{\"full_name\":\"Bo\"},\n{\"full_name\" \"Cy\"}]";
    let mut seen = 0;
    let err = read_records(Format::Json, text.as_bytes(), |_| {
        seen += 1;
        ControlFlow::<()>::Continue(())
    })
    .unwrap_err();
    assert_eq!(seen, 2);
    match &err {
        FileError::BadElement { index, line, .. } => assert_eq!((*index, *line), (2, 3)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("2 element(s) before it"), "{err}");
}

#[test]
fn json_unterminated_array_is_a_bad_element_error() {
    let err = file_error(Format::Json, b"[{\"full_name\":\"Ada\"},");
    assert!(
        matches!(err, FileError::BadElement { index: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn json_top_level_syntax_errors_are_file_errors_with_line_and_column() {
    match file_error(Format::Json, b"\n  {\"full_name\": }") {
        FileError::Syntax { line, column, .. } => assert_eq!((line, column), (2, 17)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        file_error(Format::Json, b""),
        FileError::Syntax { .. }
    ));
    let scalar = file_error(Format::Json, b"\"hello\"");
    assert!(
        scalar
            .to_string()
            .contains("expected a customer object or an array of customer objects"),
        "{scalar}"
    );
    assert!(matches!(
        file_error(Format::Json, b"{\"full_name\":\"A\"} {}"),
        FileError::Syntax { .. }
    ));
}

#[test]
fn json_invalid_utf8_is_a_file_error() {
    let err = file_error(Format::Json, b"\xEF\xBB\xBF{\"full_name\":\"\xff\"}");
    assert!(matches!(err, FileError::Syntax { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn json_stops_when_the_callback_breaks() {
    let text = "[{\"full_name\":\"A\"},{\"full_name\":\"B\"},{\"full_name\":\"C\"}]";
    let mut seen = 0;
    let flow = read_records(Format::Json, text.as_bytes(), |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break("stop")
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(flow, ControlFlow::Break("stop"));
    assert_eq!(seen, 2);
}

// --- meta members ---

#[test]
fn meta_members_are_stripped_and_the_id_returned() {
    let got = parse(
        Format::Ndjson,
        concat!(
            "{\"_icsync_id\":\"0190-abc\",\"_error\":{\"any\":1},\"full_name\":\"Ada\"}\n",
            "{\"_icsync_id\":null,\"_error\":\"x\",\"full_name\":\"Bo\"}\n",
            "{\"_icsync_id\":5,\"full_name\":\"Cy\"}\n",
            "{\"_other\":1,\"full_name\":\"Di\"}\n",
        ),
    );
    assert_eq!(got[0].record_id.as_deref(), Some("0190-abc"));
    assert_eq!(got[0].result, Ok(payload(json!({"full_name": "Ada"}))));
    assert_eq!(got[1].record_id, None);
    assert!(got[1].result.is_ok());
    assert_eq!(fields(&got[2]), ["_icsync_id"]);
    assert!(got[3].result.is_ok(), "an unknown member is not imported");
    let (_, summary) = read_file(
        Format::Ndjson,
        "{\"_error\":{\"any\":1},\"_other\":1,\"full_name\":\"Di\"}\n".as_bytes(),
        &ReadOptions::default(),
        |_| ControlFlow::<()>::Continue(()),
    )
    .unwrap();
    assert_eq!(
        summary.mapping.unmapped,
        ["_other"],
        "only the reserved names are known"
    );
}

// --- CSV ---

#[test]
fn csv_reads_camel_case_headers_and_risk_columns() {
    let text = "fullName,externalId,risk.occupation,risk.sourceOfFunds,risk.countryOfResidence\n\
                Ada,A1,Engineer,Salary,GB\n";
    let got = parse(Format::Csv, text);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].position, Position::Line(2));
    assert_eq!(
        got[0].result,
        Ok(payload(json!({
            "full_name": "Ada",
            "external_id": "A1",
            "risk": {"occupation": "Engineer", "source_of_funds": "Salary", "country_of_residence": "GB"}
        })))
    );
}

#[test]
fn csv_empty_cell_means_absent_and_null_is_text() {
    let text = "full_name,email,trading_name,risk.occupation\nAda,,null,\n";
    let got = parse(Format::Csv, text);
    assert_eq!(
        got[0].result,
        Ok(payload(json!({"full_name": "Ada", "trading_name": "null"})))
    );
}

#[test]
fn csv_typed_risk_columns() {
    let text = "full_name,risk.expected_monthly_volume,risk.isPep\n\
                Ada,1200,YES\n\
                Bo, 0 ,0\n\
                Cy,12k,maybe\n\
                Di,-5,\n";
    let got = parse(Format::Csv, text);
    assert_eq!(
        got[0].result,
        Ok(payload(
            json!({"full_name": "Ada", "risk": {"expected_monthly_volume": 1200, "is_pep": true}})
        ))
    );
    assert_eq!(
        got[1].result,
        Ok(payload(
            json!({"full_name": "Bo", "risk": {"expected_monthly_volume": 0, "is_pep": false}})
        ))
    );
    assert_eq!(
        fields(&got[2]),
        ["risk.expected_monthly_volume", "risk.isPep"],
        "bad typed cells name their column as written"
    );
    assert_eq!(got[2].position, Position::Line(4));
    // A negative number is a number; the contract says why it is wrong.
    assert_eq!(fields(&got[3]), ["risk.expected_monthly_volume"]);
    assert!(errors(&got[3])[0].message.contains("0 or more"));
}

#[test]
fn csv_quoted_multiline_cells_keep_physical_line_numbers() {
    // Multi-line cells in a column no field takes (a field value may not hold a newline).
    let text = "full_name,notes,trading_name\n\
                Ada,\"Line one\r\nline two\r\nline three\",\"Ada\nLovelace\"\n\
                Bo,,\"say \"\"hi\"\", twice\"\n\
                Cy,,\n";
    let got = parse(Format::Csv, text);
    let positions: Vec<_> = got.iter().map(|p| p.position).collect();
    assert_eq!(
        positions,
        [Position::Line(2), Position::Line(6), Position::Line(7)]
    );
    assert_eq!(
        got[1].result,
        Ok(payload(
            json!({"full_name": "Bo", "trading_name": "say \"hi\", twice"})
        ))
    );
    // A newline inside a field's value is refused by the contract, on its own line.
    assert_eq!(fields(&got[0]), ["trading_name"]);
    assert!(errors(&got[0])[0].message.contains("control"));
}

#[test]
fn csv_handles_bom_and_crlf() {
    let text = "\u{feff}full_name,email\r\nAda,ada@example.com\r\nBo,\r\n";
    let got = parse(Format::Csv, text);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].result,
        Ok(payload(
            json!({"full_name": "Ada", "email": "ada@example.com"})
        ))
    );
    assert_eq!(got[1].position, Position::Line(3));
}

#[test]
fn csv_line_numbers_count_blank_lines_and_crlf_inside_and_between_records() {
    let text = "full_name,notes\r\n\r\nAda\r\n\r\n\r\nB,\"o\r\nx\"\r\nCy\r\n\nDi";
    let got = parse(Format::Csv, text);
    let positions: Vec<_> = got.iter().map(|p| p.position.number()).collect();
    assert_eq!(positions, [3, 6, 8, 10]);
    assert_eq!(got[1].result.as_ref().unwrap().full_name(), "B");
}

#[test]
fn csv_ragged_row_is_an_error_for_that_row_only() {
    let text = "full_name,email\nAda\nBo,bo@example.com,extra\nCy,\n";
    let got = parse(Format::Csv, text);
    assert_eq!(got.len(), 3);
    assert!(errors(&got[0])[0]
        .message
        .contains("1 cell(s) but the header has 2"));
    assert_eq!(got[1].position, Position::Line(3));
    assert!(errors(&got[1])[0].message.contains("3 cell(s)"));
    assert!(got[2].result.is_ok());
}

#[test]
fn csv_unknown_columns_are_listed_once_per_file_and_not_imported() {
    let text = "full_name,colour,risk.shoe_size\nAda,red,\nBo,,\n";
    let mut got = Vec::new();
    let (_, summary) = read_file(Format::Csv, text.as_bytes(), &ReadOptions::default(), |p| {
        got.push(p);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    assert_eq!(got[0].result, Ok(payload(json!({"full_name": "Ada"}))));
    assert!(got[1].result.is_ok());
    assert_eq!(summary.mapping.unmapped, ["colour", "risk.shoe_size"]);
}

#[test]
fn csv_meta_columns_are_stripped_and_the_id_returned() {
    let text = "_icsync_id,_error,full_name,_note\n r-1 ,email: bad,Ada,\n  ,,Bo,x\n";
    let got = parse(Format::Csv, text);
    assert_eq!(got[0].record_id.as_deref(), Some("r-1"));
    assert_eq!(got[0].result, Ok(payload(json!({"full_name": "Ada"}))));
    assert_eq!(got[1].record_id, None);
    assert_eq!(got[1].result, Ok(payload(json!({"full_name": "Bo"}))));
}

#[test]
fn csv_without_header_is_a_file_error() {
    assert!(matches!(
        file_error(Format::Csv, b""),
        FileError::MissingHeader
    ));
    assert!(matches!(
        file_error(Format::Csv, b"\xEF\xBB\xBF"),
        FileError::MissingHeader
    ));
    // A header and no rows is an empty file, not an error.
    assert!(parse(Format::Csv, "full_name\n").is_empty());
}

#[test]
fn csv_duplicate_header_and_invalid_utf8_are_file_errors() {
    assert!(matches!(
        file_error(Format::Csv, b"_icsync_id,full_name,_icsync_id\n"),
        FileError::DuplicateColumn { line: 1, .. }
    ));
    match file_error(
        Format::Csv,
        b"\xEF\xBB\xBFfull_name,email\nAda,a@b.co\nBo,\xfe\n",
    ) {
        FileError::CellNotUtf8 { line, column_name } => {
            assert_eq!((line, column_name.as_str()), (3, "email"))
        }
        other => panic!("unexpected {other:?}"),
    }
}

// --- display ---

#[test]
fn issues_name_file_position_field_and_message() {
    let got = parse(Format::Csv, "full_name,email\nAda,nope\n");
    let lines: Vec<String> = got[0]
        .issues("customers.csv")
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        lines,
        ["customers.csv line 2: email: is not a valid email address"]
    );
    let got = parse(Format::Ndjson, "{oops\n");
    let line = got[0].issues("a.ndjson").next().unwrap().to_string();
    assert!(
        line.starts_with("a.ndjson line 1: not valid JSON: "),
        "{line}"
    );
    let err = file_error(Format::Json, b"[1,");
    let text = err.in_file("a.json").to_string();
    assert!(
        text.starts_with("a.json line 1, column 3: array element 1"),
        "{text}"
    );
}

// --- batches ---

#[test]
fn batches_hold_at_most_n_valid_records_and_flush_the_rest_at_the_end() {
    let mut text = String::new();
    for i in 0..7 {
        text.push_str(&format!("{{\"full_name\":\"P{i}\"}}\n"));
        if i % 3 == 0 {
            text.push_str("{\"email\":\"x\"}\n");
        }
    }
    let mut batches = Vec::new();
    let flow = read_batches(
        Format::Ndjson,
        text.as_bytes(),
        &ReadOptions::default(),
        3,
        |b| {
            batches.push(b);
            ControlFlow::<()>::Continue(())
        },
    )
    .unwrap();
    assert_eq!(flow, ControlFlow::Continue(()));
    let sizes: Vec<_> = batches
        .iter()
        .map(|b| (b.accepted.len(), b.rejected.len()))
        .collect();
    assert_eq!(sizes, [(3, 1), (3, 1), (1, 1)]);
    let lines: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.accepted.iter().map(|a| a.position.number()))
        .collect();
    assert_eq!(lines, [1, 3, 4, 5, 7, 8, 9]);
}

#[test]
fn batches_of_only_rejected_records_are_bounded_too() {
    let text = "{\"full_name\": \" \"}\n".repeat(10);
    let mut largest = 0;
    let mut total = 0;
    let _ = read_batches(
        Format::Ndjson,
        text.as_bytes(),
        &ReadOptions::default(),
        4,
        |b| {
            largest = largest.max(b.rejected.len());
            total += b.rejected.len();
            ControlFlow::<()>::Continue(())
        },
    )
    .unwrap();
    assert_eq!((largest, total), (4, 10));
}

#[test]
fn batches_deliver_what_was_read_before_a_file_error() {
    let text = "[{\"full_name\":\"A\"},{\"full_name\":\"B\"},{";
    let mut got = 0;
    let err = read_batches(
        Format::Json,
        text.as_bytes(),
        &ReadOptions::default(),
        100,
        |b| {
            got += b.accepted.len();
            ControlFlow::<()>::Continue(())
        },
    )
    .unwrap_err();
    assert_eq!(got, 2);
    assert!(matches!(err, FileError::BadElement { index: 2, .. }));
}

#[test]
fn csv_risk_given_as_a_column_and_as_risk_columns_is_a_record_error() {
    let text = "full_name,risk,risk.occupation\nAda,x,Engineer\nBo,,Engineer\n";
    let got = parse(Format::Csv, text);
    assert_eq!(fields(&got[0]), ["risk"]);
    assert!(got[1].result.is_ok());
}

#[test]
fn json_empty_array_has_no_records() {
    assert!(parse(Format::Json, " [ ] ").is_empty());
}

// --- the worked examples of docs/ingest.md ---

fn first(format: Format, text: &str) -> (Parsed, FileSummary) {
    let mut got = Vec::new();
    let (_, summary) = read_file(format, text.as_bytes(), &ReadOptions::default(), |p| {
        got.push(p);
        ControlFlow::<()>::Continue(())
    })
    .unwrap();
    (got.remove(0), summary)
}

#[test]
fn docs_salesforce_contact_falls_back_to_phone_and_names_the_country_code() {
    let text = "Contact ID,Salutation,First Name,Middle Name,Last Name,Account Name,\
                Mailing Country,Phone,Mobile,Email\n\
                003Dn00000AbCdEIAV,Mrs.,Maria,,Garcia,Acme,Spain,+34 612 345 678,,\
                maria.garcia@example.es\n";
    let (parsed, summary) = first(Format::Csv, text);
    assert_eq!(summary.mapping.preset, Some("Salesforce contacts"));
    assert!(summary.mapping.unmapped.is_empty(), "{summary:?}");
    assert_eq!(
        parsed.result,
        Ok(payload(json!({
            "external_id": "003Dn00000AbCdEIAV", "full_name": "Maria Garcia",
            "email": "maria.garcia@example.es", "phone": "+34612345678",
            "risk": {"country_of_residence": "ES"}
        })))
    );
}

#[test]
fn docs_stripe_customer_takes_the_shipping_phone_when_phone_is_null() {
    let text = r#"[{"id": "cus_NffrFeUfNV2Hib", "object": "customer", "livemode": false,
        "invoice_prefix": "0759376C", "balance": 0, "metadata": {"plan": "pro"},
        "name": "Jenny Rosen", "email": "jenny.rosen@example.com", "phone": null,
        "address": {"city": "SF", "country": "US", "line1": null},
        "shipping": {"name": "Jenny", "phone": "+1 415 555 0100",
                     "address": {"country": "US"}}}]"#;
    let (parsed, summary) = first(Format::Json, text);
    assert_eq!(summary.mapping.preset, Some("Stripe customers"));
    assert_eq!(
        parsed.result,
        Ok(payload(json!({
            "external_id": "cus_NffrFeUfNV2Hib", "full_name": "Jenny Rosen",
            "email": "jenny.rosen@example.com", "phone": "+14155550100",
            "risk": {"country_of_residence": "US"}
        })))
    );
}

#[test]
fn docs_google_multi_value_cell_gives_its_first_value_with_a_note() {
    let text = "First Name,Last Name,E-mail 1 - Label,E-mail 1 - Value,Address 1 - Country\n\
                Anna,Schmidt,* Home,anna@example.de ::: anna.work@example.com,Deutschland\n";
    let (parsed, summary) = first(Format::Csv, text);
    assert_eq!(summary.mapping.preset, Some("Google Contacts"));
    let payload = parsed.result.as_ref().unwrap().to_value();
    assert_eq!(payload["email"], "anna@example.de");
    assert_eq!(payload["risk"]["country_of_residence"], "DE");
    assert_eq!(parsed.notes.len(), 1, "{:?}", parsed.notes);
    assert_eq!(parsed.notes[0].field, "E-mail 1 - Value (email)");
}

#[test]
fn docs_hubspot_numeric_id_is_text_and_a_national_phone_reads_in_the_rows_country() {
    let text = "Record ID,First Name,Last Name,Email,Phone Number,Country/Region\n\
                51234,Sam,Lee,sam@example.com,(415) 555-0132,United States\n";
    let (parsed, summary) = first(Format::Csv, text);
    assert_eq!(summary.mapping.preset, Some("HubSpot contacts"));
    let payload = parsed.result.unwrap().to_value();
    assert_eq!(payload["external_id"], "51234");
    assert_eq!(payload["phone"], "+14155550132");
    assert_eq!(payload["risk"]["country_of_residence"], "US");
}

// --- Bounds ---

#[test]
fn json_element_over_the_record_bound_is_refused_and_the_rest_read() {
    let numbers = vec!["7"; 600_000].join(",");
    let text = format!(
        "[{{\"full_name\":\"Ada\"}},\n{{\"full_name\":\"Big\",\"n\":[{numbers}]}},\n\"{}\",\n{{\"full_name\":\"Bo\"}}]",
        "x".repeat(1_100_000)
    );
    let got = parse(Format::Json, &text);
    assert_eq!(got.len(), 4);
    assert!(got[0].result.is_ok());
    for bad in &got[1..3] {
        assert_eq!(errors(bad)[0].message, "record is over 1 MiB; not read");
    }
    assert_eq!(got[1].position, Position::Element { index: 1, line: 2 });
    assert_eq!(got[2].position, Position::Element { index: 2, line: 3 });
    assert_eq!(got[3].position, Position::Element { index: 3, line: 4 });
    assert!(got[3].result.is_ok());
}

#[test]
fn json_lone_object_over_the_bound_is_one_refused_record() {
    let text = format!(
        "{{\"full_name\":\"{}\"}}",
        "y".repeat(MAX_RECORD_BYTES + 10)
    );
    let got = parse(Format::Json, &text);
    assert_eq!(got.len(), 1);
    assert_eq!(errors(&got[0])[0].message, "record is over 1 MiB; not read");
}

#[test]
fn json_nesting_past_the_bound_is_a_record_problem_not_a_file_error() {
    // 500 levels: past serde_json's own limit of 128, which would end the file.
    let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
    let text = format!("[{{\"full_name\":\"Ada\",\"x\":{deep}}},{{\"full_name\":\"Bo\"}}]");
    let got = parse(Format::Json, &text);
    assert_eq!(got.len(), 2);
    assert_eq!(
        errors(&got[0])[0].message,
        "record nests deeper than 64 levels; not read"
    );
    assert!(got[1].result.is_ok());
    let ndjson = parse(
        Format::Ndjson,
        &format!("{deep}\n{{\"full_name\":\"Bo\"}}\n"),
    );
    assert_eq!(ndjson.len(), 2);
    assert!(ndjson[1].result.is_ok());
}

#[test]
fn csv_row_over_the_record_bound_is_refused_at_its_line_and_later_lines_stay_right() {
    let field = "word\n".repeat(300_000);
    let text = format!(
        "full_name,email\nAda,ada@example.com\r\nBig,\"{field}\"\nBo,bo@example.com\n{},x\nCy,cy@example.com\n",
        "z".repeat(MAX_RECORD_BYTES + 1)
    );
    let got = parse(Format::Csv, &text);
    let positions: Vec<_> = got.iter().map(|p| p.position).collect();
    let after = 3 + 300_000 + 1;
    assert_eq!(
        positions,
        [2, 3, after, after + 1, after + 2].map(Position::Line)
    );
    for bad in [&got[1], &got[3]] {
        assert_eq!(errors(bad)[0].message, "record is over 1 MiB; not read");
    }
    for good in [&got[0], &got[2], &got[4]] {
        assert!(good.result.is_ok(), "{good:?}");
    }
}

#[test]
fn csv_header_over_the_bounds_is_a_file_error() {
    let wide = format!("{}\nx\n", vec!["c"; MAX_COLUMNS + 1].join(","));
    assert!(matches!(
        file_error(Format::Csv, wide.as_bytes()),
        FileError::TooManyColumns { line: 1, count, .. } if count == MAX_COLUMNS + 1
    ));
    let long = format!("\"{}\",email\nx,y\n", "h".repeat(MAX_RECORD_BYTES));
    let err = file_error(Format::Csv, long.as_bytes());
    assert_eq!(
        err.to_string(),
        "line 1: the header row is over 1 MiB, the most one row may be"
    );
}
