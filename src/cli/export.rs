//! `icsync export`: the records of one state written to a file for a person to read, fix in a
//! spreadsheet or an editor, and bring back with `icsync import` or the drop folder (each row
//! carries its record's `_icsync_id`, so a fix lands on that record). The format follows the
//! file's extension (`.csv`, `.ndjson`/`.jsonl`, `.json`, `.xlsx`) unless `--format` says.
//!
//! The file holds customer data: it is written under a temporary name in the same folder
//! (created new, mode 0600, never through a symlink) and only then put in place, so an
//! interrupted export leaves no half file under the name asked for, and an existing file is
//! never replaced without `--force` (then the rename replaces the name itself, a symlink
//! included, and never writes through it).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::commands::{all_records, parse_state};
use super::{Backend, CliError};
use crate::control::ListSort;
use crate::ingest::{self, ExportError, ExportRow};
use crate::store::RecordState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
    Json,
    Xlsx,
}

impl ExportFormat {
    /// The format a file name's extension names, in any letter case.
    pub fn from_path(path: &Path) -> Result<ExportFormat, CliError> {
        match crate::ingest::extension(path).as_deref() {
            Some("csv") => Ok(ExportFormat::Csv),
            Some("ndjson" | "jsonl") => Ok(ExportFormat::Ndjson),
            Some("json") => Ok(ExportFormat::Json),
            Some("xlsx") => Ok(ExportFormat::Xlsx),
            _ => Err(CliError::Usage(format!(
                "cannot tell the format of {}: use .csv, .ndjson, .json or .xlsx",
                path.file_name()
                    .unwrap_or(path.as_os_str())
                    .to_string_lossy()
            ))),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The records to export: queued, sending, synced, conflict, rejected (by the API) or
    /// discarded. Rows refused at import are not records: `import` writes them to
    /// NAME.refused.csv beside each file.
    #[arg(long, value_parser = parse_state)]
    pub state: RecordState,
    /// The format, whatever FILE's extension (default: from the extension: .csv,
    /// .ndjson/.jsonl, .json or .xlsx).
    #[arg(long)]
    pub format: Option<ExportFormat>,
    /// Replace FILE if it exists (a symlink there is replaced, never written through).
    #[arg(long)]
    pub force: bool,
    /// Where to write (mode 0600: it holds customer data).
    pub file: PathBuf,
}

pub async fn export(backend: &mut Backend, args: ExportArgs) -> Result<(), CliError> {
    let format = match args.format {
        Some(f) => f,
        None => ExportFormat::from_path(&args.file)?,
    };
    if !args.force && std::fs::symlink_metadata(&args.file).is_ok() {
        return Err(exists(&args.file));
    }
    let records = all_records(backend, Some(args.state), None, ListSort::Queue).await?;
    let ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    let errors: Vec<Option<String>> = records
        .iter()
        .map(|r| r.last_error.as_ref().map(ToString::to_string))
        .collect();
    let customers: Vec<Option<String>> = records
        .iter()
        .map(|r| r.remote_id().map(|id| id.to_string()))
        .collect();
    let rows = records.iter().enumerate().map(|(i, r)| ExportRow {
        id: &ids[i],
        payload: &r.payload,
        error: errors[i].as_deref(),
        customer_id: customers[i].as_deref(),
    });
    write_new(&args.file, args.force, |out| match format {
        ExportFormat::Csv => ingest::write_csv(rows, out),
        ExportFormat::Ndjson => ingest::write_ndjson(rows, out),
        ExportFormat::Json => ingest::write_json(rows, out),
        ExportFormat::Xlsx => ingest::write_xlsx(rows, out),
    })?;
    println!(
        "wrote {} record(s) {} to {}",
        records.len(),
        state_phrase(args.state),
        args.file.display()
    );
    if args.state == RecordState::Rejected && records.is_empty() {
        eprintln!("{}", NO_REJECTED_HINT);
    }
    Ok(())
}

/// Said when no record was rejected by the API, since the rows a file import refused are
/// what a person often means.
const NO_REJECTED_HINT: &str = "hint: rows refused at import are not records and are not \
    exported: `icsync import` wrote them beside each file as NAME.refused.csv";

/// How the export's line names its records: `wrote 2 record(s) rejected by the API to ...`.
fn state_phrase(state: RecordState) -> &'static str {
    match state {
        RecordState::Sending => "being sent",
        RecordState::Conflict => "in conflict",
        other => super::output::state_label(other),
    }
}

fn exists(path: &Path) -> CliError {
    CliError::Usage(format!(
        "{} exists: use --force to replace it",
        path.display()
    ))
}

/// Removes the temporary file unless it was put in place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: it may already be gone.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `target` whole or not at all: `write` fills a new private file beside it, which is
/// synced and then linked in (refused if `target` exists, unless `force`: then renamed over
/// it).
fn write_new(
    target: &Path,
    force: bool,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), ExportError>,
) -> Result<(), CliError> {
    let io_err = |e: io::Error| CliError::Usage(format!("cannot write {}: {e}", target.display()));
    let name = target
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{} is not a file name", target.display())))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut temp = TempFile {
        path: dir.join(format!(
            ".{}.{}-{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        )),
        keep: false,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp.path)
        .map_err(io_err)?;
    let mut out = BufWriter::new(file);
    write(&mut out).map_err(|e| CliError::Usage(format!("{}: {e}", target.display())))?;
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    if force {
        std::fs::rename(&temp.path, target).map_err(io_err)?;
    } else {
        match std::fs::hard_link(&temp.path, target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists(target)),
            Err(e) => return Err(io_err(e)),
        }
        std::fs::remove_file(&temp.path).map_err(io_err)?;
    }
    temp.keep = true;
    // The new name is durable once the folder is.
    if let Ok(d) = File::open(dir) {
        d.sync_all().map_err(io_err)?;
    }
    Ok(())
}
