//! Which character separates the cells of a delimited text file: `,` `;` tab or `|`, guessed
//! from the first lines of its decoded text. Owns only that guess: it reads no file, knows
//! nothing of encodings (it is handed text) or of what the columns mean.

/// The delimiters considered, in the order ties are settled (`,` first).
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Records looked at: the header and the rows after it.
const RECORDS: usize = 10;

/// The delimiter of the delimited text that starts with `text`.
///
/// Counts each candidate outside double quotes, record by record (a quoted cell may hold a
/// line break). A candidate must appear in the header; among those, the one whose header
/// count recurs on the most following records wins, then the one with more cells. A tie, or
/// no candidate at all, gives `,`. When `text` has several records and does not end with a
/// line break, its last record may be cut short (a sample) and is not looked at.
pub fn delimiter(text: &str) -> u8 {
    let counts = records(text);
    let Some((header, rows)) = counts.split_first() else {
        return b',';
    };
    let mut best: Option<((usize, usize), u8)> = None;
    let mut tied = false;
    for (i, &candidate) in CANDIDATES.iter().enumerate() {
        let in_header = header[i];
        if in_header == 0 {
            continue;
        }
        let agreeing = rows.iter().filter(|row| row[i] == in_header).count();
        let score = (agreeing, in_header);
        match best {
            Some((top, _)) if score < top => {}
            Some((top, _)) if score == top => tied = true,
            _ => {
                best = Some((score, candidate));
                tied = false;
            }
        }
    }
    match best {
        Some((_, candidate)) if !tied => candidate,
        _ => b',',
    }
}

/// Per record (blank ones skipped), how often each candidate occurs outside quotes.
fn records(text: &str) -> Vec<[usize; CANDIDATES.len()]> {
    let mut out = Vec::new();
    let mut current = [0usize; CANDIDATES.len()];
    let mut blank = true;
    let mut quoted = false;
    for &b in text.as_bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => {
                if !blank {
                    out.push(current);
                    if out.len() == RECORDS {
                        return out;
                    }
                }
                current = [0; CANDIDATES.len()];
                blank = true;
                continue;
            }
            _ => {}
        }
        blank = false;
        if !quoted {
            if let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
                current[i] += 1;
            }
        }
    }
    // An unterminated last record counts only when it is the only one.
    if !blank && out.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_excel_export_uses_semicolons() {
        let text = "Kundennummer;Vorname;Nachname;E-Mail-Adresse;Telefon;Land\r\n\
                    10001;Jürgen;Müller;j.mueller@example.de;+49 30 1234567;DE\r\n\
                    10002;Anna;Groß, geb. Klein;anna@example.de;;DE\r\n";
        assert_eq!(delimiter(text), b';');
    }

    #[test]
    fn tab_separated() {
        let text = "full_name\temail\tphone\nAda Lovelace\tada@example.com\t+44 20 7946 0958\n";
        assert_eq!(delimiter(text), b'\t');
    }

    #[test]
    fn pipe_separated() {
        let text = "full_name|email|country\nAda|ada@example.com|GB\nBo|bo@example.com|SE\n";
        assert_eq!(delimiter(text), b'|');
    }

    #[test]
    fn semicolons_inside_quotes_do_not_count() {
        let text = "full_name,email,note\n\
                    \"Müller; Hans\",hans@example.de,\"a; b; c\"\n\
                    \"Meier; Eva\",eva@example.de,x\n";
        assert_eq!(delimiter(text), b',');
    }

    #[test]
    fn a_quoted_line_break_stays_inside_its_record() {
        let text = "name;address;city\n\"Ann\";\"Main St 1\nBack house, 2nd floor\";Berlin\n";
        assert_eq!(delimiter(text), b';');
    }

    #[test]
    fn header_consistency_beats_stray_commas_in_data() {
        // Decimal commas in the data, semicolons in the header and every row.
        let text = "name;volume;rate\nAnn;1,5;2,25\nBo;3,0;1,75\n";
        assert_eq!(delimiter(text), b';');
    }

    #[test]
    fn a_cut_last_record_is_ignored() {
        let text = "a;b;c\n1;2;3\n4;5;6\n7;8,9,10,11,12";
        assert_eq!(delimiter(text), b';');
    }

    #[test]
    fn nothing_or_a_tie_gives_comma() {
        assert_eq!(delimiter(""), b',');
        assert_eq!(delimiter("full_name\nAda\n"), b',');
        assert_eq!(delimiter("a;b,c\n1;2,3\n"), b',');
        // A single header line: the candidate with the most cells.
        assert_eq!(delimiter("a;b;c,d"), b';');
    }
}
