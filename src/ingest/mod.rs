//! Reading customer records out of files (`.json`, `.ndjson`/`.jsonl`, `.csv`/`.tsv`/`.txt`,
//! and the rows of `.xlsx`) and writing them back out for a person to fix: the parsers shared
//! by `icsync import` and the drop-folder watcher.
//!
//! Text files go through two layers before a parser sees them: `decode` turns whatever
//! encoding the file is in into UTF-8 (detected, or given with [`TextOptions`]) and `sniff`
//! picks a delimited file's delimiter; [`open_text`] does both and says what it found.
//!
//! Everything here works over `std::io::Read`/`Write` and streams: a record is handed to the
//! caller as soon as it is read, so a file of any size is read in bounded memory. Records are
//! validated by the contract (through `store::Payload::parse`, a pure type); nothing here
//! opens files, touches the database or the drop folder, or decides what happens to a record
//! next (queuing, group commit and rejection reports belong to the caller).

mod bom;
mod bounds;
mod csv;
mod csv_bound;
mod decode;
pub mod drop;
mod error;
mod export;
mod file_plan;
pub mod formula;
mod json;
mod lines;
pub mod mapping;
mod ndjson;
pub mod presets;
mod record;
mod shape;
mod sniff;
mod survey;
pub mod values;
mod xlsx;

use std::convert::Infallible;
use std::fmt;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::Path;

pub use bounds::{MAX_COLUMNS, MAX_NESTING, MAX_RECORD_BYTES};
pub use decode::{
    detect, encoding_by_label, Decoding, Detected, Detection, NotValidText, SAMPLE_BYTES,
};
pub use encoding_rs::Encoding;
pub use error::{FileError, UnsupportedFormat};
pub use export::{
    write_csv, write_json, write_ndjson, write_xlsx, ExportError, ExportRow, CSV_HEADER,
};
pub use file_plan::{ColumnSummary, MappingSummary, ReadOptions};
pub use mapping::{Mapping, MappingError};
pub use ndjson::MAX_LINE_BYTES;
pub use record::{
    Accepted, Parsed, Position, RecordIssue, Rejected, META_CUSTOMER_ID, META_ERROR, META_ID,
};
pub use shape::ColumnStats;
pub use sniff::delimiter as sniff_delimiter;
pub use survey::{survey, Problem, Survey, KEEP_PROBLEMS};
pub use xlsx::{read_rows as read_xlsx_rows, MAX_XLSX_BYTES, MAX_XLSX_UNPACKED};

/// A file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Ndjson,
    /// Delimited text, `.csv` or `.txt`: the delimiter is sniffed unless given.
    Csv,
    /// Delimited text, `.tsv`: tab unless another delimiter is given.
    Tsv,
    /// An Excel workbook, `.xlsx`: the rows of its first worksheet.
    Xlsx,
}

/// A file name's extension in lower case, which is how formats are told apart.
pub fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

impl Format {
    /// `.json`, `.ndjson`, `.jsonl`, `.csv`, `.txt`, `.tsv` or `.xlsx`, in any letter case.
    pub fn from_path(path: &Path) -> Result<Format, UnsupportedFormat> {
        match extension(path).as_deref() {
            Some("json") => Ok(Format::Json),
            Some("ndjson" | "jsonl") => Ok(Format::Ndjson),
            Some("csv" | "txt") => Ok(Format::Csv),
            Some("tsv") => Ok(Format::Tsv),
            Some("xlsx") => Ok(Format::Xlsx),
            _ => Err(UnsupportedFormat {
                name: path
                    .file_name()
                    .unwrap_or(path.as_os_str())
                    .to_string_lossy()
                    .into_owned(),
            }),
        }
    }

    /// The delimiter a file of this format has unless told otherwise; `None` to sniff it
    /// (and for formats that have none).
    pub fn default_delimiter(self) -> Option<u8> {
        match self {
            Format::Tsv => Some(b'\t'),
            Format::Json | Format::Ndjson | Format::Csv | Format::Xlsx => None,
        }
    }
}

/// What the user said about a text file, overriding detection (`--encoding`,
/// `--delimiter`). The default detects both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    pub encoding: Option<&'static Encoding>,
    pub delimiter: Option<u8>,
}

/// How a text file is read: displays as `windows-1252 (detected), delimiter ';'`. The
/// delimiter means nothing for JSON and NDJSON (print `encoding` alone for those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedText {
    pub encoding: Detected,
    pub delimiter: u8,
}

impl fmt::Display for DetectedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.delimiter {
            b'\t' => write!(f, "{}, delimiter tab", self.encoding),
            d => write!(f, "{}, delimiter '{}'", self.encoding, char::from(d)),
        }
    }
}

/// A text file decoded to UTF-8 by [`open_text`].
pub type TextReader<R> = Decoding<io::Chain<io::Cursor<Vec<u8>>, R>>;

