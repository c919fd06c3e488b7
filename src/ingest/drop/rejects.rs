//! Writes a file's rejected records twice over: a report (one line per problem, with the
//! record's position, field and message) and a copy of the records themselves in the file's
//! own format, each carrying an `_error` member or column (ignored on reading), so a person
//! can fix the copy and drop it again.
//!
//! The copy is taken from the original text, not rebuilt from what was parsed (a rejected
//! record has no payload): the file is read twice in step, once by the parser (which says
//! which records are rejected and why) and once raw. Both readers stream, so memory stays
//! bounded whatever the file's size.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::super::bounds::{Excess, MAX_RECORD_BYTES};
use super::super::csv_bound::RecordBound;
use super::super::file_plan::FilePlan;
use super::super::formula::{neutralise, neutralise_bytes};
use super::super::json::Bounded;
use super::super::lines::{ElementLines, LineTracker, RecordStart};
use super::super::record::{Parsed, Position, META_ERROR};
use super::super::{
    open_text, read_file, read_xlsx_rows, FileError, Format, ReadOptions, TextOptions, TextReader,
    MAX_LINE_BYTES, MAX_XLSX_BYTES,
};
use crate::contract::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot write the rejection report: {0}")]
    Write(#[from] io::Error),
}

/// The extension of the rejected-records copy: the source's own format.
pub fn rejected_copy_extension(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Ndjson => "ndjson",
        Format::Csv | Format::Xlsx => "csv",
        Format::Tsv => "tsv",
    }
}

/// Reads the file twice in step (`parse_src` and `raw_src` must be the same bytes) and
/// writes every rejected record to `report` and `copy`. Returns how many were rejected.
pub fn write_rejects(
    format: Format,
    options: &ReadOptions,
    parse_src: impl Read,
    raw_src: impl Read,
    report: &mut impl Write,
    copy: &mut impl Write,
) -> Result<u64, RejectsError> {
    match format {
        Format::Ndjson => ndjson(options, parse_src, raw_src, report, copy),
        Format::Csv | Format::Tsv => csv(format, options, parse_src, raw_src, report, copy),
        Format::Json => json(options, raw_src, report, copy),
        Format::Xlsx => xlsx(options, parse_src, raw_src, report, copy),
    }
}

/// One report line: `line 7: email: is not a valid email address`; a problem with the
/// record as a whole has the field `(record)`. Newlines in messages become spaces so every
/// problem stays on one line.
fn report_line(out: &mut impl Write, position: Position, error: &FieldError) -> io::Result<()> {
    let field = if error.field.is_empty() {
        "(record)"
    } else {
        error.field.as_str()
    };
    let message = error.message.replace(['\n', '\r'], " ");
    writeln!(out, "{position}: {field}: {message}")
}

