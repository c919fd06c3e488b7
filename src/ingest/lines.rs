//! The physical line each top-level JSON value starts on, for error messages and origins
//! ("line 12"), which serde_json does not report for a value it parsed successfully. Owns
//! only that bookkeeping: [`LineTracker`] wraps the reader serde_json reads byte by byte and
//! follows the bytes through a tiny lexer (strings, escapes, nesting), noting the line where
//! a value begins at the top level or directly inside the top-level array. It never
//! validates JSON: the parser does, and its verdict stands.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

/// Start lines seen so far, shared between the reader (which notes them) and the visitor
/// (which takes one per element delivered).
#[derive(Debug, Default)]
struct Starts {
    line: u64,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Whether the top-level value is an array (decided by its first byte).
    top_is_array: Option<bool>,
    /// A value may start here: at the top before anything, or after `[` / `,` at depth 1.
    expecting: bool,
    /// The line the top-level value started on.
    top: Option<u64>,
    /// Start lines of array elements not yet taken.
    elements: VecDeque<u64>,
}

impl Starts {
    fn new() -> Self {
        Starts {
            line: 1,
            expecting: true,
            ..Starts::default()
        }
    }

    fn byte(&mut self, b: u8) {
        if b == b'\n' {
            self.line += 1;
        }
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return;
        }
        if b.is_ascii_whitespace() {
            return;
        }
        if self.expecting && !matches!(b, b',' | b']' | b'}' | b':') {
            self.expecting = false;
            match self.depth {
                0 => {
                    self.top = Some(self.line);
                    self.top_is_array = Some(b == b'[');
                }
                1 if self.top_is_array == Some(true) => self.elements.push_back(self.line),
                _ => {}
            }
        }
        match b {
            b'"' => self.in_string = true,
            b'[' | b'{' => {
                self.depth += 1;
                // Only the top-level array's elements are tracked.
                self.expecting = self.depth == 1 && b == b'[';
            }
            b']' | b'}' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 && self.top_is_array == Some(true) => self.expecting = true,
            _ => {}
        }
    }
}

/// A reader that notes where top-level JSON values start; see the module docs. Put it
/// around the buffered reader given to serde_json, which reads one byte at a time from it.
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
    pub fn new(inner: R) -> (Self, ElementLines) {
        let starts = Rc::new(RefCell::new(Starts::new()));
        let lines = ElementLines {
            starts: Rc::clone(&starts),
        };
        (LineTracker { inner, starts }, lines)
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut starts = self.starts.borrow_mut();
        for &b in &buf[..n] {
            starts.byte(b);
        }
        Ok(n)
    }
}

impl ElementLines {
    /// The line the next array element delivered started on (elements are taken in order).
    pub fn next_element(&self) -> Option<u64> {
        self.starts.borrow_mut().elements.pop_front()
    }

    /// The line the top-level value started on.
    pub fn top(&self) -> Option<u64> {
        self.starts.borrow().top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> (Option<u64>, Vec<u64>) {
        let (mut reader, lines) = LineTracker::new(text.as_bytes());
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let mut elements = Vec::new();
        while let Some(l) = lines.next_element() {
            elements.push(l);
        }
        (lines.top(), elements)
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
}
