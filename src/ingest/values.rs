//! STUB replaced by the values helper's module at merge.

pub struct Normalised<T> {
    pub value: T,
    pub changed: bool,
    pub note: Option<String>,
}

pub fn phone(raw: &str, _country: Option<&str>) -> Result<Normalised<String>, String> {
    Ok(Normalised {
        value: raw.to_string(),
        changed: false,
        note: None,
    })
}

pub fn country(raw: &str) -> Result<Normalised<String>, String> {
    Ok(Normalised {
        value: raw.to_string(),
        changed: false,
        note: None,
    })
}

pub fn boolean(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{raw:?} is not yes or no")),
    }
}

pub fn amount(raw: &str) -> Result<Normalised<u64>, String> {
    raw.trim()
        .parse()
        .map(|value| Normalised {
            value,
            changed: false,
            note: None,
        })
        .map_err(|_| format!("{raw:?} is not an amount"))
}

pub fn first_of_many(raw: &str) -> (&str, Option<String>) {
    match raw.split_once(" ::: ") {
        Some((first, _)) => (first, Some("several values; took the first".into())),
        None => (raw, None),
    }
}
