//! Which source column feeds which customer field: header matching (without regard to case,
//! spaces and punctuation, with synonyms), the built-in vendor presets recognised from a
//! header set, and the user's mapping file (`[columns]` in TOML). A CSV or spreadsheet header
//! and the member paths of JSON objects (`address.country`) are all "columns" here.
//!
//! It owns names only: what a value in a column means and how it is normalised belongs to
//! `shape` and `values`; reading files belongs to the format readers. Nothing here does I/O
//! but [`Mapping::load`], which reads the mapping file.

use std::collections::HashMap;
use std::path::Path;

use super::presets::{Preset, PRESETS};
use super::record::{META_CUSTOMER_ID, META_ERROR, META_ID};

/// A nested risk answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RiskKey {
    Occupation,
    SourceOfFunds,
    Country,
    Volume,
    IsPep,
}

impl RiskKey {
    pub const ALL: [RiskKey; 5] = [
        RiskKey::Occupation,
        RiskKey::SourceOfFunds,
        RiskKey::Country,
        RiskKey::Volume,
        RiskKey::IsPep,
    ];

    pub fn member(self) -> &'static str {
        match self {
            RiskKey::Occupation => "occupation",
            RiskKey::SourceOfFunds => "source_of_funds",
            RiskKey::Country => "country_of_residence",
            RiskKey::Volume => "expected_monthly_volume",
            RiskKey::IsPep => "is_pep",
        }
    }
}

/// What a column feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `_icsync_id`: the local record an exported row came from.
    RecordId,
    Type,
    FullName,
    FirstName,
    MiddleName,
    LastName,
    Email,
    ExternalId,
    TradingName,
    Phone,
    Risk(RiskKey),
    /// `risk` itself, which can only be cleared (`null`) as a whole.
    RiskWhole,
    /// Known and deliberately not imported (`_error`, `customer_id`, or `ignore` in a mapping).
    Ignore,
}

impl Target {
    /// The name used in mapping files, reports and messages: the API's snake_case field
    /// (`risk.occupation`), `first_name`, `middle_name`, `last_name` or `ignore`.
    pub fn name(self) -> &'static str {
        match self {
            Target::RecordId => META_ID,
            Target::Type => "type",
            Target::FullName => "full_name",
            Target::FirstName => "first_name",
            Target::MiddleName => "middle_name",
            Target::LastName => "last_name",
            Target::Email => "email",
            Target::ExternalId => "external_id",
            Target::TradingName => "trading_name",
            Target::Phone => "phone",
            Target::Risk(RiskKey::Occupation) => "risk.occupation",
            Target::Risk(RiskKey::SourceOfFunds) => "risk.source_of_funds",
            Target::Risk(RiskKey::Country) => "risk.country_of_residence",
            Target::Risk(RiskKey::Volume) => "risk.expected_monthly_volume",
            Target::Risk(RiskKey::IsPep) => "risk.is_pep",
            Target::RiskWhole => "risk",
            Target::Ignore => "ignore",
        }
    }

    /// A target as written in a mapping file or a preset: any of [`Target::name`] in
    /// snake_case or camelCase, or a risk answer by its leaf name (`occupation`).
    pub fn parse(text: &str) -> Option<Target> {
        let wanted = squash(text);
        TARGET_WORDS
            .iter()
            .find(|(word, _)| *word == wanted)
            .map(|&(_, t)| t)
    }

    /// Part of the name: first, middle or last name.
    pub fn is_name_part(self) -> bool {
        matches!(
            self,
            Target::FirstName | Target::MiddleName | Target::LastName
        )
    }
}

/// Every spelling a mapping file may use for a target, squashed.
const TARGET_WORDS: &[(&str, Target)] = &[
    ("icsyncid", Target::RecordId),
    ("type", Target::Type),
    ("fullname", Target::FullName),
    ("firstname", Target::FirstName),
    ("middlename", Target::MiddleName),
    ("lastname", Target::LastName),
    ("email", Target::Email),
    ("externalid", Target::ExternalId),
    ("tradingname", Target::TradingName),
    ("phone", Target::Phone),
    ("riskoccupation", Target::Risk(RiskKey::Occupation)),
    ("occupation", Target::Risk(RiskKey::Occupation)),
    ("risksourceoffunds", Target::Risk(RiskKey::SourceOfFunds)),
    ("sourceoffunds", Target::Risk(RiskKey::SourceOfFunds)),
    ("riskcountryofresidence", Target::Risk(RiskKey::Country)),
    ("countryofresidence", Target::Risk(RiskKey::Country)),
    ("riskexpectedmonthlyvolume", Target::Risk(RiskKey::Volume)),
    ("expectedmonthlyvolume", Target::Risk(RiskKey::Volume)),
    ("riskispep", Target::Risk(RiskKey::IsPep)),
    ("ispep", Target::Risk(RiskKey::IsPep)),
    ("risk", Target::RiskWhole),
    ("ignore", Target::Ignore),
];

