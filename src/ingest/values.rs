//! Value rules: turning one cell's text, as people write it in CRM and spreadsheet exports,
//! into what the API contract accepts (`phone` in E.164, `country_of_residence` as an
//! ISO 3166-1 alpha-2 code, `expected_monthly_volume` in whole units, `is_pep` as a bool).
//!
//! This module owns the rules for single values only. It knows nothing of columns, files,
//! rows or the store: the caller decides which cell goes through which function, which
//! country a row's phone is read in, and what happens to the notes and errors. Every
//! function is pure (no I/O, no configuration read) and either returns the normalised value,
//! with a note for the person where something was lost or guessed, or a one-line message that
//! quotes the value and says what would be accepted.

use std::collections::HashMap;
use std::sync::LazyLock;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::Mode;

/// A value that was changed on its way in, with a note for the person when something was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised<T> {
    pub value: T,
    /// The value differs from the text it came from (trimming counts).
    pub changed: bool,
    /// Set when something was dropped or rounded, in words for the person who wrote it.
    pub note: Option<String>,
}

impl<T> Normalised<T> {
    fn new(value: T, changed: bool) -> Self {
        Normalised {
            value,
            changed,
            note: None,
        }
    }

    fn with_note(mut self, note: String) -> Self {
        self.note = Some(note);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Phone numbers
// ---------------------------------------------------------------------------------------------

/// What the error for a national number read without a country tells the person to do.
const NO_COUNTRY_HINT: &str = "add a country column or set default_country \
     (ICSYNC_DEFAULT_COUNTRY / --default-country)";

/// The shortest and longest national significant number libphonenumber's metadata allows,
/// for each country calling code and for each region, built once from the metadata.
struct Lengths {
    by_code: HashMap<u16, (u16, u16)>,
    /// Region id (`DE`) to its calling code and lengths.
    by_region: HashMap<&'static str, (u16, u16, u16)>,
}

static LENGTHS: LazyLock<Lengths> = LazyLock::new(|| {
    let mut lengths = Lengths {
        by_code: HashMap::new(),
        by_region: HashMap::new(),
    };
    for meta in DATABASE.iter() {
        // The general descriptor's lengths are empty in this metadata: take those of
        // every kind of number (fixed line, mobile, toll free, …).
        let d = meta.descriptors();
        let kinds = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        let possible = kinds
            .into_iter()
            .flatten()
            .flat_map(|k| k.possible_length());
        let (Some(&lo), Some(&hi)) = (possible.clone().min(), possible.max()) else {
            continue;
        };
        let code = meta.country_code();
        lengths.by_region.insert(meta.id(), (code, lo, hi));
        lengths
            .by_code
            .entry(code)
            .and_modify(|(l, h)| {
                *l = (*l).min(lo);
                *h = (*h).max(hi);
            })
            .or_insert((lo, hi));
    }
    lengths
});

/// Phone number to E.164 (`+` and up to 15 digits), read with libphonenumber's metadata (the
/// `phonenumber` crate).
///
/// `country` is the row's alpha-2 country if it has one, else the `default_country` setting;
/// it is only needed for numbers written nationally (`0151 23456789`, `(651) 216-1559`).
/// Numbers written internationally (`+49 …`, `0049 …`, `+49 (0) 30 …`) carry their own
/// country and win over `country`.
///
/// What is accepted: anything libphonenumber can parse whose national number has a length
/// some number under that calling code can have. Whether the number is *in use* (libphonenumber's
/// `is_valid`, i.e. it matches a known number range of the region) is deliberately not
/// checked: made-up or test numbers in realistic formats (`555-0100`, Faker data) come in as
/// E.164 without a note, and only what is clearly not a phone number is refused: letters
/// other than an extension marker, a date, a number Excel shortened to `4.91E+12`, an unknown
/// calling code, or too few or too many digits for the calling code.
///
/// An extension (`x89`, `ext. 89`, `#89`) cannot be held by E.164: it is dropped, with a
/// note that names it. Input that is already E.164 is returned unchanged (`changed` false).
/// Numbers written `+` and digits, and NANP numbers in a `+1` region, are read without
/// libphonenumber's parser (same result, a fraction of the cost); the rest go through it.
pub fn phone(raw: &str, country: Option<&str>) -> Result<Normalised<String>, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("an empty value is not a phone number".to_string());
    }
    // Most numbers take the quick path, which needs the region only as text.
    let mut upper = [0u8; 2];
    let region_text = country
        .map(str::trim)
        .filter(|c| c.len() == 2)
        .and_then(|c| {
            upper.copy_from_slice(c.as_bytes());
            upper.make_ascii_uppercase();
            std::str::from_utf8(&upper).ok()
        });
    if let Some(e164) = quick_e164(text, region_text) {
        let changed = e164 != raw;
        return Ok(Normalised::new(e164, changed));
    }
    let region = country.and_then(|c| c.trim().to_ascii_uppercase().parse::<Id>().ok());
    let (number_part, extension) = split_phone(raw, text)?;

    let lead = text.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '+');
    let international = lead.starts_with('+') || lead.starts_with("00");
    let Some(region) = region.filter(|_| !international) else {
        if !international {
            return Err(format!(
                "\"{raw}\" is a national phone number and no country is known to read it in: \
                 write it with its +country code, or {NO_COUNTRY_HINT}"
            ));
        }
        // `00` is the international prefix in most of the world but not in every region's
        // metadata (US dials 011), so a number written with 00 is read as if with +.
        let plus;
        let text = match lead.strip_prefix("00") {
            Some(rest) => {
                plus = format!("+{rest}");
                &plus
            }
            None => text,
        };
        return read_phone(raw, None, text).map(|n| e164(raw, &n));
    };

    match read_phone(raw, Some(region), text) {
        Ok(number) => Ok(e164(raw, &number)),
        Err(error) => {
            // The parser can take a leading 1 or 0 for a trunk prefix and leave too few
            // digits (`123-456-7890` in the US): digits that are as many as the region's
            // numbers have are taken as the national number as written.
            let digits: String = number_part.chars().filter(char::is_ascii_digit).collect();
            let &(code, lo, hi) = LENGTHS
                .by_region
                .get(region.as_ref())
                .ok_or_else(|| error.clone())?;
            let fits = (usize::from(lo)..=usize::from(hi)).contains(&digits.len());
            if !fits || digits.starts_with('0') {
                return Err(error);
            }
            let out = Normalised::new(format!("+{code}{digits}"), true);
            Ok(match extension {
                Some(ext) => out.with_note(extension_note(raw, ext)),
                None => out,
            })
        }
    }
}

