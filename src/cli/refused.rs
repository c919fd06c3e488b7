//! The files `icsync import` leaves beside an input whose rows it refused: a copy of those
//! rows in the input's own format, each with an `_error` column or member (ignored on
//! reading), to fix and import again; and an errors report, one line per problem. The rows
//! are written by the drop folder's writer ([`crate::ingest::drop::write_rejects`]), so both
//! ways in give the same fixable file.
//!
//! They go beside the input, or into the current directory when the input's folder cannot
//! be written to. Both files are created new (`O_EXCL`, mode 0600: they hold customer
//! data), never through a symlink and never over an existing file: a name in use moves on to
//! the next number (`people.refused.csv`, then `people.2.refused.csv`, ...).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::ingest::drop::names::{fit_stem, numbered, split_extension};
use crate::ingest::drop::{rejected_copy_extension, write_rejects, RejectsError};
use crate::ingest::{Format, ReadOptions};

/// Numbers tried before giving up on finding a free pair of names.
const MAX_CANDIDATES: u32 = 1000;

/// Where an import's refused rows went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedFiles {
    /// The refused rows, to fix and import again.
    pub rows: PathBuf,
    /// One line per problem: `<position>: <field>: <message>`.
    pub errors: PathBuf,
}

/// The `n`th pair of names for the refused rows of a file named `name` whose copy has the
/// extension `ext`: `people.refused.csv` and `people.errors.txt`, then
/// `people.2.refused.csv` and `people.2.errors.txt`, ... each within the name limit.
pub fn candidate_names(name: &str, ext: &str, n: u32) -> (String, String) {
    let numbered = numbered(name, n);
    let (stem, _) = split_extension(&numbered);
    let rows_suffix = format!(".refused.{ext}");
    let errors_suffix = ".errors.txt";
    (
        format!("{}{rows_suffix}", fit_stem(stem, rows_suffix.len())),
        format!("{}{errors_suffix}", fit_stem(stem, errors_suffix.len())),
    )
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Creates the first free pair of names in `dir`; neither is left behind if the other
/// cannot be created.
fn create_pair(dir: &Path, name: &str, ext: &str) -> io::Result<(PathBuf, File, PathBuf, File)> {
    for n in 1..=MAX_CANDIDATES {
        let (rows_name, errors_name) = candidate_names(name, ext, n);
        let rows_path = dir.join(rows_name);
        let rows = match create_new(&rows_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let errors_path = dir.join(errors_name);
        match create_new(&errors_path) {
            Ok(errors) => return Ok((rows_path, rows, errors_path, errors)),
            Err(e) => {
                // Ours, just made and empty.
                let _ = std::fs::remove_file(&rows_path);
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
    }
    Err(io::Error::other(format!(
        "no free name in {} after {MAX_CANDIDATES} tries",
        dir.display()
    )))
}

/// Whether an error creating a file in a folder means this user may not write there (and
/// the current directory is worth a try).
fn not_writable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

/// Writes the refused rows of the file at `path` (read as `format` with `options`) beside
/// it, or in the current directory when its folder cannot be written to. `shown` names the
/// file in the report. The message of an error names the folder it could not write to; it
/// never holds customer data.
pub fn write_refused(
    path: &Path,
    format: Format,
    options: &ReadOptions,
    shown: &str,
) -> Result<RefusedFiles, String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    let ext = rejected_copy_extension(format);
    let (rows_path, rows, errors_path, errors) = match create_pair(dir, &name, ext) {
        Err(e) if not_writable(&e) && dir != Path::new(".") => {
            create_pair(Path::new("."), &name, ext)
        }
        other => other,
    }
    .map_err(|e| format!("cannot write the refused rows of {shown}: {e}"))?;
    let cannot = |p: &Path, e: &dyn std::fmt::Display| format!("cannot write {}: {e}", p.display());
    let open = || File::open(path).map(BufReader::new);
    let (parse_src, raw_src) = open()
        .and_then(|a| Ok((a, open()?)))
        .map_err(|e| format!("{shown}: cannot read it again: {e}"))?;
    let rows_name = rows_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut report = BufWriter::new(errors);
    let mut copy = BufWriter::new(rows);
    let header = format!(
        "# icsync import: the rows of {shown} refused at import (never queued).\n\
         # One line per problem: <position>: <field>: <message>. Position is \"line N\", the\n\
         # physical line (a CSV header is line 1; in a JSON array, where the element starts,\n\
         # with its 0-based index: \"line N (element I)\").\n\
         # The rows are in {rows_name} beside this report, each with an _error note (ignored\n\
         # on reading): fix them there and run `icsync import {rows_name}`.\n"
    );
    report
        .write_all(header.as_bytes())
        .map_err(|e| cannot(&errors_path, &e))?;
    match write_rejects(format, options, parse_src, raw_src, &mut report, &mut copy) {
        Ok(_) => {}
        Err(RejectsError::Write(e)) => return Err(cannot(&errors_path, &e)),
        Err(RejectsError::File(e)) => {
            return Err(format!(
                "{} (while writing its refused rows)",
                e.in_file(shown)
            ))
        }
    }
    for (w, p) in [(report, &errors_path), (copy, &rows_path)] {
        w.into_inner()
            .map_err(|e| cannot(p, &e.into_error()))?
            .sync_all()
            .map_err(|e| cannot(p, &e))?;
    }
    Ok(RefusedFiles {
        rows: rows_path,
        errors: errors_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_stem_and_number_both_files_alike() {
        assert_eq!(
            candidate_names("people.csv", "csv", 1),
            ("people.refused.csv".into(), "people.errors.txt".into())
        );
        assert_eq!(
            candidate_names("people.xlsx", "csv", 2),
            ("people.2.refused.csv".into(), "people.2.errors.txt".into())
        );
        let long = format!("{}.json", "n".repeat(300));
        let (rows, errors) = candidate_names(&long, "json", 1);
        assert!(
            rows.len() <= 255 && rows.ends_with(".refused.json"),
            "{rows}"
        );
        assert!(
            errors.len() <= 255 && errors.ends_with(".errors.txt"),
            "{errors}"
        );
    }

    #[test]
    fn a_name_in_use_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("people.csv");
        std::fs::write(&input, "full_name,email\nAnn,ann@x.io\nBob,bob\n").unwrap();
        std::fs::write(dir.path().join("people.refused.csv"), "mine").unwrap();
        let options = ReadOptions::default();
        let first = write_refused(&input, Format::Csv, &options, "people.csv").unwrap();
        assert_eq!(first.rows, dir.path().join("people.2.refused.csv"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("people.refused.csv")).unwrap(),
            "mine"
        );
        // The lone errors.txt of the first pair is not taken over either.
        assert!(!dir.path().join("people.errors.txt").exists());
        let copy = std::fs::read_to_string(&first.rows).unwrap();
        assert!(copy.contains("Bob,bob"), "{copy}");
        assert!(!copy.contains("Ann"), "{copy}");
        let report = std::fs::read_to_string(&first.errors).unwrap();
        assert!(report.contains("line 3: email:"), "{report}");
        let second = write_refused(&input, Format::Csv, &options, "people.csv").unwrap();
        assert_eq!(second.rows, dir.path().join("people.3.refused.csv"));
    }
}