/// Header words that mean a target, squashed, in priority order within a target: when a
/// file has several columns for one field, the one listed first here is tried first and the
/// others fill in where it is empty (a mobile number before a switchboard number).
const SYNONYMS: &[(&str, Target)] = &[
    // The API's own names (snake_case and camelCase squash alike) come first.
    ("type", Target::Type),
    ("customertype", Target::Type),
    ("fullname", Target::FullName),
    ("name", Target::FullName),
    ("nom", Target::FullName),
    ("nombre", Target::FullName),
    ("customername", Target::FullName),
    ("contactname", Target::FullName),
    ("clientname", Target::FullName),
    ("displayname", Target::FullName),
    ("firstname", Target::FirstName),
    ("givenname", Target::FirstName),
    ("forename", Target::FirstName),
    // Spreadsheets kept in other languages (German, French, Spanish, Italian, Dutch).
    ("vorname", Target::FirstName),
    ("prénom", Target::FirstName),
    ("prenom", Target::FirstName),
    ("nombredepila", Target::FirstName),
    ("voornaam", Target::FirstName),
    ("middlename", Target::MiddleName),
    ("additionalname", Target::MiddleName),
    ("lastname", Target::LastName),
    ("familyname", Target::LastName),
    ("surname", Target::LastName),
    ("nachname", Target::LastName),
    ("familienname", Target::LastName),
    ("nomdefamille", Target::LastName),
    ("apellido", Target::LastName),
    ("apellidos", Target::LastName),
    ("cognome", Target::LastName),
    ("achternaam", Target::LastName),
    ("email", Target::Email),
    ("emailaddress", Target::Email),
    ("mail", Target::Email),
    ("primaryemail", Target::Email),
    ("email1", Target::Email),
    ("email1value", Target::Email),
    ("workemail", Target::Email),
    ("email2address", Target::Email),
    ("email2value", Target::Email),
    ("emailadresse", Target::Email),
    ("mailadresse", Target::Email),
    ("courriel", Target::Email),
    ("adressecourriel", Target::Email),
    ("adresseemail", Target::Email),
    ("correo", Target::Email),
    ("correoelectrónico", Target::Email),
    ("correoelectronico", Target::Email),
    ("emailadres", Target::Email),
    ("externalid", Target::ExternalId),
    ("id", Target::ExternalId),
    ("contactid", Target::ExternalId),
    ("recordid", Target::ExternalId),
    ("leadid", Target::ExternalId),
    ("clientid", Target::ExternalId),
    ("crmid", Target::ExternalId),
    ("customernumber", Target::ExternalId),
    ("customerno", Target::ExternalId),
    ("kundennummer", Target::ExternalId),
    ("kundennr", Target::ExternalId),
    ("numéroclient", Target::ExternalId),
    ("numeroclient", Target::ExternalId),
    ("klantnummer", Target::ExternalId),
    ("tradingname", Target::TradingName),
    ("tradingas", Target::TradingName),
    ("dba", Target::TradingName),
    ("mobilephone", Target::Phone),
    ("mobile", Target::Phone),
    ("mobilephonenumber", Target::Phone),
    ("mobilenumber", Target::Phone),
    ("cellphone", Target::Phone),
    ("cell", Target::Phone),
    ("phone", Target::Phone),
    ("phonenumber", Target::Phone),
    ("telephonenumber", Target::Phone),
    ("tel", Target::Phone),
    ("primaryphone", Target::Phone),
    ("mobil", Target::Phone),
    ("mobiltelefon", Target::Phone),
    ("mobilnummer", Target::Phone),
    ("handy", Target::Phone),
    ("handynummer", Target::Phone),
    ("telefon", Target::Phone),
    ("telefonnummer", Target::Phone),
    ("portable", Target::Phone),
    ("téléphone", Target::Phone),
    ("telephone", Target::Phone),
    ("móvil", Target::Phone),
    ("movil", Target::Phone),
    ("celular", Target::Phone),
    ("teléfono", Target::Phone),
    ("telefono", Target::Phone),
    ("cellulare", Target::Phone),
    ("telefoonnummer", Target::Phone),
    ("phone1value", Target::Phone),
    ("businessphone", Target::Phone),
    ("workphone", Target::Phone),
    ("homephone", Target::Phone),
    ("otherphone", Target::Phone),
    ("riskoccupation", Target::Risk(RiskKey::Occupation)),
    ("occupation", Target::Risk(RiskKey::Occupation)),
    ("jobtitle", Target::Risk(RiskKey::Occupation)),
    ("profession", Target::Risk(RiskKey::Occupation)),
    ("beruf", Target::Risk(RiskKey::Occupation)),
    ("ocupación", Target::Risk(RiskKey::Occupation)),
    ("ocupacion", Target::Risk(RiskKey::Occupation)),
    ("profesión", Target::Risk(RiskKey::Occupation)),
    ("profesion", Target::Risk(RiskKey::Occupation)),
    ("beroep", Target::Risk(RiskKey::Occupation)),
    ("risksourceoffunds", Target::Risk(RiskKey::SourceOfFunds)),
    ("sourceoffunds", Target::Risk(RiskKey::SourceOfFunds)),
    ("riskcountryofresidence", Target::Risk(RiskKey::Country)),
    ("countryofresidence", Target::Risk(RiskKey::Country)),
    ("country", Target::Risk(RiskKey::Country)),
    ("land", Target::Risk(RiskKey::Country)),
    ("wohnsitzland", Target::Risk(RiskKey::Country)),
    ("pays", Target::Risk(RiskKey::Country)),
    ("país", Target::Risk(RiskKey::Country)),
    ("pais", Target::Risk(RiskKey::Country)),
    ("paese", Target::Risk(RiskKey::Country)),
    ("countrycode", Target::Risk(RiskKey::Country)),
    ("countryregion", Target::Risk(RiskKey::Country)),
    ("residencecountry", Target::Risk(RiskKey::Country)),
    ("mailingcountry", Target::Risk(RiskKey::Country)),
    ("homecountry", Target::Risk(RiskKey::Country)),
    ("homecountryregion", Target::Risk(RiskKey::Country)),
    ("address1country", Target::Risk(RiskKey::Country)),
    ("addresscountry", Target::Risk(RiskKey::Country)),
    ("businesscountryregion", Target::Risk(RiskKey::Country)),
    ("riskexpectedmonthlyvolume", Target::Risk(RiskKey::Volume)),
    ("expectedmonthlyvolume", Target::Risk(RiskKey::Volume)),
    ("monthlyvolume", Target::Risk(RiskKey::Volume)),
    ("riskispep", Target::Risk(RiskKey::IsPep)),
    ("ispep", Target::Risk(RiskKey::IsPep)),
    ("pep", Target::Risk(RiskKey::IsPep)),
    ("politicallyexposed", Target::Risk(RiskKey::IsPep)),
    ("politicallyexposedperson", Target::Risk(RiskKey::IsPep)),
    ("risk", Target::RiskWhole),
];

