//! `.csv` files: a header row naming the columns (snake_case or camelCase, `risk.*` columns
//! for the nested risk answers), then one record per row, streamed row by row. An empty cell
//! means the member is absent; every other cell is text, except the two typed risk columns.
//! Positions are physical lines (header = 1), counted here rather than by the `csv` crate,
//! whose line numbers lag behind after CRLF endings and blank lines.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use ::csv::{ByteRecord, ReaderBuilder};
use serde_json::{Map, Value};

use super::error::FileError;
use super::record::{meta_id, validate, Parsed, Position, META_CUSTOMER_ID, META_ERROR, META_ID};
use crate::contract::FieldError;

/// The prefix that puts a column inside the nested `risk` object.
const RISK_PREFIX: &str = "risk.";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Id,
    Note,
    Top(String),
    RiskText(String),
    RiskVolume(String),
    RiskPep(String),
}

struct Header {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Header {
    fn parse(record: &ByteRecord, line: u64) -> Result<Header, FileError> {
        let mut names: Vec<String> = Vec::with_capacity(record.len());
        for cell in record {
            let name = std::str::from_utf8(cell)
                .map_err(|_| FileError::CellNotUtf8 {
                    line,
                    column_name: format!("header column {}", names.len() + 1),
                })?
                .trim()
                .to_string();
            if names.contains(&name) {
                return Err(FileError::DuplicateColumn { line, name });
            }
            names.push(name);
        }
        let columns = names.iter().map(|n| Column::for_name(n)).collect();
        Ok(Header { names, columns })
    }
}

impl Column {
    fn for_name(name: &str) -> Column {
        if name == META_ID {
            return Column::Id;
        }
        if name == META_ERROR || name == META_CUSTOMER_ID {
            return Column::Note;
        }
        match name.strip_prefix(RISK_PREFIX) {
            Some(member @ ("expected_monthly_volume" | "expectedMonthlyVolume")) => {
                Column::RiskVolume(member.to_string())
            }
            Some(member @ ("is_pep" | "isPep")) => Column::RiskPep(member.to_string()),
            Some(member) => Column::RiskText(member.to_string()),
            None => Column::Top(name.to_string()),
        }
    }
}

pub(super) fn read<R, B, F>(reader: R, mut on_record: F) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let lines = Rc::new(RefCell::new(LineIndex::default()));
    let indexed = Indexed {
        inner: reader,
        lines: Rc::clone(&lines),
    };
    // Flexible, so a ragged row is one record's error rather than the reader's.
    let mut rows = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(indexed);
    let mut row = ByteRecord::new();
    let line_of = |row: &ByteRecord| {
        let start = row.position().map_or(0, |p| p.byte());
        lines.borrow_mut().line_at(start)
    };
    if !rows.read_byte_record(&mut row).map_err(csv_error)? {
        return Err(FileError::MissingHeader);
    }
    let header = Header::parse(&row, line_of(&row))?;
    while rows.read_byte_record(&mut row).map_err(csv_error)? {
        let parsed = parse_row(&header, &row, line_of(&row))?;
        if let ControlFlow::Break(b) = on_record(parsed) {
            return Ok(ControlFlow::Break(b));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// The offsets of the line-ending bytes the CSV reader has taken in but whose records have
/// not all been numbered yet: its read-ahead buffer plus the current record, so bounded.
#[derive(Default)]
struct LineIndex {
    endings: VecDeque<(u64, u8)>,
    newlines_dropped: u64,
    bytes_read: u64,
}

impl LineIndex {
    /// The physical line of a record whose parsing began at byte `start`. The reader begins
    /// a record right after the previous one's terminator, so the `\n` of a CRLF and any
    /// blank lines come first: skip them to reach the record's first byte.
    fn line_at(&mut self, start: u64) -> u64 {
        while let Some(&(offset, byte)) = self.endings.front() {
            if offset >= start {
                break;
            }
            self.endings.pop_front();
            if byte == b'\n' {
                self.newlines_dropped += 1;
            }
        }
        let leading = (start..)
            .zip(&self.endings)
            .take_while(|(at, &(offset, _))| offset == *at)
            .filter(|(_, &(_, byte))| byte == b'\n')
            .count() as u64;
        self.newlines_dropped + leading + 1
    }
}

/// Notes every line-ending byte on its way to the CSV reader.
struct Indexed<R> {
    inner: R,
    lines: Rc<RefCell<LineIndex>>,
}

impl<R: Read> Read for Indexed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut lines = self.lines.borrow_mut();
        let base = lines.bytes_read;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                lines.endings.push_back((base + i as u64, b));
            }
        }
        lines.bytes_read += n as u64;
        Ok(n)
    }
}

fn csv_error(e: ::csv::Error) -> FileError {
    let line = e.position().map_or(0, |p| p.line());
    let message = e.to_string();
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => FileError::Io(io),
        _ => FileError::Csv { line, message },
    }
}

fn parse_row(header: &Header, row: &ByteRecord, line: u64) -> Result<Parsed, FileError> {
    let position = Position::Line(line);
    if row.len() != header.columns.len() {
        return Ok(Parsed::unreadable(
            position,
            format!(
                "has {} cell(s) but the header has {} column(s)",
                row.len(),
                header.columns.len()
            ),
        ));
    }
    let mut body = Map::new();
    let mut risk = Map::new();
    let mut errors = Vec::new();
    let mut record_id = None;
    for ((column, name), cell) in header.columns.iter().zip(&header.names).zip(row) {
        let text = std::str::from_utf8(cell).map_err(|_| FileError::CellNotUtf8 {
            line,
            column_name: name.clone(),
        })?;
        if text.is_empty() {
            continue;
        }
        match column {
            Column::Id => record_id = meta_id(text),
            Column::Note => {}
            Column::Top(member) => {
                body.insert(member.clone(), Value::from(text));
            }
            Column::RiskText(member) => {
                risk.insert(member.clone(), Value::from(text));
            }
            Column::RiskVolume(member) => match parse_whole_number(text) {
                Some(n) => {
                    risk.insert(member.clone(), n);
                }
                None => errors.push(FieldError::new(
                    name.as_str(),
                    format!("{text:?} is not a whole number"),
                )),
            },
            Column::RiskPep(member) => match parse_yes_no(text) {
                Some(b) => {
                    risk.insert(member.clone(), Value::Bool(b));
                }
                None => errors.push(FieldError::new(
                    name.as_str(),
                    format!("{text:?} is not one of true/false/yes/no/1/0"),
                )),
            },
        }
    }
    if !risk.is_empty() {
        // Both spellings of risk at once: report that alone, not also what the contract
        // thinks of the plain `risk` cell.
        if body.remove("risk").is_some() {
            errors.push(FieldError::new(
                "risk",
                "given both as a risk column and as risk.* columns; use one",
            ));
        } else {
            body.insert("risk".to_string(), Value::Object(risk));
        }
    }
    Ok(validate(position, record_id, &Value::Object(body), errors))
}

/// Negative numbers pass through so the contract reports them in its own words.
fn parse_whole_number(text: &str) -> Option<Value> {
    let t = text.trim();
    t.parse::<u64>()
        .map(Value::from)
        .or_else(|_| t.parse::<i64>().map(Value::from))
        .ok()
}

fn parse_yes_no(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}
