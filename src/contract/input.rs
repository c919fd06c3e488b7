//! The request body: parsing a JSON value into a validated [`CustomerInput`], reporting every
//! bad field at once, and writing it back as the canonical snake_case body.
//!
//! Absent and `null` are kept apart all the way through ([`Patch`]): on an update an absent
//! field is left as stored, a `null` clears it.

use serde_json::{Map, Value};

use super::body::RequestBody;
use super::error::FieldError;
use super::types::{CustomerType, COUNTRY_CODES_NOTE};
use super::{MAX_PHONE_CHARS, MAX_TEXT_CHARS};

/// One optional field of a request: not sent, sent as `null`, or sent with a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn as_set(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The stored value after applying this patch to `current`.
    pub fn apply(&self, current: Option<T>) -> Option<T>
    where
        T: Clone,
    {
        match self {
            Patch::Absent => current,
            Patch::Null => None,
            Patch::Set(v) => Some(v.clone()),
        }
    }

    fn to_json(&self, f: impl Fn(&T) -> Value) -> Option<Value> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(Value::Null),
            Patch::Set(v) => Some(f(v)),
        }
    }
}

/// Risk pre-answers as sent: each key may be absent, null or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RiskInput {
    pub occupation: Patch<String>,
    pub source_of_funds: Patch<String>,
    pub country_of_residence: Patch<String>,
    pub expected_monthly_volume: Patch<u64>,
    pub is_pep: Patch<bool>,
}

/// A validated create-or-upsert request body. Strings are trimmed (except `external_id`,
/// which is matched exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerInput {
    pub customer_type: Patch<CustomerType>,
    pub full_name: String,
    pub email: Patch<String>,
    pub external_id: Patch<String>,
    pub trading_name: Patch<String>,
    pub phone: Patch<String>,
    pub risk: Patch<RiskInput>,
}

/// An email as compared for matching: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    FullName,
    Email,
    ExternalId,
    TradingName,
    Phone,
    Risk,
}

const FIELDS: [(Field, &str, &str); 7] = [
    (Field::Type, "type", "type"),
    (Field::FullName, "full_name", "fullName"),
    (Field::Email, "email", "email"),
    (Field::ExternalId, "external_id", "externalId"),
    (Field::TradingName, "trading_name", "tradingName"),
    (Field::Phone, "phone", "phone"),
    (Field::Risk, "risk", "risk"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum RiskField {
    Occupation,
    SourceOfFunds,
    Country,
    Volume,
    IsPep,
}

const RISK_FIELDS: [(RiskField, &str, &str); 5] = [
    (RiskField::Occupation, "occupation", "occupation"),
    (RiskField::SourceOfFunds, "source_of_funds", "sourceOfFunds"),
    (
        RiskField::Country,
        "country_of_residence",
        "countryOfResidence",
    ),
    (
        RiskField::Volume,
        "expected_monthly_volume",
        "expectedMonthlyVolume",
    ),
    (RiskField::IsPep, "is_pep", "isPep"),
];

/// The members of one object sorted onto the known names (snake_case or camelCase).
struct Members<'a, F> {
    /// Fields given under exactly one spelling, in the documented order.
    found: Vec<(F, &'static str, &'a Value)>,
    /// Every known field that was given at all, including those given twice.
    given: Vec<F>,
}

/// Sorts an object's members onto the known names, reporting unknown members and fields
/// given more than once (under both spellings, or a name in `repeated`: one the JSON text
/// held twice). A field given more than once gets that one error and is not validated
/// further, so each field is reported once.
fn collect_members<'a, F: Copy + PartialEq>(
    object: &'a Map<String, Value>,
    repeated: &[&str],
    known: &[(F, &'static str, &'static str)],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Members<'a, F> {
    // Per known field: its canonical name, the value first seen, every spelling sent.
    let mut seen: Vec<(F, &'static str, &'a Value, Vec<&'a str>)> = Vec::new();
    let mut unknown = Vec::new();
    for (name, value) in object {
        let times = if repeated.contains(&name.as_str()) {
            2
        } else {
            1
        };
        match known
            .iter()
            .find(|(_, snake, camel)| name == snake || name == camel)
        {
            Some(&(f, snake, _)) => match seen.iter_mut().find(|e| e.0 == f) {
                Some(entry) => entry.3.push(name),
                None => seen.push((f, snake, value, vec![name.as_str(); times])),
            },
            None => unknown.push(name.as_str()),
        }
    }
    // Known fields first, in the documented order, then unknown ones.
    seen.sort_by_key(|e| known.iter().position(|k| k.0 == e.0));
    let mut members = Members {
        found: Vec::new(),
        given: seen.iter().map(|e| e.0).collect(),
    };
    for (f, snake, value, spellings) in seen {
        match spellings.as_slice() {
            [_] => members.found.push((f, snake, value)),
            [first, second, ..] if first == second => errors.push(FieldError::new(
                format!("{prefix}{snake}"),
                repeated_message(first),
            )),
            [first, second, ..] => errors.push(FieldError::new(
                format!("{prefix}{snake}"),
                format!("given twice (as {first} and {second}); send one"),
            )),
            [] => {}
        }
    }
    for name in unknown {
        let hint = suggestion(name, known)
            .map(|s| format!("; did you mean {prefix}{s}?"))
            .unwrap_or_default();
        errors.push(FieldError::new(
            format!("{prefix}{name}"),
            format!("unknown field{hint}"),
        ));
    }
    members
}

/// The error for a member name the JSON text held more than once.
fn repeated_message(name: &str) -> String {
    format!("given twice ({name} appears more than once); send it once")
}

fn suggestion<F>(name: &str, known: &[(F, &'static str, &'static str)]) -> Option<&'static str> {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let wanted = squash(name);
    known
        .iter()
        .find(|(_, snake, _)| squash(snake) == wanted)
        .map(|(_, snake, _)| *snake)
}