fn note(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn rejected_errors(parsed: &Parsed) -> Option<&[FieldError]> {
    parsed.result.as_ref().err().map(Vec::as_slice)
}

/// Runs the parser, calling `on_record` for each record; stops at the first write error.
fn each_parsed(
    format: Format,
    options: &ReadOptions,
    src: impl Read,
    mut on_record: impl FnMut(&Parsed) -> io::Result<()>,
) -> Result<(), RejectsError> {
    let mut failed = None;
    // Breaking is only ever our own write error, kept in `failed`.
    let _read = read_file(format, src, options, |parsed| match on_record(&parsed) {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failed = Some(e);
            ControlFlow::Break(())
        }
    })?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn ndjson(
    options: &ReadOptions,
    parse_src: impl Read,
    raw_src: impl Read,
    report: &mut impl Write,
    copy: &mut impl Write,
) -> Result<u64, RejectsError> {
    let mut raw = BufReader::new(raw_text(raw_src, options, None)?.1);
    let mut line_no = 0u64;
    let mut line = Vec::new();
    let mut count = 0;
    each_parsed(Format::Ndjson, options, parse_src, |parsed| {
        let Some(errors) = rejected_errors(parsed) else {
            return Ok(());
        };
        let target = parsed.position.number();
        let mut fits = true;
        while line_no < target {
            fits = capped_line(&mut raw, &mut line)?;
            line_no += 1;
        }
        for e in errors {
            report_line(report, parsed.position, e)?;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !fits {
            let placeholder = serde_json::json!({
                META_ERROR: format!("line {target} was too long to copy; see the report"),
            });
            writeln!(copy, "{placeholder}")?;
        } else {
            copy.write_all(&with_note_ndjson(text, &note(errors)))?;
            copy.write_all(b"\n")?;
        }
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// Reads one line into `line`; false (and an empty `line`) when it was longer than the
/// parser's limit, so a huge line is never held.
fn capped_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let mut fits = true;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(fits);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if fits && line.len() + take > MAX_LINE_BYTES + 2 {
            fits = false;
            line.clear();
        } else if fits {
            line.extend_from_slice(&buf[..take]);
        }
        input.consume(take);
        if done {
            return Ok(fits);
        }
    }
}

/// The line with `"_error": note` put first inside its object, the rest of its text kept
/// byte for byte; a line that is not a JSON object is kept as it is (the report says why).
fn with_note_ndjson(line: &[u8], note: &str) -> Vec<u8> {
    let is_object = std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .is_some_and(|v| v.is_object());
    let Some(brace) = line.iter().position(|&b| b == b'{').filter(|_| is_object) else {
        return line.to_vec();
    };
    let rest = &line[brace + 1..];
    let empty = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let mut out = line[..=brace].to_vec();
    out.extend_from_slice(format!("\"{META_ERROR}\":").as_bytes());
    out.extend_from_slice(Value::from(note).to_string().as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}

/// The raw side decoded as the parser decodes it, with the delimiter it settled on.
fn raw_text<R: Read>(
    raw_src: R,
    options: &ReadOptions,
    default_delimiter: Option<u8>,
) -> Result<(super::super::DetectedText, TextReader<R>), RejectsError> {
    let text_options = TextOptions {
        encoding: options.encoding,
        delimiter: options.delimiter,
    };
    open_text(raw_src, &text_options, default_delimiter)
        .map_err(|e| RejectsError::File(FileError::Io(e)))
}

fn csv(
    format: Format,
    options: &ReadOptions,
    parse_src: impl Read,
    raw_src: impl Read,
    report: &mut impl Write,
    copy: &mut impl Write,
) -> Result<u64, RejectsError> {
    // The same reader settings as the parser, so the two see the same records in step.
    let (detected, text) = raw_text(raw_src, options, format.default_delimiter())?;
    // Cut to the record bound as the parser's rows are, so a row over it is never held whole
    // here either and both readers stay in step.
    let (bounded, cuts) = RecordBound::new(text, detected.delimiter, MAX_RECORD_BYTES);
    let mut raw = ::csv::ReaderBuilder::new()
        .delimiter(detected.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bounded);
    // Whether the row just read was cut by the bound (its start is the next refused offset).
    let cut = |row: &::csv::ByteRecord, end: u64| {
        let start = row.position().map_or(0, |p| p.byte());
        cuts.borrow_mut().take_refused(start, end)
    };
    // The copy keeps the file's delimiter, so it opens the way the original did; text other
    // than UTF-8 becomes UTF-8 with a byte order mark, which spreadsheets recognise.
    let mark = detected.encoding.encoding != encoding_rs::UTF_8;
    let delimiter = detected.delimiter;
    // Made at the first rejected record: a clean file writes nothing.
    let mut copy = Some(copy);
    let mut out = None;
    let mut record = ::csv::ByteRecord::new();
    let mut note_column = None;
    let mut count = 0;
    let mut raw_header = ::csv::ByteRecord::new();
    if raw
        .read_byte_record(&mut raw_header)
        .map_err(io::Error::from)?
    {
        cut(&raw_header, raw.position().byte());
        note_column = raw_header
            .iter()
            .position(|c| c.trim_ascii() == META_ERROR.as_bytes());
    }
    each_parsed(format, options, parse_src, |parsed| {
        // Every record, accepted or not, moves the raw reader one record on.
        if !raw.read_byte_record(&mut record).map_err(io::Error::from)? {
            return Ok(());
        }
        // A row over the bound is reported, not copied: only its first part was read.
        let over_bound = cut(&record, raw.position().byte());
        let Some(errors) = rejected_errors(parsed) else {
            return Ok(());
        };
        if let Some(copy) = copy.take() {
            if mark {
                copy.write_all("\u{feff}".as_bytes())?;
            }
            let mut writer = ::csv::WriterBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .from_writer(copy);
            writer.write_record(with_note_csv(&raw_header, note_column, META_ERROR))?;
            out = Some(writer);
        }
        for e in errors {
            report_line(report, parsed.position, e)?;
        }
        if let Some(out) = out.as_mut().filter(|_| !over_bound) {
            out.write_record(with_note_csv(&record, note_column, &note(errors)))?;
        }
        count += 1;
        Ok(())
    })?;
    if let Some(out) = out.as_mut() {
        out.flush()?;
    }
    Ok(count)
}

/// The row with `note` in its `_error` cell: the existing column if the header has one,
/// otherwise a new first column (first, so a ragged row does not shift it). Cells that a
/// spreadsheet would run as formulas are neutralised (see `formula`).
fn with_note_csv(row: &::csv::ByteRecord, column: Option<usize>, note: &str) -> Vec<Vec<u8>> {
    let mut cells: Vec<&[u8]> = row.iter().collect();
    match column {
        Some(i) if i < cells.len() => cells[i] = note.as_bytes(),
        Some(_) => {}
        None => cells.insert(0, note.as_bytes()),
    }
    cells
        .into_iter()
        .map(|c| neutralise_bytes(c).into_owned())
        .collect()
}

fn json(
    options: &ReadOptions,
    raw_src: impl Read,
    report: &mut impl Write,
    copy: &mut impl Write,
) -> Result<u64, RejectsError> {
    let (tracked, lines) = LineTracker::new(BufReader::new(raw_text(raw_src, options, None)?.1));
    let mut de = serde_json::Deserializer::from_reader(tracked);
    let mut walk = JsonWalk {
        lines,
        plan: FilePlan::new(options),
        report,
        copy,
        count: 0,
        copied: 0,
        failed: None,
    };
    let outcome = (&mut de).deserialize_any(&mut walk);
    if let Some(e) = walk.failed.take() {
        return Err(e.into());
    }
    // The parser already accepted this file; an error here means it changed under us.
    outcome.map_err(|e| FileError::Syntax {
        line: e.line() as u64,
        column: e.column() as u64,
        message: "the file changed while its rejected records were copied".into(),
    })?;
    let count = walk.count;
    if walk.copied > 0 {
        copy.write_all(b"\n]\n")?;
    }
    Ok(count)
}

/// A spreadsheet's rejected rows, copied as CSV (UTF-8 with a byte order mark) with their
/// `_error` notes: the parser's verdicts are collected first (row number and note; the
/// workbook is capped in size, so they are too), then the rows are read again.
fn xlsx(
    options: &ReadOptions,
    parse_src: impl Read,
    mut raw_src: impl Read,
    report: &mut impl Write,
    copy: &mut impl Write,
) -> Result<u64, RejectsError> {
    let mut refused: Vec<(u64, String)> = Vec::new();
    each_parsed(Format::Xlsx, options, parse_src, |parsed| {
        if let Some(errors) = rejected_errors(parsed) {
            for e in errors {
                report_line(report, parsed.position, e)?;
            }
            refused.push((parsed.position.number(), note(errors)));
        }
        Ok(())
    })?;
    if refused.is_empty() {
        return Ok(0);
    }
    let mut bytes = Vec::new();
    raw_src
        .by_ref()
        .take(MAX_XLSX_BYTES + 1)
        .read_to_end(&mut bytes)?;
    copy.write_all("\u{feff}".as_bytes())?;
    let mut out = ::csv::WriterBuilder::new().flexible(true).from_writer(copy);
    let mut next = refused.iter().peekable();
    let mut header = true;
    let mut failed = None;
    let _flow = read_xlsx_rows(io::Cursor::new(bytes), |row, mut cells| {
        let note = if header {
            header = false;
            META_ERROR.to_string()
        } else {
            match next.next_if(|(r, _)| *r == row) {
                Some((_, note)) => note.clone(),
                None => return ControlFlow::Continue(()),
            }
        };
        cells.insert(0, note);
        match out.write_record(cells.iter().map(|c| neutralise(c).into_owned())) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                failed = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(io::Error::from(e).into());
    }
    out.flush()?;
    Ok(refused.len() as u64)
}

/// Visits a top-level object or array, writing each rejected element.
struct JsonWalk<'w, R, C> {
    lines: ElementLines,
    plan: FilePlan,
    report: &'w mut R,
    copy: &'w mut C,
    /// Records reported.
    count: u64,
    /// Records written to the copy.
    copied: u64,
    failed: Option<io::Error>,
}

impl<R: Write, C: Write> JsonWalk<'_, R, C> {
    /// One element: `value` is `None` when a bound refused it (reported, not copied: only
    /// its first part was read).
    fn element(
        &mut self,
        index: u64,
        start: Option<RecordStart>,
        value: Option<Value>,
    ) -> io::Result<()> {
        let position = Position::Element {
            index,
            line: start.map_or(0, |s| s.line),
        };
        let value = match (value, start.and_then(|s| s.excess)) {
            (Some(value), None) => value,
            (_, excess) => {
                let message = excess.unwrap_or(Excess::TooLarge).message(MAX_RECORD_BYTES);
                let error = FieldError::new("", message);
                self.count += 1;
                return report_line(self.report, position, &error);
            }
        };
        let parsed = self.plan.value(position, value.clone());
        let Some(errors) = rejected_errors(&parsed) else {
            return Ok(());
        };
        for e in errors {
            report_line(self.report, parsed.position, e)?;
        }
        let value = match value {
            Value::Object(members) => {
                let mut noted = Map::new();
                noted.insert(META_ERROR.to_string(), Value::from(note(errors)));
                noted.extend(members.into_iter().filter(|(k, _)| k != META_ERROR));
                Value::Object(noted)
            }
            other => other,
        };
        self.copy
            .write_all(if self.copied == 0 { b"[\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *self.copy, &value)?;
        self.count += 1;
        self.copied += 1;
        Ok(())
    }
}

impl<'de, R: Write, C: Write> Visitor<'de> for &mut JsonWalk<'_, R, C> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a customer object or an array of customer objects")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // Bounded as the parser reads it: a record over a bound is never built whole.
        let value = Bounded::new(&self.lines).visit_map(map)?;
        let top = self.lines.top_record();
        if let Err(e) = self.element(0, top, value) {
            self.failed = Some(e);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(value) = seq.next_element_seed(Bounded::new(&self.lines))? {
            let start = self.lines.next_record();
            if let Err(e) = self.element(index, start, value) {
                self.failed = Some(e);
                return Ok(());
            }
            index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: Format, input: &str) -> (String, String, u64) {
        let mut report = Vec::new();
        let mut copy = Vec::new();
        let n = write_rejects(
            format,
            &ReadOptions::default(),
            input.as_bytes(),
            input.as_bytes(),
            &mut report,
            &mut copy,
        )
        .unwrap();
        (
            String::from_utf8(report).unwrap(),
            String::from_utf8(copy).unwrap(),
            n,
        )
    }

    #[test]
    fn ndjson_copies_rejected_lines_with_their_note_and_keeps_the_rest_of_the_text() {
        let input =
            "{\"full_name\":\"Ann\"}\n\n{\"full_name\":\"Bob\",\"email\":\"nope\"}\nnot json\n{}\n";
        let (report, copy, n) = run(Format::Ndjson, input);
        assert_eq!(n, 3);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "line 3: email: is not a valid email address");
        assert!(
            lines[1].starts_with("line 4: (record): not valid JSON"),
            "{report}"
        );
        assert!(lines[2].starts_with("line 5: full_name: "), "{report}");
        let copied: Vec<&str> = copy.lines().collect();
        assert_eq!(
            copied[0],
            "{\"_error\":\"email: is not a valid email address\",\"full_name\":\"Bob\",\"email\":\"nope\"}"
        );
        assert_eq!(copied[1], "not json");
        assert!(copied[2].starts_with("{\"_error\":\"full_name: "), "{copy}");
        assert!(copied[2].ends_with("\"}"), "{copy}");
    }

    #[test]
    fn csv_copy_has_the_header_and_an_error_column_and_reads_back_as_the_same_rows() {
        let input =
            "\u{feff}full_name,email,notes\r\nAnn,ann@x.io,\r\nBob,nope,\r\nCid,bad@,\"two\nlines\"\r\n";
        let (report, copy, n) = run(Format::Csv, input);
        assert_eq!(n, 2);
        assert_eq!(
            report.lines().collect::<Vec<_>>(),
            [
                "line 3: email: is not a valid email address",
                "line 4: email: is not a valid email address"
            ]
        );
        let mut rows = ::csv::Reader::from_reader(copy.as_bytes());
        let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, ["_error", "full_name", "email", "notes"]);
        let rows: Vec<_> = rows.records().map(Result::unwrap).collect();
        let names: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
        assert_eq!(names, ["Bob", "Cid"]);
        assert_eq!(&rows[1][3], "two\nlines");
        // The copy parses again with the same problems: fix and drop it back.
        let (again, _, m) = run(Format::Csv, &copy);
        assert_eq!(m, 2);
        assert!(again.contains("email: is not a valid email address"));
    }

    #[test]
    fn csv_copy_cells_cannot_run_as_formulas_and_read_back_as_dropped() {
        let input = "full_name,email,phone\r\n=HYPERLINK(\"http://x\"),nope,+44 20 7946 0958\r\n";
        let (_, copy, n) = run(Format::Csv, input);
        assert_eq!(n, 1);
        let mut rows = ::csv::Reader::from_reader(copy.as_bytes());
        let row = rows.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "'=HYPERLINK(\"http://x\")");
        assert_eq!(&row[3], "'+44 20 7946 0958");
        // Dropped back, it is read as the person wrote it: the same one problem.
        let (again, _, m) = run(Format::Csv, &copy);
        assert_eq!(m, 1);
        assert_eq!(again.lines().count(), 1, "{again}");
        assert!(again.contains("email"), "{again}");
    }

    #[test]
    fn records_over_the_bound_are_reported_by_line_and_left_out_of_the_copy() {
        let numbers = vec!["1"; 1_200_000].join(",");
        let json = format!(
            "[{{\"full_name\":\"Ann\"}},\n{{\"full_name\":\"Bob\",\"n\":[{numbers}]}},\n{{\"email\":\"x@y.io\"}}]"
        );
        let (report, copy, n) = run(Format::Json, &json);
        assert_eq!(n, 2, "{report}");
        let lines: Vec<&str> = report.lines().collect();
        assert!(lines[0].starts_with("line 2 (element 1): "), "{report}");
        assert!(lines[0].contains("over 1 MiB"), "{report}");
        assert!(
            lines[1].starts_with("line 3 (element 2): full_name"),
            "{report}"
        );
        assert!(copy.len() < 1000 && !copy.contains("Bob"), "{}", copy.len());

        let csv = format!(
            "full_name,email\nAnn,bad\nBob,\"{}\"\nCid,also bad\n",
            "x\n".repeat(700_000)
        );
        let (report, copy, n) = run(Format::Csv, &csv);
        assert_eq!(n, 3, "{report}");
        let lines: Vec<&str> = report.lines().collect();
        assert!(lines[0].starts_with("line 2: email"), "{report}");
        assert!(
            lines[1].starts_with("line 3: ") && lines[1].contains("over 1 MiB"),
            "{report}"
        );
        // Line numbers after the cut row still match the file.
        assert!(lines[2].starts_with("line 700004: email"), "{report}");
        let rows: Vec<_> = ::csv::Reader::from_reader(copy.as_bytes())
            .records()
            .map(|r| r.unwrap()[1].to_string())
            .collect();
        assert_eq!(rows, ["Ann", "Cid"]);
    }

    #[test]
    fn json_array_copy_is_an_array_of_the_rejected_elements_by_index() {
        let input = "[{\"full_name\":\"Ann\"},\n  {\"email\":\"x@y.io\"},\n  {\"full_name\":\"Cid\",\"_error\":\"old\"}]";
        let (report, copy, n) = run(Format::Json, input);
        assert_eq!(n, 1);
        assert!(
            report.starts_with("line 2 (element 1): full_name: "),
            "{report}"
        );
        let v: Value = serde_json::from_str(&copy).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["email"], "x@y.io");
        assert!(v[0]["_error"].as_str().unwrap().starts_with("full_name: "));
    }

    #[test]
    fn a_clean_file_writes_nothing() {
        let (report, copy, n) = run(Format::Json, r#"{"full_name":"Ann"}"#);
        assert_eq!((report.as_str(), copy.as_str(), n), ("", "", 0));
    }
}
