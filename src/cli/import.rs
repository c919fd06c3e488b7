//! `icsync import`: files in, through the same reading as the drop folder. Each file is read
//! once whole first (its fingerprint, whether it can be read at all, what its columns feed)
//! so that a file that cannot be read queues nothing, and one taken before is recognised
//! whatever its name; then its good records are queued in batches. Reports count records
//! (a row with two bad fields is one refused record), name every refused one by line and
//! reason, write the refused rows beside the file to fix and import again
//! ([`super::refused`]), and with `--dry-run` show the column table.

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde::Serialize;

use super::refused::{write_refused, RefusedFiles};
use super::{Backend, CliError};
use crate::config::Settings;
use crate::control::{ControlErrorCode, Reply, Request, SubmitItem};
use crate::ingest::{
    self, Accepted, ColumnSummary, FileSummary, Format, Problem, ReadOptions, Survey,
};
use crate::store::{Origin, SubmitOutcome};

/// Records per batch: one request and one flush each.
const BATCH: usize = 1000;
/// Refused records and notes printed per file in text output (`--json` has every one kept).
const SHOW_NOTES: usize = 5;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import: .csv, .tsv or .txt (delimited text), .xlsx (its first sheet), .json
    /// (an object or an array), .ndjson or .jsonl.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A column mapping: TOML with a [columns] table of "Source Header" = "field" lines
    /// (default: `mapping` in icsync.toml). See docs/ingest.md.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// The country of national phone numbers in rows that name none, as an ISO code or a
    /// name (default: `default_country` in icsync.toml, env ICSYNC_DEFAULT_COUNTRY).
    #[arg(long, value_name = "COUNTRY")]
    pub default_country: Option<String>,
    /// The text encoding, as a label such as windows-1252, iso-8859-15 or utf-16
    /// (default: detected; UTF-8 and UTF-16 by their byte order mark).
    #[arg(long, value_name = "LABEL")]
    pub encoding: Option<String>,
    /// The column delimiter of delimited text: , ; | or tab (default: detected; tab for .tsv).
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// Read the files and report what would happen, column by column; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Import a file even if the same content was imported before.
    #[arg(long)]
    pub again: bool,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What happened to one file.