/// Characters no text field may hold (after trimming): C0 controls (a newline or an escape
/// forges lines in logs and reports), DEL, C1 controls, and the bidirectional embeddings,
/// overrides and isolates (U+202E shows "gpj.exe" as "exe.jpg").
pub fn is_forbidden_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text rules shared by the string fields.
struct TextRule {
    max: usize,
    trim: bool,
}

fn text(
    value: &Value,
    rule: TextRule,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let Value::String(raw) = value else {
        errors.push(FieldError::new(field, "must be a string"));
        return None;
    };
    let s = if rule.trim { raw.trim() } else { raw.as_str() };
    if s.is_empty() {
        let message = if field == "full_name" || field == "fullName" {
            "must not be blank"
        } else {
            "must not be blank (send null or leave it out to have none)"
        };
        errors.push(FieldError::new(field, message));
        return None;
    }
    if let Some(c) = s.chars().find(|c| is_forbidden_char(*c)) {
        errors.push(FieldError::new(
            field,
            format!(
                "must not contain control or bidirectional-override characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
        return None;
    }
    let len = s.chars().count();
    if len > rule.max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {} characters (got {len})", rule.max),
        ));
        return None;
    }
    Some(s.to_string())
}

fn optional<T>(value: &Value, parse: impl FnOnce(&Value) -> Option<T>) -> Option<Patch<T>> {
    if value.is_null() {
        Some(Patch::Null)
    } else {
        parse(value).map(Patch::Set)
    }
}

/// The longest local part (before the `@`) of an email address.
const MAX_EMAIL_LOCAL_CHARS: usize = 64;
/// The longest label (between dots) of an email address's domain.
const MAX_DOMAIN_LABEL_CHARS: usize = 63;

/// An address as `docs/openapi.yaml`'s `EmailAddress` patterns say, and nothing more:
/// `local@domain`, a dot-atom local part of 1 to 64 characters, a domain of at least two
/// labels of letters, digits and inner hyphens, 1 to 63 characters each. Letters include
/// internationalised ones (RFC 6531: `josé@müller.de`), any character of the Basic
/// Multilingual Plane above U+00A0 that is neither white space nor refused in all text
/// ([`is_forbidden_char`]); the spec's character classes list exactly those ranges. (The
/// total, at most 255 characters, is the text rule's.) One rule the spec can state as a
/// pattern, so generated clients and this server accept the same addresses.
fn is_valid_email(s: &str) -> bool {
    let is_atext = |c: char| {
        c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c) || is_intl_letter(c)
    };
    let is_label = |l: &str| {
        (1..=MAX_DOMAIN_LABEL_CHARS).contains(&l.chars().count())
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_intl_letter(c))
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    (1..=MAX_EMAIL_LOCAL_CHARS).contains(&local.chars().count())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
        && domain.split('.').count() >= 2
        && domain.split('.').all(is_label)
}

