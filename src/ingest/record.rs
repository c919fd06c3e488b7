//! One record as read from a file: where it was, the local id it carried (if any), and either
//! a payload the contract accepts or every reason it does not. Owns the reserved meta members
//! (`_icsync_id`, `_error`, `customer_id`) and their stripping; validation itself belongs to the contract.

use serde_json::Value;

use crate::contract::FieldError;
use crate::store::Payload;

/// The member carrying an exported record's local id, so a fixed export re-imports onto the
/// same record.
pub const META_ID: &str = "_icsync_id";
/// The member carrying a human note (an export's error text); always ignored on reading.
pub const META_ERROR: &str = "_error";
/// The member carrying the server's customer id (written by `icsync export`); ignored on
/// reading: the server decides which customer a record is, never a file.
pub const META_CUSTOMER_ID: &str = "customer_id";

/// Where a record sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// NDJSON: the 1-based physical line. CSV: the physical line its record starts on, with
    /// the header on line 1.
    Line(u64),
    /// A JSON file: the 0-based index in the top-level array (a single object is index 0)
    /// and the physical line the element starts on.
    Element { index: u64, line: u64 },
}

impl Position {
    /// The physical line, as kept in a record's origin.
    pub fn number(self) -> u64 {
        match self {
            Position::Line(n) | Position::Element { line: n, .. } => n,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Element { index, line } => write!(f, "line {line} (element {index})"),
        }
    }
}

/// One record read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub position: Position,
    /// The `_icsync_id` it carried, when not empty.
    pub record_id: Option<String>,
    pub result: Result<Payload, Vec<FieldError>>,
}

/// A record the contract accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub position: Position,
    pub record_id: Option<String>,
    pub payload: Payload,
}

/// A record the contract does not accept, with every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub position: Position,
    pub record_id: Option<String>,
    pub errors: Vec<FieldError>,
}

impl Parsed {
    pub fn split(self) -> Result<Accepted, Rejected> {
        let Parsed {
            position,
            record_id,
            result,
        } = self;
        match result {
            Ok(payload) => Ok(Accepted {
                position,
                record_id,
                payload,
            }),
            Err(errors) => Err(Rejected {
                position,
                record_id,
                errors,
            }),
        }
    }

    /// One printable line per error, such as
    /// `customers.csv line 7: email: is not a valid email address`.
    pub fn issues<'a>(&'a self, file: &'a str) -> impl Iterator<Item = RecordIssue<'a>> + 'a {
        let errors = self.result.as_ref().err().map_or(&[][..], Vec::as_slice);
        errors.iter().map(move |error| RecordIssue {
            file,
            position: self.position,
            error,
        })
    }

    /// A record that failed before the contract saw it (unreadable line, ragged row).
    pub(super) fn unreadable(position: Position, message: impl Into<String>) -> Self {
        Parsed {
            position,
            record_id: None,
            result: Err(vec![FieldError::new("", message)]),
        }
    }
}

impl Rejected {
    pub fn issues<'a>(&'a self, file: &'a str) -> impl Iterator<Item = RecordIssue<'a>> + 'a {
        self.errors.iter().map(move |error| RecordIssue {
            file,
            position: self.position,
            error,
        })
    }
}

/// One bad field of one record, named by file and position.
#[derive(Debug, Clone, Copy)]
pub struct RecordIssue<'a> {
    pub file: &'a str,
    pub position: Position,
    pub error: &'a FieldError,
}

impl std::fmt::Display for RecordIssue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.file, self.position)?;
        if !self.error.field.is_empty() {
            write!(f, "{}: ", self.error.field)?;
        }
        f.write_str(&self.error.message)
    }
}

/// Validates one JSON value (an NDJSON line or a JSON element) after taking out the meta
/// members.
pub(super) fn from_value(position: Position, mut value: Value) -> Parsed {
    let mut errors = Vec::new();
    let mut record_id = None;
    if let Value::Object(members) = &mut value {
        members.remove(META_ERROR);
        members.remove(META_CUSTOMER_ID);
        match members.remove(META_ID) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => record_id = meta_id(&s),
            Some(_) => errors.push(FieldError::new(
                META_ID,
                "must be a string (the icsync record id from an export)",
            )),
        }
    }
    validate(position, record_id, &value, errors)
}

/// A record id as written in a file: surrounding spaces from hand editing do not count, and
/// an empty id is none.
pub(super) fn meta_id(text: &str) -> Option<String> {
    Some(text.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Runs the contract over `body` (meta members already taken out) and adds the contract's
/// errors to those found while reading.
pub(super) fn validate(
    position: Position,
    record_id: Option<String>,
    body: &Value,
    mut errors: Vec<FieldError>,
) -> Parsed {
    let result = match Payload::parse(body) {
        Ok(payload) if errors.is_empty() => Ok(payload),
        Ok(_) => Err(errors),
        Err(contract_errors) => {
            errors.extend(contract_errors);
            Err(errors)
        }
    };
    Parsed {
        position,
        record_id,
        result,
    }
}
