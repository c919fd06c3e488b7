//! `.json` files: one customer object, or an array of them streamed element by element so a
//! large array is never held whole. A syntax error anywhere is fatal to the rest of the file
//! (JSON has no way to resynchronise), reported with how many elements came before it.

use std::fmt;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::{json_message, FileError};
use super::file_plan::FilePlan;
use super::lines::{ElementLines, LineTracker};
use super::record::{Parsed, Position};

pub(super) fn read<R, B, F>(
    reader: R,
    plan: &mut FilePlan,
    on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let (tracked, lines) = LineTracker::new(BufReader::new(reader));
    let mut de = serde_json::Deserializer::from_reader(tracked);
    let mut state = State {
        on_record,
        plan,
        lines,
        delivered: 0,
        stopped: None,
        in_array: false,
    };
    let outcome = (&mut de).deserialize_any(TopLevel { state: &mut state });
    // Stopping early leaves the array unfinished, which serde_json reports as an error: the
    // caller asked to stop, so that error is not theirs to see.
    if let Some(b) = state.stopped {
        return Ok(ControlFlow::Break(b));
    }
    if let Err(e) = outcome {
        return Err(if e.is_io() {
            FileError::Io(e.into())
        } else if state.in_array {
            FileError::BadElement {
                index: state.delivered,
                line: e.line() as u64,
                column: e.column() as u64,
                message: friendly(json_message(&e)),
            }
        } else {
            syntax(&e)
        });
    }
    de.end().map_err(|e| syntax(&e))?;
    state.plan.finish()?;
    Ok(ControlFlow::Continue(()))
}

fn syntax(e: &serde_json::Error) -> FileError {
    FileError::Syntax {
        line: e.line() as u64,
        column: e.column() as u64,
        message: friendly(json_message(e)),
    }
}

/// serde_json reports bytes that are not UTF-8 inside a string as a bad code point, at the
/// string's end.
fn friendly(message: String) -> String {
    if message == "invalid unicode code point" {
        "a string ending here is not valid UTF-8 (or holds an invalid \\u escape)".to_string()
    } else {
        message
    }
}

struct State<'p, F, B> {
    on_record: F,
    plan: &'p mut FilePlan,
    lines: ElementLines,
    delivered: u64,
    stopped: Option<B>,
    in_array: bool,
}

struct TopLevel<'s, 'p, F, B> {
    state: &'s mut State<'p, F, B>,
}

impl<'de, F, B> Visitor<'de> for TopLevel<'_, '_, F, B>
where
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a customer object or an array of customer objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let value = Value::deserialize(MapAccessDeserializer::new(map))?;
        let position = Position::Element {
            index: 0,
            line: self.state.lines.top().unwrap_or(1),
        };
        let parsed = self.state.plan.value(position, value);
        if let ControlFlow::Break(b) = (self.state.on_record)(parsed) {
            self.state.stopped = Some(b);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.state.in_array = true;
        // One element at a time: only the current element is ever in memory.
        while let Some(value) = seq.next_element::<Value>()? {
            let position = Position::Element {
                index: self.state.delivered,
                line: self.state.lines.next_element().unwrap_or(0),
            };
            self.state.delivered += 1;
            let parsed = self.state.plan.value(position, value);
            if let ControlFlow::Break(b) = (self.state.on_record)(parsed) {
                self.state.stopped = Some(b);
                return Ok(());
            }
        }
        Ok(())
    }
}