/// A non-ASCII character an address may hold: in the Basic Multilingual Plane above U+00A0,
/// not white space and not a character refused in all text. The spec's class for it is
/// `\xA1-\u167F\u1681-\u1FFF\u200B-\u2027\u2030-\u205E\u2060-\u2065\u206A-\u2FFF\u3001-\uD7FF\uE000-\uFFFF`
/// (the test `intl_letters_are_the_specs_ranges` holds the two together).
fn is_intl_letter(c: char) -> bool {
    ('\u{a1}'..='\u{ffff}').contains(&c) && !c.is_whitespace() && !is_forbidden_char(c)
}

fn is_valid_phone(s: &str) -> bool {
    let rest = s.strip_prefix('+').unwrap_or(s);
    rest.chars().any(|c| c.is_ascii_digit())
        && rest
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}

fn is_country_code(s: &str) -> bool {
    s.len() == 2
        && s.bytes().all(|b| b.is_ascii_uppercase())
        && isocountry::CountryCode::for_alpha2(s).is_ok()
}

/// A non-negative whole number that fits in 64 bits: `2500`, or `2500.0` (JSON does not
/// tell them apart as numbers, and neither does JSON Schema's `integer`).
fn whole_number(v: &Value) -> Option<u64> {
    const LIMIT: f64 = 18_446_744_073_709_551_616.0; // 2^64
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < LIMIT)
            .map(|f| f as u64)
    })
}

fn parse_risk(value: &Value, repeated: &[&str], errors: &mut Vec<FieldError>) -> Option<RiskInput> {
    let Value::Object(object) = value else {
        errors.push(FieldError::new("risk", "must be an object"));
        return None;
    };
    let before = errors.len();
    let mut risk = RiskInput::default();
    let members = collect_members(object, repeated, &RISK_FIELDS, "risk.", errors);
    for (f, name, v) in members.found {
        let field = format!("risk.{name}");
        let field = field.as_str();
        match f {
            RiskField::Occupation | RiskField::SourceOfFunds => {
                let rule = || TextRule {
                    max: MAX_TEXT_CHARS,
                    trim: true,
                };
                let p = optional(v, |v| text(v, rule(), field, errors));
                if let Some(p) = p {
                    if f == RiskField::Occupation {
                        risk.occupation = p;
                    } else {
                        risk.source_of_funds = p;
                    }
                }
            }
            RiskField::Country => {
                if let Some(p) = optional(v, |v| match v.as_str() {
                    Some(s) if is_country_code(s) => Some(s.to_string()),
                    _ => {
                        errors.push(FieldError::new(
                            field,
                            format!("must be {COUNTRY_CODES_NOTE}"),
                        ));
                        None
                    }
                }) {
                    risk.country_of_residence = p;
                }
            }
            RiskField::Volume => {
                if let Some(p) = optional(v, |v| match whole_number(v) {
                    Some(n) => Some(n),
                    None => {
                        errors.push(FieldError::new(
                            field,
                            "must be a whole number of currency units, 0 or more",
                        ));
                        None
                    }
                }) {
                    risk.expected_monthly_volume = p;
                }
            }
            RiskField::IsPep => {
                if let Some(p) = optional(v, |v| match v.as_bool() {
                    Some(b) => Some(b),
                    None => {
                        errors.push(FieldError::new(field, "must be true or false"));
                        None
                    }
                }) {
                    risk.is_pep = p;
                }
            }
        }
    }
    (errors.len() == before).then_some(risk)
}

/// Validates a request body given as a JSON value, returning every bad field at once.
pub fn parse_input(body: &Value) -> Result<CustomerInput, Vec<FieldError>> {
    validate(body, &[], &[])
}

