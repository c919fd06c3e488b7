//! The export side: records written as CSV or NDJSON in a shape the readers in this module
//! take back unchanged, carrying `_icsync_id` (so a fixed row re-imports onto its record) and
//! `_error` (a note for the person fixing it, ignored on reading). Writes to any `Write`; it
//! neither opens files nor chooses their permissions.

use std::io::{self, BufWriter, Write};

use serde_json::{Map, Value};

use super::record::{META_ERROR, META_ID};
use crate::store::Payload;

/// The CSV columns, in order. `risk.*` columns hold the members of the nested risk object.
pub const CSV_HEADER: [&str; 13] = [
    META_ID,
    META_ERROR,
    "type",
    "full_name",
    "email",
    "external_id",
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
}

impl<'a> From<(&'a str, &'a Payload, Option<&'a str>)> for ExportRow<'a> {
    fn from((id, payload, error): (&'a str, &'a Payload, Option<&'a str>)) -> Self {
        ExportRow { id, payload, error }
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
        let row = row.into();
        let members = row.payload.as_map();
        let risk = members.get("risk").and_then(Value::as_object);
        let mut cells = vec![row.id.to_string(), row.error.unwrap_or("").to_string()];
        for column in &CSV_HEADER[2..] {
            let value = match column.strip_prefix("risk.") {
                Some(member) => risk.and_then(|r| r.get(member)),
                None => members.get(*column),
            };
            cells.push(cell(value));
        }
        w.write_record(&cells)?;
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

/// Writes one object per line: `_icsync_id`, `_error` (null when none), then the payload's
/// members, `null`s included.
pub fn write_ndjson<'a, I>(rows: I, out: impl Write) -> Result<(), ExportError>
where
    I: IntoIterator,
    I::Item: Into<ExportRow<'a>>,
{
    let mut out = BufWriter::new(out);
    for row in rows {
        let row = row.into();
        let mut object = Map::new();
        object.insert(META_ID.to_string(), Value::from(row.id));
        object.insert(
            META_ERROR.to_string(),
            row.error.map_or(Value::Null, Value::from),
        );
        for (name, value) in row.payload.as_map() {
            object.insert(name.clone(), value.clone());
        }
        serde_json::to_writer(&mut out, &object)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
