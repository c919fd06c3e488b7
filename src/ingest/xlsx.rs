//! `.xlsx` spreadsheets: the rows of the first worksheet as text cells, streamed row by row
//! (calamine's cell reader, which never builds the whole sheet in memory).
//!
//! Owns turning a cell into the text a person sees in it: numbers without a spurious `.0`
//! or exponent (a phone number stored as a number stays its digits), dates as ISO 8601,
//! errors as Excel writes them (`#N/A`). It does not know what the columns mean: which row is
//! the header and how cells become a record belongs to the CSV column mapping.
//!
//! Bounded: the file is at most [`MAX_XLSX_BYTES`] and its parts at most
//! [`MAX_XLSX_UNPACKED`] unpacked (as the archive declares them), since calamine keeps the
//! shared-string table in memory. One row is bounded too: once its cells' text passes
//! [`MAX_RECORD_BYTES`] (or a cell lies past [`MAX_COLUMNS`]) the rest of its cells are not
//! kept and the row is marked [`Row::over`], which the record reader refuses.

use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;

use calamine::{DataRef, Reader, SheetType, Xlsx};

use super::bounds::{MAX_COLUMNS, MAX_RECORD_BYTES};
use super::error::FileError;

/// The largest `.xlsx` file read. A spreadsheet of a million customers is well below it.
pub const MAX_XLSX_BYTES: u64 = 100 << 20;

/// The most the parts of an `.xlsx` may unpack to, by the sizes its archive declares.
pub const MAX_XLSX_UNPACKED: u64 = 1 << 30;

/// One row of a worksheet as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// Its cells, from column A to its last non-empty cell kept; empty cells are `""`.
    pub cells: Vec<String>,
    /// Its cells' text went over the bound (or a cell lay past [`MAX_COLUMNS`]): the cells
    /// after that point were not kept.
    pub over: bool,
}

/// Calls `on_row` with each row of the first worksheet that has at least one non-empty cell,
/// in order, with its 1-based spreadsheet row number (empty rows are skipped but still
/// counted, so the number is the one a person sees in Excel). A row's cells run from column
/// A to its last non-empty cell; empty cells in between are `""`. A row over the bound is
/// given cut (see [`read_bounded_rows`] to know which). Stops early when `on_row` breaks,
/// returning its value.
pub fn read_rows<B>(
    reader: impl Read + Seek,
    mut on_row: impl FnMut(u64, Vec<String>) -> ControlFlow<B>,
) -> Result<ControlFlow<B>, FileError> {
    read_bounded_rows(reader, MAX_RECORD_BYTES, |n, row| on_row(n, row.cells))
}

/// [`read_rows`], each row with whether it went over `limit` bytes of cell text.
pub fn read_bounded_rows<B>(
    mut reader: impl Read + Seek,
    limit: usize,
    mut on_row: impl FnMut(u64, Row) -> ControlFlow<B>,
) -> Result<ControlFlow<B>, FileError> {
    check_size(&mut reader)?;
    let mut workbook: Xlsx<_> = Xlsx::new(reader).map_err(xlsx_error)?;
    let Some(sheet) = workbook
        .sheets_metadata()
        .iter()
        .find(|s| s.typ == SheetType::WorkSheet)
        .map(|s| s.name.clone())
    else {
        return Err(FileError::Xlsx {
            message: "it has no worksheet".to_string(),
        });
    };
    let mut cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(xlsx_error)?;
    let mut row_index: Option<u32> = None;
    let mut row = Row::default();
    let mut row_bytes = 0usize;
    let mut emit = |index: Option<u32>, row: &mut Row| match index {
        Some(i) if !row.cells.is_empty() || row.over => {
            on_row(u64::from(i) + 1, std::mem::take(row))
        }
        _ => {
            *row = Row::default();
            ControlFlow::Continue(())
        }
    };
    while let Some(cell) = cells.next_cell().map_err(xlsx_error)? {
        let (r, c) = cell.get_position();
        if row_index != Some(r) {
            if let ControlFlow::Break(b) = emit(row_index, &mut row) {
                return Ok(ControlFlow::Break(b));
            }
            row_index = Some(r);
            row_bytes = 0;
        }
        if row.over {
            continue;
        }
        let text = cell_text(cell.get_value());
        if text.is_empty() {
            continue;
        }
        let c = c as usize;
        row_bytes = row_bytes.saturating_add(text.len());
        if c >= MAX_COLUMNS || row_bytes > limit {
            row.over = true;
            continue;
        }
        if row.cells.len() <= c {
            row.cells.resize(c + 1, String::new());
        }
        row.cells[c] = text;
    }
    Ok(emit(row_index, &mut row))
}

/// The file's size and its declared unpacked size, both against their caps; leaves the
/// reader at the start.
fn check_size(reader: &mut (impl Read + Seek)) -> Result<(), FileError> {
    let len = reader.seek(SeekFrom::End(0))?;
    if len > MAX_XLSX_BYTES {
        return Err(FileError::XlsxTooLarge {
            limit_mib: MAX_XLSX_BYTES >> 20,
        });
    }
    reader.rewind()?;
    let mut archive = zip::ZipArchive::new(&mut *reader).map_err(|e| FileError::Xlsx {
        message: e.to_string(),
    })?;
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| FileError::Xlsx {
            message: e.to_string(),
        })?;
        unpacked = unpacked.saturating_add(entry.size());
    }
    drop(archive);
    if unpacked > MAX_XLSX_UNPACKED {
        return Err(FileError::Xlsx {
            message: format!("it unpacks to more than {} MiB", MAX_XLSX_UNPACKED >> 20),
        });
    }
    reader.rewind()?;
    Ok(())
}