/// Validates a request body as received: like [`parse_input`], and a member name the JSON
/// text repeated is refused as a field given twice. A body with a repeated member is never
/// valid (wherever the repeat was, it names a field).
pub fn parse_request(body: &RequestBody) -> Result<CustomerInput, Vec<FieldError>> {
    let parsed = validate(
        &body.value,
        &body.repeated_in(""),
        &body.repeated_in("risk"),
    );
    match (parsed, body.repeated.first()) {
        (Ok(_), Some(r)) => {
            let field = [r.parent.as_str(), r.name.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(".");
            Err(vec![FieldError::new(
                field,
                format!(
                    "given twice ({} appears more than once); send it once",
                    r.name
                ),
            )])
        }
        (parsed, _) => parsed,
    }
}

fn validate(
    body: &Value,
    repeated: &[&str],
    risk_repeated: &[&str],
) -> Result<CustomerInput, Vec<FieldError>> {
    let Value::Object(object) = body else {
        return Err(vec![FieldError::new(
            "",
            "the body must be a JSON object of customer fields",
        )]);
    };
    let mut errors = Vec::new();
    let mut customer_type = Patch::Absent;
    let mut full_name = None;
    let mut email = Patch::Absent;
    let mut external_id = Patch::Absent;
    let mut trading_name = Patch::Absent;
    let mut phone = Patch::Absent;
    let mut risk = Patch::Absent;
    let text_rule = |max| TextRule { max, trim: true };

    let members = collect_members(object, repeated, &FIELDS, "", &mut errors);
    let full_name_given = members.given.contains(&Field::FullName);
    for (f, name, v) in members.found {
        let e = &mut errors;
        match f {
            Field::Type => {
                if let Some(p) = optional(v, |v| {
                    let parsed = v.as_str().and_then(CustomerType::parse);
                    if parsed.is_none() {
                        e.push(FieldError::new(name, "must be INDIVIDUAL or SOLE_TRADER"));
                    }
                    parsed
                }) {
                    customer_type = p;
                }
            }
            Field::FullName => {
                if v.is_null() {
                    e.push(FieldError::new(name, "is required"));
                } else {
                    full_name = text(v, text_rule(MAX_TEXT_CHARS), name, e);
                }
            }
            Field::Email => {
                if let Some(p) = optional(v, |v| {
                    let s = text(v, text_rule(MAX_TEXT_CHARS), name, e)?;
                    if is_valid_email(&s) {
                        Some(s)
                    } else {
                        e.push(FieldError::new(name, "is not a valid email address"));
                        None
                    }
                }) {
                    email = p;
                }
            }
            Field::ExternalId => {
                let rule = TextRule {
                    max: MAX_TEXT_CHARS,
                    trim: false,
                };
                if let Some(p) = optional(v, |v| text(v, rule, name, e)) {
                    external_id = p;
                }
            }
            Field::TradingName => {
                if let Some(p) = optional(v, |v| text(v, text_rule(MAX_TEXT_CHARS), name, e)) {
                    trading_name = p;
                }
            }
            Field::Phone => {
                if let Some(p) = optional(v, |v| {
                    let s = text(v, text_rule(MAX_PHONE_CHARS), name, e)?;
                    if is_valid_phone(&s) {
                        Some(s)
                    } else {
                        e.push(FieldError::new(
                            name,
                            "must be digits with an optional leading +; spaces and dashes are allowed",
                        ));
                        None
                    }
                }) {
                    phone = p;
                }
            }
            Field::Risk => {
                if let Some(p) = optional(v, |v| parse_risk(v, risk_repeated, e)) {
                    risk = p;
                }
            }
        }
    }
    if !full_name_given {
        errors.push(FieldError::new("full_name", "is required"));
    }
    // Errors were pushed per field in documented order, then unknown fields; keep the
    // missing full_name next to its neighbours.
    errors.sort_by_key(|e| field_rank(&e.field));
    // One error per field: the first (the sort is stable) says what to fix first.
    let mut reported = std::collections::HashSet::new();
    errors.retain(|e| reported.insert(e.field.clone()));
    match (errors.is_empty(), full_name) {
        (true, Some(full_name)) => Ok(CustomerInput {
            customer_type,
            full_name,
            email,
            external_id,
            trading_name,
            phone,
            risk,
        }),
        _ => Err(errors),
    }
}

fn field_rank(field: &str) -> usize {
    let top = field.split('.').next().unwrap_or(field);
    FIELDS
        .iter()
        .position(|(_, snake, _)| *snake == top)
        .unwrap_or(FIELDS.len())
}

impl RiskInput {
    fn to_body(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put(
            "occupation",
            self.occupation.to_json(|s| Value::from(s.as_str())),
        );
        put(
            "source_of_funds",
            self.source_of_funds.to_json(|s| Value::from(s.as_str())),
        );
        put(
            "country_of_residence",
            self.country_of_residence
                .to_json(|s| Value::from(s.as_str())),
        );
        put(
            "expected_monthly_volume",
            self.expected_monthly_volume.to_json(|n| Value::from(*n)),
        );
        put("is_pep", self.is_pep.to_json(|b| Value::from(*b)));
        Value::Object(m)
    }
}

impl CustomerInput {
    /// A minimal input with only a name.
    pub fn named(full_name: impl Into<String>) -> Self {
        CustomerInput {
            customer_type: Patch::Absent,
            full_name: full_name.into(),
            email: Patch::Absent,
            external_id: Patch::Absent,
            trading_name: Patch::Absent,
            phone: Patch::Absent,
            risk: Patch::Absent,
        }
    }

    /// The canonical request body: snake_case names, absent fields left out, nulls kept.
    pub fn to_body(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put(
            "type",
            self.customer_type.to_json(|t| Value::from(t.as_str())),
        );
        put("full_name", Some(Value::from(self.full_name.as_str())));
        put("email", self.email.to_json(|s| Value::from(s.as_str())));
        put(
            "external_id",
            self.external_id.to_json(|s| Value::from(s.as_str())),
        );
        put(
            "trading_name",
            self.trading_name.to_json(|s| Value::from(s.as_str())),
        );
        put("phone", self.phone.to_json(|s| Value::from(s.as_str())));
        put("risk", self.risk.to_json(RiskInput::to_body));
        Value::Object(m)
    }

    /// The email this input would be matched on, normalised.
    pub fn match_email(&self) -> Option<String> {
        self.email.as_set().map(|e| normalize_email(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn err(body: Value) -> Vec<FieldError> {
        parse_input(&body).expect_err("should be invalid")
    }

    #[test]
    fn minimal_body_is_a_name() {
        let input = parse_input(&json!({"full_name": "  Ada Lovelace "})).unwrap();
        assert_eq!(input, CustomerInput::named("Ada Lovelace"));
    }

    #[test]
    fn full_name_is_required_and_not_blank_or_null() {
        assert_eq!(fields(&err(json!({}))), ["full_name"]);
        assert_eq!(err(json!({"full_name": "   "}))[0].field, "full_name");
        assert_eq!(err(json!({"full_name": null}))[0].message, "is required");
        assert_eq!(err(json!({"full_name": 5}))[0].message, "must be a string");
    }

    #[test]
    fn control_and_bidi_override_characters_are_refused_in_every_text_field() {
        for bad in [
            "Ada\nLovelace",
            "Ada\u{1b}[31m",
            "Ada\u{0}",
            "Ada\u{7f}",
            "Ada\u{85}x",
            "\u{202e}gpj.exe",
            "a\u{2066}b",
        ] {
            for field in ["full_name", "external_id", "trading_name"] {
                let mut body = json!({"full_name": "A"});
                body[field] = json!(bad);
                let e = err(body);
                assert_eq!(fields(&e), [field], "{bad:?}");
                assert!(
                    e[0].message.starts_with("must not contain control"),
                    "{:?}",
                    e[0]
                );
            }
            let e = err(json!({"full_name": "A", "risk": {"occupation": bad}}));
            assert_eq!(fields(&e), ["risk.occupation"], "{bad:?}");
        }
        // Whitespace around a value is trimmed first, as before; letters of any script pass.
        let ok = parse_input(&json!({"full_name": "\tZoë Ñúñez 李 \u{85}\n"})).unwrap();
        assert_eq!(ok, CustomerInput::named("Zoë Ñúñez 李"));
        assert!(parse_input(&json!({"full_name": "مرحبا Ada"})).is_ok());
    }

    #[test]
    fn lengths_are_counted_in_characters_at_the_boundary() {
        // 255 two-byte characters are 510 bytes but within the limit.
        let at = "é".repeat(255);
        assert!(parse_input(&json!({"full_name": at})).is_ok());
        let over = "é".repeat(256);
        let e = err(json!({"full_name": over}));
        assert_eq!(e[0].message, "must be at most 255 characters (got 256)");
        for field in ["external_id", "trading_name"] {
            assert!(parse_input(&json!({"full_name": "A", field: "x".repeat(255)})).is_ok());
            assert_eq!(
                fields(&err(json!({"full_name": "A", field: "x".repeat(256)}))),
                [field]
            );
        }
        let phone_at = format!("+{}", "1".repeat(31));
        assert!(parse_input(&json!({"full_name": "A", "phone": phone_at})).is_ok());
        let phone_over = format!("+{}", "1".repeat(32));
        assert_eq!(
            fields(&err(json!({"full_name": "A", "phone": phone_over}))),
            ["phone"]
        );
        let local = "a".repeat(64);
        // 190 characters in DNS labels of at most 63 characters each.
        let domain = format!("{0}.{0}.{0}.{1}.io", "d".repeat(60), "d".repeat(4));
        let email_at = format!("{local}@{domain}");
        assert_eq!(email_at.chars().count(), 255);
        assert!(parse_input(&json!({"full_name": "A", "email": email_at})).is_ok());
        let email_over = format!("{local}@d{domain}");
        assert_eq!(
            fields(&err(json!({"full_name": "A", "email": email_over}))),
            ["email"]
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once_in_documented_order() {
        let e = err(json!({
            "type": "COMPANY",
            "email": "not-an-email",
            "phone": "call me",
            "risk": {"country_of_residence": "XX", "is_pep": "no", "expected_monthly_volume": -1},
            "nickname": "x",
        }));
        assert_eq!(
            fields(&e),
            [
                "type",
                "full_name",
                "email",
                "phone",
                "risk.country_of_residence",
                "risk.expected_monthly_volume",
                "risk.is_pep",
                "nickname",
            ]
        );
    }

    #[test]
    fn email_syntax() {
        for ok in [
            "a@x.io",
            "first.last+tag@sub.example.co.uk",
            " Ada@X.IO ",
            "o'brien!#$%&*/=?^_`{|}~-@x-y.io",
            "a@1.2",
            "josé@x.io",
            "jürgen.müller@exämple.de",
            "用户@例子.广告",
        ] {
            assert!(
                parse_input(&json!({"full_name": "A", "email": ok})).is_ok(),
                "{ok}"
            );
        }
        let local_65 = format!("{}@x.io", "a".repeat(65));
        let label_64 = format!("a@{}.io", "d".repeat(64));
        for bad in [
            "",
            "a",
            "a@",
            "@x.io",
            "a@x",
            "a b@x.io",
            "a@@x.io",
            "a@x.io.",
            "a..b@example.com",
            ".a@x.io",
            "a.@x.io",
            "a@-x.io",
            "a@x-.io",
            "a@x..io",
            "\"a b\"@x.io",
            "\"ab\"@x.io",
            "a@[127.0.0.1]",
            "a(comment)@x.io",
            "a\u{2028}b@x.io",
            "a\u{202e}b@x.io",
            "a@x\u{3000}y.io",
            "a@x\u{1F600}.io",
            &local_65,
            &label_64,
        ] {
            assert!(
                parse_input(&json!({"full_name": "A", "email": bad})).is_err(),
                "{bad:?}"
            );
        }
        let local_64 = format!("{}@x.io", "a".repeat(64));
        assert!(parse_input(&json!({"full_name": "A", "email": local_64})).is_ok());
    }

    /// The ranges docs/openapi.yaml's EmailAddress classes list for non-ASCII letters, as
    /// written there, against [`is_intl_letter`] over the whole of Unicode.
    #[test]
    fn intl_letters_are_the_specs_ranges() {
        const SPEC: [(u32, u32); 8] = [
            (0xA1, 0x167F),
            (0x1681, 0x1FFF),
            (0x200B, 0x2027),
            (0x2030, 0x205E),
            (0x2060, 0x2065),
            (0x206A, 0x2FFF),
            (0x3001, 0xD7FF),
            (0xE000, 0xFFFF),
        ];
        let spec =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml"))
                .unwrap();
        let class = r"\xA1-\u167F\u1681-\u1FFF\u200B-\u2027\u2030-\u205E\u2060-\u2065\u206A-\u2FFF\u3001-\uD7FF\uE000-\uFFFF";
        assert!(
            spec.matches(class).count() >= 3,
            "the spec lists the ranges in every class"
        );
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| !c.is_ascii())
        {
            let u = c as u32;
            let listed = SPEC.iter().any(|&(lo, hi)| (lo..=hi).contains(&u));
            assert_eq!(is_intl_letter(c), listed, "U+{u:04X}");
        }
    }

    #[test]
    fn email_is_trimmed_and_normalised_for_matching_only() {
        let input = parse_input(&json!({"full_name": "A", "email": " Ada@X.IO "})).unwrap();
        assert_eq!(input.email, Patch::Set("Ada@X.IO".into()));
        assert_eq!(input.match_email().as_deref(), Some("ada@x.io"));
    }

    #[test]
    fn external_id_is_exact_not_trimmed() {
        let input = parse_input(&json!({"full_name": "A", "external_id": " CRM-1 "})).unwrap();
        assert_eq!(input.external_id, Patch::Set(" CRM-1 ".into()));
        assert_eq!(
            fields(&err(json!({"full_name": "A", "external_id": ""}))),
            ["external_id"]
        );
    }

    #[test]
    fn phone_accepts_plus_digits_spaces_dashes_only() {
        for ok in ["+44 20 7946 0958", "020-7946-0958", "12345"] {
            assert!(
                parse_input(&json!({"full_name": "A", "phone": ok})).is_ok(),
                "{ok}"
            );
        }
        for bad in ["(020) 7946", "44+20", "+", "phone", "+44 20 x"] {
            assert!(
                parse_input(&json!({"full_name": "A", "phone": bad})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn country_codes_are_assigned_alpha2_in_capitals() {
        let ok = |c: &str| {
            parse_input(&json!({"full_name": "A", "risk": {"country_of_residence": c}})).is_ok()
        };
        assert!(ok("GB"));
        assert!(ok("DE"));
        assert!(!ok("gb"));
        assert!(!ok("GBR"));
        assert!(!ok("XX"));
        assert!(!ok("UK"));
    }

    #[test]
    fn enums_are_exact() {
        assert!(parse_input(&json!({"full_name": "A", "type": "SOLE_TRADER"})).is_ok());
        assert!(parse_input(&json!({"full_name": "A", "type": "sole_trader"})).is_err());
        assert!(parse_input(&json!({"full_name": "A", "type": 1})).is_err());
    }

    #[test]
    fn unknown_fields_are_errors_with_a_hint() {
        let e = err(json!({"full_name": "A", "Email": "a@x.io", "risk": {"pep": true}}));
        assert_eq!(fields(&e), ["risk.pep", "Email"]);
        assert_eq!(e[1].message, "unknown field; did you mean email?");
    }

    #[test]
    fn camel_case_aliases_are_accepted_and_written_back_in_snake_case() {
        let input = parse_input(&json!({
            "fullName": "Ada", "externalId": "crm-1", "tradingName": "Ada's",
            "risk": {"sourceOfFunds": "salary", "countryOfResidence": "GB",
                     "expectedMonthlyVolume": 100, "isPep": false}
        }))
        .unwrap();
        assert_eq!(
            input.to_body(),
            json!({"full_name": "Ada", "external_id": "crm-1", "trading_name": "Ada's",
                   "risk": {"source_of_funds": "salary", "country_of_residence": "GB",
                            "expected_monthly_volume": 100, "is_pep": false}})
        );
    }

    #[test]
    fn a_field_given_under_both_spellings_is_an_error() {
        let e = err(json!({"full_name": "A", "fullName": "B"}));
        assert_eq!(fields(&e), ["full_name"]);
        assert!(e[0].message.contains("given twice"), "{}", e[0].message);
    }

    #[test]
    fn a_field_given_twice_gets_that_one_error_whatever_its_values() {
        // A null alias used to add "is required" next to "given twice".
        for body in [
            json!({"full_name": "A", "fullName": null}),
            json!({"full_name": null, "fullName": null}),
            json!({"full_name": "  ", "fullName": 5}),
        ] {
            let e = err(body.clone());
            assert_eq!(fields(&e), ["full_name"], "{body}");
            assert_eq!(
                e[0].message, "given twice (as fullName and full_name); send one",
                "{body}"
            );
        }
        let e = err(json!({"full_name": "A", "risk": {"is_pep": "x", "isPep": null}}));
        assert_eq!(fields(&e), ["risk.is_pep"]);
    }

    fn request(text: &str) -> Result<CustomerInput, Vec<FieldError>> {
        parse_request(&RequestBody::parse(text.as_bytes()).unwrap())
    }

    #[test]
    fn a_member_repeated_in_the_json_text_is_refused_as_given_twice() {
        let e = request(r#"{"full_name":"A","full_name":"B"}"#).unwrap_err();
        assert_eq!(fields(&e), ["full_name"]);
        assert_eq!(
            e[0].message,
            "given twice (full_name appears more than once); send it once"
        );
        let e = request(r#"{"full_name":"A","risk":{"is_pep":true,"is_pep":false}}"#).unwrap_err();
        assert_eq!(fields(&e), ["risk.is_pep"]);
        // Repeated alongside its alias, and repeated unknown members: still one error each.
        let e =
            request(r#"{"fullName":"A","full_name":"B","full_name":"C","x":1,"x":2}"#).unwrap_err();
        assert_eq!(fields(&e), ["full_name", "x"]);
        // Every other bad field is still reported with it.
        let e = request(r#"{"email":"x","email":"y","phone":"call me"}"#).unwrap_err();
        assert_eq!(fields(&e), ["full_name", "email", "phone"]);
        assert!(request(r#"{"full_name":"A","risk":{"is_pep":true}}"#).is_ok());
    }

    #[test]
    fn every_field_is_reported_at_most_once() {
        let e = err(json!({
            "fullName": null, "full_name": null, "email": "bad", "Email": "x",
            "risk": {"pep": 1, "isPep": 2, "is_pep": 3, "sourceOfFunds": "", "source_of_funds": 1}
        }));
        let mut names = fields(&e);
        let before = names.len();
        names.dedup();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before, "{e:?}");
    }

    #[test]
    fn absent_and_null_stay_apart() {
        let input =
            parse_input(&json!({"full_name": "A", "email": null, "risk": {"is_pep": null}}))
                .unwrap();
        assert_eq!(input.email, Patch::Null);
        assert_eq!(input.phone, Patch::Absent);
        let Patch::Set(risk) = &input.risk else {
            panic!("risk should be set")
        };
        assert_eq!(risk.is_pep, Patch::Null);
        assert_eq!(risk.occupation, Patch::Absent);
        assert_eq!(
            input.to_body(),
            json!({"full_name": "A", "email": null, "risk": {"is_pep": null}})
        );
    }

    #[test]
    fn volume_must_be_a_whole_non_negative_number() {
        let ok = |v: Value| {
            parse_input(&json!({"full_name": "A", "risk": {"expected_monthly_volume": v}})).is_ok()
        };
        assert!(ok(json!(0)));
        assert!(ok(json!(5000)));
        assert!(ok(json!(5000.0)), "a whole number written with a fraction");
        assert!(!ok(json!(-1)));
        assert!(!ok(json!(-1.0)));
        assert!(!ok(json!(1.5)));
        assert!(!ok(json!(1e300)));
        let input =
            parse_input(&json!({"full_name": "A", "risk": {"expected_monthly_volume": 2500.0}}))
                .unwrap();
        assert_eq!(
            input.to_body()["risk"]["expected_monthly_volume"],
            json!(2500)
        );
        assert!(!ok(json!("100")));
    }

    #[test]
    fn body_must_be_an_object() {
        assert!(parse_input(&json!([1])).is_err());
        assert!(parse_input(&json!("x")).is_err());
        assert_eq!(fields(&err(json!({"full_name": "A", "risk": 3}))), ["risk"]);
    }
}
