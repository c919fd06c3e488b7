//! `icsync export`: the records that need a person written, with the writers of `ingest`,
//! in a form that can be fixed in a spreadsheet and imported again onto the same records.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::commands::all_records;
use super::{Backend, CliError};
use crate::control::ListSort;
use crate::ingest::{self, ExportRow, Format};
use crate::store::RecordState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The records to export: conflict or rejected.
    #[arg(long, value_parser = parse_person_state)]
    pub state: RecordState,
    /// File format (default: from FILE's extension, else csv).
    #[arg(long)]
    pub format: Option<ExportFormat>,
    /// Where to write (created with mode 0600: it holds customer data).
    pub file: PathBuf,
}

fn parse_person_state(s: &str) -> Result<RecordState, String> {
    match RecordState::parse(s) {
        Some(st) if st.needs_person() => Ok(st),
        _ => Err("export takes conflict or rejected".into()),
    }
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

pub async fn export(backend: &mut Backend, args: ExportArgs) -> Result<(), CliError> {
    let format = args
        .format
        .unwrap_or_else(|| match Format::from_path(&args.file) {
            Ok(Format::Ndjson) => ExportFormat::Ndjson,
            _ => ExportFormat::Csv,
        });
    let records = all_records(backend, Some(args.state), None, ListSort::Queue).await?;
    let ids: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    let errors: Vec<Option<String>> = records
        .iter()
        .map(|r| r.last_error.as_ref().map(ToString::to_string))
        .collect();
    let rows = records.iter().enumerate().map(|(i, r)| ExportRow {
        id: &ids[i],
        payload: &r.payload,
        error: errors[i].as_deref(),
    });
    let io =
        |e: std::io::Error| CliError::Usage(format!("cannot write {}: {e}", args.file.display()));
    let mut out = BufWriter::new(create_private(&args.file).map_err(io)?);
    let written = match format {
        ExportFormat::Csv => ingest::write_csv(rows, &mut out),
        ExportFormat::Ndjson => ingest::write_ndjson(rows, &mut out),
    };
    written.map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    out.flush().map_err(io)?;
    println!(
        "{} {} record(s) written to {}",
        records.len(),
        args.state,
        args.file.display()
    );
    Ok(())
}