#[derive(Debug, Default, Serialize)]
pub struct FileReport {
    pub file: String,
    /// The format, preset, mapping and columns, once the file could be read.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<FileSummary>,
    pub records: u64,
    /// New records queued.
    pub created: u64,
    /// Records queued as the next revision of a local record.
    pub updated: u64,
    /// Records equal to what is already held: nothing queued.
    pub unchanged: u64,
    /// Records refused at import (never queued): rows, not problems.
    pub refused: u64,
    /// Where the refused rows were written, to fix and import again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_rows: Option<RefusedFiles>,
    /// Why the refused rows could not be written (the import itself went on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_rows_error: Option<String>,
    /// Every problem kept, one per bad field, as `{file, line, field, message}`.
    pub problems: Vec<Problem>,
    /// Records whose problems were not kept (past the first 10,000 of a file).
    #[serde(skip_serializing_if = "is_zero")]
    pub problems_not_listed: u64,
    /// What changed on the way in (a second email left out, a phone extension dropped).
    pub notes: Vec<Problem>,
    /// Set when the file was not imported at all.
    pub error: Option<String>,
    /// The file was imported before (same content): nothing was queued.
    pub skipped_as_imported: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FileReport {
    fn is_clean(&self) -> bool {
        self.refused == 0 && self.error.is_none()
    }
}

/// Outcome of an import: every file was read, and whether any record or file was refused.
pub enum ImportOutcome {
    Clean,
    SomeRejected,
}

fn read_options(settings: &Settings, args: &ImportArgs) -> Result<ReadOptions, CliError> {
    let default_country = match &args.default_country {
        Some(text) => Some(
            ingest::values::country(text)
                .map(|c| c.value)
                .map_err(|e| CliError::Usage(format!("--default-country {text}: {e}")))?,
        ),
        None => settings.default_country.clone(),
    };
    // The same loading as the daemon's drop folder, with the command's own overrides.
    let options = ReadOptions::load(
        args.mapping.as_deref().or(settings.mapping.as_deref()),
        default_country,
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let encoding = match &args.encoding {
        Some(label) => Some(ingest::encoding_by_label(label).ok_or_else(|| {
            CliError::Usage(format!(
                "--encoding {label}: not an encoding (use a label such as utf-8, utf-16, \
                 windows-1252 or iso-8859-15)"
            ))
        })?),
        None => None,
    };
    let delimiter = match args.delimiter.as_deref() {
        None => None,
        Some(text) => Some(delimiter(text).ok_or_else(|| {
            CliError::Usage(format!(
                "--delimiter {text:?}: use one of , ; | or tab (\\t)"
            ))
        })?),
    };
    Ok(ReadOptions {
        encoding,
        delimiter,
        ..options
    })
}

/// `,` `;` `|`, or tab as `tab`, `\t` or the character itself.
fn delimiter(text: &str) -> Option<u8> {
    match text {
        "," | ";" | "|" => text.bytes().next(),
        "\t" | "\\t" | "tab" | "TAB" => Some(b'\t'),
        _ => None,
    }
}

pub async fn import(
    backend: &mut Backend,
    settings: &Settings,
    args: ImportArgs,
) -> Result<ImportOutcome, CliError> {
    let options = Arc::new(read_options(settings, &args)?);
    let mut reports = Vec::new();
    let mut failed = None;
    for path in &args.files {
        let report = match import_file(backend, &options, path, &args).await {
            Ok(report) => report,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        if !args.json {
            print_report(&report, args.dry_run);
        }
        reports.push(report);
    }
    // Also after a failure: the batches before it are queued, their terms pending.
    backend.settle().await?;
    if let Some(e) = failed {
        return Err(e);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    }
    Ok(if reports.iter().all(FileReport::is_clean) {
        ImportOutcome::Clean
    } else {
        ImportOutcome::SomeRejected
    })
}

async fn import_file(
    backend: &mut Backend,
    options: &Arc<ReadOptions>,
    path: &Path,
    args: &ImportArgs,
) -> Result<FileReport, CliError> {
    let name = path.display().to_string();
    let mut report = FileReport {
        file: name.clone(),
        ..FileReport::default()
    };
    let format = match Format::from_path(path) {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(e.to_string());
            return Ok(report);
        }
    };
    let survey = {
        let (path, options, name) = (path.to_path_buf(), options.clone(), name.clone());
        tokio::task::spawn_blocking(move || -> Result<Survey, String> {
            let file = File::open(&path).map_err(|e| format!("{name}: cannot open: {e}"))?;
            ingest::survey(format, file, &options, &name).map_err(|e| e.in_file(&name).to_string())
        })
        .await
        .map_err(|e| CliError::Join(e.to_string()))?
    };
    let survey = match survey {
        Ok(s) => s,
        Err(why) => {
            report.error = Some(why);
            return Ok(report);
        }
    };
    report.records = survey.records();
    report.refused = survey.refused;
    report.problems = survey.problems.clone();
    report.problems_not_listed = survey.problems_dropped;
    report.notes = survey.notes.clone();
    report.read_as = Some(survey.summary.clone());
    if args.dry_run {
        return Ok(report);
    }
    let sha256 = survey.sha256_hex();
    if !args.again {
        if let Reply::FileTaken {
            earlier: Some(earlier),
        } = backend
            .call(Request::FileTaken {
                sha256: sha256.clone(),
            })
            .await?
        {
            report.skipped_as_imported = Some(format!(
                "the same content was imported as {} on {}",
                earlier.file,
                earlier.at.format("%Y-%m-%d %H:%M UTC")
            ));
            return Ok(report);
        }
    }
    if let Err(e) = queue_file(backend, options, path, format, &name, &mut report).await {
        return Err(CliError::Usage(stopped_message(&report, &e)));
    }
    backend
        .call(Request::MarkFileTaken {
            sha256,
            file: name.clone(),
        })
        .await?;
    if survey.refused > 0 {
        let (path, options) = (path.to_path_buf(), options.clone());
        let written =
            tokio::task::spawn_blocking(move || write_refused(&path, format, &options, &name))
                .await
                .map_err(|e| CliError::Join(e.to_string()))?;
        match written {
            Ok(files) => report.refused_rows = Some(files),
            Err(why) => report.refused_rows_error = Some(why),
        }
    }
    Ok(report)
}

/// The second reading: good records queued in batches. The survey already found the file
/// whole; if it changed since, what was read is reported and the change named.
async fn queue_file(
    backend: &mut Backend,
    options: &Arc<ReadOptions>,
    path: &Path,
    format: Format,
    name: &str,
    report: &mut FileReport,
) -> Result<(), CliError> {
    let file = File::open(path).map_err(|e| CliError::Usage(format!("{name}: {e}")))?;
    // The parser is synchronous and streams; batches cross to this task through a small
    // channel so at most a couple of batches are in memory at once.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ingest::Batch>(2);
    let options = options.clone();
    let reader = tokio::task::spawn_blocking(move || {
        ingest::read_batches(
            format,
            BufReader::new(file),
            &options,
            BATCH,
            |batch| match tx.blocking_send(batch) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            },
        )
    });
    while let Some(batch) = rx.recv().await {
        queue_batch(backend, name, batch.accepted, report).await?;
    }
    match reader.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            report.error = Some(format!(
                "{} (the file changed while it was imported; the records before it were queued)",
                e.in_file(name)
            ))
        }
        Err(e) => report.error = Some(format!("reading {name} failed: {e}")),
    }
    Ok(())
}