/// What a bare name header means beside the other name columns, where that differs from
/// the full name: "Name" or "Nom" beside a first-name column and no last-name one is the
/// family name (a German `Vorname;Name`, a French `Nom;Prénom`), and "Nombre" beside a
/// last-name column and no first-name one is the given name (a Spanish `Nombre;Apellidos`).
/// `parts` is (has a first-name column, has a last-name column).
fn name_in_context(squashed: &str, parts: (bool, bool)) -> Option<Target> {
    match (squashed, parts) {
        ("name" | "nom", (true, false)) => Some(Target::LastName),
        ("nombre", (false, true)) => Some(Target::FirstName),
        _ => None,
    }
}

/// A header as compared: lower case, letters and digits only (`E-mail 1 - Value` and
/// `email1value` are the same column; so are `full_name` and `fullName`).
pub fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The leaf of a member path: `country` of `address.country`.
fn leaf(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(_, leaf)| leaf)
}

/// The meta columns, matched exactly (they are written by icsync itself).
fn meta(name: &str) -> Option<Target> {
    match name {
        META_ID => Some(Target::RecordId),
        META_ERROR | META_CUSTOMER_ID => Some(Target::Ignore),
        _ => None,
    }
}

/// Why a column feeds what it feeds, shown in the dry-run table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// icsync's own meta columns.
    Meta,
    /// The user's mapping file.
    Mapping,
    /// The recognised vendor preset.
    Preset,
    /// The header is a known name or synonym of the field.
    Synonym,
    /// Nothing: the column is not imported (reported once per file).
    Unmapped,
}

