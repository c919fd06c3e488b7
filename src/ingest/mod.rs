//! Reading customer records out of files (`.json`, `.ndjson`/`.jsonl`, `.csv`) and writing
//! them back out for a person to fix: the parsers shared by `icsync import` and the
//! drop-folder watcher.
//!
//! Everything here works over `std::io::Read`/`Write` and streams: a record is handed to the
//! caller as soon as it is read, so a file of any size is read in bounded memory. Records are
//! validated by the contract (through `store::Payload::parse`, a pure type); nothing here
//! opens files, touches the database or the drop folder, or decides what happens to a record
//! next (queuing, group commit and rejection reports belong to the caller).

mod bom;
mod csv;
pub mod drop;
mod error;
mod export;
mod json;
mod lines;
mod ndjson;
mod record;

use std::convert::Infallible;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

pub use error::{FileError, UnsupportedFormat};
pub use export::{
    write_csv, write_json, write_ndjson, write_xlsx, ExportError, ExportRow, CSV_HEADER,
};
pub use ndjson::MAX_LINE_BYTES;
pub use record::{
    Accepted, Parsed, Position, RecordIssue, Rejected, META_CUSTOMER_ID, META_ERROR, META_ID,
};

/// A file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// `.json`, `.ndjson`, `.jsonl` or `.csv`, in any letter case.
    pub fn from_path(path: &Path) -> Result<Format, UnsupportedFormat> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("json") => Ok(Format::Json),
            Some("ndjson" | "jsonl") => Ok(Format::Ndjson),
            Some("csv") => Ok(Format::Csv),
            _ => Err(UnsupportedFormat {
                name: path
                    .file_name()
                    .unwrap_or(path.as_os_str())
                    .to_string_lossy()
                    .into_owned(),
            }),
        }
    }
}

/// Streams every record of `reader` to `on_record`, in file order, until the end of the
/// file, a [`FileError`], or `on_record` breaks (whose value is returned).
///
/// Records delivered before a `FileError` stay delivered: a caller that must treat a file
/// as all-or-nothing either reads it once to check (with a callback that keeps nothing)
/// or holds back what it commits until the end.
pub fn read_records<R, B, F>(
    format: Format,
    reader: R,
    on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let reader = bom::SkipBom::new(reader);
    match format {
        Format::Json => json::read(reader, on_record),
        Format::Ndjson => ndjson::read(reader, on_record),
        Format::Csv => csv::read(reader, on_record),
    }
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
    size: usize,
    mut on_batch: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Batch) -> ControlFlow<B>,
{
    let size = size.max(1);
    let mut batch = Batch::default();
    let outcome = read_records(format, reader, |parsed| {
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
mod tests;
