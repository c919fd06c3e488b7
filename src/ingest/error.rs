//! What can go wrong with a whole file: an extension we do not read, or content that cannot
//! be parsed at all. Per-record problems are not here: they travel as
//! [`FieldError`](crate::contract::FieldError)s inside [`Parsed`](super::Parsed).

/// A file whose name does not end in one of the extensions [`Format`](super::Format) knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name}: not a supported file type (use .json, .ndjson, .jsonl, .csv, .tsv, .txt or .xlsx)"
)]
pub struct UnsupportedFormat {
    pub name: String,
}

/// A file that cannot be read as a list of records. Every variant names where in the file it
/// went wrong; the `Display` starts with that position so that `"{file} {error}"` reads as
/// `customers.json line 3, column 7: ...` (see [`FileError::in_file`]).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// JSON that is malformed before or at its top level, or whose top level is neither an
    /// object nor an array.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
    /// An element of a top-level JSON array that is not valid JSON. The elements before it
    /// have been delivered; nothing after it is read.
    #[error(
        "line {line}, column {column}: array element {index} is not valid JSON ({index} \
         element(s) before it were read): {message}"
    )]
    BadElement {
        index: u64,
        line: u64,
        column: u64,
        message: String,
    },
    /// Bytes that are not UTF-8. `column` counts characters from 1 on that line.
    #[error("line {line}, column {column}: not valid UTF-8")]
    NotUtf8 { line: u64, column: u64 },
    /// A CSV cell that is not UTF-8; `line` is where its record starts.
    #[error("line {line}, column {column_name:?}: not valid UTF-8")]
    CellNotUtf8 { line: u64, column_name: String },
    #[error("line 1: no header row (a CSV file must start with a row naming its columns)")]
    MissingHeader,
    /// A header row over the record bound: without it no row can be read.
    #[error("line {line}: the header row is over {limit}, the most one row may be")]
    HeaderTooLarge { line: u64, limit: String },
    #[error("line {line}: the header has {count} columns, more than the {limit} read")]
    TooManyColumns {
        line: u64,
        count: usize,
        limit: usize,
    },
    #[error("line {line}: column {name:?} appears more than once in the header")]
    DuplicateColumn { line: u64, name: String },
    /// No column (or JSON member) holds the customer's name, so no record could be valid.
    #[error(
        "no column holds the customer's name (a full name, or first and last name); its \
         columns are {columns}. Name the columns in a mapping file, a [columns] table such \
         as \"Kunde\" = \"full_name\" or \"Vorname\" = \"first_name\", and give it with \
         --mapping FILE (for the drop folder: mapping in icsync.toml); docs/ingest.md lists \
         every target"
    )]
    NoNameColumn { columns: String },
    /// Anything else the CSV reader reports.
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
    /// Text that is not valid in the encoding it is read in (other than UTF-8, which the
    /// variants above report); `line` counts the lines decoded before it, from 1.
    #[error("line {line}: not valid {encoding}")]
    NotValidText { line: u64, encoding: &'static str },
    /// An `.xlsx` file over [`MAX_XLSX_BYTES`](super::MAX_XLSX_BYTES).
    #[error("is larger than {limit_mib} MiB, the most read from a spreadsheet")]
    XlsxTooLarge { limit_mib: u64 },
    /// An `.xlsx` file that is not a spreadsheet calamine can read, or has no worksheet.
    #[error("cannot be read as an .xlsx spreadsheet: {message}")]
    Xlsx { message: String },
    /// An `.xlsx` file given to [`read_records`](super::read_records), which cannot yet turn
    /// its rows into records ([`read_xlsx_rows`](super::read_xlsx_rows) reads the rows).
    #[error("is an .xlsx spreadsheet: reading its rows as records is not wired up yet")]
    XlsxNotWired,
}

impl FileError {
    /// `customers.json line 3, column 7: ...`
    pub fn in_file<'a>(&'a self, file: &'a str) -> impl std::fmt::Display + 'a {
        InFile { file, error: self }
    }
}

struct InFile<'a> {
    file: &'a str,
    error: &'a FileError,
}

impl std::fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error {
            // An I/O error has no position to lead with.
            FileError::Io(_) | FileError::NoNameColumn { .. } => {
                write!(f, "{}: {}", self.file, self.error)
            }
            _ => write!(f, "{} {}", self.file, self.error),
        }
    }
}

/// serde_json's message without its trailing " at line L column C", which callers report in
/// their own words.
pub(super) fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(m) => m.to_string(),
        None => full,
    }
}

/// The 1-based character column of byte `at` in `line`, whose first `at` bytes are UTF-8.
pub(super) fn char_column(line: &[u8], at: usize) -> u64 {
    let prefix = std::str::from_utf8(&line[..at]).map_or(at, |s| s.chars().count());
    prefix as u64 + 1
}