/// The user's `[columns]` table: source header -> target, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Where it came from, for messages.
    pub source: String,
    entries: Vec<MappingEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MappingEntry {
    header: String,
    squashed: String,
    target: Target,
}

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read the mapping file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the mapping file {path} is larger than {MAX_MAPPING_BYTES} bytes; is it the right file?"
    )]
    TooLarge { path: String },
    #[error("the mapping file {path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error(
        "the mapping file {path} has no [columns] table (write one line per source column, \
         such as \"Vorname\" = \"first_name\")"
    )]
    NoColumns { path: String },
    #[error(
        "the mapping file {path}: {key}: only a [columns] table is read (\"Source Header\" = \
         \"target\")"
    )]
    UnknownKey { path: String, key: String },
    #[error(
        "the mapping file {path}: column {header:?}: {target:?} is not a field (use one of: \
         {})",
        TARGET_HELP
    )]
    UnknownTarget {
        path: String,
        header: String,
        target: String,
    },
    #[error(
        "the mapping file {path}: column {header:?}: the target must be a string such as \"email\""
    )]
    NotAString { path: String, header: String },
}

/// The targets a mapping may name, for messages and docs.
pub const TARGET_HELP: &str = "full_name, first_name, middle_name, last_name, email, \
     external_id, phone, type, trading_name, risk.occupation, risk.source_of_funds, \
     risk.country_of_residence, risk.expected_monthly_volume, risk.is_pep, ignore";

/// A mapping file is a few lines; anything bigger is a mistake.
pub const MAX_MAPPING_BYTES: u64 = 256 * 1024;

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let io = |source| MappingError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_MAPPING_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_MAPPING_BYTES {
            return Err(MappingError::TooLarge { path: shown });
        }
        Mapping::parse(&text, &shown)
    }

    /// Parses the text of a mapping file; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Mapping, MappingError> {
        let path = source.to_string();
        // A Notepad-saved file starts with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let table: toml::Table = toml::from_str(text).map_err(|e| MappingError::Toml {
            path: path.clone(),
            message: e.message().to_string(),
        })?;
        let mut columns = None;
        for (key, value) in table {
            match (key.as_str(), value) {
                ("columns", toml::Value::Table(t)) => columns = Some(t),
                _ => return Err(MappingError::UnknownKey { path, key }),
            }
        }
        let Some(columns) = columns.filter(|c| !c.is_empty()) else {
            return Err(MappingError::NoColumns { path });
        };
        let mut entries = Vec::with_capacity(columns.len());
        for (header, value) in columns {
            let toml::Value::String(target_text) = value else {
                return Err(MappingError::NotAString { path, header });
            };
            let Some(target) = Target::parse(&target_text).filter(|t| *t != Target::RecordId)
            else {
                return Err(MappingError::UnknownTarget {
                    path,
                    header,
                    target: target_text,
                });
            };
            entries.push(MappingEntry {
                squashed: squash(&header),
                header,
                target,
            });
        }
        Ok(Mapping {
            source: path,
            entries,
        })
    }

    fn find(&self, name: &str) -> Option<(usize, Target)> {
        let exact = self.entries.iter().position(|e| e.header == name);
        let squashed = || {
            let s = squash(name);
            self.entries.iter().position(|e| e.squashed == s)
        };
        exact.or_else(squashed).map(|i| (i, self.entries[i].target))
    }

    /// Headers the mapping names that `plan` does not have, for a warning.
    pub fn missing_from(&self, plan: &Plan) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| {
                !plan
                    .columns
                    .iter()
                    .any(|c| c.name == e.header || squash(&c.name) == e.squashed)
            })
            .map(|e| e.header.as_str())
            .collect()
    }
}

/// One source column and what it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// As written in the file (a JSON member path is dotted: `address.country`).
    pub name: String,
    /// `None` when nothing: not imported.
    pub target: Option<Target>,
    pub how: How,
    /// Order among the columns feeding the same target (lower is tried first).
    rank: (u8, usize),
}

