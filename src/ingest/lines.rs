//! The physical line each top-level JSON value starts on, for error messages and origins
//! ("line 12"), which serde_json does not report for a value it parsed successfully, and the
//! bounds on one record ([`MAX_RECORD_BYTES`](super::bounds::MAX_RECORD_BYTES),
//! [`MAX_NESTING`]), enforced on the bytes before serde_json sees them.
//!
//! [`LineTracker`] wraps the reader serde_json reads byte by byte and follows the bytes
//! through a tiny lexer (strings, escapes, nesting), noting the line where a record begins:
//! the top-level value, or each element directly inside a top-level array. It never
//! validates JSON: the parser does, and its verdict stands. It does edit what the parser
//! sees, in two ways that keep valid JSON valid and only ever touch a record it marks as
//! refused:
//! - a record over the byte limit has the rest of the string being read (and of every later
//!   string in it) dropped, so no string of it is held whole; the reader in `json` stops
//!   building the record's value and skips the rest of it with `IgnoredAny`;
//! - an array or object nested deeper than [`MAX_NESTING`] within its record reaches the
//!   parser as `0` (its newlines are kept, so later line numbers stay right), so serde_json's
//!   own recursion limit is never what stops a file.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

use super::bounds::{Excess, MAX_NESTING};

/// Where a string's escape sequence is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After `\`.
    Next,
    /// Hex digits of `\u` still to come.
    Hex(u8),
}

/// One record: where it started and whether a bound refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStart {
    pub line: u64,
    pub excess: Option<Excess>,
}

/// Start lines seen so far, shared between the reader (which notes them) and the visitor
/// (which takes one per element delivered).
#[derive(Debug, Default)]
struct Starts {
    line: u64,
    depth: u32,
    in_string: bool,
    escape: Escape,
    /// Whether the top-level value is an array (decided by its first byte).
    top_is_array: Option<bool>,
    /// A value may start here: at the top before anything, or after `[` / `,` at depth 1.
    expecting: bool,
    /// The top-level value's start.
    top: Option<RecordStart>,
    /// Starts of array elements not yet taken; the last is the record being read.
    elements: VecDeque<RecordStart>,
    /// The byte limit of one record.
    limit: u64,
    /// Bytes of the current record so far (with what follows it up to the next record).
    record_bytes: u64,
    /// The current record's excess, once it has one.
    excess: Option<Excess>,
    /// Dropping the rest of the current string (a record over the limit).
    dropping_string: bool,
    /// Inside a container nested too deep, replaced by `0`: how deep within it.
    skip_depth: u32,
}

impl Starts {
    fn new(limit: usize) -> Self {
        Starts {
            line: 1,
            expecting: true,
            limit: limit as u64,
            ..Starts::default()
        }
    }

    fn mark(&mut self, excess: Excess) {
        if self.excess.is_some() {
            return;
        }
        self.excess = Some(excess);
        let current = if self.top_is_array == Some(true) {
            self.elements.back_mut()
        } else {
            self.top.as_mut()
        };
        if let Some(record) = current {
            record.excess = Some(excess);
        }
    }

    /// A record starts at this byte.
    fn begin(&mut self, record_is_element: bool) {
        let start = RecordStart {
            line: self.line,
            excess: None,
        };
        if record_is_element {
            self.elements.push_back(start);
        } else {
            self.top = Some(start);
        }
        self.record_bytes = 0;
        self.excess = None;
    }

    /// How deep the parser is within the current record.
    fn record_depth(&self) -> u32 {
        match self.top_is_array {
            Some(true) => self.depth.saturating_sub(1),
            _ => self.depth,
        }
    }

    /// Takes one byte; returns what the parser sees instead (`None`: nothing).
    fn byte(&mut self, b: u8) -> Option<u8> {
        if b == b'\n' {
            self.line += 1;
        }
        self.record_bytes += 1;
        if self.record_bytes > self.limit && (self.top.is_some() || !self.elements.is_empty()) {
            self.mark(Excess::TooLarge);
        }
        if self.in_string {
            let before = self.escape;
            self.escape = match (before, b) {
                (Escape::None, b'\\') => Escape::Next,
                (Escape::None, b'"') => {
                    self.in_string = false;
                    Escape::None
                }
                (Escape::Next, b'u') => Escape::Hex(4),
                (Escape::Hex(n), _) if n > 1 => Escape::Hex(n - 1),
                _ => Escape::None,
            };
            if self.skip_depth > 0 {
                return None;
            }
            if !self.in_string {
                self.dropping_string = false;
                return Some(b);
            }
            // Start dropping only between characters and escapes, so what the parser
            // has is still a valid string once the closing quote reaches it.
            if !self.dropping_string
                && self.excess == Some(Excess::TooLarge)
                && before == Escape::None
                && b & 0xC0 != 0x80
            {
                self.dropping_string = true;
            }
            return if self.dropping_string { None } else { Some(b) };
        }
        if self.skip_depth > 0 {
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.skip_depth += 1,
                b']' | b'}' => self.skip_depth -= 1,
                _ => {}
            }
            return (b == b'\n').then_some(b);
        }
        if b.is_ascii_whitespace() {
            return Some(b);
        }
        if self.expecting && !matches!(b, b',' | b']' | b'}' | b':') {
            self.expecting = false;
            match self.depth {
                0 => {
                    self.top_is_array = Some(b == b'[');
                    self.begin(false);
                    self.record_bytes = 1;
                }
                1 if self.top_is_array == Some(true) => {
                    self.begin(true);
                    self.record_bytes = 1;
                }
                _ => {}
            }
        }
        match b {
            b'"' => self.in_string = true,
            b'[' | b'{' => {
                let in_record = self.top_is_array != Some(true) || self.depth >= 1;
                if in_record && self.record_depth() >= MAX_NESTING {
                    self.mark(Excess::TooDeep);
                    self.skip_depth = 1;
                    return Some(b'0');
                }
                self.depth += 1;
                // Only the top-level array's elements are tracked.
                self.expecting = self.depth == 1 && b == b'[';
            }
            b']' | b'}' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 && self.top_is_array == Some(true) => self.expecting = true,
            _ => {}
        }
        Some(b)
    }
}

