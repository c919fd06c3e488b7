//! What happens to one whole file taken from the drop folder, in an order that survives
//! kill -9 anywhere:
//!
//! 1. Read it once to hash it (SHA-256, its fingerprint) and check it parses as a whole.
//!    Unsupported or unparseable: moved to `rejected/` beside a report; nothing queued.
//! 2. Look the fingerprint up. Archived before: a duplicate (moved to `processed/` with a
//!    note, nothing queued). Ingested but not yet moved: go to step 5. Part-way: resume
//!    after the records already committed.
//! 3. When some records are invalid, write the report and the copy of those records into
//!    the hidden work folder (rewritten whole on every attempt: parsing is deterministic).
//! 4. Read it again and queue the valid records in batches; each batch is one store
//!    transaction with the file's progress (records done), so records and progress cannot
//!    disagree after a crash. The last batch marks the file ingested and is flushed.
//! 5. Move the reports to `rejected/` and the file to `processed/`, then mark it archived
//!    with a history line.
//!
//! It blocks (file and store I/O): run it off the async reactor.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use super::folder::{create_private, free_names, move_no_replace, Folder};
use super::DropError;
use crate::ingest::drop::names::split_extension;
use crate::ingest::drop::{rejected_copy_extension, write_rejects, RejectsError};
use crate::ingest::{self, read_file, FileError, Format, ReadOptions, Survey};
use crate::service::{DropItem, Service};
use crate::store::{
    DropFileEntry, DropOutcome, DropProgress, DropStage, Durability, Fingerprint, Origin,
};

/// Notes listed in a report; the rest are counted.
const REPORT_NOTES: usize = 200;
/// Records per store transaction.
const BATCH: usize = 256;
/// Batches between flushes. Progress commits with its records, so flushing less often only
/// means redoing a little more after a crash, never doubling.
const FLUSH_EVERY: usize = 8;

enum Checked {
    Whole(Box<Survey>),
    Unreadable(String),
}

fn survey(
    path: &Path,
    format: Format,
    options: &ReadOptions,
    name: &str,
) -> Result<Checked, DropError> {
    let io_err = DropError::io(path);
    let file = File::open(path).map_err(&io_err)?;
    match ingest::survey(format, file, options, name) {
        Ok(s) => Ok(Checked::Whole(Box::new(s))),
        // A read error may pass (a disk hiccup, a network folder): try again later.
        Err(FileError::Io(e)) => Err(io_err(e)),
        Err(e) => Ok(Checked::Unreadable(e.in_file(name).to_string())),
    }
}

/// Takes one file. `Ok(None)` when it vanished or `cancel` was raised part-way (its
/// progress is saved; the next run resumes it).
pub fn process(
    folder: &Folder,
    options: &ReadOptions,
    service: &Service,
    path: &Path,
    cancel: &AtomicBool,
) -> Result<Option<DropFileEntry>, DropError> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let format = match Format::from_path(path) {
        Ok(f) => f,
        Err(e) => return reject_whole(folder, service, path, &name, &e.to_string()).map(Some),
    };
    let survey = match survey(path, format, options, &name)? {
        Checked::Whole(s) => s,
        Checked::Unreadable(why) => {
            return reject_whole(folder, service, path, &name, &why).map(Some)
        }
    };
    let resume_after = match service.store().drop_progress(&fp(&survey))? {
        None => 0,
        Some(p) => match p.stage {
            DropStage::Ingesting => p.records_done,
            DropStage::Ingested if p.file == name => {
                return archive(folder, service, path, &name, format, &survey).map(Some)
            }
            DropStage::Ingested | DropStage::Archived => {
                return duplicate(folder, service, path, &name, &survey, &p).map(Some)
            }
        },
    };
    if survey.refused > 0 {
        write_work_reports(folder, path, &name, format, options, &survey)?;
    }
    let file = Dropped {
        path,
        name: &name,
        format,
        options,
    };
    if !ingest(service, &file, &fp(&survey), resume_after, cancel)? {
        return Ok(None);
    }
    archive(folder, service, path, &name, format, &survey).map(Some)
}

