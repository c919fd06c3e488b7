//! What happens to one whole file taken from the drop folder, in an order that survives
//! kill -9 anywhere:
//!
//! 1. Read it once to hash it (SHA-256, its fingerprint) and check it parses as a whole.
//!    Unsupported or unparseable: moved to `rejected/` beside a report; nothing queued.
//! 2. Look the fingerprint up. Archived before: a duplicate (nothing queued; removed, or
//!    moved to `processed/` with a note under `keep_processed`). Ingested but not yet
//!    removed: go to step 5. Part-way: resume after the records already committed.
//! 3. When some records are invalid, write the report and the copy of those records into
//!    the hidden work folder (rewritten whole on every attempt: parsing is deterministic).
//! 4. Read it again and queue the valid records in batches; each batch is one store
//!    transaction with the file's progress (records done), so records and progress cannot
//!    disagree after a crash. The last batch marks the file ingested and is flushed.
//! 5. Move the reports to `rejected/` and remove the file (`dispose`; with `keep_processed`,
//!    move it to `processed/`), then mark it archived with a history line. The file goes only
//!    after step 4's flush made its records durable; a crash between the removal and the mark
//!    costs the history line, never a record.
//!
//! Around these steps: the file is opened once (`taken`: no symlink followed, read only
//! through that descriptor and only up to its size when taken); a file some process still
//! holds open for writing is not taken; a "being taken" mark (`mark`) is written before step
//! 1 and cleared when the take ends, and a file that stopped the daemon again and again
//! without progress is set aside in `rejected/` with a report instead of being taken again;
//! a file that changed after it was taken is not archived but taken again (its records
//! already queued come back unchanged). Names are shown escaped (`names::shown`) in every
//! report, history line and log line.
//!
//! It blocks (file and store I/O): run it off the async reactor.

use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use super::dispose::{dispose, Disposed};
use super::folder::{create_private, free_names, move_no_replace, Folder};
use super::mark::{self, Mark, Verdict};
use super::taken::{Taken, Writers};
use super::DropError;
use crate::ingest::drop::names::{fit_stem, numbered_with, shown, split_extension};
use crate::ingest::drop::{rejected_copy_extension, write_rejects, RejectsError};
use crate::ingest::{self, read_file, FileError, Format, ReadOptions, Survey};
use crate::service::{DropItem, Service, ServiceError};
use crate::store::{
    DropFileEntry, DropOutcome, DropProgress, DropStage, Durability, Fingerprint, Origin,
    ReadyBatch, SealAhead,
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
    taken: &Taken,
    format: Format,
    options: &ReadOptions,
    name: &str,
) -> Result<Checked, DropError> {
    let io_err = DropError::io(path);
    match ingest::survey(format, taken.reader(), options, name) {
        Ok(s) => Ok(Checked::Whole(Box::new(s))),
        // A read error may pass (a disk hiccup, a network folder): try again later.
        Err(FileError::Io(e)) => Err(io_err(e)),
        Err(e) => Ok(Checked::Unreadable(e.in_file(name).to_string())),
    }
}

