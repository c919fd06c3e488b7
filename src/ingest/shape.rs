//! One record's cells, column by column, into a request body the contract can judge: picks
//! the first non-empty column feeding each field (the [`Plan`]'s order), joins first, middle
//! and last names, normalises values as people write them (`values`), and keeps per-column
//! counts for the file's summary. Problems are named by the source column the person must
//! fix, with the field it feeds: `Mailing Country (risk.country_of_residence): ...`.
//!
//! Pure: no I/O and no validation of its own beyond value rules; the contract decides
//! whether the body is a valid customer.

use serde::Serialize;
use serde_json::{Map, Value};

use super::mapping::{squash, Plan, RiskKey, Target};
use super::record::{meta_id, Position};
use super::values;
use crate::contract::FieldError;

/// One cell as read: text from a CSV or spreadsheet, or a JSON member's value.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// What one column contributed over the whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnStats {
    /// Records with a value in this column.
    pub filled: u64,
    /// Values changed on their way in (a phone put in E.164, a country name made a code).
    pub normalised: u64,
    /// Values that made their record refused.
    pub refused: u64,
    /// The first problem seen in this column, with its position.
    pub example: Option<String>,
}

/// A record's body with what was noticed on the way.
#[derive(Debug, Default)]
pub struct Shaped {
    pub record_id: Option<String>,
    pub body: Map<String, Value>,
    /// Changes a person should know of (a dropped phone extension, a second email left out).
    pub notes: Vec<FieldError>,
    /// Values no rule could make valid.
    pub errors: Vec<FieldError>,
    /// Which column each field of the body came from, for naming the contract's errors.
    sources: Vec<(&'static str, Source)>,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Column(usize),
    /// The full name joined from name parts.
    NameParts,
}

/// A value picked for a target.
enum Got<'a> {
    Text(&'a str),
    Json(&'a Value),
    Null,
}

fn got<'a>(cell: Cell<'a>) -> Option<Got<'a>> {
    match cell {
        Cell::Text(s) if s.trim().is_empty() => None,
        // Written with an apostrophe to keep a spreadsheet from running it as a formula.
        Cell::Text(s) => Some(Got::Text(super::formula::read_cell(s))),
        Cell::Json(Value::Null) => Some(Got::Null),
        Cell::Json(Value::String(s)) if s.trim().is_empty() => None,
        Cell::Json(Value::String(s)) => Some(Got::Text(s)),
        Cell::Json(Value::Array(a)) if a.is_empty() => None,
        Cell::Json(v) => Some(Got::Json(v)),
    }
}

/// The cells of a file's records, shaped against one plan.
#[derive(Debug)]
pub struct Shaper {
    pub plan: Plan,
    default_country: Option<String>,
    stats: Vec<ColumnStats>,
}

impl Shaper {
    pub fn new(plan: Plan, default_country: Option<String>) -> Shaper {
        Shaper {
            plan,
            default_country,
            stats: Vec::new(),
        }
    }

    /// Per column, in the plan's column order.
    pub fn stats(&self) -> &[ColumnStats] {
        &self.stats
    }

    fn stat(&mut self, column: usize) -> &mut ColumnStats {
        if self.stats.len() <= column {
            self.stats.resize(column + 1, ColumnStats::default());
        }
        &mut self.stats[column]
    }

    fn label(&self, field: &str, source: Source) -> String {
        match source {
            Source::Column(c) => {
                let name = &self.plan.columns[c].name;
                if squash(name) == squash(field) {
                    name.clone()
                } else {
                    format!("{name} ({field})")
                }
            }
            Source::NameParts => {
                let parts: Vec<&str> = self
                    .name_columns()
                    .into_iter()
                    .map(|c| self.plan.columns[c].name.as_str())
                    .collect();
                format!("{} ({field})", parts.join(" + "))
            }
        }
    }

    fn problem(&mut self, position: Position, column: usize, label: &str, message: &str) {
        let stat = self.stat(column);
        stat.refused += 1;
        if stat.example.is_none() {
            stat.example = Some(format!("{position}: {label}: {message}"));
        }
    }

