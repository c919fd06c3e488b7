//! Reading a drop-folder report back (`rejected/<name>.errors.txt`, as `rejects` writes it),
//! so the TUI can list a file's refused rows without anyone opening the file: the first
//! [`MAX_ROWS`] rows, each with its position and its problems (`field: message`, as the
//! report holds them and nothing more). Bounded whatever the file holds: lines are read at
//! most [`MAX_LINE`] bytes at a time, a reason is cut to [`MAX_REASON`] characters, a row
//! keeps [`MAX_REASONS`] problems, and reading stops at the first problem of the row after
//! the last one kept, or after [`MAX_READ`] bytes.

use std::io::{self, BufRead, Read};

use serde::{Deserialize, Serialize};

/// Rows listed from one report; the rest are counted, not read.
pub const MAX_ROWS: usize = 20;
/// Problems kept per row.
pub const MAX_REASONS: usize = 4;
/// Characters kept of one problem.
pub const MAX_REASON: usize = 300;
/// Bytes read of one report line (a longer line is cut there).
pub const MAX_LINE: usize = 4096;
/// Bytes read of one report at most.
pub const MAX_READ: u64 = 1 << 20;

/// One refused row: where it is in the dropped file, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRow {
    /// As the report gives it: `line 7`, or `line 7 (element 2)` in a JSON array.
    pub position: String,
    /// Its problems, each `field: message` (`(record)` for the row as a whole).
    pub reasons: Vec<String>,
}

/// The position and the reason of one problem line (`line 7: email: is not valid`); `None`
/// for a comment or any other line.
pub fn parse_problem(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("line ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut end = "line ".len() + digits;
    if let Some(after) = line[end..].strip_prefix(" (element ") {
        let n = after.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || !after[n..].starts_with(')') {
            return None;
        }
        end += " (element ".len() + n + 1;
    }
    let reason = line[end..].strip_prefix(": ")?;
    Some((&line[..end], reason))
}

/// The first [`MAX_ROWS`] refused rows of a report, in its order.
pub fn read_refused(report: impl Read) -> io::Result<Vec<RefusedRow>> {
    let mut src = io::BufReader::new(report.take(MAX_READ));
    let mut rows: Vec<RefusedRow> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut src)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(rows);
        }
        let whole = buf.ends_with(b"\n");
        if !whole && n == MAX_LINE {
            // The rest of an over-long line is skipped, not taken for a line of its own.
            skip_line(&mut src)?;
        }
        let text = String::from_utf8_lossy(&buf);
        let Some((position, reason)) = parse_problem(text.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        let reason = cut_reason(reason);
        if let Some(row) = rows.last_mut().filter(|row| row.position == position) {
            if row.reasons.len() < MAX_REASONS {
                row.reasons.push(reason);
            }
            continue;
        }
        if rows.len() == MAX_ROWS {
            return Ok(rows);
        }
        rows.push(RefusedRow {
            position: position.to_string(),
            reasons: vec![reason],
        });
    }
}

/// A reason of at most [`MAX_REASON`] characters, ending in `…` when it was cut.
fn cut_reason(reason: &str) -> String {
    if reason.chars().count() <= MAX_REASON {
        return reason.to_string();
    }
    reason.chars().take(MAX_REASON - 1).chain(['…']).collect()
}

fn skip_line(src: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = src.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                src.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                src.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_lines_split_into_position_and_reason_and_others_are_skipped() {
        assert_eq!(
            parse_problem("line 7: email: is not a valid email address"),
            Some(("line 7", "email: is not a valid email address"))
        );
        assert_eq!(
            parse_problem("line 3 (element 1): (record): too deep"),
            Some(("line 3 (element 1)", "(record): too deep"))
        );
        assert_eq!(parse_problem("# line 1: a comment"), None);
        assert_eq!(parse_problem("line x: no"), None);
        assert_eq!(parse_problem("line 3 (element x): no"), None);
        assert_eq!(parse_problem("unsupported file type"), None);
    }

    #[test]
    fn rows_group_their_problems_and_stop_at_the_cap() {
        let mut report = String::from("# icsync drop-folder report for a.csv\n# header\n");
        report.push_str("line 2: email: is not a valid email address\n");
        report.push_str("line 2: phone: \"x\" is not a phone number\n");
        for n in 3..60 {
            report.push_str(&format!("line {n}: full_name: is required\n"));
        }
        let rows = read_refused(report.as_bytes()).unwrap();
        assert_eq!(rows.len(), MAX_ROWS);
        assert_eq!(rows[0].position, "line 2");
        assert_eq!(
            rows[0].reasons,
            [
                "email: is not a valid email address",
                "phone: \"x\" is not a phone number"
            ]
        );
        assert_eq!(
            rows[MAX_ROWS - 1].position,
            format!("line {}", MAX_ROWS + 1)
        );
    }

    #[test]
    fn an_over_long_line_is_cut_and_the_next_line_still_read() {
        let long = "v".repeat(MAX_LINE * 3);
        let report = format!("line 2: email: {long}\nline 3: phone: bad\n");
        let rows = read_refused(report.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].reasons[0].chars().count(), MAX_REASON);
        assert!(rows[0].reasons[0].ends_with('…'));
        assert_eq!(rows[1].reasons, ["phone: bad"]);
    }
}
