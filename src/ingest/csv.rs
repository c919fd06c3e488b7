//! `.csv` (and other delimited text): a header row naming the columns, then one record per
//! row, streamed row by row. What each column feeds is the [`FilePlan`]'s business; this
//! module owns the rows themselves. Positions are physical lines (header = 1), counted here
//! rather than by the `csv` crate, whose line numbers lag behind after CRLF endings and
//! blank lines.
//!
//! Bounded: a row (with any quoted cells spanning lines) over
//! [`MAX_RECORD_BYTES`](super::bounds::MAX_RECORD_BYTES) is cut before the `csv` crate
//! buffers it ([`RecordBound`]) and refused at its line; a header over it, or with more than
//! [`MAX_COLUMNS`] columns, is a file error (no row can be read without it).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::rc::Rc;

use ::csv::{ByteRecord, ReaderBuilder};

use super::bounds::{size_text, Excess, MAX_COLUMNS};
use super::csv_bound::{Cuts, RecordBound};
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
    limit: usize,
    plan: &mut FilePlan,
    mut on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let (bounded, cuts) = RecordBound::new(reader, delimiter, limit);
    let lines = Rc::new(RefCell::new(LineIndex {
        cuts: Rc::clone(&cuts),
        ..LineIndex::default()
    }));
    let indexed = Indexed {
        inner: bounded,
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
    // Whether the row just read was cut by the bound.
    let refused = |row: &ByteRecord, end: u64| {
        let start = row.position().map_or(0, |p| p.byte());
        cuts.borrow_mut().take_refused(start, end)
    };
    if !rows.read_byte_record(&mut row).map_err(csv_error)? {
        return Err(FileError::MissingHeader);
    }
    let line = line_of(&row);
    if refused(&row, rows.position().byte()) {
        return Err(FileError::HeaderTooLarge {
            line,
            limit: size_text(limit),
        });
    }
    if row.len() > MAX_COLUMNS {
        return Err(FileError::TooManyColumns {
            line,
            count: row.len(),
            limit: MAX_COLUMNS,
        });
    }
    let names = header_names(&row, line)?;
    plan.header(&names)?;
    while rows.read_byte_record(&mut row).map_err(csv_error)? {
        let line = line_of(&row);
        let parsed = if refused(&row, rows.position().byte()) {
            Parsed::unreadable(Position::Line(line), Excess::TooLarge.message(limit))
        } else {
            parse_row(plan, &names, &row, line)?
        };
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
    /// The `\n`s [`RecordBound`] left out, with the rows it cut.
    cuts: Rc<RefCell<Cuts>>,
}

impl LineIndex {
    /// The physical line of a record whose parsing began at byte `start`. The reader begins
    /// a record right after the previous one's terminator, so the `\n` of a CRLF and any
    /// blank lines come first: skip them to reach the record's first byte.
    fn line_at(&mut self, start: u64) -> u64 {
        {
            let mut cuts = self.cuts.borrow_mut();
            while let Some(&(offset, count)) = cuts.hidden_newlines.front() {
                if offset > start {
                    break;
                }
                cuts.hidden_newlines.pop_front();
                self.newlines_dropped += count;
            }
        }
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
