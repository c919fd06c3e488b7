//! The size bounds every file format is read under, in one place so that docs/ingest.md, the
//! parsers and their messages agree. Each is enforced while reading: a record over
//! [`MAX_RECORD_BYTES`] is refused with a problem naming where it is and skipped without
//! being held in memory, and the rest of the file goes on.

/// The most one record may take in its file: an NDJSON line, a CSV row (with any quoted
/// cells that span lines), a JSON array element (or a lone top-level object), the cells of
/// an `.xlsx` row together. A customer record is a few hundred bytes; a megabyte is not one.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The most columns a CSV header or a spreadsheet row may have: Excel's own limit.
pub const MAX_COLUMNS: usize = 16_384;

/// How deep a JSON record may nest arrays and objects within itself. A customer record
/// needs three; serde_json gives up at 128 for the whole document, so a deeper record is
/// cut here, well before that, and refused alone.
pub const MAX_NESTING: u32 = 64;

/// Why a record was refused before it was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excess {
    /// Over `MAX_RECORD_BYTES` (or the limit a test gives).
    TooLarge,
    /// Nested deeper than [`MAX_NESTING`].
    TooDeep,
}

impl Excess {
    /// The record problem, as "line 7 (element 2): " is put before it.
    pub fn message(self, limit: usize) -> String {
        match self {
            Excess::TooLarge => format!("record is over {}; not read", size_text(limit)),
            Excess::TooDeep => {
                format!("record nests deeper than {MAX_NESTING} levels; not read")
            }
        }
    }
}

/// `1 MiB`, `64 KiB`, `300 bytes`.
pub fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_the_bound_in_words() {
        assert_eq!(
            Excess::TooLarge.message(MAX_RECORD_BYTES),
            "record is over 1 MiB; not read"
        );
        assert_eq!(
            Excess::TooLarge.message(300),
            "record is over 300 bytes; not read"
        );
        assert_eq!(
            Excess::TooDeep.message(MAX_RECORD_BYTES),
            "record nests deeper than 64 levels; not read"
        );
    }
}