/// libphonenumber's reading of `text`, refused if its national number has a length no
/// number of its region (if read in `region`) or calling code can have.
fn read_phone(
    raw: &str,
    region: Option<Id>,
    text: &str,
) -> Result<phonenumber::PhoneNumber, String> {
    let number = parse_phone(region, text).map_err(|e| phone_error(raw, e))?;
    let code = number.code().value();
    let in_region = region
        .and_then(|r| LENGTHS.by_region.get(r.as_ref()))
        .filter(|(c, _, _)| *c == code)
        .map(|&(_, lo, hi)| (lo, hi));
    let Some((lo, hi)) = in_region.or_else(|| LENGTHS.by_code.get(&code).copied()) else {
        return Err(format!(
            "\"{raw}\" is not a phone number: +{code} is not a country calling code"
        ));
    };
    let len = number.national().to_string().len();
    if (usize::from(lo)..=usize::from(hi)).contains(&len) {
        return Ok(number);
    }
    let which = if len < usize::from(lo) {
        "too few"
    } else {
        "too many"
    };
    let expected = if lo == hi {
        lo.to_string()
    } else {
        format!("{lo} to {hi}")
    };
    Err(format!(
        "\"{raw}\" is not a phone number: {which} digits for a +{code} number \
         ({len} after the country code, {expected} expected)"
    ))
}

/// The number in E.164, with a note if its extension had to be dropped.
fn e164(raw: &str, number: &phonenumber::PhoneNumber) -> Normalised<String> {
    let e164 = number.format().mode(Mode::E164).to_string();
    let changed = e164 != raw;
    let out = Normalised::new(e164, changed);
    match number.extension() {
        Some(ext) if !ext.is_empty() => out.with_note(extension_note(raw, ext)),
        _ => out,
    }
}

fn extension_note(raw: &str, extension: &str) -> String {
    format!(
        "the extension {extension} of \"{raw}\" was dropped: E.164 phone numbers cannot hold one"
    )
}

/// The common shapes read without libphonenumber's parser (a few microseconds a number,
/// most of it regex work), giving what the parser gives for them:
///
/// - `+` and digits, with spaces, `-.()/` and a `(0)` trunk marker (`+49 (0) 30 1234567`,
///   `+1-651-216-1559`, `+16512161559`) under a known calling code, with a national number
///   of a possible length that does not start with 0;
/// - a NANP number read in a `+1` region: 10 digits not starting with 0 or 1, or 11 starting
///   with 1 (`(651) 216-1559`, `1-651-216-1559`).
///
/// Anything else (an extension, a national number elsewhere, a 0 after the code) is left to
/// the parser.
fn quick_e164(text: &str, region: Option<&str>) -> Option<String> {
    let quick_char = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '/');
    let (plus, rest) = match text.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if !rest.chars().all(quick_char) {
        return None;
    }
    let mut digits = String::with_capacity(16);
    digits.push('+');
    // A `(0)` trunk marker after the country code is not dialled from abroad.
    let trunk = if plus && rest.as_bytes().contains(&b'(') {
        rest.find("(0)")
    } else {
        None
    };
    match trunk {
        Some(at) => {
            digits.extend(rest[..at].chars().filter(char::is_ascii_digit));
            digits.extend(rest[at + 3..].chars().filter(char::is_ascii_digit));
        }
        None => digits.extend(rest.chars().filter(char::is_ascii_digit)),
    }
    let national = &digits[1..];
    if plus {
        if !(7..=15).contains(&national.len()) {
            return None;
        }
        let known = (1..=3).any(|len| {
            let Some(code) = national.get(..len).and_then(|c| c.parse::<u16>().ok()) else {
                return false;
            };
            let (Some(&(lo, hi)), Some(nsn)) = (LENGTHS.by_code.get(&code), national.get(len..))
            else {
                return false;
            };
            let fits = (usize::from(lo)..=usize::from(hi)).contains(&nsn.len());
            fits && !nsn.starts_with('0')
        });
        return known.then_some(digits);
    }
    let nanp = region
        .and_then(|r| LENGTHS.by_region.get(r))
        .is_some_and(|&(code, _, _)| code == 1);
    let area = |d: &str| {
        d.as_bytes()
            .first()
            .is_some_and(|b| (b'2'..=b'9').contains(b))
    };
    match national.len() {
        10 if nanp && area(national) => Some(format!("+1{national}")),
        11 if nanp && national.starts_with('1') && area(&national[1..]) => Some(digits),
        _ => None,
    }
}

