//! File-name rules of the drop folder. Pure string functions.

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
/// `customers.3.csv`, ... so the extension (and so the format) is kept.
pub fn numbered(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem}.{n}{ext}")
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
}
