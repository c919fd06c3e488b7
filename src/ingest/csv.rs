//! `.csv` (and other delimited text): a header row naming the columns, then one record per
//! row, streamed row by row. What each column feeds is the [`FilePlan`]'s business; this
//! module owns the rows themselves. Positions are physical lines (header = 1), counted here
//! rather than by the `csv` crate, whose line numbers lag behind after CRLF endings and
//! blank lines.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use ::csv::{ByteRecord, ReaderBuilder};

use super::error::FileError;
use super::file_plan::FilePlan;
use super::record::{Parsed, Position, META_ID};

/// The header's names, trimmed. Only icsync's own `_icsync_id` may not repeat: which of two
/// would name the record? Other repeated names are columns like any other.
fn header_names(record: &ByteRecord, line: u64) -> Result<Vec<String>, FileError> {
    let mut names: Vec<String> = Vec::with_capacity(record.len());
    for cell in record {
        let name = std::str::from_utf8(cell)
            .map_err(|_| FileError::CellNotUtf8 {
                line,
                column_name: format!("header column {}", names.len() + 1),
            })?
            .trim()
            .to_string();
        if name == META_ID && names.contains(&name) {
            return Err(FileError::DuplicateColumn { line, name });
        }
        names.push(name);
    }
    Ok(names)
}

pub(super) fn read<R, B, F>(
    reader: R,
    delimiter: u8,
    plan: &mut FilePlan,
    mut on_record: F,
) -> Result<ControlFlow<B>, FileError>
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
        .delimiter(delimiter)
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
    let names = header_names(&row, line_of(&row))?;
    plan.header(&names)?;
    while rows.read_byte_record(&mut row).map_err(csv_error)? {
        let parsed = parse_row(plan, &names, &row, line_of(&row))?;
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

fn parse_row(
    plan: &mut FilePlan,
    names: &[String],
    row: &ByteRecord,
    line: u64,
) -> Result<Parsed, FileError> {
    let position = Position::Line(line);
    if row.len() != names.len() {
        return Ok(Parsed::unreadable(
            position,
            format!(
                "has {} cell(s) but the header has {} column(s)",
                row.len(),
                names.len()
            ),
        ));
    }
    let mut cells = Vec::with_capacity(row.len());
    for (name, cell) in names.iter().zip(row) {
        cells.push(
            std::str::from_utf8(cell).map_err(|_| FileError::CellNotUtf8 {
                line,
                column_name: name.clone(),
            })?,
        );
    }
    Ok(plan.row(position, &cells))
}