/// Refuses what is clearly not a phone number before libphonenumber sees it (its parser
/// skips leading text and reads letters as keypad digits, which is too lenient for a
/// sync): only digits, `+`, spaces and `-.()/` may come before an optional extension
/// (`x89`, `ext. 89`, `extension 89`, `#89`, `;ext=89`). Returns the number part and the
/// extension's digits.
fn split_phone<'a>(raw: &str, text: &'a str) -> Result<(&'a str, Option<&'a str>), String> {
    let not_a_phone = |why: &str| Err(format!("\"{raw}\" is not a phone number{why}"));
    let text = strip_prefix_ignore_case(text, "tel:").unwrap_or(text);
    if looks_like_excel_exponent(text) {
        return not_a_phone(
            ": a spreadsheet shortened it to scientific notation and the digits are lost \
             (format the column as text and export again)",
        );
    }
    if looks_like_date(text) {
        return not_a_phone(": it looks like a date");
    }
    let split = text
        .find(|c: char| c.is_alphabetic() || matches!(c, '#' | ';' | ',' | '~'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(split);
    let phone_char = |c: char| {
        c.is_ascii_digit() || c.is_whitespace() || matches!(c, '+' | '-' | '.' | '(' | ')' | '/')
    };
    if !number.chars().all(phone_char) {
        return not_a_phone("");
    }
    if number.bytes().filter(u8::is_ascii_digit).count() < 3 {
        return not_a_phone(": it has too few digits");
    }
    if rest.is_empty() {
        return Ok((number, None));
    }
    match extension_digits(rest) {
        Some(ext) => Ok((number, Some(ext))),
        None => not_a_phone(": only digits, +, spaces, -.()/ and an extension (x89) may be in one"),
    }
}

/// The digits of `x89`, `ext. 89`, `extension: 89`, `#89`, `;ext=89`, `, 89`: a marker, then
/// 1 to 7 digits.
fn extension_digits(text: &str) -> Option<&str> {
    const MARKERS: [&str; 10] = [
        ";ext=",
        "extension",
        "extn",
        "ext",
        "anexo",
        "x",
        "#",
        ";",
        ",",
        "~",
    ];
    let rest = MARKERS
        .iter()
        .find_map(|m| strip_prefix_ignore_case(text, m))?;
    let digits = rest.trim_start_matches(['.', ':', ' ', '-', '\t']);
    let digits = digits.strip_suffix('#').unwrap_or(digits).trim_end();
    ((1..=7).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// `4.91512E+12`, `4,9E+12`: what a spreadsheet makes of a long number in a general cell.
fn looks_like_excel_exponent(text: &str) -> bool {
    let Some((mantissa, exponent)) = text.split_once(['E', 'e']) else {
        return false;
    };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// `2024-01-15`, `15.01.2024`, `15/01/2024`, `1/5/24`: three groups of digits with one
/// separator, a year of 4 digits first or last (or 2 digits last with `/`).
fn looks_like_date(text: &str) -> bool {
    let Some(sep) = text.chars().find(|c| matches!(c, '-' | '.' | '/')) else {
        return false;
    };
    let parts: Vec<&str> = text.split(sep).collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let lens = [parts[0].len(), parts[1].len(), parts[2].len()];
    matches!(lens, [4, 1..=2, 1..=2] | [1..=2, 1..=2, 4])
        || (sep == '/' && matches!(lens, [1..=2, 1..=2, 2]))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// libphonenumber's parser, with its panics (it has had some on malformed input) turned
/// into an error: a row must never take the ingest down.
fn parse_phone(
    region: Option<Id>,
    text: &str,
) -> Result<phonenumber::PhoneNumber, Option<phonenumber::ParseError>> {
    std::panic::catch_unwind(|| phonenumber::parse(region, text))
        .map_err(|_| None)?
        .map_err(Some)
}

fn phone_error(raw: &str, error: Option<phonenumber::ParseError>) -> String {
    use phonenumber::ParseError as E;
    let why = match error {
        Some(E::InvalidCountryCode) => ": its country code is not one we know",
        Some(E::TooShortNsn | E::TooShortAfterIdd) => ": it has too few digits",
        Some(E::TooLong) => ": it has too many digits",
        _ => "",
    };
    format!("\"{raw}\" is not a phone number{why}")
}

// ---------------------------------------------------------------------------------------------
// Countries
// ---------------------------------------------------------------------------------------------

/// Names people write for countries that ISO's English short names do not cover: common
/// English forms, the constituent countries of the UK, and German, French and Spanish names
/// of common countries. Keys are written as `fold` leaves them (lower case, no accents, no
/// spaces or punctuation).
#[rustfmt::skip]
const ALIASES: &[(&str, &[&str])] = &[
    ("AE", &["uae", "emirates", "emirats", "vereinigtearabischeemirate"]),
    ("AR", &["argentinien"]),
    ("AT", &["osterreich", "oesterreich", "autriche"]),
    ("AU", &["australien", "australie"]),
    ("BA", &["bosnia"]),
    ("BE", &["belgien", "belgique", "belgica", "belgie"]),
    ("BG", &["bulgarien", "bulgarie"]),
    ("BR", &["brasil", "bresil", "brasilien"]),
    ("CA", &["kanada"]),
    ("CD", &["drc", "drcongo", "democraticrepublicofthecongo", "congokinshasa"]),
    ("CG", &["republicofthecongo", "congobrazzaville"]),
    ("CH", &["schweiz", "suisse", "suiza", "svizzera"]),
    ("CI", &["ivorycoast", "elfenbeinkuste"]),
    ("CL", &["chili"]),
    ("CN", &["chine", "prc"]),
    ("CO", &["kolumbien", "colombie"]),
    ("CV", &["capeverde"]),
    ("CY", &["zypern", "chypre", "chipre"]),
    ("CZ", &["czechrepublic", "tschechien", "republiquetcheque", "chequia"]),
    ("DE", &["deutschland", "allemagne", "alemania", "germania", "brd"]),
    ("DK", &["danemark", "dinamarca", "danmark"]),
    ("EE", &["estland", "estonie"]),
    ("EG", &["agypten", "egypte", "egipto"]),
    ("ES", &["spanien", "espagne", "espana"]),
    ("FI", &["finnland", "finlande", "suomi"]),
    ("FR", &["frankreich", "francia"]),
    ("GB", &["uk", "unitedkingdom", "greatbritain", "britain", "england", "scotland", "wales", "northernireland", "grossbritannien", "vereinigteskonigreich", "royaumeuni", "angleterre", "reinounido", "inglaterra"]),
    ("GR", &["griechenland", "grece", "grecia"]),
    ("HR", &["kroatien", "croatie", "croacia", "hrvatska"]),
    ("HU", &["ungarn", "hongrie", "hungria"]),
    ("IE", &["irland", "irlande", "irlanda", "eire"]),
    ("IN", &["inde", "indien"]),
    ("IS", &["island", "islande", "islandia"]),
    ("IT", &["italien", "italie", "italia"]),
    ("JP", &["japon"]),
    ("KP", &["northkorea", "nordkorea", "coreedunord"]),
    ("KR", &["southkorea", "sudkorea", "coreedusud", "coreadelsur", "republicofkorea"]),
    ("LA", &["laos"]),
    ("LT", &["litauen", "lituanie"]),
    ("LU", &["luxemburg"]),
    ("LV", &["lettland", "lettonie"]),
    ("MA", &["marokko", "maroc", "marruecos"]),
    ("MD", &["moldova"]),
    ("MK", &["northmacedonia", "nordmazedonien"]),
    ("MM", &["burma"]),
    ("MO", &["macau"]),
    ("MT", &["malte"]),
    ("MX", &["mexique", "mexiko"]),
    ("NL", &["holland", "niederlande", "paysbas", "paisesbajos", "nederland"]),
    ("NO", &["norwegen", "norvege", "noruega", "norge"]),
    ("NZ", &["neuseeland", "nouvellezelande", "nuevazelanda"]),
    ("PE", &["perou"]),
    ("PL", &["polen", "pologne", "polonia", "polska"]),
    ("PS", &["palestine"]),
    ("RO", &["rumanien", "roumanie", "rumania"]),
    ("RU", &["russia", "russland", "russie", "rusia"]),
    ("SE", &["schweden", "suede", "suecia", "sverige"]),
    ("SI", &["slowenien", "slovenie"]),
    ("SK", &["slowakei", "slovaquie"]),
    ("SY", &["syria"]),
    ("SZ", &["eswatini"]),
    ("TL", &["easttimor"]),
    ("TR", &["turkei", "turquie", "turquia", "turkiye"]),
    ("TW", &["taiwan"]),
    ("US", &["usa", "unitedstates", "america", "etatsunis", "estadosunidos", "vereinigtestaaten"]),
    ("VA", &["vatican", "vaticancity"]),
    ("VN", &["vietnam"]),
    ("ZA", &["sudafrika", "afriquedusud", "sudafrica"]),
];

/// Parts of the UK that people write as a country: the code loses that detail.
const UK_NATIONS: [&str; 4] = ["england", "scotland", "wales", "northernireland"];

/// Every spelling `country` knows, folded, to its alpha-2 code: alpha-2, alpha-3, ISO's
/// English short name, that name without its parenthesised or comma-separated qualifier
/// where that is unambiguous ("Bolivia", "Iran", "Tanzania"), and `ALIASES`.
static COUNTRIES: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut map: HashMap<String, &'static str> = HashMap::new();
    for code in isocountry::CountryCode::iter() {
        let alpha2 = code.alpha2();
        map.insert(alpha2.to_ascii_lowercase(), alpha2);
        map.insert(code.alpha3().to_ascii_lowercase(), alpha2);
        map.insert(fold(code.name()), alpha2);
    }
    let mut short: HashMap<String, Option<&'static str>> = HashMap::new();
    for code in isocountry::CountryCode::iter() {
        let name = code.name();
        if let Some(cut) = name.find([',', '(']) {
            short
                .entry(fold(&name[..cut]))
                .and_modify(|seen| *seen = None) // two countries share it: neither gets it
                .or_insert(Some(code.alpha2()));
        }
    }
    for (key, code) in short {
        if let Some(code) = code {
            map.entry(key).or_insert(code);
        }
    }
    for &(code, names) in ALIASES {
        for &name in names {
            map.insert(name.to_string(), code);
        }
    }
    map
});

/// Country as people write it to ISO 3166-1 alpha-2 in capitals: `DE`, `de`, `DEU`, `276`,
/// `Germany`, `Deutschland`, `Allemagne`, `United Kingdom`, `UK`, `England`, `U.S.`,
/// `Russian Federation`, `Côte d'Ivoire`, `Korea, Republic of`. Matching ignores letter case,
/// accents, punctuation, spacing and a leading "the". A part of the UK (`England`, `Wales`,
/// …) becomes `GB` with a note. A name shared by two countries (`Korea`, `Congo` is the
/// Republic of the Congo by ISO's name) is not guessed at beyond ISO's own names.
pub fn country(raw: &str) -> Result<Normalised<String>, String> {
    let text = raw.trim();
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        if let Ok(code) = isocountry::CountryCode::for_alpha2_caseless(text) {
            return Ok(Normalised::new(
                code.alpha2().to_string(),
                code.alpha2() != raw,
            ));
        }
    }
    if !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()) {
        let numeric = text.parse().ok();
        if let Some(code) = numeric.and_then(|n| isocountry::CountryCode::for_id(n).ok()) {
            return Ok(Normalised::new(code.alpha2().to_string(), true));
        }
    }
    let key = fold(text);
    let found = COUNTRIES
        .get(&key)
        .or_else(|| key.strip_prefix("the").and_then(|rest| COUNTRIES.get(rest)));
    let Some(&code) = found else {
        return Err(format!(
            "\"{raw}\" is not a country we know: write its two-letter ISO 3166 code \
             (DE, GB, US) or its English name"
        ));
    };
    let out = Normalised::new(code.to_string(), code != raw);
    Ok(if UK_NATIONS.contains(&key.as_str()) {
        out.with_note(format!("\"{text}\" was recorded as GB (United Kingdom)"))
    } else {
        out
    })
}

/// Lower case, accents taken off, everything but letters and digits left out:
/// "Côte d'Ivoire" -> "cotedivoire", "Großbritannien" -> "grossbritannien".
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            continue;
        }
        let plain = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' | 'į' => "i",
            'ł' | 'ľ' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'ř' => "r",
            'ś' | 'š' | 'ş' | 'ș' => "s",
            'ť' | 'ţ' | 'ț' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            'ß' => "ss",
            'æ' => "ae",
            'œ' => "oe",
            'þ' => "th",
            // Other letters (Greek, Cyrillic, …) are kept; marks and punctuation are not.
            c if c.is_alphanumeric() && !('\u{300}'..='\u{36f}').contains(&c) => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(plain);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Yes / no
// ---------------------------------------------------------------------------------------------

const TRUE_WORDS: &[&str] = &[
    "true", "t", "yes", "y", "1", "on", "ja", "j", "wahr", "oui", "vrai", "si", "sí", "sì", "sim",
    "da", "tak", "jah",
];
const FALSE_WORDS: &[&str] = &[
    "false", "f", "no", "n", "0", "off", "nein", "falsch", "non", "faux", "não", "nao", "nee",
    "nej", "nei", "nie", "ne", "nu", "net",
];

/// Yes or no in the usual languages, any letter case: `true`/`false`, `yes`/`no`, `y`/`n`,
/// `1`/`0`, `on`/`off`, `ja`/`nein`, `j`/`n`, `wahr`/`falsch`, `oui`/`non`, `vrai`/`faux`,
/// `sí`/`no`, `sì`/`no`, `sim`/`não`, `da`/`ne`/`nu`/`net`, `tak`/`nie`, `nee`, `nej`, `nei`.
/// A tick mark (`x`) and an empty cell are not read here: what they mean is the caller's
/// call (an empty cell is an absent value).
pub fn boolean(raw: &str) -> Result<bool, String> {
    let word = raw.trim().trim_end_matches('.').to_lowercase();
    if TRUE_WORDS.contains(&word.as_str()) {
        Ok(true)
    } else if FALSE_WORDS.contains(&word.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "\"{raw}\" is not yes or no: write true or false (yes/no, 1/0, ja/nein, \
             oui/non, sí/no are read too)"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Amounts
// ---------------------------------------------------------------------------------------------

/// Characters that only ever group thousands: spaces (plain, no-break, narrow no-break) and
/// the Swiss apostrophes.
fn is_group_only(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\'' | '’')
}

fn is_currency_symbol(c: char) -> bool {
    matches!(
        c,
        '$' | '€'
            | '£'
            | '¥'
            | '₹'
            | '₽'
            | '₩'
            | '₺'
            | '₴'
            | '₪'
            | '฿'
            | '₫'
            | '₦'
            | '¢'
            | '₱'
            | '₣'
            | '₡'
            | '₲'
            | '₵'
            | '₸'
            | '₮'
            | '₿'
    )
}

/// An amount of money as people write it, to whole currency units: `2500`, `2,500`, `2.500`,
/// `2.500,00`, `2,500.00`, `2 500`, `2’500`, `25,00,000` (Indian grouping), `€ 2.500`,
/// `2500 EUR`, `$2,500.50`, `2.500,-`.
///
/// Which separator is the decimal one: the last `.` or `,` followed by 1 or 2 digits (or by
/// 4 or more) is decimal; a lone `.` or `,` followed by exactly 3 digits groups thousands
/// (`2,500` and `2.500` are both 2500) unless the other mark comes before it (`1,234.567`)
/// or the part before it is `0` (`0,500`). Spaces and apostrophes only ever group
/// thousands. Groups must be of 3 digits (or Indian 2s before a final 3).
///
/// Cents are rounded half up to whole units, with a note; a currency symbol or code is
/// dropped, with a note naming it (the API takes a plain number). A negative amount
/// (`-2500`, `(2500)`, `2500-`) and one past `u64` are refused.
pub fn amount(raw: &str) -> Result<Normalised<u64>, String> {
    let text = raw.trim();
    let not_an_amount = |why: &str| format!("\"{raw}\" is not an amount{why}");
    let (Some(first), Some(last)) = (
        text.find(|c: char| c.is_ascii_digit()),
        text.rfind(|c: char| c.is_ascii_digit()),
    ) else {
        return Err(not_an_amount(": it has no digits"));
    };
    let (prefix, body, suffix) = (&text[..first], &text[first..=last], &text[last + 1..]);
    // `2.500,-` and `2’500.–`: no cents, as written in German and Swiss prices.
    let suffix = [",-", ",–", ".-", ".–"]
        .iter()
        .find_map(|dash| suffix.strip_prefix(dash))
        .unwrap_or(suffix);

    let minus = |s: &str| s.contains(['-', '−']);
    let bracketed = prefix.trim_end().ends_with('(') && suffix.trim_start().starts_with(')');
    if minus(prefix) || minus(suffix) || bracketed {
        return Err(format!(
            "\"{raw}\" is negative: an amount must be 0 or more"
        ));
    }
    let currency = currency_marker(prefix)
        .and_then(|p| currency_marker(suffix).map(|s| (p, s)))
        .ok_or_else(|| not_an_amount(""))?;

    let (whole, fraction) = split_amount(body).ok_or_else(|| {
        not_an_amount(
            ": its digit groups are neither thousands (2,500 or 2.500) nor decimals (2,50)",
        )
    })?;
    let too_large = || not_an_amount(": it is too large");
    let mut value: u64 = 0;
    for digit in whole.bytes().filter(u8::is_ascii_digit) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    let rounded_up = fraction.bytes().next().is_some_and(|d| d >= b'5');
    if rounded_up {
        value = value.checked_add(1).ok_or_else(too_large)?;
    }

    let mut notes = Vec::new();
    match currency {
        ("", "") => {}
        (p, "") | ("", p) => notes.push(format!("the currency \"{p}\" was dropped")),
        (p, s) => notes.push(format!("the currency \"{p} {s}\" was dropped")),
    }
    if fraction.bytes().any(|d| d != b'0') {
        notes.push(format!(
            "{body} was rounded to {value} (whole currency units)"
        ));
    }
    let changed = text != raw
        || body.bytes().any(|b| !b.is_ascii_digit())
        || !prefix.is_empty()
        || !suffix.is_empty()
        || (body.len() > 1 && body.starts_with('0'));
    let out = Normalised::new(value, changed);
    Ok(if notes.is_empty() {
        out
    } else {
        out.with_note(format!("\"{raw}\": {}", notes.join("; ")))
    })
}

/// The currency written before or after an amount, trimmed, if that is all there is: a
/// symbol (`€`, `US$`, `R$`) or a code of up to 3 letters with an optional dot (`EUR`, `Fr.`).
fn currency_marker(text: &str) -> Option<&str> {
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '+');
    let letters = text
        .chars()
        .filter(|&c| !is_currency_symbol(c) && c != '.')
        .try_fold(0, |n, c| c.is_ascii_alphabetic().then_some(n + 1))?;
    // A code (EUR), a symbol (€, R$), or one of the few short names in use (kr, Fr.):
    // anything else, such as the k of 12k, is not a currency and not to be dropped.
    let short = text.trim_end_matches('.').to_ascii_lowercase();
    let symbol = text.chars().any(is_currency_symbol);
    (letters == 0
        || letters == 3
        || (symbol && letters <= 2)
        || matches!(short.as_str(), "kr" | "fr" | "rs"))
    .then_some(text)
}

/// Splits the digits-and-separators part of an amount into its whole part (digits and
/// grouping marks) and its decimal digits, or `None` if its groups make no sense.
fn split_amount(body: &str) -> Option<(&str, &str)> {
    let is_sep = |c: char| matches!(c, '.' | ',') || is_group_only(c);
    if !body.chars().all(|c| c.is_ascii_digit() || is_sep(c)) {
        return None;
    }
    let Some((at, mark)) = body.char_indices().rev().find(|&(_, c)| is_sep(c)) else {
        return Some((body, ""));
    };
    let (head, tail) = (&body[..at], &body[at + mark.len_utf8()..]);
    let decimal = matches!(mark, '.' | ',')
        && (tail.len() != 3
            || head.contains(if mark == '.' { ',' } else { '.' })
            || (head == "0" && !head.contains(mark)));
    let (whole, fraction) = if decimal { (head, tail) } else { (body, "") };
    if decimal && whole.contains(mark) {
        return None; // `1.234.56`: the same mark cannot both group and split off cents
    }
    grouped(whole).then_some((whole, fraction))
}

/// Digits grouped by one kind of mark: none, or a first group of 1 to 3 digits and groups of
/// 3 after it, or the Indian 1-2 digits, 2s and a final 3.
fn grouped(whole: &str) -> bool {
    let mut marks = whole.chars().filter(|c| !c.is_ascii_digit());
    let Some(mark) = marks.next() else {
        return true;
    };
    if marks.any(|c| c != mark) {
        return false;
    }
    let groups: Vec<usize> = whole.split(mark).map(str::len).collect();
    let (first, rest) = match groups.split_first() {
        Some((&first, rest)) if !rest.is_empty() => (first, rest),
        _ => return false,
    };
    let western = (1..=3).contains(&first) && rest.iter().all(|&n| n == 3);
    let indian = mark == ','
        && (1..=2).contains(&first)
        && rest
            .split_last()
            .is_some_and(|(&last, mid)| last == 3 && mid.iter().all(|&n| n == 2));
    western || indian
}

// ---------------------------------------------------------------------------------------------
// Multi-value cells
// ---------------------------------------------------------------------------------------------

/// The separator Google Contacts writes between the values of one cell.
const MANY_SEPARATOR: &str = ":::";

/// A multi-value cell as Google Contacts exports them (`a@x.io ::: b@x.io`): the first
/// non-empty value, trimmed, and a note saying how many others were dropped. A single value
/// comes back trimmed with no note.
pub fn first_of_many(raw: &str) -> (&str, Option<String>) {
    // A byte search first: almost no cell holds a colon.
    if !raw.as_bytes().contains(&b':') || !raw.contains(MANY_SEPARATOR) {
        return (raw.trim(), None);
    }
    let mut values = raw
        .split(MANY_SEPARATOR)
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let first = values.next().unwrap_or("");
    let dropped = values.count();
    let note = match dropped {
        0 => None,
        1 => Some(format!(
            "kept \"{first}\"; 1 more value in the cell was dropped"
        )),
        n => Some(format!(
            "kept \"{first}\"; {n} more values in the cell were dropped"
        )),
    };
    (first, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of an `Ok`, or a failure that quotes the input.
    fn value<T>(raw: &str, result: Result<Normalised<T>, String>) -> T {
        match result {
            Ok(n) => n.value,
            Err(e) => panic!("{raw:?}: {e}"),
        }
    }

    fn to_e164(raw: &str, country: Option<&str>) -> String {
        value(raw, phone(raw, country))
    }

    fn phone_err(raw: &str, country: Option<&str>) -> String {
        match phone(raw, country) {
            Ok(n) => panic!("{raw:?} in {country:?} was read as {}", n.value),
            Err(e) => e,
        }
    }

    #[test]
    fn phone_examples_become_e164() {
        assert_eq!(to_e164("+49 (0) 9995 100589", None), "+499995100589");
        assert_eq!(to_e164("+7 (939) 683-3005", None), "+79396833005");
        assert_eq!(to_e164("651.216.1559", Some("US")), "+16512161559");
        assert_eq!(to_e164("0151 23456789", Some("DE")), "+4915123456789");
        assert_eq!(to_e164("020 7946 0958", Some("GB")), "+442079460958");
        assert_eq!(to_e164("07700 900123", Some("GB")), "+447700900123");
        assert_eq!(to_e164("+44(0)20 7946 0958", None), "+442079460958");
        assert_eq!(to_e164("06 1234 5678", Some("IT")), "+390612345678");
        assert_eq!(to_e164("+39 06 1234 5678", None), "+390612345678");
        assert_eq!(to_e164("tel:+49-30-1234567", None), "+49301234567");
        assert_eq!(to_e164("030 1234567", Some(" de ")), "+49301234567");
    }

    #[test]
    fn international_numbers_win_over_the_country() {
        assert_eq!(to_e164("+1 (651) 216-1559", Some("DE")), "+16512161559");
        assert_eq!(to_e164("001-651-216-1559", Some("DE")), "+16512161559");
        // 00 is not the US's international prefix, and is still read as one.
        assert_eq!(to_e164("0049 30 1234567", Some("US")), "+49301234567");
        assert_eq!(to_e164("0049 30 1234567", None), "+49301234567");
    }

    #[test]
    fn made_up_numbers_in_realistic_formats_come_in() {
        assert_eq!(to_e164("555-123-4567", Some("US")), "+15551234567");
        // Not a NANP area code, and libphonenumber would eat the 1 as a trunk prefix.
        assert_eq!(to_e164("123-456-7890", Some("US")), "+11234567890");
        assert_eq!(to_e164("(123)456-7890", Some("US")), "+11234567890");
        let n = phone("+1-555-123-4567x89", None).unwrap();
        assert_eq!(n.value, "+15551234567");
        assert!(n.note.is_some_and(|t| t.contains("extension 89")));
    }

    #[test]
    fn an_extension_is_dropped_with_a_note() {
        let n = phone("(555) 123-4567 x89", Some("US")).unwrap();
        assert_eq!(n.value, "+15551234567");
        assert!(n.changed);
        let note = n.note.unwrap();
        assert!(note.contains("extension 89"), "{note}");
        assert!(note.contains("E.164"), "{note}");
        for (raw, ext) in [
            ("+44 7700 900123 ext. 12", "12"),
            ("+44 7700 900123 extension 345", "345"),
            ("+44 7700 900123 #7", "7"),
            ("001-651-216-1559x123", "123"),
        ] {
            let n = phone(raw, Some("US")).unwrap();
            assert!(
                n.note
                    .as_deref()
                    .is_some_and(|t| t.contains(&format!("extension {ext} "))),
                "{raw}: {:?}",
                n.note
            );
        }
        assert_eq!(phone("+44 7700 900123", None).unwrap().note, None);
    }

    #[test]
    fn e164_input_passes_unchanged() {
        for raw in [
            "+16512161559",
            "+4915123456789",
            "+442079460958",
            "+390612345678",
        ] {
            let n = phone(raw, Some("GB")).unwrap();
            assert_eq!(n, Normalised::new(raw.to_string(), false), "{raw}");
        }
        // Only the whitespace around it changes.
        let n = phone(" +16512161559 ", None).unwrap();
        assert_eq!((n.value.as_str(), n.changed), ("+16512161559", true));
        // A trunk 0 written after the country code is taken off by the parser.
        assert_eq!(to_e164("+4903012345678", None), "+493012345678");
    }

    #[test]
    fn the_quick_path_agrees_with_the_parser() {
        for (raw, region) in [
            ("+49 (0) 9995 100589", None),
            ("+7 (939) 683-3005", None),
            ("+1-651-216-1559", None),
            ("+44 20 7946 0958", Some("DE")),
            ("+33 6 12 34 56 78", None),
            ("(651) 216-1559", Some("US")),
            ("651.216.1559", Some("US")),
            ("1-651-216-1559", Some("US")),
            ("(416) 555-0100", Some("CA")),
        ] {
            let quick = quick_e164(raw, region).unwrap_or_else(|| panic!("{raw}: not quick"));
            let id = region.and_then(|r| r.parse::<Id>().ok());
            let parsed = read_phone(raw, id, raw).map(|n| e164(raw, &n).value);
            assert_eq!(Ok(quick), parsed, "{raw}");
        }
        for (raw, region) in [
            ("+39 06 1234 5678", None),
            ("+4903012345678", None),
            ("0151 23456789", Some("DE")),
            ("(555) 123-4567 x89", Some("US")),
            ("123-456-7890", Some("US")),
            ("651-216-1559", Some("DE")),
        ] {
            assert_eq!(quick_e164(raw, region), None, "{raw}");
        }
    }

    #[test]
    fn a_national_number_without_a_country_says_how_to_give_one() {
        for country in [None, Some("XX")] {
            let e = phone_err("0151 23456789", country);
            assert!(e.starts_with("\"0151 23456789\""), "{e}");
            assert!(
                e.contains("add a country column or set default_country"),
                "{e}"
            );
            assert!(e.contains("ICSYNC_DEFAULT_COUNTRY"), "{e}");
            assert!(e.contains("--default-country"), "{e}");
        }
    }

    #[test]
    fn the_expected_length_is_one_figure_when_there_is_one() {
        // French national numbers have exactly 9 digits after +33.
        let e = phone_err("(020)74960603", Some("FR"));
        assert!(e.contains("(10 after the country code, 9 expected)"), "{e}");
    }

    #[test]
    fn what_is_not_a_phone_number_is_refused() {
        let e = phone_err("+49 (0) 30", None);
        assert!(e.starts_with("\"+49 (0) 30\" is not a phone number"), "{e}");
        assert!(e.contains("too few digits"), "{e}");
        for (raw, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("hello", "not a phone number"),
            ("n/a", "not a phone number"),
            ("call me", "not a phone number"),
            ("john@example.org", "not a phone number"),
            ("1-800-FLOWERS", "only digits"),
            ("12", "too few digits"),
            ("+999 1234567", "not a phone number"),
            ("2024-01-15", "date"),
            ("15.01.2024", "date"),
            ("4.91512E+12", "scientific notation"),
            ("123456789012345678901", "too many digits"),
            ("555-1234", "too few digits"),
            ("  2 22#:", "not a phone number"),
            ("+44 7700 900123 ext. twelve", "extension"),
        ] {
            let e = phone_err(raw, Some("US"));
            assert!(e.contains(why), "{raw:?}: {e}");
        }
    }

    #[test]
    fn odd_input_never_panics() {
        for raw in [
            "+",
            "++",
            "00",
            "0000000",
            "+0",
            "+00 123",
            "x1",
            "#",
            ";ext=1",
            "()",
            "+(",
            "٣٤٥",
            "0\u{0}1",
            "+1 ;ext=",
            "tel:",
            "+1 000 000 0000 x",
            "9".repeat(40).as_str(),
        ] {
            let _ = phone(raw, Some("US"));
            let _ = phone(raw, None);
        }
    }

    fn alpha2(raw: &str) -> String {
        value(raw, country(raw))
    }

    #[test]
    fn countries_as_people_write_them() {
        for (raw, code) in [
            ("DE", "DE"),
            ("de", "DE"),
            (" De ", "DE"),
            ("DEU", "DE"),
            ("276", "DE"),
            ("Germany", "DE"),
            ("germany", "DE"),
            ("GERMANY", "DE"),
            ("Deutschland", "DE"),
            ("Allemagne", "DE"),
            ("Alemania", "DE"),
            ("United Kingdom", "GB"),
            ("United Kingdom of Great Britain and Northern Ireland", "GB"),
            ("UK", "GB"),
            ("U.K.", "GB"),
            ("Great Britain", "GB"),
            ("Großbritannien", "GB"),
            ("Royaume-Uni", "GB"),
            ("USA", "US"),
            ("U.S.A.", "US"),
            ("U.S.", "US"),
            ("United States", "US"),
            ("United States of America", "US"),
            ("the United States", "US"),
            ("Estados Unidos", "US"),
            ("Russian Federation", "RU"),
            ("Russia", "RU"),
            ("Côte d'Ivoire", "CI"),
            ("Cote d Ivoire", "CI"),
            ("COTE D'IVOIRE", "CI"),
            ("Korea, Republic of", "KR"),
            ("Korea (Republic of)", "KR"),
            ("South Korea", "KR"),
            ("Iran", "IR"),
            ("Bolivia", "BO"),
            ("Tanzania", "TZ"),
            ("The Netherlands", "NL"),
            ("Pays-Bas", "NL"),
            ("España", "ES"),
            ("Espagne", "ES"),
            ("Österreich", "AT"),
            ("Schweiz", "CH"),
            ("Suisse", "CH"),
            ("Italie", "IT"),
            ("Frankreich", "FR"),
            ("France", "FR"),
            ("Åland Islands", "AX"),
            ("Curaçao", "CW"),
            ("Réunion", "RE"),
            ("Congo", "CG"),
            ("DRC", "CD"),
        ] {
            assert_eq!(alpha2(raw), code, "{raw:?}");
        }
    }

    #[test]
    fn country_notes_and_changes() {
        assert_eq!(
            country("DE").unwrap(),
            Normalised::new("DE".to_string(), false)
        );
        assert_eq!(
            country("de").unwrap(),
            Normalised::new("DE".to_string(), true)
        );
        assert_eq!(
            country("Germany").unwrap(),
            Normalised::new("DE".to_string(), true)
        );
        let england = country("England").unwrap();
        assert_eq!(england.value, "GB");
        assert!(england
            .note
            .is_some_and(|n| n.contains("England") && n.contains("GB")));
        assert_eq!(country("Scotland").unwrap().value, "GB");
    }

    #[test]
    fn unknown_and_ambiguous_countries_are_refused() {
        for raw in [
            "Atlantis",
            "",
            "XX",
            "Korea",
            "Virgin Islands",
            "999",
            "E",
            "Germany 2",
        ] {
            let e = country(raw).unwrap_err();
            assert!(e.starts_with(&format!("\"{raw}\" is not a country")), "{e}");
            assert!(e.contains("ISO 3166"), "{e}");
        }
    }

    #[test]
    fn yes_and_no_in_the_usual_languages() {
        for raw in [
            "true", "TRUE", "True", "t", "yes", "Yes", "y", "Y", "1", "on", "ja", "J", "wahr",
            "oui", "vrai", "si", "sí", "Sí", "sì", "sim", "da", " yes ", "yes.",
        ] {
            assert_eq!(boolean(raw), Ok(true), "{raw:?}");
        }
        for raw in [
            "false", "FALSE", "f", "no", "No", "n", "N", "0", "off", "nein", "Nein", "falsch",
            "non", "faux", "não", "nao", "nee", "nej", "nie",
        ] {
            assert_eq!(boolean(raw), Ok(false), "{raw:?}");
        }
    }

    #[test]
    fn what_is_not_yes_or_no_is_refused() {
        for raw in ["", "x", "X", "maybe", "2", "-1", "yess", "true false"] {
            let e = boolean(raw).unwrap_err();
            assert!(e.starts_with(&format!("\"{raw}\" is not yes or no")), "{e}");
        }
    }

    fn whole(raw: &str) -> u64 {
        value(raw, amount(raw))
    }

    #[test]
    fn amounts_as_people_write_them() {
        for (raw, value) in [
            ("2500", 2500),
            ("2,500", 2500),
            ("2.500", 2500),
            ("2.500,00", 2500),
            ("2,500.00", 2500),
            ("2 500", 2500),
            ("2\u{a0}500", 2500),
            ("2\u{202f}500", 2500),
            ("2’500", 2500),
            ("2'500.75", 2501),
            ("€ 2.500", 2500),
            ("€2.500,49", 2500),
            ("2500 EUR", 2500),
            ("2.500 €", 2500),
            ("CHF 2’500.–", 2500),
            ("2.500,- €", 2500),
            ("$2,500.50", 2501),
            ("US$ 2,500", 2500),
            ("2,500,000", 2_500_000),
            ("2.500.000,5", 2_500_001),
            ("25,00,000", 2_500_000),
            ("2500.5", 2501),
            ("2500,49", 2500),
            ("2500.1234", 2500),
            ("1,234.567", 1235),
            ("0,500", 1),
            ("0.4", 0),
            ("0", 0),
            ("007", 7),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(whole(raw), value, "{raw:?}");
        }
    }

    #[test]
    fn a_letter_that_is_no_currency_is_not_dropped() {
        for raw in ["12k", "3m", "2500 ab", "x100"] {
            assert!(amount(raw).is_err(), "{raw}");
        }
        assert_eq!(amount("300 kr").map(|n| n.value), Ok(300));
    }

    #[test]
    fn amount_notes_and_changes() {
        assert_eq!(amount("2500").unwrap(), Normalised::new(2500, false));
        assert_eq!(amount("2,500").unwrap(), Normalised::new(2500, true));
        assert_eq!(amount("2.500,00").unwrap(), Normalised::new(2500, true));
        let rounded = amount("$2,500.50").unwrap();
        assert_eq!(rounded.value, 2501);
        let note = rounded.note.unwrap();
        assert!(note.contains("rounded to 2501"), "{note}");
        assert!(note.contains("\"$\""), "{note}");
        let currency = amount("2500 EUR").unwrap();
        assert!(currency.changed);
        assert!(currency.note.is_some_and(|n| n.contains("EUR")));
    }

    #[test]
    fn what_is_not_an_amount_is_refused() {
        for raw in ["-2500", "- 2.500", "€ -2.500", "(2,500)", "2500-", "−2500"] {
            let e = amount(raw).unwrap_err();
            assert!(e.contains("must be 0 or more"), "{raw:?}: {e}");
        }
        for raw in [
            "18446744073709551616",
            "99999999999999999999999",
            "18446744073709551615.5",
        ] {
            let e = amount(raw).unwrap_err();
            assert!(e.contains("too large"), "{raw:?}: {e}");
        }
        for raw in [
            "",
            "abc",
            "EUR",
            "2,50,0",
            "2.500.00",
            "1.234.56",
            "2,5000,000",
            "25 apples",
            "2..500",
            "2 , 500",
            "1e6",
            "2/500",
        ] {
            let e = amount(raw).unwrap_err();
            assert!(
                e.starts_with(&format!("\"{raw}\" is not an amount")),
                "{raw:?}: {e}"
            );
        }
    }

    #[test]
    fn first_of_many_keeps_the_first_value() {
        assert_eq!(first_of_many("a@x.io"), ("a@x.io", None));
        assert_eq!(first_of_many(" a@x.io "), ("a@x.io", None));
        let (first, note) = first_of_many("a@x.io ::: b@x.io");
        assert_eq!(first, "a@x.io");
        assert!(note.is_some_and(|n| n.contains("1 more value")));
        let (first, note) = first_of_many(" ::: a@x.io ::: b@x.io ::: c@x.io");
        assert_eq!(first, "a@x.io");
        assert!(note.is_some_and(|n| n.contains("2 more values")));
        assert_eq!(first_of_many("a@x.io ::: "), ("a@x.io", None));
        assert_eq!(first_of_many(" ::: "), ("", None));
    }
}
