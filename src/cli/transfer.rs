//! `icsync import`: records in from files, with the parsers of `ingest`. Import streams each
//! file in batches (one flush per batch) and reports every bad record by file, line and
//! field; a row carrying `_icsync_id` (from `icsync export`, see `export`) lands on that
//! record.

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{Backend, CliError};
use crate::control::{ControlErrorCode, Reply, Request, SubmitItem};
use crate::ingest::{self, Accepted, Format};
use crate::store::{Origin, SubmitOutcome};

/// Records per batch: one request and one flush each.
const BATCH: usize = 1000;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import: .json (an object or an array), .ndjson / .jsonl, or .csv.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What happened to one file.
#[derive(Debug, Default, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub created: usize,
    pub revised: usize,
    /// Matched a record they would not change: nothing queued.
    pub unchanged: usize,
    pub rejected: Vec<String>,
    pub error: Option<String>,
}

impl FileReport {
    /// An edit of an exported record (`_icsync_id`): a revision, or nothing to change.
    fn count(&mut self, unchanged: bool) {
        if unchanged {
            self.unchanged += 1;
        } else {
            self.revised += 1;
        }
    }

    fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.error.is_none()
    }
}

/// Outcome of an import: every file was read, and whether any record or file was refused.
pub enum ImportOutcome {
    Clean,
    SomeRejected,
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
                    report.count(matches!(reply, Reply::Queued(q) if q.unchanged));
                    continue;
                }
                Err(CliError::Control(e)) if e.code == ControlErrorCode::NotFound => {}
                Err(CliError::Control(e)) => {
                    report
                        .rejected
                        .push(format!("{file} {}: {}", a.position, e.message));
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
                    SubmitOutcome::Revised => report.revised += 1,
                    SubmitOutcome::Unchanged => report.unchanged += 1,
                }
            }
            // Bodies were validated while parsing; the daemon checks again with the same code.
            for i in invalid {
                for e in i.errors {
                    report.rejected.push(format!(
                        "{file} item {}: {}: {}",
                        i.index, e.field, e.message
                    ));
                }
            }
            Ok(())
        }
        other => Err(CliError::Join(format!("unexpected reply {other:?}"))),
    }
}

async fn import_file(backend: &mut Backend, path: &Path) -> Result<FileReport, CliError> {
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
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            report.error = Some(format!("cannot open {name}: {e}"));
            return Ok(report);
        }
    };
    // The parser is synchronous and streams; batches cross to this task through a small
    // channel so at most a couple of batches are in memory at once.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ingest::Batch>(2);
    let reader = tokio::task::spawn_blocking(move || {
        ingest::read_batches(format, BufReader::new(file), BATCH, |batch| {
            match tx.blocking_send(batch) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        })
    });
    while let Some(batch) = rx.recv().await {
        for r in &batch.rejected {
            report
                .rejected
                .extend(r.issues(&name).map(|issue| issue.to_string()));
        }
        queue_batch(backend, &name, batch.accepted, &mut report).await?;
    }
    match reader.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => report.error = Some(e.in_file(&name).to_string()),
        Err(e) => report.error = Some(format!("reading {name} failed: {e}")),
    }
    Ok(report)
}

pub async fn import(backend: &mut Backend, args: ImportArgs) -> Result<ImportOutcome, CliError> {
    let mut reports = Vec::new();
    for path in &args.files {
        reports.push(import_file(backend, path).await?);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!(reports)).unwrap_or_default()
        );
    } else {
        for r in &reports {
            println!(
                "{}: {} new, {} updated, {} unchanged, {} rejected{}",
                r.file,
                r.created,
                r.revised,
                r.unchanged,
                r.rejected.len(),
                r.error
                    .as_ref()
                    .map(|e| format!("; file error: {e}"))
                    .unwrap_or_default()
            );
            for line in &r.rejected {
                eprintln!("  {line}");
            }
        }
    }
    Ok(if reports.iter().all(FileReport::is_clean) {
        ImportOutcome::Clean
    } else {
        ImportOutcome::SomeRejected
    })
}