/// Reads the first [`SAMPLE_BYTES`] of `reader` to settle its encoding and delimiter (each
/// from `options` if given, the delimiter next from `default_delimiter`, else detected), and
/// returns what was settled with a reader of the whole text as UTF-8, byte order mark
/// dropped. Detection is deterministic: the same file always reads the same way.
pub fn open_text<R: Read>(
    mut reader: R,
    options: &TextOptions,
    default_delimiter: Option<u8>,
) -> io::Result<(DetectedText, TextReader<R>)> {
    let mut sample = Vec::new();
    reader
        .by_ref()
        .take(SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)?;
    let encoding = options
        .encoding
        .map_or_else(|| detect(&sample), Detected::given);
    let delimiter = options
        .delimiter
        .or(default_delimiter)
        .unwrap_or_else(|| sniff::delimiter(&decode::lossy(&sample, encoding.encoding)));
    let text = Decoding::new(io::Cursor::new(sample).chain(reader), encoding.encoding);
    Ok((
        DetectedText {
            encoding,
            delimiter,
        },
        text,
    ))
}

/// What reading a whole file found out about it, beside its records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileSummary {
    pub format: Format,
    /// The text encoding and how it was known: `windows-1252 (detected)`.
    pub encoding: Option<String>,
    /// A delimited file's delimiter: `,`, `;`, `tab`, `|`.
    pub delimiter: Option<String>,
    #[serde(flatten)]
    pub mapping: MappingSummary,
}

impl FileSummary {
    /// How the file was read, for a person: `CSV, windows-1252 (detected), delimiter ';',
    /// Salesforce contacts export`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{:?}", self.format).to_uppercase()];
        if let Some(encoding) = &self.encoding {
            parts.push(encoding.clone());
        }
        match self.delimiter.as_deref() {
            Some("tab") => parts.push("delimiter tab".to_string()),
            Some(d) => parts.push(format!("delimiter '{d}'")),
            None => {}
        }
        if let Some(preset) = self.mapping.preset {
            parts.push(format!("{preset} export"));
        }
        if let Some(mapping) = &self.mapping.mapping {
            parts.push(format!("mapping {mapping}"));
        }
        parts.join(", ")
    }
}

/// Streams every record of `reader` to `on_record`, in file order, until the end of the
/// file, a [`FileError`], or `on_record` breaks (whose value is returned), then says what
/// the file's columns fed.
///
/// Records delivered before a `FileError` stay delivered: a caller that must treat a file
/// as all-or-nothing either reads it once to check (with a callback that keeps nothing)
/// or holds back what it commits until the end.
pub fn read_file<R, B, F>(
    format: Format,
    reader: R,
    options: &ReadOptions,
    on_record: F,
) -> Result<(ControlFlow<B>, FileSummary), FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    read_file_with_limit(format, reader, options, MAX_RECORD_BYTES, on_record)
}

/// [`read_file`] with records of at most `limit` bytes (tests use small ones).
fn read_file_with_limit<R, B, F>(
    format: Format,
    reader: R,
    options: &ReadOptions,
    limit: usize,
    on_record: F,
) -> Result<(ControlFlow<B>, FileSummary), FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let mut plan = file_plan::FilePlan::new(options);
    let text_options = TextOptions {
        encoding: options.encoding,
        delimiter: options.delimiter,
    };
    let (flow, text) = match format {
        Format::Xlsx => (xlsx_records(reader, limit, &mut plan, on_record)?, None),
        Format::Json | Format::Ndjson | Format::Csv | Format::Tsv => {
            let (detected, text) = open_text(reader, &text_options, format.default_delimiter())?;
            let outcome = match format {
                Format::Json => json::read(text, limit, &mut plan, on_record),
                Format::Ndjson => ndjson::read(text, limit, &mut plan, on_record),
                _ => csv::read(text, detected.delimiter, limit, &mut plan, on_record),
            };
            (outcome.map_err(not_valid_text)?, Some(detected))
        }
    };
    let delimited = matches!(format, Format::Csv | Format::Tsv);
    let summary = FileSummary {
        format,
        encoding: text.map(|t| t.encoding.to_string()),
        delimiter: text
            .filter(|_| delimited)
            .map(|t| delimiter_name(t.delimiter)),
        mapping: plan.summary(),
    };
    Ok((flow, summary))
}

/// `","`, `";"`, `"tab"`.
fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".to_string(),
        d => char::from(d).to_string(),
    }
}

/// The decoder's error reaches the parsers as I/O; say what it is.
fn not_valid_text(e: FileError) -> FileError {
    match e {
        FileError::Io(io) => match NotValidText::find(&io) {
            Some(bad) => FileError::NotValidText {
                line: bad.line,
                encoding: bad.encoding,
            },
            None => FileError::Io(io),
        },
        other => other,
    }
}