    /// The first column feeding `target` with a value in `cells` (indexed by column), or
    /// `Null` when the only values are JSON nulls. Counts every filled column.
    fn pick<'a>(&mut self, target: Target, cells: &[Option<Cell<'a>>]) -> Option<(usize, Got<'a>)> {
        let mut picked = None;
        let mut null = None;
        // By index: `stat` borrows self mutably while the plan is read.
        for k in 0..self.plan.feeding(target).len() {
            let c = self.plan.feeding(target)[k];
            match cells.get(c).copied().flatten().and_then(got) {
                None => {}
                Some(Got::Null) => {
                    null.get_or_insert(c);
                }
                Some(value) => {
                    self.stat(c).filled += 1;
                    if picked.is_none() {
                        picked = Some((c, value));
                    }
                }
            }
        }
        picked.or(null.map(|c| (c, Got::Null)))
    }

    /// Shapes one record. `cells[i]` is column `i`'s cell, `None` where the record has none.
    pub fn shape(&mut self, position: Position, cells: &[Option<Cell<'_>>]) -> Shaped {
        let mut out = Shaped::default();
        if let Some((_, value)) = self.pick(Target::RecordId, cells) {
            match value {
                Got::Text(s) => out.record_id = meta_id(s),
                Got::Null => {}
                Got::Json(_) => out.errors.push(FieldError::new(
                    super::META_ID,
                    "must be a string (the icsync record id from an export)",
                )),
            }
        }
        self.name(position, cells, &mut out);
        let mut risk = Map::new();
        let mut risk_whole = None;
        let mut country = None;
        let fed = self.plan.feeds().len();
        for t in 0..fed {
            let target = self.plan.target_at(t);
            let field = target.name();
            match target {
                Target::RecordId
                | Target::FullName
                | Target::FirstName
                | Target::MiddleName
                | Target::LastName
                | Target::Ignore
                // Last: it needs the row's country.
                | Target::Phone => continue,
                _ => {}
            }
            let Some((column, value)) = self.pick(target, cells) else {
                continue;
            };
            let converted = match value {
                Got::Null => Ok(Converted::same(Value::Null)),
                Got::Text(text) => convert_text(target, text),
                Got::Json(v) => convert_json(target, v),
            };
            let converted = match converted {
                Ok(c) => c,
                Err(message) => {
                    let label = self.label(field, Source::Column(column));
                    self.problem(position, column, &label, &message);
                    out.errors.push(FieldError::new(label, message));
                    continue;
                }
            };
            self.noted(column, field, &converted, &mut out);
            if target == Target::Risk(RiskKey::Country) {
                country = converted.value.as_str().map(str::to_string);
            }
            out.sources.push((field, Source::Column(column)));
            match target {
                Target::Risk(key) => {
                    risk.insert(key.member().to_string(), converted.value);
                }
                Target::RiskWhole => risk_whole = Some((column, converted.value)),
                _ => {
                    out.body.insert(field.to_string(), converted.value);
                }
            }
        }
        self.phone(position, cells, country.as_deref(), &mut out);
        match risk_whole {
            Some((column, value)) if !risk.is_empty() && !value.is_null() => {
                let message = "given both as a risk column and as risk.* columns; use one";
                let label = self.label("risk", Source::Column(column));
                self.problem(position, column, &label, message);
                out.errors.push(FieldError::new("risk", message));
            }
            Some((_, value)) if risk.is_empty() => {
                out.body.insert("risk".to_string(), value);
            }
            _ => {}
        }
        if !risk.is_empty() {
            out.body.insert("risk".to_string(), Value::Object(risk));
        }
        out
    }

    /// Counts a change and keeps its note; the label is made only for a note.
    fn noted(&mut self, column: usize, field: &str, converted: &Converted, out: &mut Shaped) {
        if converted.changed {
            self.stat(column).normalised += 1;
        }
        if let Some(note) = &converted.note {
            let label = self.label(field, Source::Column(column));
            out.notes.push(FieldError::new(label, note.clone()));
        }
    }

    fn name(&mut self, position: Position, cells: &[Option<Cell<'_>>], out: &mut Shaped) {
        if let Some((column, value)) = self.pick(Target::FullName, cells) {
            let value = match value {
                Got::Text(s) => Value::from(s),
                Got::Json(v) => v.clone(),
                Got::Null => Value::Null,
            };
            out.body.insert("full_name".to_string(), value);
            out.sources.push(("full_name", Source::Column(column)));
            // Name parts still count as filled, for the summary.
            for part in [Target::FirstName, Target::MiddleName, Target::LastName] {
                self.pick(part, cells);
            }
            return;
        }
        let mut parts = Vec::new();
        for part in [Target::FirstName, Target::MiddleName, Target::LastName] {
            match self.pick(part, cells) {
                Some((_, Got::Text(s))) => parts.push(s.trim().to_string()),
                Some((column, Got::Json(v))) => match v {
                    Value::Number(n) => parts.push(n.to_string()),
                    _ => {
                        let label = self.label(part.name(), Source::Column(column));
                        let message = "must be text";
                        self.problem(position, column, &label, message);
                        out.errors.push(FieldError::new(label, message));
                    }
                },
                _ => {}
            }
        }
        if !parts.is_empty() {
            out.body
                .insert("full_name".to_string(), Value::from(parts.join(" ")));
            out.sources.push(("full_name", Source::NameParts));
        }
    }

    fn phone(
        &mut self,
        position: Position,
        cells: &[Option<Cell<'_>>],
        row_country: Option<&str>,
        out: &mut Shaped,
    ) {
        let Some((column, value)) = self.pick(Target::Phone, cells) else {
            return;
        };
        let number_text;
        let text = match value {
            Got::Null => {
                out.body.insert("phone".to_string(), Value::Null);
                return;
            }
            Got::Text(s) => s,
            Got::Json(Value::Number(n)) => {
                number_text = n.to_string();
                number_text.as_str()
            }
            Got::Json(Value::Array(items)) => match items.first() {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            },
            Got::Json(other) => {
                out.body.insert("phone".to_string(), other.clone());
                out.sources.push(("phone", Source::Column(column)));
                return;
            }
        };
        let (first, many) = values::first_of_many(text);
        let country = row_country.or(self.default_country.as_deref());
        match values::phone(first, country) {
            Ok(n) => {
                let converted = Converted {
                    value: Value::from(n.value),
                    changed: n.changed || many.is_some(),
                    note: join_notes(many, n.note),
                };
                self.noted(column, "phone", &converted, out);
                out.body.insert("phone".to_string(), converted.value);
                out.sources.push(("phone", Source::Column(column)));
            }
            Err(message) => {
                let label = self.label("phone", Source::Column(column));
                self.problem(position, column, &label, &message);
                out.errors.push(FieldError::new(label, message));
            }
        }
    }

    /// The first column of each name part the file has.
    fn name_columns(&self) -> Vec<usize> {
        [Target::FirstName, Target::MiddleName, Target::LastName]
            .into_iter()
            .flat_map(|t| self.plan.feeding(t).first().copied())
            .collect()
    }

    /// Where a missing name should have come from: the name parts, else the full-name column.
    fn name_source(&self) -> Option<Source> {
        let parts = [Target::FirstName, Target::MiddleName, Target::LastName];
        if parts.iter().any(|&t| !self.plan.feeding(t).is_empty()) {
            Some(Source::NameParts)
        } else {
            self.plan
                .feeding(Target::FullName)
                .first()
                .map(|&c| Source::Column(c))
        }
    }

    /// Names the contract's errors by the columns their fields came from, and counts them
    /// against those columns.
    pub fn attribute(
        &mut self,
        position: Position,
        shaped: &Shaped,
        errors: Vec<FieldError>,
    ) -> Vec<FieldError> {
        errors
            .into_iter()
            .map(|e| {
                let top = e.field.as_str();
                let source = shaped
                    .sources
                    .iter()
                    .find(|(field, _)| *field == top)
                    .map(|&(_, s)| s)
                    .or_else(|| (top == "full_name").then(|| self.name_source()).flatten());
                let Some(source) = source else {
                    return e;
                };
                let label = self.label(&e.field, source);
                let missing = !shaped.sources.iter().any(|(field, _)| *field == top);
                let message = match (missing, source) {
                    (true, Source::NameParts) => {
                        format!("{} (the name columns are empty)", e.message)
                    }
                    (true, _) => format!("{} (the column is empty)", e.message),
                    _ => e.message,
                };
                let column = match source {
                    Source::Column(c) => Some(c),
                    Source::NameParts => self.name_columns().first().copied(),
                };
                if let Some(c) = column {
                    self.problem(position, c, &label, &message);
                }
                FieldError::new(label, message)
            })
            .collect()
    }
}

fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// A value on its way into the body.
struct Converted {
    value: Value,
    changed: bool,
    note: Option<String>,
}

impl Converted {
    fn same(value: Value) -> Converted {
        Converted {
            value,
            changed: false,
            note: None,
        }
    }

    fn from<T: Into<Value>>(n: values::Normalised<T>) -> Converted {
        Converted {
            value: n.value.into(),
            changed: n.changed,
            note: n.note,
        }
    }
}

/// `INDIVIDUAL` / `SOLE_TRADER` as people write them (`Sole trader`, `individual`).
fn customer_type(text: &str) -> Converted {
    let canonical = match squash(text).as_str() {
        "individual" | "person" | "private" => "INDIVIDUAL",
        "soletrader" | "soleproprietor" | "soleproprietorship" => "SOLE_TRADER",
        // The contract says what it accepts.
        _ => return Converted::same(Value::from(text)),
    };
    Converted {
        changed: canonical != text,
        value: Value::from(canonical),
        note: None,
    }
}

fn convert_text(target: Target, text: &str) -> Result<Converted, String> {
    Ok(match target {
        Target::Type => customer_type(text.trim()),
        Target::Email => {
            let (first, many) = values::first_of_many(text);
            Converted {
                value: Value::from(first.trim()),
                changed: many.is_some(),
                note: many,
            }
        }
        Target::Risk(RiskKey::Country) => Converted::from(values::country(text)?),
        Target::Risk(RiskKey::Volume) => Converted::from(values::amount(text)?),
        Target::Risk(RiskKey::IsPep) => Converted::same(Value::Bool(values::boolean(text)?)),
        // external_id is matched exactly: kept as written.
        _ => Converted::same(Value::from(text)),
    })
}

fn convert_json(target: Target, value: &Value) -> Result<Converted, String> {
    match (target, value) {
        (_, Value::Array(items)) => {
            let first = items.first().cloned().unwrap_or(Value::Null);
            let mut converted = match &first {
                Value::String(s) => convert_text(target, s)?,
                other => convert_json(target, other)?,
            };
            if items.len() > 1 {
                converted.changed = true;
                converted.note = join_notes(
                    Some(format!("{} values; took the first", items.len())),
                    converted.note,
                );
            }
            Ok(converted)
        }
        // Ids and phone numbers written as JSON numbers are text to the API.
        (Target::ExternalId, Value::Number(n)) => Ok(Converted {
            value: Value::from(n.to_string()),
            changed: true,
            note: None,
        }),
        (Target::Risk(RiskKey::Volume), Value::Number(n)) => {
            if n.as_u64().is_some() {
                return Ok(Converted::same(value.clone()));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() != 0.0 => {
                    values::amount(&n.to_string()).map(Converted::from)
                }
                _ => Ok(Converted::same(value.clone())),
            }
        }
        (Target::Risk(RiskKey::IsPep), Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Converted::same(Value::Bool(false))),
            Some(1) => Ok(Converted::same(Value::Bool(true))),
            _ => Err(format!("{n} is not yes or no")),
        },
        _ => Ok(Converted::same(value.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::mapping::Mapping;
    use serde_json::json;
    use std::sync::Arc;

    fn shaper(headers: &[&str]) -> Shaper {
        let names: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        Shaper::new(Plan::new(&names, None), None)
    }

    fn row<'a>(cells: &[&'a str]) -> Vec<Option<Cell<'a>>> {
        cells.iter().map(|s| Some(Cell::Text(s))).collect()
    }

    const AT: Position = Position::Line(2);

    #[test]
    fn first_and_last_names_make_the_full_name() {
        let mut s = shaper(&["First Name", "Middle Name", "Last Name", "Email"]);
        let shaped = s.shape(AT, &row(&["Ada", "", "Lovelace", "ada@example.com"]));
        assert_eq!(
            Value::Object(shaped.body),
            json!({"full_name": "Ada Lovelace", "email": "ada@example.com"})
        );
        let shaped = s.shape(AT, &row(&["", "", "", "x@example.com"]));
        assert!(!shaped.body.contains_key("full_name"));
    }

    #[test]
    fn a_full_name_column_wins_over_name_parts() {
        let mut s = shaper(&["Name", "First Name", "Last Name"]);
        let shaped = s.shape(AT, &row(&["Ada King", "Ada", "Lovelace"]));
        assert_eq!(shaped.body["full_name"], "Ada King");
        let shaped = s.shape(AT, &row(&["", "Ada", "Lovelace"]));
        assert_eq!(shaped.body["full_name"], "Ada Lovelace");
    }

    #[test]
    fn an_empty_first_choice_falls_back_to_the_next_column() {
        let mut s = shaper(&["full_name", "Phone", "Mobile Phone"]);
        let shaped = s.shape(AT, &row(&["A", "+44 20 7946 0958", ""]));
        assert_eq!(shaped.body["phone"], "+442079460958");
        let shaped = s.shape(AT, &row(&["A", "+44 20 7946 0958", "+44 7700 900123"]));
        assert_eq!(shaped.body["phone"], "+447700900123");
        assert_eq!(s.stats()[1].filled, 2);
        assert_eq!(s.stats()[2].filled, 1);
    }

    #[test]
    fn risk_columns_nest_and_values_are_converted() {
        let mut s = shaper(&["full_name", "Job Title", "risk.is_pep", "type"]);
        let shaped = s.shape(AT, &row(&["A", "Nurse", "yes", "Sole trader"]));
        assert_eq!(
            Value::Object(shaped.body),
            json!({"full_name": "A", "type": "SOLE_TRADER",
                   "risk": {"occupation": "Nurse", "is_pep": true}})
        );
        let shaped = s.shape(AT, &row(&["A", "", "maybe", ""]));
        assert_eq!(shaped.errors.len(), 1);
        assert_eq!(shaped.errors[0].field, "risk.is_pep");
        assert_eq!(s.stats()[2].refused, 1);
        assert!(s.stats()[2]
            .example
            .as_deref()
            .unwrap()
            .starts_with("line 2: risk.is_pep"));
    }

    #[test]
    fn json_members_keep_null_and_numbers_become_text_where_the_api_wants_text() {
        let mut s = shaper(&["id", "name", "email", "phone", "address.country"]);
        let (id, name, email, phone) = (json!(12345), json!("Ada"), json!(""), json!(null));
        let cells = vec![
            Some(Cell::Json(&id)),
            Some(Cell::Json(&name)),
            Some(Cell::Json(&email)),
            Some(Cell::Json(&phone)),
            None,
        ];
        let shaped = s.shape(AT, &cells);
        assert_eq!(
            Value::Object(shaped.body),
            json!({"full_name": "Ada", "external_id": "12345", "phone": null})
        );
    }

    #[test]
    fn contract_errors_are_named_by_the_column_the_person_must_fix() {
        let mapping =
            Mapping::parse("[columns]\n\"E-Mail-Adresse\" = \"email\"\n", "m.toml").unwrap();
        let names = vec!["Vorname".to_string(), "E-Mail-Adresse".to_string()];
        let mut s = Shaper::new(Plan::new(&names, Some(Arc::new(mapping))), None);
        let shaped = s.shape(AT, &row(&["A", "kaputt"]));
        let errors = vec![FieldError::new("email", "is not a valid email address")];
        let named = s.attribute(AT, &shaped, errors);
        assert_eq!(named[0].field, "E-Mail-Adresse (email)");
        assert_eq!(s.stats()[1].refused, 1);
    }
}
