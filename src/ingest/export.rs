//! The export side: records written as CSV, NDJSON, a JSON array or an xlsx workbook, in a
//! shape the readers in this module take back unchanged, carrying `_icsync_id` (so a fixed
//! row re-imports onto its record), `_error` (a note for the person fixing it) and
//! `customer_id` (the server's id for the customer), the last two ignored on reading. Writes
//! to any `Write`; it neither opens files nor chooses their permissions.

use std::io::{self, BufWriter, Write};

use rust_xlsxwriter::{Format, Workbook, XlsxError};
use serde_json::{Map, Value};

use super::formula::neutralise;
use super::record::{META_CUSTOMER_ID, META_ERROR, META_ID};
use crate::store::Payload;

/// The CSV (and xlsx) columns, in order. `risk.*` columns hold the members of the nested risk
/// object.
pub const CSV_HEADER: [&str; 14] = [
    META_ID,
    META_ERROR,
    "type",
    "full_name",
    "email",
    "external_id",
    META_CUSTOMER_ID,
    "trading_name",
    "phone",
    "risk.occupation",
    "risk.source_of_funds",
    "risk.country_of_residence",
    "risk.expected_monthly_volume",
    "risk.is_pep",
];

/// One record to export.
#[derive(Debug, Clone, Copy)]
pub struct ExportRow<'a> {
    pub id: &'a str,
    pub payload: &'a Payload,
    /// Why the record needs a person, if it does.
    pub error: Option<&'a str>,
    /// The server's id for this customer, when it has one.
    pub customer_id: Option<&'a str>,
}

impl<'a> From<(&'a str, &'a Payload, Option<&'a str>)> for ExportRow<'a> {
    fn from((id, payload, error): (&'a str, &'a Payload, Option<&'a str>)) -> Self {
        ExportRow {
            id,
            payload,
            error,
            customer_id: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the export: {0}")]
    Io(#[from] io::Error),
    #[error("cannot write the export: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("cannot write the export: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write the workbook: {0}")]
    Xlsx(#[from] XlsxError),
}

/// The row's cells in [`CSV_HEADER`] order, each as text (absent and `null` are empty).
fn cells(row: &ExportRow<'_>) -> Vec<String> {
    let members = row.payload.as_map();
    let risk = members.get("risk").and_then(Value::as_object);
    CSV_HEADER
        .iter()
        .map(|column| match *column {
            META_ID => row.id.to_string(),
            META_ERROR => row.error.unwrap_or("").to_string(),
            META_CUSTOMER_ID => row.customer_id.unwrap_or("").to_string(),
            column => cell(match column.strip_prefix("risk.") {
                Some(member) => risk.and_then(|r| r.get(member)),
                None => members.get(column),
            }),
        })
        .collect()
}

/// Writes the header and one row per record. CSV cannot tell `null` from absent: both are an
/// empty cell, which reads back as absent.
pub fn write_csv<'a, I>(rows: I, out: impl Write) -> Result<(), ExportError>
where
    I: IntoIterator,
    I::Item: Into<ExportRow<'a>>,
{
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for row in rows {
        // Opened in a spreadsheet: no cell may run as a formula.
        w.write_record(
            cells(&row.into())
                .iter()
                .map(|c| neutralise(c).into_owned()),
        )?;
    }
    w.flush()?;
    Ok(())
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The row as one object: `_icsync_id`, `_error` and `customer_id` (null when none), then the
/// payload's members, `null`s included.
fn object(row: &ExportRow<'_>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert(META_ID.to_string(), Value::from(row.id));
    object.insert(
        META_ERROR.to_string(),
        row.error.map_or(Value::Null, Value::from),
    );
    object.insert(
        META_CUSTOMER_ID.to_string(),
        row.customer_id.map_or(Value::Null, Value::from),
    );
    for (name, value) in row.payload.as_map() {
        object.insert(name.clone(), value.clone());
    }
    object
}

/// Writes one object per line (see `object`).
pub fn write_ndjson<'a, I>(rows: I, out: impl Write) -> Result<(), ExportError>
where
    I: IntoIterator,
    I::Item: Into<ExportRow<'a>>,
{
    let mut out = BufWriter::new(out);
    for row in rows {
        serde_json::to_writer(&mut out, &object(&row.into()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Writes a JSON array of the same objects as [`write_ndjson`], one element per line, so a
/// reader's `line N (element I)` points at the record and a diff shows one line per record.
pub fn write_json<'a, I>(rows: I, out: impl Write) -> Result<(), ExportError>
where
    I: IntoIterator,
    I::Item: Into<ExportRow<'a>>,
{
    let mut out = BufWriter::new(out);
    out.write_all(b"[")?;
    let mut first = true;
    for row in rows {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        serde_json::to_writer(&mut out, &object(&row.into()))?;
    }
    out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
    out.flush()?;
    Ok(())
}

/// Column widths in characters: wide enough for most values, never wider than this.
const XLSX_MIN_WIDTH: usize = 8;
const XLSX_MAX_WIDTH: usize = 50;

/// Writes one worksheet: the [`CSV_HEADER`] row in bold and frozen, then one row per record.
/// Every cell is written as text, so nothing becomes a formula (`=...`) or a number that
/// loses leading zeros or digits (phone numbers, ids); columns are sized to their content.
/// The workbook is built in memory (the xlsx format is a zip written at the end).
pub fn write_xlsx<'a, I>(rows: I, out: impl Write + Send) -> Result<(), ExportError>
where
    I: IntoIterator,
    I::Item: Into<ExportRow<'a>>,
{
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("records")?;
    let bold = Format::new().set_bold();
    let mut widths: Vec<usize> = CSV_HEADER.iter().map(|h| h.chars().count()).collect();
    for (col, name) in (0u16..).zip(CSV_HEADER) {
        sheet.write_string_with_format(0, col, name, &bold)?;
    }
    for (row_number, row) in (1u32..).zip(rows) {
        for ((col, text), width) in (0u16..).zip(cells(&row.into())).zip(widths.iter_mut()) {
            if !text.is_empty() {
                *width = (*width).max(text.chars().count());
                sheet.write_string(row_number, col, text)?;
            }
        }
    }
    for (col, width) in (0u16..).zip(widths) {
        let width = (width + 2).clamp(XLSX_MIN_WIDTH, XLSX_MAX_WIDTH);
        sheet.set_column_width(col, u32::try_from(width).unwrap_or(50))?;
    }
    sheet.set_freeze_panes(1, 0)?;
    workbook.save_to_writer(out)?;
    Ok(())
}
