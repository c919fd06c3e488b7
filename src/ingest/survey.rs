//! Reading a whole file once before anything from it is queued: its fingerprint (SHA-256 of
//! every byte), whether it can be read at all, how many records are good and bad, the first
//! problems and notes by line, and what its columns fed. `icsync import` and the drop folder
//! both start here, so a file that cannot be read is refused whole by either, and a file
//! taken before is known by its fingerprint whatever its name.
//!
//! It reads and hashes; it never queues, writes or moves anything.

use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{read_file, FileError, FileSummary, Format, Parsed, Position, ReadOptions};
use crate::contract::FieldError;

/// Problems and notes kept per file; past these only counts grow (a file of a million bad
/// rows is still surveyed in bounded memory).
pub const KEEP_PROBLEMS: usize = 10_000;

/// One problem or note, as `--json` and reports give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    /// The physical line the record starts on.
    pub line: u64,
    /// The 0-based element index, in a JSON array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<u64>,
    /// The column (with the field it feeds) or member; empty for the record as a whole.
    pub field: String,
    pub message: String,
}

impl Problem {
    fn new(file: &str, position: Position, error: &FieldError) -> Problem {
        Problem {
            file: file.to_string(),
            line: position.number(),
            element: match position {
                Position::Element { index, .. } => Some(index),
                Position::Line(_) => None,
            },
            field: error.field.clone(),
            message: error.message.replace(['\n', '\r'], " "),
        }
    }

    /// A problem with a record as a whole, found after reading (by the store, say).
    pub fn record(file: &str, position: Position, message: String) -> Problem {
        Problem::new(file, position, &FieldError::new("", message))
    }

    /// Where the record is, as `line 7` or `line 7 (element 2)`.
    pub fn position(&self) -> Position {
        match self.element {
            Some(index) => Position::Element {
                index,
                line: self.line,
            },
            None => Position::Line(self.line),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.position())?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// What reading a file once found.
#[derive(Debug, Clone)]
pub struct Survey {
    pub sha256: [u8; 32],
    /// Records the contract accepts.
    pub accepted: u64,
    /// Records refused (each may have several problems).
    pub refused: u64,
    /// Records that carry notes.
    pub noted: u64,
    /// The first [`KEEP_PROBLEMS`] problems, in file order; one record may have several.
    pub problems: Vec<Problem>,
    /// Refused records whose problems were not kept.
    pub problems_dropped: u64,
    pub notes: Vec<Problem>,
    pub notes_dropped: u64,
    pub summary: FileSummary,
}

impl Survey {
    pub fn records(&self) -> u64 {
        self.accepted + self.refused
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Passes bytes through while hashing them.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads all of `reader` once. `name` names the file in problems. A [`FileError`] means
/// the file cannot be taken (`FileError::Io` may pass: a caller may try again later).
pub fn survey(
    format: Format,
    reader: impl Read,
    options: &ReadOptions,
    name: &str,
) -> Result<Survey, FileError> {
    let mut hashing = Hashing {
        inner: reader,
        hasher: Sha256::new(),
    };
    let mut tally = Tally::default();
    let (_, summary) = read_file(format, BufReader::new(&mut hashing), options, |p| {
        tally.add(name, &p);
        ControlFlow::<()>::Continue(())
    })?;
    // Parsers may stop at the end of their content; the fingerprint covers every byte.
    io::copy(&mut hashing, &mut io::sink())?;
    Ok(Survey {
        sha256: hashing.hasher.finalize().into(),
        accepted: tally.accepted,
        refused: tally.refused,
        noted: tally.noted,
        problems: tally.problems,
        problems_dropped: tally.problems_dropped,
        notes: tally.notes,
        notes_dropped: tally.notes_dropped,
        summary,
    })
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    refused: u64,
    noted: u64,
    problems: Vec<Problem>,
    problems_dropped: u64,
    notes: Vec<Problem>,
    notes_dropped: u64,
}

impl Tally {
    fn add(&mut self, name: &str, parsed: &Parsed) {
        match &parsed.result {
            Ok(_) => self.accepted += 1,
            Err(errors) => {
                self.refused += 1;
                if self.problems.len() < KEEP_PROBLEMS {
                    self.problems.extend(
                        errors
                            .iter()
                            .map(|e| Problem::new(name, parsed.position, e)),
                    );
                } else {
                    self.problems_dropped += 1;
                }
            }
        }
        if !parsed.notes.is_empty() {
            self.noted += 1;
            if self.notes.len() < KEEP_PROBLEMS {
                self.notes.extend(
                    parsed
                        .notes
                        .iter()
                        .map(|e| Problem::new(name, parsed.position, e)),
                );
            } else {
                self.notes_dropped += 1;
            }
        }
    }
}