fn work_names(fp: &Fingerprint, format: Format) -> (String, String) {
    (
        format!("{fp}.errors.txt"),
        format!("{fp}.rejected.{}", rejected_copy_extension(format)),
    )
}

fn write_work_reports(
    folder: &Folder,
    path: &Path,
    name: &str,
    format: Format,
    options: &ReadOptions,
    survey: &Survey,
) -> Result<(), DropError> {
    let (report_name, copy_name) = work_names(&fp(survey), format);
    let report_path = folder.work.join(&report_name);
    let copy_path = folder.work.join(&copy_name);
    let mut report =
        BufWriter::new(create_private(&report_path).map_err(DropError::io(&report_path))?);
    let mut copy = BufWriter::new(create_private(&copy_path).map_err(DropError::io(&copy_path))?);
    let (stem, _) = split_extension(name);
    let mut header = format!(
        "# icsync drop-folder report for {name} (sha256 {fp})\n\
         # Read as {read_as}.\n\
         # {accepted} record(s) queued, {rejected} rejected and not queued.\n\
         # One line per problem: <position>: <field>: <message>. Position is \"line N\", the\n\
         # physical line (a CSV header is line 1; in a JSON file, where the element starts,\n\
         # followed by its 0-based index in the array: \"line N (element I)\").\n\
         # The rejected records are in {stem}.rejected.{ext} beside this report, each with an\n\
         # _error note (ignored on reading): fix them there and drop that file again.\n",
        fp = fp(survey),
        read_as = survey.summary.describe(),
        accepted = survey.accepted,
        rejected = survey.refused,
        ext = rejected_copy_extension(format),
    );
    header.push_str(&summary_comments(survey));
    let parse_src = File::open(path).map_err(DropError::io(path))?;
    let raw_src = File::open(path).map_err(DropError::io(path))?;
    let result = report
        .write_all(header.as_bytes())
        .map_err(RejectsError::from)
        .and_then(|()| {
            write_rejects(
                format,
                options,
                BufReader::new(parse_src),
                BufReader::new(raw_src),
                &mut report,
                &mut copy,
            )
        });
    match result {
        Ok(_) => {}
        Err(RejectsError::Write(e)) => return Err(DropError::io(&report_path)(e)),
        Err(RejectsError::File(e)) => return Err(DropError::Changed(e.in_file(name).to_string())),
    }
    for (w, p) in [(report, &report_path), (copy, &copy_path)] {
        let file = w
            .into_inner()
            .map_err(|e| DropError::io(p)(e.into_error()))?;
        file.sync_all().map_err(DropError::io(p))?;
    }
    Ok(())
}

/// The file being taken and how it is read.
struct Dropped<'a> {
    path: &'a Path,
    name: &'a str,
    format: Format,
    options: &'a ReadOptions,
}

/// The columns not imported and the first notes, as report comments.
fn summary_comments(survey: &Survey) -> String {
    let mut out = String::new();
    let unmapped = &survey.summary.mapping.unmapped;
    if !unmapped.is_empty() {
        out.push_str(&format!(
            "# Columns not imported (they feed no field): {}.\n",
            one_line(&unmapped.join(", "))
        ));
    }
    if survey.noted > 0 {
        out.push_str(&format!(
            "# {} queued record(s) were changed on the way in:\n",
            survey.noted
        ));
        for note in survey.notes.iter().take(REPORT_NOTES) {
            out.push_str(&format!("# note {}\n", one_line(&note.to_string())));
        }
        if survey.notes.len() > REPORT_NOTES {
            out.push_str(&format!(
                "# ... and {} more note(s)\n",
                survey.notes.len() - REPORT_NOTES
            ));
        }
    }
    out
}

