//! One file's way from cells to validated records: the [`Plan`] chosen from its header (or,
//! in JSON, from its first object's members, grown as other members appear), each record
//! shaped against it and judged by the contract, and the per-column summary a person reads
//! after an import or a dry run. Owned by a format reader for the length of one file.
//!
//! It must not read bytes (the format readers do) nor decide what happens to a record next.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::FileError;
use super::mapping::{How, Mapping, Plan};
use super::record::{Parsed, Position};
use super::shape::{Cell, ColumnStats, Shaper};
use crate::contract::FieldError;
use crate::store::Payload;

/// How a file is read beyond its format: the user's mapping, the country national phone
/// numbers belong to when a row has none, and overrides of what is otherwise detected.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub mapping: Option<Arc<Mapping>>,
    /// An ISO alpha-2 code (checked by whoever builds the options).
    pub default_country: Option<String>,
    pub encoding: Option<&'static encoding_rs::Encoding>,
    pub delimiter: Option<u8>,
}

impl From<super::TextOptions> for ReadOptions {
    fn from(text: super::TextOptions) -> Self {
        ReadOptions {
            encoding: text.encoding,
            delimiter: text.delimiter,
            ..ReadOptions::default()
        }
    }
}

impl ReadOptions {
    /// The options settings give: the mapping file read and checked, the default country.
    pub fn load(
        mapping: Option<&std::path::Path>,
        default_country: Option<String>,
    ) -> Result<ReadOptions, super::MappingError> {
        Ok(ReadOptions {
            mapping: mapping.map(Mapping::load).transpose()?.map(Arc::new),
            default_country,
            encoding: None,
            delimiter: None,
        })
    }
}

/// JSON members nested deeper than this are not looked at (a customer is shallow).
const MAX_DEPTH: usize = 6;

/// The records of one file, shaped against one plan.
#[derive(Debug)]
pub struct FilePlan {
    default_country: Option<String>,
    mapping: Option<Arc<Mapping>>,
    shaper: Option<Shaper>,
    /// The previous JSON record's members, in order, with their columns.
    last_members: Vec<(String, Option<usize>)>,
}

impl FilePlan {
    pub fn new(options: &ReadOptions) -> FilePlan {
        FilePlan {
            default_country: options.default_country.clone(),
            mapping: options.mapping.clone(),
            shaper: None,
            last_members: Vec::new(),
        }
    }

    /// A header row (CSV, spreadsheet): the plan is fixed here. A header with no column for
    /// the customer's name refuses the file.
    pub fn header(&mut self, names: &[String]) -> Result<(), FileError> {
        let plan = Plan::new(names, self.mapping.clone());
        if !plan.has_name() {
            return Err(no_name(names.iter().map(String::as_str)));
        }
        self.shaper = Some(Shaper::new(plan, self.default_country.clone()));
        Ok(())
    }

    /// One row of text cells, as many as the header has columns.
    pub fn row(&mut self, position: Position, cells: &[&str]) -> Parsed {
        let Some(shaper) = self.shaper.as_mut() else {
            return Parsed::unreadable(position, "a row before the header");
        };
        let cells: Vec<Option<Cell>> = cells.iter().map(|c| Some(Cell::Text(c))).collect();
        judge(shaper, position, &cells)
    }

    /// One JSON value (an NDJSON line, an array element): its members, nested ones by their
    /// dotted path, are the columns.
    pub fn value(&mut self, position: Position, value: Value) -> Parsed {
        let Value::Object(members) = &value else {
            return Parsed::unreadable(
                position,
                "must be a JSON object of customer fields (\"full_name\", \"email\", ...)",
            );
        };
        let mut flat = Vec::with_capacity(members.len());
        flatten(members, None, 0, &mut flat);
        let shaper = match &mut self.shaper {
            Some(s) => s,
            None => {
                let names: Vec<String> = flat.iter().map(|(n, _)| n.to_string()).collect();
                let plan = Plan::new(&names, self.mapping.clone());
                self.shaper
                    .insert(Shaper::new(plan, self.default_country.clone()))
            }
        };
        let mut cells: Vec<Option<Cell>> = Vec::with_capacity(shaper.plan.columns.len());
        let last = &mut self.last_members;
        for (i, (name, v)) in flat.iter().enumerate() {
            // Records of one file mostly list the same members in the same order: compare
            // with the previous record's before looking the name up.
            let column = match last.get(i) {
                Some((known, column)) if known == name => *column,
                _ => {
                    let column = shaper.plan.column(name);
                    if last.len() <= i {
                        last.resize(i + 1, (String::new(), None));
                    }
                    last[i] = (name.to_string(), column);
                    column
                }
            };
            if let Some(c) = column {
                if cells.len() <= c {
                    cells.resize(c + 1, None);
                }
                cells[c] = Some(Cell::Json(v));
            }
        }
        judge(shaper, position, &cells)
    }