/// Which columns feed which target, for one file. Built once from a header (CSV, xlsx) or
/// grown member by member (JSON, whose objects may differ in members).
#[derive(Debug, Clone)]
pub struct Plan {
    pub columns: Vec<Column>,
    /// The recognised vendor format, if any.
    pub preset: Option<&'static Preset>,
    mapping: Option<std::sync::Arc<Mapping>>,
    /// Per target, the columns feeding it in the order they are tried.
    feeds: Vec<(Target, Vec<usize>)>,
    by_name: HashMap<String, usize>,
    /// Whether the header has a first-name and a last-name column (by synonym), which
    /// decides what a bare "Name" means: see [`name_in_context`].
    name_parts: (bool, bool),
}

/// Columns a plan keeps track of at most (JSON objects can carry any members): past that,
/// new members are not imported and are reported as one line.
pub const MAX_COLUMNS: usize = 4096;

impl Plan {
    /// The plan for a file whose columns are `names` (a header row, or the member paths of
    /// the first JSON object): the preset is chosen from them.
    pub fn new(names: &[String], mapping: Option<std::sync::Arc<Mapping>>) -> Plan {
        let squashed: Vec<String> = names.iter().map(|n| squash(n)).collect();
        let preset = recognise(&squashed);
        let has = |target: Target| {
            squashed
                .iter()
                .any(|h| SYNONYMS.iter().any(|&(w, t)| t == target && w == h))
        };
        let mut plan = Plan {
            columns: Vec::with_capacity(names.len()),
            preset,
            mapping,
            feeds: Vec::new(),
            by_name: HashMap::new(),
            name_parts: (has(Target::FirstName), has(Target::LastName)),
        };
        for name in names {
            plan.add(name);
        }
        plan
    }

    /// The column named `name`, added (and matched) the first time it is seen. `None` past
    /// [`MAX_COLUMNS`].
    pub fn column(&mut self, name: &str) -> Option<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return Some(i);
        }
        (self.columns.len() < MAX_COLUMNS).then(|| self.add(name))
    }

    fn add(&mut self, name: &str) -> usize {
        let index = self.columns.len();
        let (target, how, rank) = self.resolve(name);
        self.columns.push(Column {
            name: name.to_string(),
            target,
            how,
            rank,
        });
        // A repeated header keeps its first column for lookups by name.
        self.by_name.entry(name.to_string()).or_insert(index);
        if let Some(target) = target {
            let feeds = match self.feeds.iter_mut().find(|(t, _)| *t == target) {
                Some((_, feeds)) => feeds,
                None => {
                    self.feeds.push((target, Vec::new()));
                    self.feeds.sort_by_key(|(t, _)| *t);
                    let at = self.feeds.iter().position(|(t, _)| *t == target);
                    &mut self.feeds[at.unwrap_or_default()].1
                }
            };
            feeds.push(index);
            let columns = &self.columns;
            feeds.sort_by_key(|&i| (columns[i].rank, i));
        }
        index
    }

    fn resolve(&self, name: &str) -> (Option<Target>, How, (u8, usize)) {
        if let Some(t) = meta(name) {
            return (Some(t), How::Meta, (0, 0));
        }
        if let Some((i, t)) = self.mapping.as_ref().and_then(|m| m.find(name)) {
            return (Some(t), How::Mapping, (1, i));
        }
        let squashed = squash(name);
        if let Some(preset) = self.preset {
            let hit = preset
                .columns
                .iter()
                .position(|(header, _)| squash(header) == squashed);
            if let Some(i) = hit {
                // Presets are checked by a unit test to name only known targets.
                let target = Target::parse(preset.columns[i].1).unwrap_or(Target::Ignore);
                return (Some(target), How::Preset, (2, i));
            }
        }
        if let Some(t) = name_in_context(&squashed, self.name_parts) {
            return (Some(t), How::Synonym, (3, SYNONYMS.len()));
        }
        let synonym = |word: &str| SYNONYMS.iter().position(|(w, _)| *w == word);
        let hit = synonym(&squashed).or_else(|| leaf(name).and_then(|l| synonym(&squash(l))));
        match hit {
            Some(i) => (Some(SYNONYMS[i].1), How::Synonym, (3, i)),
            None => (None, How::Unmapped, (4, 0)),
        }
    }

    /// The columns feeding `target`, in the order they are tried.
    pub fn feeding(&self, target: Target) -> &[usize] {
        self.feeds
            .iter()
            .find(|(t, _)| *t == target)
            .map_or(&[], |(_, f)| f.as_slice())
    }

    /// Every target fed, in a fixed order (the order of [`Target`]), with its columns.
    pub fn feeds(&self) -> impl ExactSizeIterator<Item = (Target, &[usize])> {
        self.feeds.iter().map(|(t, f)| (*t, f.as_slice()))
    }

    /// The `i`th target of [`Plan::feeds`].
    pub fn target_at(&self, i: usize) -> Target {
        self.feeds[i].0
    }

    /// Whether some column can give the customer's name.
    pub fn has_name(&self) -> bool {
        [Target::FullName, Target::FirstName, Target::LastName]
            .into_iter()
            .any(|t| !self.feeding(t).is_empty())
    }

    /// Columns that feed nothing, by name (empty headers left out).
    pub fn unmapped(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.target.is_none() && !c.name.trim().is_empty())
            .map(|c| c.name.as_str())
    }

    pub fn mapping(&self) -> Option<&Mapping> {
        self.mapping.as_deref()
    }
}