/// Report comments never span lines, whatever a header held.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Step 4. False when cancelled part-way.
fn ingest(
    service: &Service,
    file: &Dropped<'_>,
    fp: &Fingerprint,
    resume_after: u64,
    cancel: &AtomicBool,
) -> Result<bool, DropError> {
    let Dropped {
        path,
        name,
        format,
        options,
    } = *file;
    let source = File::open(path).map_err(DropError::io(path))?;
    let mut ordinal = 0u64;
    let mut pending = 0usize;
    let mut batch: Vec<DropItem> = Vec::with_capacity(BATCH);
    let mut commits = 0usize;
    let mut failed = None;
    let progress = |records_done, stage| DropProgress {
        file: name.to_string(),
        stage,
        records_done,
        updated_at: Utc::now(),
    };
    let read = read_file(format, BufReader::new(source), options, |parsed| {
        ordinal += 1;
        if ordinal <= resume_after {
            return ControlFlow::Continue(());
        }
        if let Ok(payload) = parsed.result {
            batch.push(DropItem {
                payload,
                origin: Origin::Drop {
                    file: name.to_string(),
                    line: parsed.position.number(),
                },
                record_id: parsed.record_id,
            });
        }
        pending += 1;
        // Invalid records count too, so a long run of them still advances the progress.
        if batch.len() < BATCH && pending < BATCH * 4 {
            return ControlFlow::Continue(());
        }
        commits += 1;
        let durability = if commits.is_multiple_of(FLUSH_EVERY) {
            Durability::Flush
        } else {
            Durability::Lazy
        };
        let p = progress(ordinal, DropStage::Ingesting);
        if let Err(e) = service.submit_drop_batch(&batch, fp, &p, durability, Utc::now()) {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        batch.clear();
        pending = 0;
        if cancel.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    match read.map(|(flow, _)| flow) {
        Ok(ControlFlow::Break(())) => {
            service.store().flush()?;
            Ok(false)
        }
        Ok(ControlFlow::Continue(())) => {
            let p = progress(ordinal.max(resume_after), DropStage::Ingested);
            service.submit_drop_batch(&batch, fp, &p, Durability::Flush, Utc::now())?;
            Ok(true)
        }
        Err(FileError::Io(e)) => Err(DropError::io(path)(e)),
        Err(e) => Err(DropError::Changed(e.in_file(name).to_string())),
    }
}

/// Step 5: reports to `rejected/`, the file to `processed/`, then the history line.
fn archive(
    folder: &Folder,
    service: &Service,
    path: &Path,
    name: &str,
    format: Format,
    survey: &Survey,
) -> Result<DropFileEntry, DropError> {
    let mut report = None;
    if survey.refused > 0 {
        let (work_report, work_copy) = work_names(&fp(survey), format);
        let work_report = folder.work.join(work_report);
        let work_copy = folder.work.join(work_copy);
        // Absent when a run before a crash already moved them.
        if work_report.exists() && work_copy.exists() {
            let (stem, _) = split_extension(name);
            let ext = rejected_copy_extension(format);
            let names = free_names(&folder.rejected, |n| {
                let stem = if n <= 1 {
                    stem.to_string()
                } else {
                    format!("{stem}.{n}")
                };
                vec![
                    format!("{stem}.errors.txt"),
                    format!("{stem}.rejected.{ext}"),
                ]
            })
            .map_err(DropError::io(&folder.rejected))?;
            let r = move_no_replace(&work_report, &folder.rejected, &names[0])
                .map_err(DropError::io(&work_report))?;
            move_no_replace(&work_copy, &folder.rejected, &names[1])
                .map_err(DropError::io(&work_copy))?;
            report = Some(format!("{}/{r}", super::folder::REJECTED_DIR));
        }
    }
    let archived = move_no_replace(path, &folder.processed, name).map_err(DropError::io(path))?;
    folder.sync_dirs().map_err(DropError::io(&folder.root))?;
    let entry = DropFileEntry {
        file: name.to_string(),
        at: Utc::now(),
        outcome: if survey.refused > 0 {
            DropOutcome::PartlyRejected
        } else {
            DropOutcome::Processed
        },
        accepted: survey.accepted,
        rejected: survey.refused,
        archived_as: Some(format!("{}/{archived}", super::folder::PROCESSED_DIR)),
        report,
        note: None,
        read_as: Some(survey.summary.describe()),
        not_imported: survey.summary.mapping.unmapped.clone(),
        noted: survey.noted,
    };
    let done = DropProgress {
        file: name.to_string(),
        stage: DropStage::Archived,
        records_done: survey.accepted + survey.refused,
        updated_at: entry.at,
    };
    service
        .store()
        .set_drop_progress(&fp(survey), &done, Some(&entry), Durability::Flush)?;
    tracing::info!(
        file = name,
        accepted = survey.accepted,
        rejected = survey.refused,
        archived_as = %archived,
        "drop-folder file processed"
    );
    Ok(entry)
}

fn duplicate(
    folder: &Folder,
    service: &Service,
    path: &Path,
    name: &str,
    survey: &Survey,
    earlier: &DropProgress,
) -> Result<DropFileEntry, DropError> {
    let archived = move_no_replace(path, &folder.processed, name).map_err(DropError::io(path))?;
    let note = format!(
        "same content (sha256 {}) as {}, processed {}: nothing was queued again",
        fp(survey),
        earlier.file,
        earlier.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    let note_name = free_names(&folder.processed, |n| {
        vec![format!(
            "{}.duplicate.txt",
            crate::ingest::drop::names::numbered(&archived, n)
        )]
    })
    .map_err(DropError::io(&folder.processed))?
    .remove(0);
    let note_path = folder.processed.join(&note_name);
    write_small(&note_path, &format!("{archived}: {note}\n"))?;
    folder.sync_dirs().map_err(DropError::io(&folder.root))?;
    let entry = DropFileEntry {
        file: name.to_string(),
        at: Utc::now(),
        outcome: DropOutcome::Duplicate,
        accepted: 0,
        rejected: 0,
        archived_as: Some(format!("{}/{archived}", super::folder::PROCESSED_DIR)),
        report: Some(format!("{}/{note_name}", super::folder::PROCESSED_DIR)),
        note: Some(note),
        read_as: None,
        not_imported: Vec::new(),
        noted: 0,
    };
    service.store().add_drop_history(&entry)?;
    tracing::info!(file = name, archived_as = %archived, "drop-folder file is a duplicate");
    Ok(entry)
}

fn write_small(path: &Path, text: &str) -> Result<(), DropError> {
    let mut f = create_private(path).map_err(DropError::io(path))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(DropError::io(path))
}

/// A file that cannot be read as records: its report first (so it never sits in `rejected/`
/// unexplained), then the file beside it.
fn reject_whole(
    folder: &Folder,
    service: &Service,
    path: &Path,
    name: &str,
    why: &str,
) -> Result<DropFileEntry, DropError> {
    let names = free_names(&folder.rejected, |n| {
        let moved = crate::ingest::drop::names::numbered(name, n);
        vec![moved.clone(), format!("{moved}.errors.txt")]
    })
    .map_err(DropError::io(&folder.rejected))?;
    let report_path = folder.rejected.join(&names[1]);
    write_small(
        &report_path,
        &format!(
            "# icsync drop-folder report for {name}\n\
             # The file was not read: nothing from it was queued. Fix it and drop it again.\n\
             {why}\n"
        ),
    )?;
    let moved = move_no_replace(path, &folder.rejected, &names[0]).map_err(DropError::io(path))?;
    folder.sync_dirs().map_err(DropError::io(&folder.root))?;
    let entry = DropFileEntry {
        file: name.to_string(),
        at: Utc::now(),
        outcome: DropOutcome::Rejected,
        accepted: 0,
        rejected: 0,
        archived_as: Some(format!("{}/{moved}", super::folder::REJECTED_DIR)),
        report: Some(format!("{}/{}", super::folder::REJECTED_DIR, names[1])),
        note: Some(why.to_string()),
        read_as: None,
        not_imported: Vec::new(),
        noted: 0,
    };
    service.store().add_drop_history(&entry)?;
    tracing::warn!(file = name, "drop-folder file rejected: it cannot be read");
    Ok(entry)
}

fn fp(survey: &Survey) -> Fingerprint {
    Fingerprint(survey.sha256)
}