/// A reader that notes where top-level JSON values start and enforces the record bounds;
/// see the module docs. Put it around the buffered reader given to serde_json, which reads
/// one byte at a time from it.
pub struct LineTracker<R> {
    inner: R,
    starts: Rc<RefCell<Starts>>,
}

/// The other end of a [`LineTracker`]: where the values read so far started.
#[derive(Clone)]
pub struct ElementLines {
    starts: Rc<RefCell<Starts>>,
}

impl<R: Read> LineTracker<R> {
    /// Records of at most [`MAX_RECORD_BYTES`](super::bounds::MAX_RECORD_BYTES).
    pub fn new(inner: R) -> (Self, ElementLines) {
        Self::with_limit(inner, super::bounds::MAX_RECORD_BYTES)
    }

    /// `limit` is the most bytes one record may take.
    pub fn with_limit(inner: R, limit: usize) -> (Self, ElementLines) {
        let starts = Rc::new(RefCell::new(Starts::new(limit)));
        let lines = ElementLines {
            starts: Rc::clone(&starts),
        };
        (LineTracker { inner, starts }, lines)
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut starts = self.starts.borrow_mut();
            let mut kept = 0;
            for i in 0..n {
                if let Some(b) = starts.byte(buf[i]) {
                    buf[kept] = b;
                    kept += 1;
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

impl ElementLines {
    /// The next array element delivered: where it started and whether a bound refused it.
    pub fn next_record(&self) -> Option<RecordStart> {
        self.starts.borrow_mut().elements.pop_front()
    }

    /// The top-level value: where it started and whether a bound refused it.
    pub fn top_record(&self) -> Option<RecordStart> {
        self.starts.borrow().top
    }

    /// Whether the record being read is over a bound, so the rest of it is to be skipped.
    pub fn refused(&self) -> bool {
        self.starts.borrow().excess.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> (Option<u64>, Vec<u64>) {
        let (mut reader, lines) = LineTracker::new(text.as_bytes());
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let mut elements = Vec::new();
        while let Some(r) = lines.next_record() {
            elements.push(r.line);
        }
        (lines.top_record().map(|r| r.line), elements)
    }

    #[test]
    fn pretty_printed_array_elements_start_where_their_brace_is() {
        let text =
            "\n[\n  {\n    \"full_name\": \"A\"\n  },\n  {\"full_name\": \"B\"},\n\n  7\n]\n";
        assert_eq!(lines_of(text), (Some(2), vec![3, 6, 8]));
    }

    #[test]
    fn brackets_quotes_and_escapes_inside_strings_are_not_structure() {
        let text = "[{\"n\": \"a ] } , [ \\\" {\"},\n{\"n\": \"\\\\\"},\n{\"n\": [1, {\"x\": 2}]}]";
        assert_eq!(lines_of(text), (Some(1), vec![1, 2, 3]));
    }

    #[test]
    fn a_single_object_has_a_top_line_and_no_elements() {
        assert_eq!(lines_of("\n\n {\"a\": [1,\n2]}"), (Some(3), vec![]));
    }

    fn filtered(text: &str, limit: usize) -> (String, Vec<RecordStart>) {
        let (mut reader, lines) = LineTracker::with_limit(text.as_bytes(), limit);
        let mut out = Vec::new();
        // One byte at a time, as serde_json reads.
        let mut byte = [0u8; 1];
        while reader.read(&mut byte).unwrap() == 1 {
            out.push(byte[0]);
        }
        let mut elements = Vec::new();
        while let Some(e) = lines.next_record() {
            elements.push(e);
        }
        (String::from_utf8(out).unwrap(), elements)
    }

    #[test]
    fn strings_of_a_record_over_the_limit_are_cut_at_a_character_boundary() {
        let text = r#"["ab\u00e9\"üxyzé", {"k": "ééé\u00e9"}, "ok"]"#;
        let (out, elements) = filtered(text, 8);
        assert_eq!(
            elements.iter().map(|e| e.excess).collect::<Vec<_>>(),
            [Some(Excess::TooLarge), Some(Excess::TooLarge), None]
        );
        // Whatever is cut, the parser still reads valid JSON.
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value[2], "ok");
        assert!(out.len() < text.len(), "{out}");
    }

    #[test]
    fn containers_nested_too_deep_reach_the_parser_as_zero() {
        let deep = format!(
            "[{{\"a\": {}1{}}}, {{\"b\": 2}}]",
            "[\n".repeat(100),
            "]".repeat(100)
        );
        let (out, elements) = filtered(&deep, 1 << 20);
        assert_eq!(elements[0].excess, Some(Excess::TooDeep));
        assert_eq!(elements[1].excess, None);
        assert_eq!(
            elements[1].line, 101,
            "newlines inside the cut part still count"
        );
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value[1]["b"], 2);
        assert_eq!(out.matches('\n').count(), 100);
    }
}
