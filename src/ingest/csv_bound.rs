//! The record bound for delimited text, enforced before the `csv` crate sees the bytes (it
//! buffers a whole record, however long). [`RecordBound`] follows the text through the same
//! states as the `csv` crate (quoted fields, doubled quotes, any of `\r`, `\n` ending a
//! record, blank lines skipped), counting each record's bytes; once a record is over the
//! limit, the rest of it is not passed on: the parser is handed a closing quote if a quoted
//! field is open and a `\r` to end the record there, and the record's start is noted so the
//! reader refuses it. The `\n`s left out are counted so line numbers after it stay right.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

/// Where the scanner is within the text, as the `csv` crate would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: line endings here are blank lines.
    StartRecord,
    StartField,
    InField,
    InQuoted,
    /// A quote inside a quoted field: a doubled quote or the field's end.
    QuoteInQuoted,
}

/// What became of one input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pass,
    Drop,
    /// The record went over the limit at this byte (dropped): end it here, closing an open
    /// quoted field first if `true`.
    Cut(bool),
}

/// The pure part: one byte at a time.
#[derive(Debug)]
struct Scanner {
    delimiter: u8,
    limit: u64,
    state: State,
    record_bytes: u64,
    skipping: bool,
}

impl Scanner {
    fn new(delimiter: u8, limit: usize) -> Scanner {
        Scanner {
            delimiter,
            limit: limit as u64,
            state: State::StartRecord,
            record_bytes: 0,
            skipping: false,
        }
    }

    fn byte(&mut self, b: u8) -> Step {
        let ending = b == b'\n' || b == b'\r';
        let before = self.state;
        self.state = match (before, b) {
            (State::StartRecord, _) if ending => State::StartRecord,
            (State::StartRecord | State::StartField, b'"') => State::InQuoted,
            (State::StartRecord | State::StartField | State::InField, _) if ending => {
                State::StartRecord
            }
            (State::InQuoted, b'"') => State::QuoteInQuoted,
            (State::InQuoted, _) => State::InQuoted,
            (State::QuoteInQuoted, b'"') => State::InQuoted,
            (State::QuoteInQuoted, _) if ending => State::StartRecord,
            (_, d) if d == self.delimiter => State::StartField,
            _ => State::InField,
        };
        if before == State::StartRecord && self.state != State::StartRecord {
            self.record_bytes = 0;
            self.skipping = false;
        }
        if self.state == State::StartRecord {
            let was_skipping = self.skipping;
            self.skipping = false;
            return if was_skipping { Step::Drop } else { Step::Pass };
        }
        if self.skipping {
            return Step::Drop;
        }
        self.record_bytes += 1;
        if self.record_bytes > self.limit {
            self.skipping = true;
            // The byte that went over is dropped: the quote it may have opened or closed
            // is judged by the state before it.
            return Step::Cut(matches!(before, State::InQuoted));
        }
        Step::Pass
    }
}

/// What the reader in `csv` learns from [`RecordBound`].
#[derive(Debug, Default)]
pub(super) struct Cuts {
    /// Output offsets at which a refused record starts, oldest first.
    pub refused: VecDeque<u64>,
    /// `(output offset, count)`: `\n`s left out of the text before that offset.
    pub hidden_newlines: VecDeque<(u64, u64)>,
}

impl Cuts {
    /// Whether the row read from output offset `start` up to `end` was cut by the bound
    /// (rows are asked about in order, each once).
    pub fn take_refused(&mut self, start: u64, end: u64) -> bool {
        match self.refused.front() {
            Some(&at) if at >= start && at < end => {
                self.refused.pop_front();
                true
            }
            _ => false,
        }
    }
}

