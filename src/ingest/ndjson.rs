//! `.ndjson` / `.jsonl` files: one JSON value per line, read line by line with a cap on line
//! length so memory stays bounded whatever the file holds. A malformed line is that record's
//! error and reading goes on; blank lines are skipped; bytes that are not UTF-8 end the file.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::ControlFlow;

use serde_json::Value;

use super::bounds::{Excess, MAX_RECORD_BYTES};
use super::error::{char_column, json_message, FileError};
use super::file_plan::FilePlan;
use super::record::{Parsed, Position};

/// Longer lines are reported as a bad record and skipped without being held in memory: the
/// one record bound, [`MAX_RECORD_BYTES`], which an NDJSON line is.
pub const MAX_LINE_BYTES: usize = MAX_RECORD_BYTES;

pub(super) fn read<R, B, F>(
    reader: R,
    limit: usize,
    plan: &mut FilePlan,
    mut on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let mut input = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let fit = match next_line(&mut input, &mut line, limit)? {
            None => {
                plan.finish()?;
                return Ok(ControlFlow::Continue(()));
            }
            Some(fit) => fit,
        };
        number += 1;
        let position = Position::Line(number);
        let parsed = if fit {
            match parse_line(plan, &line, number)? {
                None => continue,
                Some(parsed) => parsed,
            }
        } else {
            Parsed::unreadable(position, Excess::TooLarge.message(limit))
        };
        if let ControlFlow::Break(b) = on_record(parsed) {
            return Ok(ControlFlow::Break(b));
        }
    }
}

/// `None` for a blank line.
fn parse_line(plan: &mut FilePlan, line: &[u8], number: u64) -> Result<Option<Parsed>, FileError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| FileError::NotUtf8 {
        line: number,
        column: char_column(line, e.valid_up_to()),
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let position = Position::Line(number);
    Ok(Some(match serde_json::from_str::<Value>(text) {
        Ok(value) => plan.value(position, value),
        Err(e) => Parsed::unreadable(
            position,
            format!(
                "not valid JSON: {} (column {})",
                json_message(&e),
                e.column()
            ),
        ),
    }))
}

/// Reads one line (with its `\n`) into `line`. `None` at end of input; `Some(false)` when the
/// line was longer than `limit` and was skipped rather than kept.
fn next_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<bool>> {
    let mut any = false;
    let mut fits = true;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if fits {
            // +2 leaves room for the line ending itself.
            if line.len() + take > limit + 2 {
                fits = false;
                *line = Vec::new();
            } else {
                line.extend_from_slice(&buf[..take]);
            }
        }
        input.consume(take);
        if done {
            return Ok(Some(fits));
        }
    }
}