/// The preset whose signature the header set holds; the most specific one when several do.
fn recognise(squashed: &[String]) -> Option<&'static Preset> {
    PRESETS
        .iter()
        .filter(|p| {
            p.signature
                .iter()
                .all(|s| squashed.iter().any(|h| *h == squash(s)))
        })
        .max_by_key(|p| p.signature.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn target_of(plan: &Plan, name: &str) -> Option<Target> {
        plan.columns.iter().find(|c| c.name == name)?.target
    }

    #[test]
    fn spreadsheets_in_other_languages_need_no_mapping() {
        let plan = Plan::new(
            &names(&[
                "Kundennummer",
                "Vorname",
                "Nachname",
                "E-Mail-Adresse",
                "Telefon",
                "Land",
                "Beruf",
            ]),
            None,
        );
        let want = [
            ("Kundennummer", Target::ExternalId),
            ("Vorname", Target::FirstName),
            ("Nachname", Target::LastName),
            ("E-Mail-Adresse", Target::Email),
            ("Telefon", Target::Phone),
            ("Land", Target::Risk(RiskKey::Country)),
            ("Beruf", Target::Risk(RiskKey::Occupation)),
        ];
        for (header, target) in want {
            assert_eq!(target_of(&plan, header), Some(target), "{header}");
        }
        let french = Plan::new(
            &names(&["Nom", "Prénom", "Courriel", "Téléphone", "Pays"]),
            None,
        );
        assert_eq!(target_of(&french, "Prénom"), Some(Target::FirstName));
        assert_eq!(target_of(&french, "Courriel"), Some(Target::Email));
        assert_eq!(target_of(&french, "Téléphone"), Some(Target::Phone));
        assert_eq!(
            target_of(&french, "Pays"),
            Some(Target::Risk(RiskKey::Country))
        );
    }

    /// A bare "Name" is the full name alone, the family name beside a first name only, and
    /// still the full name where a last-name column exists (Google's `Name`, `Given Name`,
    /// `Family Name`).
    #[test]
    fn a_bare_name_header_means_what_the_other_name_columns_leave() {
        let cases: [(&[&str], &str, Target); 7] = [
            (&["Name", "E-mail"], "Name", Target::FullName),
            (&["Vorname", "Name"], "Name", Target::LastName),
            (&["Nom", "Prénom"], "Nom", Target::LastName),
            (&["Nom", "Courriel"], "Nom", Target::FullName),
            (&["Nombre", "Apellidos"], "Nombre", Target::FirstName),
            (&["Nombre", "Correo"], "Nombre", Target::FullName),
            (
                &["Name", "Given Name", "Family Name"],
                "Name",
                Target::FullName,
            ),
        ];
        for (headers, header, target) in cases {
            let plan = Plan::new(&names(headers), None);
            assert_eq!(target_of(&plan, header), Some(target), "{headers:?}");
        }
    }

    #[test]
    fn headers_match_without_case_spaces_or_punctuation() {
        let plan = Plan::new(
            &names(&[
                "E-mail",
                "Email Address",
                "FULL NAME",
                "fullName",
                "Mobile Phone",
                "risk.countryOfResidence",
            ]),
            None,
        );
        assert_eq!(target_of(&plan, "E-mail"), Some(Target::Email));
        assert_eq!(target_of(&plan, "Email Address"), Some(Target::Email));
        assert_eq!(target_of(&plan, "FULL NAME"), Some(Target::FullName));
        assert_eq!(target_of(&plan, "fullName"), Some(Target::FullName));
        assert_eq!(target_of(&plan, "Mobile Phone"), Some(Target::Phone));
        assert_eq!(
            target_of(&plan, "risk.countryOfResidence"),
            Some(Target::Risk(RiskKey::Country))
        );
    }

    #[test]
    fn a_nested_member_matches_by_its_leaf_name() {
        let plan = Plan::new(&names(&["profile.occupation", "address.country"]), None);
        assert_eq!(
            target_of(&plan, "profile.occupation"),
            Some(Target::Risk(RiskKey::Occupation))
        );
        assert_eq!(
            target_of(&plan, "address.country"),
            Some(Target::Risk(RiskKey::Country))
        );
    }

    #[test]
    fn several_columns_for_one_field_are_tried_mobile_first() {
        let plan = Plan::new(&names(&["Home Phone", "Phone", "Mobile"]), None);
        let order: Vec<&str> = plan
            .feeding(Target::Phone)
            .iter()
            .map(|&i| plan.columns[i].name.as_str())
            .collect();
        assert_eq!(order, ["Mobile", "Phone", "Home Phone"]);
    }

    #[test]
    fn unknown_columns_are_listed_once_and_meta_columns_are_not_unknown() {
        let plan = Plan::new(
            &names(&["full_name", "Lifecycle Stage", "_error", "customer_id", ""]),
            None,
        );
        assert_eq!(plan.unmapped().collect::<Vec<_>>(), ["Lifecycle Stage"]);
        assert!(plan.has_name());
        assert!(!Plan::new(&names(&["Kunde", "E-Mail"]), None).has_name());
    }

    #[test]
    fn a_mapping_file_wins_over_synonyms_and_names_targets_loosely() {
        let mapping = Mapping::parse(
            "[columns]\n\"Vorname\" = \"first_name\"\n\"Nachname\" = \"lastName\"\n\
             \"Land\" = \"country_of_residence\"\n\"Email\" = \"ignore\"\n",
            "m.toml",
        )
        .unwrap();
        let plan = Plan::new(
            &names(&["Vorname", "nachname", "Land", "Email", "Telefonie"]),
            Some(Arc::new(mapping)),
        );
        assert_eq!(target_of(&plan, "Vorname"), Some(Target::FirstName));
        assert_eq!(target_of(&plan, "nachname"), Some(Target::LastName));
        assert_eq!(
            target_of(&plan, "Land"),
            Some(Target::Risk(RiskKey::Country))
        );
        assert_eq!(target_of(&plan, "Email"), Some(Target::Ignore));
        assert_eq!(plan.columns[0].how, How::Mapping);
        assert_eq!(plan.unmapped().collect::<Vec<_>>(), ["Telefonie"]);
        assert!(plan.has_name());
    }

    #[test]
    fn mapping_file_mistakes_are_named() {
        let err = |text: &str| Mapping::parse(text, "m.toml").unwrap_err().to_string();
        assert!(err("[columns]\n\"A\" = \"nickname\"").contains("\"nickname\" is not a field"));
        assert!(err("[columns]\n\"A\" = 3").contains("must be a string"));
        assert!(err("[colums]\n\"A\" = \"email\"").contains("colums"));
        assert!(err("").contains("no [columns] table"));
        assert!(err("[columns\n").contains("not valid TOML"));
        assert!(Mapping::parse("\u{feff}[columns]\nA = \"email\"\n", "m").is_ok());
    }

    #[test]
    fn json_members_are_added_as_they_appear() {
        let mut plan = Plan::new(&names(&["name"]), None);
        let email = plan.column("email").unwrap();
        assert_eq!(plan.column("email"), Some(email));
        assert_eq!(plan.columns[email].target, Some(Target::Email));
        assert_eq!(plan.feeding(Target::Email), &[email]);
    }

    #[test]
    fn every_preset_names_known_targets_only() {
        for preset in PRESETS {
            for (header, target) in preset.columns {
                assert!(
                    Target::parse(target).is_some(),
                    "{}: {header} -> {target}",
                    preset.name
                );
            }
        }
    }
}
