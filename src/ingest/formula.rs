//! Spreadsheet formula neutralising (CSV injection), as OWASP's CSV Injection guidance says:
//! a cell that a spreadsheet would run as a formula, because it begins with `=`, `+`, `-`,
//! `@`, a tab or a carriage return, is written with a leading apostrophe, which spreadsheets
//! take as "this cell is text". Used for every CSV icsync writes for people to open (exports
//! and the rejected copies of dropped files); reading a text cell takes the apostrophe off
//! again, so a file icsync wrote imports back unchanged. It owns only the rule, not where
//! cells come from or go.

use std::borrow::Cow;

/// What a spreadsheet may take as the start of a formula.
const TRIGGERS: [u8; 6] = [b'=', b'+', b'-', b'@', b'\t', b'\r'];

fn triggers(first: Option<&u8>) -> bool {
    first.is_some_and(|b| TRIGGERS.contains(b))
}

/// Whether the cell needs an apostrophe: it starts like a formula, possibly after
/// apostrophes of its own (which [`read_cell`] would otherwise take one of).
fn needs_mark(cell: &[u8]) -> bool {
    let start = cell.iter().position(|b| *b != b'\'').unwrap_or(cell.len());
    triggers(cell.get(start))
}

/// The cell as written for a spreadsheet: `'` before one that starts like a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if needs_mark(cell.as_bytes()) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// [`neutralise`] for raw cells (the rejected copy keeps the bytes it read).
pub fn neutralise_bytes(cell: &[u8]) -> Cow<'_, [u8]> {
    if needs_mark(cell) {
        let mut out = Vec::with_capacity(cell.len() + 1);
        out.push(b'\'');
        out.extend_from_slice(cell);
        Cow::Owned(out)
    } else {
        Cow::Borrowed(cell)
    }
}

/// A text cell as read: the apostrophe [`neutralise`] (or a spreadsheet user) put before a
/// formula-like value is taken off; any other apostrophe is data.
pub fn read_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_mark(rest.as_bytes()) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_an_apostrophe_and_read_back_unchanged() {
        for cell in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+44 20 7946 0958",
            "-2+3",
            "@SUM(A1)",
            "\tcmd",
            "\rx",
        ] {
            let written = neutralise(cell);
            assert_eq!(written, format!("'{cell}"));
            assert_eq!(neutralise_bytes(cell.as_bytes()), written.as_bytes());
            assert_eq!(read_cell(&written), cell);
        }
    }

    #[test]
    fn other_cells_and_apostrophes_are_left_alone() {
        for cell in ["Ada Lovelace", "O'Brien", "'quoted'", "", " =1+1", "x=1"] {
            assert_eq!(neutralise(cell), cell);
            assert_eq!(read_cell(cell), cell);
        }
        // A value that itself starts with "'=" keeps its apostrophe through the trip.
        assert_eq!(neutralise("'=x"), "''=x");
        assert_eq!(read_cell(&neutralise("'=x")), "'=x");
    }

    #[test]
    fn every_short_cell_round_trips_and_none_is_written_as_a_formula() {
        let alphabet = ["'", "=", "+", "-", "@", "\t", "a", " "];
        let mut cells = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = cells
                .iter()
                .flat_map(|c| alphabet.iter().map(move |a| format!("{c}{a}")))
                .collect();
            cells.extend(longer);
        }
        for cell in &cells {
            let written = neutralise(cell);
            assert!(!triggers(written.as_bytes().first()), "{written:?}");
            assert_eq!(read_cell(&written), cell, "{cell:?} -> {written:?}");
        }
    }
}