/// Takes one file. `Ok(None)` when it vanished (or is not a regular file) or `cancel` was
/// raised part-way (its progress is saved; the next run resumes it).
/// [`DropError::StillWritten`]: some process has it open for writing; look again later.
pub fn process(
    folder: &Folder,
    options: &ReadOptions,
    service: &Service,
    path: &Path,
    cancel: &AtomicBool,
) -> Result<Option<DropFileEntry>, DropError> {
    let Some(raw_name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    // The name as every report, history line and log line shows it.
    let name = shown(&raw_name).into_owned();
    let Some(taken) = Taken::open(path).map_err(DropError::io(path))? else {
        // Gone (or never a regular file): a mark a crash left for it has nothing to count.
        mark::clear(&mark::path(&folder.work, &raw_name));
        return Ok(None);
    };
    if taken.writers() == Writers::Open {
        return Err(DropError::StillWritten);
    }
    let format = match Format::from_path(path) {
        Ok(f) => f,
        Err(e) => {
            return reject_whole(folder, service, path, &taken, &name, &e.to_string()).map(Some)
        }
    };
    let mark_path = mark::path(&folder.work, &raw_name);
    let found = mark::read(&mark_path);
    let committed = committed(service, found.as_ref())?;
    let mark = match mark::next(found, &taken.at_take, committed) {
        Verdict::Take(m) => m,
        Verdict::Quarantine {
            starts,
            records_done,
        } => {
            let why = quarantine_reason(starts, records_done);
            tracing::error!(
                file = %name,
                starts,
                records_done,
                "drop-folder file set aside in rejected/: taking it stopped the daemon repeatedly"
            );
            // The mark stays until the file is set aside, so a failed move is tried again
            // (and the file is still not taken).
            let entry = reject_whole(folder, service, path, &taken, &name, &why)?;
            mark::clear(&mark_path);
            return Ok(Some(entry));
        }
    };
    mark::write(&mark_path, &mark).map_err(DropError::io(&mark_path))?;
    let file = Dropped {
        path,
        taken: &taken,
        name: &name,
        format,
        options,
    };
    // Cleared however the take ends, except by a crash or a panic: those are what it counts.
    let result = take(folder, service, file, mark, &mark_path, cancel);
    mark::clear(&mark_path);
    result
}

/// The records the store has committed for the content a mark names.
fn committed(service: &Service, found: Option<&Mark>) -> Result<u64, DropError> {
    let Some(fp) = found
        .and_then(|m| m.sha256.as_deref())
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
    else {
        return Ok(0);
    };
    Ok(service
        .store()
        .drop_progress(&Fingerprint(fp))?
        .map_or(0, |p| p.records_done))
}

fn quarantine_reason(starts: u32, records_done: u64) -> String {
    format!(
        "set aside: the daemon stopped {starts} times in a row while taking this file (killed, \
         out of memory or crashed), with no record committed in between ({records_done} of its \
         records had been queued before; they stay queued). It may be too large for the memory \
         the daemon is given, or hold a record that breaks the reader. To retry: split or fix \
         it and drop it again, or move it back into the drop folder as it is (records already \
         queued are not queued twice)."
    )
}

/// Steps 1 to 5, with the mark written.
fn take(
    folder: &Folder,
    service: &Service,
    file: Dropped<'_>,
    mut mark: Mark,
    mark_path: &Path,
    cancel: &AtomicBool,
) -> Result<Option<DropFileEntry>, DropError> {
    let Dropped {
        path,
        taken,
        name,
        format,
        options,
    } = file;
    let survey = match survey(path, taken, format, options, name)? {
        Checked::Whole(s) => s,
        Checked::Unreadable(why) => {
            return reject_whole(folder, service, path, taken, name, &why).map(Some)
        }
    };
    let progress = service.store().drop_progress(&fp(&survey))?;
    // From here the mark counts this content's committed records.
    let hash = fp(&survey).to_string();
    if mark.sha256.as_deref() != Some(hash.as_str()) {
        mark.sha256 = Some(hash);
        mark.records_done = progress.as_ref().map_or(0, |p| p.records_done);
        mark::write(mark_path, &mark).map_err(DropError::io(mark_path))?;
    }
    let resume_after = match progress {
        None => 0,
        Some(p) => match p.stage {
            DropStage::Ingesting => p.records_done,
            DropStage::Ingested if p.file == name => {
                return archive(folder, service, &file, &survey).map(Some)
            }
            DropStage::Ingested | DropStage::Archived => {
                return duplicate(folder, service, path, taken, name, &survey, &p).map(Some)
            }
        },
    };
    if survey.refused > 0 {
        write_work_reports(folder, &file, &survey)?;
    }
    if !ingest(service, &file, &fp(&survey), resume_after, cancel)? {
        return Ok(None);
    }
    archive(folder, service, &file, &survey).map(Some)
}

/// Refuses to move a file that changed after it was taken, or whose name now holds another
/// file: it is taken again once it settles (its records already queued come back unchanged).
fn still_as_taken(path: &Path, taken: &Taken, name: &str) -> Result<(), DropError> {
    let now = taken.now().map_err(DropError::io(path))?;
    if now != taken.at_take {
        tracing::warn!(
            file = %name,
            len_taken = taken.at_take.len,
            len_now = now.len,
            "drop-folder file changed after it was taken: not archived, it is read again once it settles"
        );
        return Err(DropError::Changed(format!(
            "{name}: it was written to after it was taken"
        )));
    }
    if !taken.is_at(path) {
        return Err(DropError::Changed(format!(
            "{name}: another file took its name while it was read"
        )));
    }
    taken.make_private().map_err(DropError::io(path))
}

fn work_names(fp: &Fingerprint, format: Format) -> (String, String) {
    (
        format!("{fp}.errors.txt"),
        format!("{fp}.rejected.{}", rejected_copy_extension(format)),
    )
}

fn write_work_reports(
    folder: &Folder,
    file: &Dropped<'_>,
    survey: &Survey,
) -> Result<(), DropError> {
    let Dropped {
        taken,
        name,
        format,
        options,
        ..
    } = *file;
    let (report_name, copy_name) = work_names(&fp(survey), format);
    let report_path = folder.work.join(&report_name);
    let copy_path = folder.work.join(&copy_name);
    let mut report =
        BufWriter::new(create_private(&report_path).map_err(DropError::io(&report_path))?);
    let mut copy = BufWriter::new(create_private(&copy_path).map_err(DropError::io(&copy_path))?);
    let (stem, _) = split_extension(name);
    let stem = fit_stem(stem, 16);
    let mut header = format!(
        "# icsync drop-folder report for {name} (sha256 {fp})\n\
         # Read as {read_as}.\n\
         # {accepted} record(s) queued, {rejected} refused (never queued, never sent).\n\
         # One line per problem: <position>: <field>: <message>. Position is \"line N\", the\n\
         # physical line (a CSV header is line 1; in a JSON file, where the element starts,\n\
         # followed by its 0-based index in the array: \"line N (element I)\").\n\
         # The refused records are in {stem}.rejected.{ext} beside this report, each with an\n\
         # _error note (ignored on reading): fix them there and drop that file again.\n",
        fp = fp(survey),
        read_as = survey.summary.describe(),
        accepted = survey.accepted,
        rejected = survey.refused,
        ext = rejected_copy_extension(format),
    );
    header.push_str(&summary_comments(survey));
    let (parse_src, raw_src) = (taken.reader(), taken.reader());
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
#[derive(Clone, Copy)]
struct Dropped<'a> {
    path: &'a Path,
    taken: &'a Taken,
    /// As shown ([`shown`]).
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
    let Dropped { path, name, .. } = *file;
    let progress = |records_done, stage| DropProgress {
        file: name.to_string(),
        stage,
        records_done,
        updated_at: Utc::now(),
    };
    // Two threads: one reads, parses and validates the next batch, and seals its new records,
    // while this one commits the last (issue 18: parsing was a third of a drop's time, and it
    // ran between commits; sealing held sled's lock). One batch waits between them at most,
    // so memory stays bounded by the batch. Batches are committed in file order with the
    // progress they end at, as before.
    //
    // The reader cannot ask the store which rows are new (a read waits for every commit, so
    // the two threads would take turns): it seals every row ahead while most rows of the last
    // batch committed made new records, and none while most matched stored ones (a file
    // exported again), so neither kind of file pays for the other.
    let (batches, received) = std::sync::mpsc::sync_channel::<(Prepared, u64)>(1);
    let mostly_new = AtomicBool::new(true);
    let mostly_new = &mostly_new;
    std::thread::scope(|scope| {
        let reader =
            scope.spawn(move || read_batches(service, file, resume_after, mostly_new, batches));
        let mut commits = 0usize;
        let mut outcome = Ok(());
        for (batch, records_done) in received.iter() {
            commits += 1;
            let durability = if commits.is_multiple_of(FLUSH_EVERY) {
                Durability::Flush
            } else {
                Durability::Lazy
            };
            let p = progress(records_done, DropStage::Ingesting);
            let committed = batch.and_then(|batch| {
                let rows = batch.items().len();
                let created = service.commit_drop_batch(&batch, fp, &p, durability, Utc::now())?;
                Ok(SealAhead::mostly_new(created, rows))
            });
            match committed {
                Ok(new) => mostly_new.store(new, Ordering::Relaxed),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        // Stopping early: the reader's next send fails and it stops reading.
        drop(received);
        let (read, rest, ordinal) = match reader.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        outcome?;
        match read {
            Ok(ControlFlow::Break(())) => {
                service.store().flush()?;
                Ok(false)
            }
            Ok(ControlFlow::Continue(())) => {
                let p = progress(ordinal.max(resume_after), DropStage::Ingested);
                service.submit_drop_batch(rest, fp, &p, Durability::Flush, Utc::now())?;
                Ok(true)
            }
            Err(FileError::Io(e)) => Err(DropError::io(path)(e)),
            Err(e) => Err(DropError::Changed(e.in_file(name).to_string())),
        }
    })
}

/// A batch as the reading half sends it: ready to commit, or why it could not be made ready.
type Prepared = Result<ReadyBatch, ServiceError>;

/// The reading half of `ingest`: sends the valid records after `resume_after` in batches,
/// made ready to commit (`Service::prepare_drop_batch`), each with the count of records read
/// when it ends; returns how reading ended (`Break` when the committing half stopped taking
/// batches), the last batch unsent, and the count.
#[allow(clippy::type_complexity)]
fn read_batches(
    service: &Service,
    file: &Dropped<'_>,
    resume_after: u64,
    mostly_new: &AtomicBool,
    batches: std::sync::mpsc::SyncSender<(Prepared, u64)>,
) -> (Result<ControlFlow<()>, FileError>, Vec<DropItem>, u64) {
    let mut ordinal = 0u64;
    let mut pending = 0usize;
    let mut batch: Vec<DropItem> = Vec::with_capacity(BATCH);
    let source = file.taken.reader();
    let read = read_file(
        file.format,
        BufReader::new(source),
        file.options,
        |parsed| {
            ordinal += 1;
            if ordinal <= resume_after {
                return ControlFlow::Continue(());
            }
            if let Ok(payload) = parsed.result {
                batch.push(DropItem {
                    payload,
                    origin: Origin::Drop {
                        file: file.name.to_string(),
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
            pending = 0;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let seal = SealAhead::after(mostly_new.load(Ordering::Relaxed));
            let ready = service.prepare_drop_batch(full, seal, Utc::now());
            match batches.send((ready, ordinal)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        },
    );
    (read.map(|(flow, _)| flow), batch, ordinal)
}

/// Step 5: reports to `rejected/`, the file removed (or to `processed/`), then the history
/// line.
fn archive(
    folder: &Folder,
    service: &Service,
    file: &Dropped<'_>,
    survey: &Survey,
) -> Result<DropFileEntry, DropError> {
    let Dropped {
        path,
        taken,
        name,
        format,
        ..
    } = *file;
    still_as_taken(path, taken, name)?;
    let mut report = None;
    let mut rejected_copy = None;
    if survey.refused > 0 {
        let (work_report, work_copy) = work_names(&fp(survey), format);
        let work_report = folder.work.join(work_report);
        let work_copy = folder.work.join(work_copy);
        // Absent when a run before a crash already moved them.
        if work_report.exists() && work_copy.exists() {
            let (stem, _) = split_extension(name);
            let ext = rejected_copy_extension(format);
            // Both names share one stem, cut (if need be) to leave room for the longer ending.
            let room = ".errors.txt".len().max(".rejected.".len() + ext.len());
            let names = free_names(&folder.rejected, |n| {
                let stem = if n <= 1 {
                    stem.to_string()
                } else {
                    format!("{stem}.{n}")
                };
                let stem = fit_stem(&stem, room);
                vec![
                    format!("{stem}.errors.txt"),
                    format!("{stem}.rejected.{ext}"),
                ]
            })
            .map_err(DropError::io(&folder.rejected))?;
            let r = move_no_replace(&work_report, &folder.rejected, &names[0])
                .map_err(DropError::io(&work_report))?;
            let c = move_no_replace(&work_copy, &folder.rejected, &names[1])
                .map_err(DropError::io(&work_copy))?;
            report = Some(format!("{}/{r}", super::folder::REJECTED_DIR));
            rejected_copy = Some(format!("{}/{c}", super::folder::REJECTED_DIR));
        }
    }
    let disposed = dispose(folder, path, taken, &fp(survey), &raw_name(path), name)?;
    folder.sync_dirs().map_err(DropError::io(&folder.root))?;
    let archived_as = kept_as(&disposed);
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
        archived_as: archived_as.clone(),
        report,
        rejected_copy,
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
        file_now = archived_as.as_deref().unwrap_or("removed"),
        "drop-folder file processed"
    );
    Ok(entry)
}

fn duplicate(
    folder: &Folder,
    service: &Service,
    path: &Path,
    taken: &Taken,
    name: &str,
    survey: &Survey,
    earlier: &DropProgress,
) -> Result<DropFileEntry, DropError> {
    still_as_taken(path, taken, name)?;
    let disposed = dispose(folder, path, taken, &fp(survey), &raw_name(path), name)?;
    let mut note = format!(
        "same content (sha256 {}) as {}, processed {}: nothing was queued again",
        fp(survey),
        earlier.file,
        earlier.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    let archived_as = kept_as(&disposed);
    let report = match &disposed {
        Disposed::Kept(archived) => {
            let archived = shown(archived).into_owned();
            let note_name = free_names(&folder.processed, |n| {
                vec![numbered_with(&archived, n, ".duplicate.txt")]
            })
            .map_err(DropError::io(&folder.processed))?
            .remove(0);
            let note_path = folder.processed.join(&note_name);
            write_small(&note_path, &format!("{archived}: {note}\n"))?;
            Some(format!("{}/{note_name}", super::folder::PROCESSED_DIR))
        }
        Disposed::Removed => {
            note.push_str("; the file was removed");
            None
        }
    };
    folder.sync_dirs().map_err(DropError::io(&folder.root))?;
    let entry = DropFileEntry {
        file: name.to_string(),
        at: Utc::now(),
        outcome: DropOutcome::Duplicate,
        accepted: 0,
        rejected: 0,
        archived_as: archived_as.clone(),
        report,
        rejected_copy: None,
        note: Some(note),
        read_as: None,
        not_imported: Vec::new(),
        noted: 0,
    };
    service.store().add_drop_history(&entry)?;
    tracing::info!(
        file = name,
        file_now = archived_as.as_deref().unwrap_or("removed"),
        "drop-folder file is a duplicate of one processed before: nothing queued"
    );
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
    taken: &Taken,
    name: &str,
    why: &str,
) -> Result<DropFileEntry, DropError> {
    still_as_taken(path, taken, name)?;
    // The file keeps its own name (numbered and cut to fit if need be); its report's name is
    // the shown one, so it is safe to list.
    let raw = raw_name(path);
    let names = free_names(&folder.rejected, |n| {
        vec![
            numbered_with(&raw, n, ""),
            numbered_with(&shown(&raw), n, ".errors.txt"),
        ]
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
    let moved = shown(&moved).into_owned();
    let entry = DropFileEntry {
        file: name.to_string(),
        at: Utc::now(),
        outcome: DropOutcome::Rejected,
        accepted: 0,
        rejected: 0,
        archived_as: Some(format!("{}/{moved}", super::folder::REJECTED_DIR)),
        report: Some(format!(
            "{}/{}",
            super::folder::REJECTED_DIR,
            shown(&names[1])
        )),
        rejected_copy: None,
        note: Some(why.to_string()),
        read_as: None,
        not_imported: Vec::new(),
        noted: 0,
    };
    service.store().add_drop_history(&entry)?;
    tracing::warn!(file = name, "drop-folder file rejected: it cannot be read");
    Ok(entry)
}

/// Where a processed file is now, relative to the drop folder and shown; none when removed.
fn kept_as(disposed: &Disposed) -> Option<String> {
    match disposed {
        Disposed::Kept(n) => Some(format!("{}/{}", super::folder::PROCESSED_DIR, shown(n))),
        Disposed::Removed => None,
    }
}

/// The file's name on disk, as it is (for moving it), not as it is shown.
fn raw_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fp(survey: &Survey) -> Fingerprint {
    Fingerprint(survey.sha256)
}