fn xlsx_error(e: calamine::XlsxError) -> FileError {
    match e {
        calamine::XlsxError::Io(io) => FileError::Io(io),
        other => FileError::Xlsx {
            message: other.to_string(),
        },
    }
}

/// The text of one cell; see the module docs.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Empty => String::new(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number_text(*f),
        DataRef::Bool(b) => b.to_string(),
        DataRef::Error(e) => e.to_string(),
        DataRef::DateTime(dt) => {
            if dt.is_duration() {
                duration_text(dt.as_f64())
            } else {
                date_text(dt)
            }
        }
    }
}

/// Shortest text that reads back as the same number, never with an exponent or a trailing
/// `.0`: `4915123456789`, `0.1`, `-2.5`.
fn number_text(f: f64) -> String {
    if f == 0.0 {
        // Also -0.
        return "0".to_string();
    }
    // Rust's `Display` for f64 is the shortest round-trip form, in plain notation.
    f.to_string()
}

/// `2024-03-01`, `2024-03-01T14:30:00`, `2024-03-01T14:30:00.250`; a time of day alone (a
/// serial below 1) is `14:30:00`.
fn date_text(dt: &calamine::ExcelDateTime) -> String {
    let (year, month, day, hour, minute, second, milli) = dt.to_ymd_hms_milli();
    let time = if milli == 0 {
        format!("{hour:02}:{minute:02}:{second:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}.{milli:03}")
    };
    let serial = dt.as_f64();
    if (0.0..1.0).contains(&serial) && serial != 0.0 {
        return time;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if hour == 0 && minute == 0 && second == 0 && milli == 0 {
        date
    } else {
        format!("{date}T{time}")
    }
}

/// A duration (`[h]:mm:ss` cells) as hours, minutes and seconds: `27:05:00`.
fn duration_text(days: f64) -> String {
    let total = (days * 86_400.0).round();
    let (sign, total) = if total < 0.0 {
        ("-", -total)
    } else {
        ("", total)
    };
    // Saturating cast; a duration beyond u64 seconds is not a customer field.
    let secs = total as u64;
    format!(
        "{sign}{}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

    use super::*;

    fn sample() -> Vec<u8> {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let stamp = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        for (c, name) in ["full_name", "phone", "score", "vip", "born", "seen", "note"]
            .iter()
            .enumerate()
        {
            sheet.write_string(0, c as u16, *name).unwrap();
        }
        sheet.write_string(1, 0, "Jürgen Müller").unwrap();
        sheet.write_number(1, 1, 4915123456789.0).unwrap();
        sheet.write_number(1, 2, 0.1).unwrap();
        sheet.write_boolean(1, 3, true).unwrap();
        let born = ExcelDateTime::from_ymd(1984, 2, 29).unwrap();
        sheet
            .write_datetime_with_format(1, 4, &born, &date)
            .unwrap();
        let seen = ExcelDateTime::from_ymd(2024, 3, 1)
            .unwrap()
            .and_hms(14, 30, 0)
            .unwrap();
        sheet
            .write_datetime_with_format(1, 5, &seen, &stamp)
            .unwrap();
        sheet.write_string(1, 6, "Straße").unwrap();
        // Row 3 is empty; row 4 has gaps in the middle.
        sheet.write_string(3, 0, "Ann").unwrap();
        sheet.write_number(3, 2, -2.5).unwrap();
        sheet.write_boolean(3, 3, false).unwrap();
        sheet.write_number(3, 6, 42.0).unwrap();
        book.save_to_buffer().unwrap()
    }

    fn rows(bytes: Vec<u8>) -> Vec<(u64, Vec<String>)> {
        let mut out = Vec::new();
        let flow = read_rows(Cursor::new(bytes), |n, row| {
            out.push((n, row));
            ControlFlow::<()>::Continue(())
        })
        .unwrap();
        assert_eq!(flow, ControlFlow::Continue(()));
        out
    }

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_typed_cells_as_the_text_a_person_sees() {
        let got = rows(sample());
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0],
            (
                1,
                strings(&["full_name", "phone", "score", "vip", "born", "seen", "note"])
            )
        );
        assert_eq!(
            got[1],
            (
                2,
                strings(&[
                    "Jürgen Müller",
                    "4915123456789",
                    "0.1",
                    "true",
                    "1984-02-29",
                    "2024-03-01T14:30:00",
                    "Straße"
                ])
            )
        );
        // The empty row 3 is skipped; row 4 keeps its number and its gaps.
        assert_eq!(
            got[2],
            (4, strings(&["Ann", "", "-2.5", "false", "", "", "42"]))
        );
    }

    #[test]
    fn stops_when_the_callback_breaks() {
        let mut seen = 0;
        let flow = read_rows(Cursor::new(sample()), |n, _| {
            seen += 1;
            if n == 2 {
                ControlFlow::Break(n)
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(flow, ControlFlow::Break(2));
        assert_eq!(seen, 2);
    }

    #[test]
    fn cell_errors_read_as_excel_writes_them() {
        assert_eq!(
            cell_text(&DataRef::Error(calamine::CellErrorType::NA)),
            "#N/A"
        );
        assert_eq!(cell_text(&DataRef::Int(4915123456789)), "4915123456789");
        assert_eq!(number_text(1e15), "1000000000000000");
        assert_eq!(number_text(-0.0), "0");
        assert_eq!(number_text(1.0 / 3.0), "0.3333333333333333");
        assert_eq!(duration_text(1.5 + 5.0 / 1440.0), "36:05:00");
    }

    #[test]
    fn not_a_spreadsheet_is_a_file_error() {
        let err = read_rows(Cursor::new(b"full_name,email\n".to_vec()), |_, _| {
            ControlFlow::<()>::Continue(())
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot be read as an .xlsx spreadsheet"),
            "{err}"
        );
    }
}