async fn queue_batch(
    backend: &mut Backend,
    file: &str,
    accepted: Vec<Accepted>,
    report: &mut FileReport,
) -> Result<(), CliError> {
    let origin = |a: &Accepted| Origin::Import {
        file: file.to_string(),
        line: a.position.number(),
    };
    let mut plain = Vec::with_capacity(accepted.len());
    for a in accepted {
        // A record exported from icsync carries its id: the fix lands on that record (a new
        // revision with the changed members), even if its external_id was what changed.
        if let Some(id) = &a.record_id {
            let edit = Request::Edit {
                id: id.clone(),
                changes: a.payload.to_value(),
            };
            match backend.call(edit).await {
                Ok(reply) => {
                    if matches!(reply, Reply::Queued(q) if q.unchanged) {
                        report.unchanged += 1;
                    } else {
                        report.updated += 1;
                    }
                    continue;
                }
                Err(CliError::Control(e)) if e.code == ControlErrorCode::NotFound => {}
                Err(CliError::Control(e)) => {
                    report.refused += 1;
                    report
                        .problems
                        .push(Problem::record(file, a.position, e.message.clone()));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        plain.push(SubmitItem {
            body: a.payload.to_value(),
            origin: origin(&a),
        });
    }
    if plain.is_empty() {
        return Ok(());
    }
    match backend.call(Request::SubmitMany { items: plain }).await? {
        Reply::QueuedMany { queued, invalid } => {
            for q in &queued {
                match q.outcome() {
                    SubmitOutcome::Created => report.created += 1,
                    SubmitOutcome::Revised => report.updated += 1,
                    SubmitOutcome::Unchanged => report.unchanged += 1,
                }
            }
            // Bodies were validated while parsing; the daemon checks again with the same code.
            for i in invalid {
                report.refused += 1;
                for e in i.errors {
                    report.problems.push(Problem::record(
                        file,
                        ingest::Position::Line(0),
                        format!("item {}: {}: {}", i.index, e.field, e.message),
                    ));
                }
            }
            Ok(())
        }
        other => Err(super::commands::unexpected(other)),
    }
}

/// One plain line for an import that stopped part-way (a full disk, a daemon that went away):
/// what was queued before it stopped and what to do.
fn stopped_message(r: &FileReport, e: &CliError) -> String {
    let queued = r.created + r.updated;
    format!(
        "{}: stopped after queuing {} of {} records ({} unchanged): {e}; once that is fixed, \
         run the same import again: records already queued are recognised and not queued twice",
        r.file,
        count(queued),
        count(r.records),
        count(r.unchanged),
    )
}

/// `5,000`
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_report(r: &FileReport, dry_run: bool) {
    let Some(summary) = &r.read_as else {
        println!("{}: not imported: nothing from it was queued", r.file);
        if let Some(e) = &r.error {
            eprintln!("{e}");
        }
        return;
    };
    println!("{}: {}", r.file, summary.describe());
    let good = r.records - r.refused.min(r.records);
    if dry_run {
        println!(
            "  {} records: {} would be queued, {} refused at import (dry run: nothing queued)",
            count(r.records),
            count(good),
            count(r.refused)
        );
        print_columns(&summary.mapping.columns);
    } else if let Some(why) = &r.skipped_as_imported {
        println!("  nothing queued: {why} (--again imports it anyway)");
    } else {
        let mut taken = vec![
            format!("{} new", count(r.created)),
            format!("{} updated", count(r.updated)),
        ];
        if r.unchanged > 0 {
            taken.push(format!("{} unchanged", count(r.unchanged)));
        }
        println!(
            "  {} records: {} queued ({}), {} refused at import (not queued)",
            count(r.records),
            count(r.created + r.updated),
            taken.join(", "),
            count(r.refused)
        );
        if let Some(files) = &r.refused_rows {
            println!(
                "  refused rows: {} (fix them there and `icsync import` that file); every \
                 problem: {}",
                files.rows.display(),
                files.errors.display()
            );
        }
    }
    let unmapped = &summary.mapping.unmapped;
    if !unmapped.is_empty() && !dry_run {
        let shown: Vec<&str> = unmapped.iter().take(8).map(String::as_str).collect();
        let more = unmapped.len().saturating_sub(shown.len());
        println!(
            "  not imported: {}{} (--dry-run shows every column)",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more column(s)")
            } else {
                String::new()
            }
        );
    }
    if !summary.mapping.mapping_unused.is_empty() {
        println!(
            "  the mapping names columns this file does not have: {}",
            summary.mapping.mapping_unused.join(", ")
        );
    }
    if !r.notes.is_empty() {
        let records = {
            let mut lines: Vec<u64> = r.notes.iter().map(|n| n.line).collect();
            lines.dedup();
            lines.len()
        };
        println!(
            "  {} record(s) changed on the way in:",
            count(records as u64)
        );
        for n in r.notes.iter().take(SHOW_NOTES) {
            println!("    {n}");
        }
        if r.notes.len() > SHOW_NOTES {
            println!(
                "    ... and {} more note(s) (--json lists every one)",
                r.notes.len() - SHOW_NOTES
            );
        }
    }
    // One line per refused record, flush left on stderr, each naming its file: for a
    // person to fix and for `grep`.
    for line in refused_lines(&r.problems) {
        eprintln!("{line}");
    }
    if r.problems_not_listed > 0 {
        eprintln!(
            "{}: ... and {} more refused record(s) not listed",
            r.file,
            count(r.problems_not_listed)
        );
    }
    if let Some(e) = &r.error {
        eprintln!("{e}");
    }
    if let Some(e) = &r.refused_rows_error {
        eprintln!("{e}");
    }
}

/// One line per refused record: `line 7: Email: is not ...; Phone: ...`.
fn refused_lines(problems: &[Problem]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last = None;
    for p in problems {
        let what = if p.field.is_empty() {
            p.message.clone()
        } else {
            format!("{}: {}", p.field, p.message)
        };
        let key = (p.line, p.element);
        match out.last_mut() {
            Some(line) if last == Some(key) => {
                line.push_str("; ");
                line.push_str(&what);
            }
            _ => out.push(format!("{} {}: {what}", p.file, p.position())),
        }
        last = Some(key);
    }
    out
}

fn print_columns(columns: &[ColumnSummary]) {
    let width = columns
        .iter()
        .map(|c| c.column.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    println!(
        "  {:<width$}  {:<28}  {:<8}  {:>7}  {:>10}  {:>7}  first problem",
        "column", "field", "how", "filled", "normalised", "refused"
    );
    for c in columns {
        let name: String = c.column.chars().take(width).collect();
        let field = c.field.unwrap_or("(not imported)");
        let how = serde_json::to_value(c.how)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "  {:<width$}  {:<28}  {:<8}  {:>7}  {:>10}  {:>7}  {}",
            name,
            field,
            how,
            count(c.stats.filled),
            count(c.stats.normalised),
            count(c.stats.refused),
            c.stats.example.as_deref().unwrap_or("")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_stopped_part_way_says_what_it_queued_and_what_to_do() {
        let report = FileReport {
            file: "people.csv".into(),
            records: 5000,
            created: 1200,
            updated: 30,
            unchanged: 4,
            ..FileReport::default()
        };
        let e = CliError::Usage(
            "disk full: the store cannot save changes (free some space on the disk of the \
             data dir)"
                .into(),
        );
        let line = stopped_message(&report, &e);
        assert!(
            line.starts_with("people.csv: stopped after queuing 1,230 of 5,000 records"),
            "{line}"
        );
        assert!(line.contains("disk full") && line.contains("run the same import again"));
        assert!(!line.contains('\n') && !line.contains("Os {"), "{line}");
    }

    #[test]
    fn delimiters_are_the_four_kinds_and_tab_can_be_spelled() {
        assert_eq!(delimiter(";"), Some(b';'));
        assert_eq!(delimiter("tab"), Some(b'\t'));
        assert_eq!(delimiter("\\t"), Some(b'\t'));
        assert_eq!(delimiter("\t"), Some(b'\t'));
        assert_eq!(delimiter(":"), None);
        assert_eq!(delimiter(",,"), None);
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(5000), "5,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn a_record_with_several_problems_is_one_line() {
        let p = |line, field: &str, message: &str| Problem {
            file: "f".into(),
            line,
            element: None,
            field: field.into(),
            message: message.into(),
        };
        let lines = refused_lines(&[
            p(3, "Email", "is not valid"),
            p(3, "Phone", "is not a number"),
            p(9, "", "has 2 cells"),
        ]);
        assert_eq!(
            lines,
            [
                "f line 3: Email: is not valid; Phone: is not a number",
                "f line 9: has 2 cells"
            ]
        );
    }
}