    /// The end of a JSON file: one whose members never named the customer refuses the file.
    pub fn finish(&self) -> Result<(), FileError> {
        match &self.shaper {
            Some(s) if !s.plan.has_name() => {
                Err(no_name(s.plan.columns.iter().map(|c| c.name.as_str())))
            }
            _ => Ok(()),
        }
    }

    /// What the file's columns fed, for the report.
    pub fn summary(&self) -> MappingSummary {
        let Some(shaper) = &self.shaper else {
            return MappingSummary::default();
        };
        let plan = &shaper.plan;
        let stats = shaper.stats();
        MappingSummary {
            preset: plan.preset.map(|p| p.name),
            mapping: plan.mapping().map(|m| m.source.clone()),
            columns: plan
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ColumnSummary {
                    column: c.name.clone(),
                    field: c.target.map(|t| t.name()),
                    how: c.how,
                    stats: stats.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
            unmapped: plan.unmapped().map(str::to_string).collect(),
            mapping_unused: plan
                .mapping()
                .map(|m| m.missing_from(plan).into_iter().map(String::from).collect())
                .unwrap_or_default(),
        }
    }
}

fn no_name<'a>(columns: impl Iterator<Item = &'a str>) -> FileError {
    let mut listed: Vec<String> = columns
        .filter(|c| !c.trim().is_empty())
        .take(40)
        .map(|c| format!("{c:?}"))
        .collect();
    if listed.is_empty() {
        listed.push("(none)".to_string());
    }
    FileError::NoNameColumn {
        columns: listed.join(", "),
    }
}

/// Shapes, validates, and names the contract's errors by column.
fn judge(shaper: &mut Shaper, position: Position, cells: &[Option<Cell<'_>>]) -> Parsed {
    let mut shaped = shaper.shape(position, cells);
    let body = Value::Object(std::mem::take(&mut shaped.body));
    let mut errors = std::mem::take(&mut shaped.errors);
    let result = match Payload::parse(&body) {
        Ok(payload) if errors.is_empty() => Ok(payload),
        Ok(_) => Err(errors),
        Err(contract) => {
            // A field the shaper already refused was left out of the body: the contract's
            // "is required" for it would only repeat the point.
            let contract: Vec<FieldError> = contract
                .into_iter()
                .filter(|e| !errors.iter().any(|mine| mentions(&mine.field, &e.field)))
                .collect();
            errors.extend(shaper.attribute(position, &shaped, contract));
            Err(errors)
        }
    };
    Parsed {
        position,
        record_id: shaped.record_id.take(),
        result,
        notes: std::mem::take(&mut shaped.notes),
    }
}

/// `Mailing Country (risk.country_of_residence)` mentions `risk.country_of_residence`.
fn mentions(label: &str, field: &str) -> bool {
    label == field || label.ends_with(&format!("({field})"))
}

/// Every member, nested objects by dotted path (`address.country`).
fn flatten<'a>(
    members: &'a Map<String, Value>,
    prefix: Option<&str>,
    depth: usize,
    out: &mut Vec<(Cow<'a, str>, &'a Value)>,
) {
    for (name, value) in members {
        let path: Cow<'a, str> = match prefix {
            None => Cow::Borrowed(name.as_str()),
            Some(p) => Cow::Owned(format!("{p}.{name}")),
        };
        match value {
            // A note for a person, whatever its shape.
            _ if name == super::META_ERROR => out.push((path, value)),
            Value::Object(inner) if depth < MAX_DEPTH && !inner.is_empty() => {
                flatten(inner, Some(&path), depth + 1, out)
            }
            _ => out.push((path, value)),
        }
    }
}

/// What each column of a file fed, with counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MappingSummary {
    /// The vendor format recognised from the header set.
    pub preset: Option<&'static str>,
    /// The mapping file used, as given.
    pub mapping: Option<String>,
    pub columns: Vec<ColumnSummary>,
    /// Columns that feed nothing: not imported.
    pub unmapped: Vec<String>,
    /// Headers the mapping file names that the file does not have.
    pub mapping_unused: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnSummary {
    pub column: String,
    /// The field it feeds; `None` when not imported.
    pub field: Option<&'static str>,
    pub how: How,
    #[serde(flatten)]
    pub stats: ColumnStats,
}