/// The rows of a spreadsheet's first worksheet as records: the first non-empty row is the
/// header, positions are the row numbers a person sees. The workbook is read into memory
/// (capped at [`MAX_XLSX_BYTES`]): a zip file cannot be streamed.
fn xlsx_records<R, B, F>(
    reader: R,
    limit: usize,
    plan: &mut file_plan::FilePlan,
    mut on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let mut bytes = Vec::new();
    reader.take(MAX_XLSX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_XLSX_BYTES {
        return Err(FileError::XlsxTooLarge {
            limit_mib: MAX_XLSX_BYTES >> 20,
        });
    }
    let mut header: Option<usize> = None;
    let mut failed = None;
    let flow = xlsx::read_bounded_rows(io::Cursor::new(bytes), limit, |row_number, row| {
        let position = Position::Line(row_number);
        let xlsx::Row { mut cells, over } = row;
        if over {
            if header.is_none() {
                failed = Some(FileError::HeaderTooLarge {
                    line: row_number,
                    limit: bounds::size_text(limit),
                });
                return ControlFlow::Break(None);
            }
            return match on_record(Parsed::unreadable(
                position,
                bounds::Excess::TooLarge.message(limit),
            )) {
                ControlFlow::Continue(()) => ControlFlow::Continue(()),
                ControlFlow::Break(b) => ControlFlow::Break(Some(b)),
            };
        }
        let Some(width) = header else {
            let names: Vec<String> = cells.iter().map(|c| c.trim().to_string()).collect();
            if let Err(e) = plan.header(&names) {
                failed = Some(e);
                return ControlFlow::Break(None);
            }
            header = Some(names.len());
            return ControlFlow::Continue(());
        };
        let parsed = if cells[width.min(cells.len())..]
            .iter()
            .any(|c| !c.trim().is_empty())
        {
            Parsed::unreadable(
                position,
                format!(
                    "has {} cell(s) but the header has {width} column(s)",
                    cells.len()
                ),
            )
        } else {
            // A spreadsheet row ends at its last filled cell.
            cells.resize(width, String::new());
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            plan.row(position, &cells)
        };
        match on_record(parsed) {
            ControlFlow::Continue(()) => ControlFlow::Continue(()),
            ControlFlow::Break(b) => ControlFlow::Break(Some(b)),
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if header.is_none() {
        return Err(FileError::MissingHeader);
    }
    Ok(match flow {
        ControlFlow::Break(Some(b)) => ControlFlow::Break(b),
        _ => ControlFlow::Continue(()),
    })
}

/// [`read_file`] with default options, for callers that need only the records.
pub fn read_records<R, B, F>(
    format: Format,
    reader: R,
    on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    read_records_with(format, reader, &ReadOptions::default(), on_record)
}

/// [`read_file`] for callers that need only the records.
pub fn read_records_with<R, B, F>(
    format: Format,
    reader: R,
    options: &ReadOptions,
    on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    read_file(format, reader, options, on_record).map(|(flow, _)| flow)
}

/// Every record of a small file, in order.
pub fn parse_all(format: Format, reader: impl Read) -> Result<Vec<Parsed>, FileError> {
    let mut all = Vec::new();
    let flow = read_records(format, reader, |parsed| {
        all.push(parsed);
        ControlFlow::<Infallible>::Continue(())
    })?;
    match flow {
        ControlFlow::Continue(()) => Ok(all),
        ControlFlow::Break(never) => match never {},
    }
}

/// A run of consecutive records: at most the batch size of valid ones and at most as many
/// invalid ones (so a file of nothing but bad rows is still read in bounded memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty() && self.rejected.is_empty()
    }
}

/// Streams the records of `reader` to `on_batch` in batches of up to `size` valid records
/// (a `size` of 0 counts as 1), for the caller to commit each batch at once. The last
/// batch may be smaller; an empty file gives no batch. Before a [`FileError`] is returned the
/// records read so far are handed out as a final batch (if `on_batch` breaks on that batch,
/// its break wins over the file error).
pub fn read_batches<R, B, F>(
    format: Format,
    reader: R,
    options: &ReadOptions,
    size: usize,
    mut on_batch: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Batch) -> ControlFlow<B>,
{
    let size = size.max(1);
    let mut batch = Batch::default();
    let outcome = read_file(format, reader, options, |parsed| {
        match parsed.split() {
            Ok(a) => batch.accepted.push(a),
            Err(r) => batch.rejected.push(r),
        }
        if batch.accepted.len() >= size || batch.rejected.len() >= size {
            on_batch(std::mem::take(&mut batch))
        } else {
            ControlFlow::Continue(())
        }
    });
    let outcome = outcome.map(|(flow, _)| flow);
    match outcome {
        Ok(ControlFlow::Break(b)) => Ok(ControlFlow::Break(b)),
        Ok(ControlFlow::Continue(())) | Err(_) if batch.is_empty() => outcome,
        Ok(ControlFlow::Continue(())) => Ok(on_batch(batch)),
        Err(e) => match on_batch(batch) {
            ControlFlow::Break(b) => Ok(ControlFlow::Break(b)),
            ControlFlow::Continue(()) => Err(e),
        },
    }
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod text_tests;
