//! File-name rules of the drop folder. Pure string functions: which names wait, how an
//! archived or report name is numbered and kept within the file system's name limit, and how
//! a name is shown (escaped) wherever it is printed, logged or stored for display.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The longest file name, in bytes, on the file systems icsync runs on (Linux and macOS
/// `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// What a shortened name keeps of its full name's hash (`~` and 8 hex digits): enough to tell
/// apart two long names that share their first 240 bytes.
const HASH_TAG: usize = 9;

/// Endings of files still being written by a browser, `rsync`, `curl` or an editor: they wait
/// until renamed to their final name.
const PARTIAL_SUFFIXES: [&str; 5] = [".tmp", ".part", ".partial", ".crdownload", "~"];

/// True for names that are not (yet) a drop: hidden files (also how tools such as `rsync`
/// name their temporaries) and the partial-download endings, in any letter case.
pub fn waits_for_rename(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.') || PARTIAL_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// Splits `customers.csv` into (`customers`, `.csv`); a name without a dot (or with only a
/// leading one) has no extension.
pub fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// The `n`th candidate for archiving `name`: itself first, then `customers.2.csv`,
/// `customers.3.csv`, ... so the extension (and so the format) is kept. Every candidate fits
/// [`NAME_MAX`] (see [`fit_stem`]).
pub fn numbered(name: &str, n: u32) -> String {
    numbered_with(name, n, "")
}

/// [`numbered`] with `suffix` after the extension (`x.2.csv.errors.txt`), the whole kept
/// within [`NAME_MAX`]: the stem is what is shortened, so the extension and suffix survive.
pub fn numbered_with(name: &str, n: u32, suffix: &str) -> String {
    let (stem, ext) = split_extension(name);
    let stem = if n <= 1 {
        Cow::Borrowed(stem)
    } else {
        Cow::Owned(format!("{stem}.{n}"))
    };
    format!("{}{ext}{suffix}", fit_stem(&stem, ext.len() + suffix.len()))
}

/// `stem` as it can precede `room` more bytes in one file name: itself when it fits, else
/// cut (at a character boundary) and tagged `~` + the first 8 hex digits of the SHA-256 of the
/// whole stem, so two long names that share a beginning still get different short names.
pub fn fit_stem(stem: &str, room: usize) -> Cow<'_, str> {
    let limit = NAME_MAX.saturating_sub(room);
    if stem.len() <= limit {
        return Cow::Borrowed(stem);
    }
    let mut cut = limit.saturating_sub(HASH_TAG);
    while cut > 0 && !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(stem.as_bytes());
    Cow::Owned(format!("{}~{}", &stem[..cut], &hex::encode(digest)[..8]))
}

/// `name` as it is shown to a person: control characters (newline, ESC, DEL, C1 ...) and the
/// bidirectional-text controls (which reorder what follows them on screen) become `\n`,
/// `\u{1b}`, `\u{202e}`, ..., and a backslash becomes `\\`, so a name can neither forge a
/// line in a log or report nor drive a terminal. Every place a dropped file's name is logged,
/// written to a report or stored for display uses this one function.
pub fn shown(name: &str) -> Cow<'_, str> {
    if !name.chars().any(needs_escape) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_hidden_names_wait() {
        for name in [
            ".x.csv",
            "x.csv.part",
            "x.csv.PART",
            "x.tmp",
            "x.partial",
            "x.csv.crdownload",
            "x.csv~",
        ] {
            assert!(waits_for_rename(name), "{name}");
        }
        for name in ["x.csv", "x.json", "partial.csv", "x.tmp.csv", "x.txt"] {
            assert!(!waits_for_rename(name), "{name}");
        }
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("customers.csv", 1), "customers.csv");
        assert_eq!(numbered("customers.csv", 2), "customers.2.csv");
        assert_eq!(numbered("a.b.ndjson", 3), "a.b.3.ndjson");
        assert_eq!(numbered("README", 2), "README.2");
        assert_eq!(split_extension("x.errors.txt"), ("x.errors", ".txt"));
    }

    #[test]
    fn long_names_are_shortened_to_fit_and_stay_apart() {
        let long = format!("{}.csv", "a".repeat(250));
        assert_eq!(long.len(), 254);
        assert_eq!(numbered(&long, 1), long);
        let second = numbered(&long, 2);
        assert!(
            second.len() <= NAME_MAX && second.ends_with(".csv"),
            "{second}"
        );
        let report = numbered_with(&long, 1, ".errors.txt");
        assert!(report.len() <= NAME_MAX && report.ends_with(".csv.errors.txt"));
        // Two long names that differ only past the cut get different short names.
        let other = format!("{}b.csv", "a".repeat(249));
        assert_ne!(numbered_with(&other, 1, ".errors.txt"), report);
        assert_ne!(numbered(&other, 2), second);
        // Cut at a character boundary, never inside a multi-byte character.
        let wide = "é".repeat(127);
        let fitted = fit_stem(&wide, 20);
        assert!(fitted.len() <= NAME_MAX - 20);
        assert!(fitted.contains('~'));
        assert_eq!(fit_stem("short", 20), "short");
    }

    #[test]
    fn shown_names_escape_control_and_bidi_characters() {
        assert_eq!(shown("plain name.csv"), "plain name.csv");
        assert!(matches!(shown("plain.csv"), Cow::Borrowed(_)));
        assert_eq!(shown("a\nline 9: x.csv"), "a\\nline 9: x.csv");
        assert_eq!(shown("\u{1b}[31mred.csv"), "\\u{1b}[31mred.csv");
        assert_eq!(shown("evil\u{202e}vsc.exe"), "evil\\u{202e}vsc.exe");
        assert_eq!(shown("tab\there\r\u{7f}"), "tab\\there\\r\\u{7f}");
        assert_eq!(shown("back\\slash"), "back\\\\slash");
        let out = shown("x\u{0}\u{85}\u{2066}y");
        assert!(!out.chars().any(|c| c.is_control()), "{out}");
    }
}
