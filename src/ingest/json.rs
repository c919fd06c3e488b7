//! `.json` files: one customer object, or an array of them streamed element by element so a
//! large array is never held whole. A syntax error anywhere is fatal to the rest of the file
//! (JSON has no way to resynchronise), reported with how many elements came before it.
//!
//! One record (an array element, or a lone object) is bounded while it is read: once the
//! [`LineTracker`] finds it over `limit` bytes ([`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES)) or nested deeper than
//! [`MAX_NESTING`](super::bounds::MAX_NESTING), the value built so far is dropped, the rest
//! is skipped with [`IgnoredAny`] (which allocates nothing), and the record is refused with
//! a problem at its position; the elements after it are read as usual.

use std::fmt;
use std::io::{BufReader, Read};
use std::ops::ControlFlow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::bounds::Excess;
use super::error::{json_message, FileError};
use super::file_plan::FilePlan;
use super::lines::{ElementLines, LineTracker};
use super::record::{Parsed, Position};

pub(super) fn read<R, B, F>(
    reader: R,
    limit: usize,
    plan: &mut FilePlan,
    on_record: F,
) -> Result<ControlFlow<B>, FileError>
where
    R: Read,
    F: FnMut(Parsed) -> ControlFlow<B>,
{
    let (tracked, lines) = LineTracker::with_limit(BufReader::new(reader), limit);
    let mut de = serde_json::Deserializer::from_reader(tracked);
    let mut state = State {
        on_record,
        plan,
        lines,
        limit,
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
    limit: usize,
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
        let value = Bounded::new(&self.state.lines).visit_map(map)?;
        let top = self.state.lines.top_record();
        let position = Position::Element {
            index: 0,
            line: top.map_or(1, |t| t.line),
        };
        let excess = top.and_then(|t| t.excess);
        let parsed = self.state.record(position, value, excess);
        if let ControlFlow::Break(b) = (self.state.on_record)(parsed) {
            self.state.stopped = Some(b);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.state.in_array = true;
        // One element at a time: only the current element is ever in memory.
        while let Some(value) = seq.next_element_seed(Bounded::new(&self.state.lines))? {
            let start = self.state.lines.next_record();
            let position = Position::Element {
                index: self.state.delivered,
                line: start.map_or(0, |s| s.line),
            };
            self.state.delivered += 1;
            let parsed = self
                .state
                .record(position, value, start.and_then(|s| s.excess));
            if let ControlFlow::Break(b) = (self.state.on_record)(parsed) {
                self.state.stopped = Some(b);
                return Ok(());
            }
        }
        Ok(())
    }
}

impl<F, B> State<'_, F, B> {
    /// The record at `position`: its value, or the bound it broke.
    fn record(
        &mut self,
        position: Position,
        value: Option<Value>,
        excess: Option<Excess>,
    ) -> Parsed {
        match (value, excess) {
            (Some(value), None) => self.plan.value(position, value),
            (_, excess) => Parsed::unreadable(
                position,
                excess.unwrap_or(Excess::TooLarge).message(self.limit),
            ),
        }
    }
}

/// Builds one record's [`Value`] as serde_json's own would, until the [`LineTracker`] says
/// the record broke a bound: then what was built is dropped, the rest is skipped with
/// [`IgnoredAny`], and the result is `None`. Any reader of JSON records through a
/// [`LineTracker`] takes its elements with this seed (`seq.next_element_seed(..)`) rather
/// than as `Value`, or an element over the bound is built whole.
#[derive(Clone, Copy)]
pub(in crate::ingest) struct Bounded<'l> {
    lines: &'l ElementLines,
}

impl<'l> Bounded<'l> {
    pub(in crate::ingest) fn new(lines: &'l ElementLines) -> Self {
        Bounded { lines }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        loop {
            if self.lines.refused() {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(None);
            }
            match seq.next_element_seed(self)? {
                None => return Ok(Some(Value::Array(items))),
                Some(Some(item)) => items.push(item),
                // Refused: the loop skips the rest.
                Some(None) => {}
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Map::new();
        loop {
            if self.lines.refused() {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(None);
            }
            let Some(key) = map.next_key::<String>()? else {
                return Ok(Some(Value::Object(members)));
            };
            if let Some(value) = map.next_value_seed(self)? {
                members.insert(key, value);
            }
        }
    }
}