/// A reader passing delimited text on with every record cut to the limit; see the module
/// docs.
pub(super) struct RecordBound<R> {
    inner: R,
    scanner: Scanner,
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes to hand out before any more input (a cut's closing quote and `\r`).
    pending: VecDeque<u8>,
    /// Bytes handed out so far.
    written: u64,
    record_start: u64,
    newlines_dropped: u64,
    cuts: Rc<RefCell<Cuts>>,
}

impl<R: Read> RecordBound<R> {
    pub(super) fn new(inner: R, delimiter: u8, limit: usize) -> (Self, Rc<RefCell<Cuts>>) {
        let cuts = Rc::new(RefCell::new(Cuts::default()));
        let bound = RecordBound {
            inner,
            scanner: Scanner::new(delimiter, limit),
            input: vec![0; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            pending: VecDeque::new(),
            written: 0,
            record_start: 0,
            newlines_dropped: 0,
            cuts: Rc::clone(&cuts),
        };
        (bound, cuts)
    }

    fn note_hidden(&mut self) {
        if self.newlines_dropped > 0 {
            self.cuts
                .borrow_mut()
                .hidden_newlines
                .push_back((self.written, self.newlines_dropped));
            self.newlines_dropped = 0;
        }
    }
}

impl<R: Read> Read for RecordBound<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            if let Some(b) = self.pending.pop_front() {
                out[n] = b;
                n += 1;
                self.written += 1;
                continue;
            }
            if self.start == self.end {
                if n > 0 {
                    break;
                }
                let got = match self.inner.read(&mut self.input) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if got == 0 {
                    self.note_hidden();
                    break;
                }
                self.start = 0;
                self.end = got;
            }
            let b = self.input[self.start];
            self.start += 1;
            let before = self.scanner.state;
            match self.scanner.byte(b) {
                Step::Pass => {
                    if before == State::StartRecord && self.scanner.state != State::StartRecord {
                        self.record_start = self.written;
                    }
                    // The first byte passed after a cut record: its left-out lines come first.
                    self.note_hidden();
                    out[n] = b;
                    n += 1;
                    self.written += 1;
                }
                Step::Drop => {
                    if b == b'\n' {
                        self.newlines_dropped += 1;
                    }
                }
                Step::Cut(close_quote) => {
                    if b == b'\n' {
                        self.newlines_dropped += 1;
                    }
                    if before == State::StartRecord {
                        self.record_start = self.written;
                    }
                    self.cuts.borrow_mut().refused.push_back(self.record_start);
                    if close_quote {
                        self.pending.push_back(b'"');
                    }
                    // `\r` ends the record without counting as a line.
                    self.pending.push_back(b'\r');
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(text: &str, limit: usize) -> (String, Vec<u64>, Vec<(u64, u64)>) {
        let (mut reader, cuts) = RecordBound::new(text.as_bytes(), b',', limit);
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        let cuts = cuts.borrow();
        (
            out,
            cuts.refused.iter().copied().collect(),
            cuts.hidden_newlines.iter().copied().collect(),
        )
    }

    #[test]
    fn records_within_the_limit_pass_unchanged() {
        let text = "a,b\r\n\"x\"\"y\",\"multi\nline\"\n\n1,2";
        assert_eq!(bounded(text, 20), (text.to_string(), vec![], vec![]));
    }

    #[test]
    fn a_long_quoted_field_is_closed_and_its_record_ended_at_the_limit() {
        let text = "a,b\n1,\"long\nlong\nlong\"\"\"\n3,4\n";
        let (out, refused, hidden) = bounded(text, 6);
        assert_eq!(out, "a,b\n1,\"lon\"\r3,4\n");
        assert_eq!(refused, vec![4]);
        // Three `\n`s were left out (two in the field, one ending the record).
        assert_eq!(hidden, vec![(12, 3)]);
    }

    #[test]
    fn a_long_unquoted_record_is_ended_at_the_limit() {
        let (out, refused, hidden) = bounded("abcdefgh\r\nok\n", 4);
        assert_eq!(out, "abcd\r\nok\n");
        assert_eq!((refused, hidden), (vec![0], vec![]));
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_text() {
        let text = "ab\"c,d\nx,y\n";
        assert_eq!(bounded(text, 10).0, text);
        assert_eq!(bounded("ab\"c,d\nx,y\n", 3).0, "ab\"\rx,y\n");
    }
}
