//! Bytes to UTF-8 text: which encoding a text file is in ([`detect`], or a name given by the
//! user, [`encoding_by_label`]) and a streaming reader that turns it into UTF-8
//! ([`Decoding`]).
//!
//! Owns only the character encoding. It never parses records, never picks a delimiter (that
//! is `sniff`) and never changes a character: a byte sequence that is not valid in the
//! encoding is an error ([`NotValidText`], carried inside an `io::Error`), never a U+FFFD
//! replacement, because a silently altered name or address is worse than a rejected file.
//! UTF-8 input is passed through untouched (less a byte order mark) so that the parsers
//! keep reporting invalid UTF-8 themselves, with their own line and column.

use std::fmt;
use std::io::{self, Read};

use encoding_rs::{CoderResult, Decoder, DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

use super::bom::SkipBom;

/// How many leading bytes of a file [`detect`] is meant to see. Callers read up to this many
/// bytes (fewer for a shorter file) and hand them over.
pub const SAMPLE_BYTES: usize = 64 * 1024;

/// Bytes read from the source at a time, and the size of the decoded-output buffer.
const CHUNK: usize = 8 * 1024;

/// How an encoding was settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detection {
    /// The file starts with a byte order mark.
    Bom,
    /// Guessed from the file's first bytes.
    Sniffed,
    /// Named by the user (`--encoding`).
    Given,
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Detection::Bom => "byte order mark",
            Detection::Sniffed => "detected",
            Detection::Given => "given",
        })
    }
}

/// A file's encoding and how it was found: displays as `windows-1252 (detected)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub encoding: &'static Encoding,
    pub how: Detection,
}

impl Detected {
    pub fn given(encoding: &'static Encoding) -> Detected {
        Detected {
            encoding,
            how: Detection::Given,
        }
    }
}

impl fmt::Display for Detected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.encoding.name(), self.how)
    }
}

/// The encoding of a file whose first bytes (at most [`SAMPLE_BYTES`]) are `sample`.
///
/// A byte order mark decides (UTF-8, UTF-16LE, UTF-16BE). Otherwise text that is mostly
/// ASCII with every other byte zero is UTF-16 without a mark; a sample that is valid UTF-8
/// (a multi-byte sequence cut off by the sample's end allowed) is UTF-8; anything else is
/// chardetng's guess among the legacy encodings. The same bytes always give the same answer.
pub fn detect(sample: &[u8]) -> Detected {
    if let Some((encoding, _)) = Encoding::for_bom(sample) {
        return Detected {
            encoding,
            how: Detection::Bom,
        };
    }
    let sniffed = |encoding| Detected {
        encoding,
        how: Detection::Sniffed,
    };
    if let Some(encoding) = utf16_without_bom(sample) {
        return sniffed(encoding);
    }
    match std::str::from_utf8(sample) {
        Ok(_) => return sniffed(UTF_8),
        // `error_len() == None`: the sample ends inside a sequence that may be fine.
        Err(e) if e.error_len().is_none() => return sniffed(UTF_8),
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(sample, sample.len() < SAMPLE_BYTES);
    sniffed(detector.guess(None, chardetng::Utf8Detection::Deny))
}

/// UTF-16 text without a byte order mark, recognised by its zero bytes: in text that is
/// mostly Latin script, the high byte of nearly every code unit is zero. Needs a few code
/// units to say anything; never fires on UTF-8 or legacy text, which have no zero bytes.
fn utf16_without_bom(sample: &[u8]) -> Option<&'static Encoding> {
    let units = sample.len() / 2;
    if units < 4 {
        return None;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for pair in sample.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    // At least 80% of one half zero and at most 5% of the other.
    let most = |n: usize| n * 5 >= units * 4;
    let few = |n: usize| n * 20 <= units;
    if most(odd) && few(even) {
        Some(UTF_16LE)
    } else if most(even) && few(odd) {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// The encoding a user means by `label` (`--encoding latin1`): any WHATWG label, in any case
/// (`utf-8`, `windows-1252`, `latin1`, `iso-8859-15`, `shift_jis`, `utf-16` = UTF-16LE, ...).
/// `None` for an unknown label and for the labels that map to the "replacement" encoding,
/// which decodes nothing.
pub fn encoding_by_label(label: &str) -> Option<&'static Encoding> {
    let label = label.trim();
    if label.eq_ignore_ascii_case("utf-16") {
        return Some(UTF_16LE);
    }
    Encoding::for_label(label.as_bytes()).filter(|e| *e != encoding_rs::REPLACEMENT)
}

/// Bytes that are not valid in the file's encoding: where (the 1-based line of the decoded
/// text) and which encoding. Travels inside an `io::Error` of kind `InvalidData` out of
/// [`Decoding`]; [`NotValidText::find`] gets it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: not valid {encoding}")]
pub struct NotValidText {
    pub line: u64,
    pub encoding: &'static str,
}

impl NotValidText {
    /// The `NotValidText` inside `error`, if that is what it carries.
    pub fn find(error: &io::Error) -> Option<&NotValidText> {
        error.get_ref()?.downcast_ref::<NotValidText>()
    }

    fn to_io(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self.clone())
    }
}

/// A reader of UTF-8 text decoded from `R` in a given encoding, with a leading byte order
/// mark dropped. UTF-8 passes through unchanged; any other encoding is decoded in chunks
/// (bounded memory), and bytes not valid in it end the text with a [`NotValidText`] error,
/// after everything decoded before them has been read.
pub struct Decoding<R> {
    inner: Inner<R>,
}

enum Inner<R> {
    Utf8(SkipBom<R>),
    Other(Box<Transcoder<R>>),
}

struct Transcoder<R> {
    source: R,
    decoder: Decoder,
    encoding: &'static Encoding,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    /// Newlines in everything decoded so far.
    newlines: u64,
    done: bool,
    failed: Option<NotValidText>,
}

impl<R: Read> Decoding<R> {
    pub fn new(source: R, encoding: &'static Encoding) -> Self {
        let inner = if encoding == UTF_8 {
            Inner::Utf8(SkipBom::new(source))
        } else {
            Inner::Other(Box::new(Transcoder {
                source,
                decoder: encoding.new_decoder_with_bom_removal(),
                encoding,
                input: vec![0; CHUNK],
                in_start: 0,
                in_end: 0,
                eof: false,
                output: vec![0; CHUNK],
                out_start: 0,
                out_end: 0,
                newlines: 0,
                done: false,
                failed: None,
            }))
        };
        Decoding { inner }
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Utf8(r) => r.read(buf),
            Inner::Other(t) => t.read(buf),
        }
    }
}

impl<R: Read> Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.out_start < self.out_end {
                let n = (self.out_end - self.out_start).min(buf.len());
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if let Some(failed) = &self.failed {
                return Err(failed.to_io());
            }
            if self.done {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                match self.source.read(&mut self.input) {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.in_start = 0;
                        self.in_end = n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.in_start..self.in_end],
                &mut self.output,
                self.eof,
            );
            self.in_start += read;
            self.out_start = 0;
            self.out_end = written;
            self.newlines += self.output[..written]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            match result {
                DecoderResult::InputEmpty => self.done = self.eof,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    self.failed = Some(NotValidText {
                        line: self.newlines + 1,
                        encoding: self.encoding.name(),
                    });
                }
            }
        }
    }
}

/// Decodes a whole sample for a look at its text (`sniff`), replacing what does not decode:
/// never used for data, only to guess the layout.
pub(super) fn lossy(sample: &[u8], encoding: &'static Encoding) -> String {
    let mut decoder = encoding.new_decoder_with_bom_removal();
    let mut text = String::with_capacity(
        decoder
            .max_utf8_buffer_length(sample.len())
            .unwrap_or(sample.len()),
    );
    // `last` false: a sequence cut by the sample's end is left out, not replaced.
    let (result, _, _) = decoder.decode_to_string(sample, &mut text, false);
    debug_assert!(result == CoderResult::InputEmpty);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most one byte per read, to prove short reads are handled.
    struct OneByte<R>(R);

    impl<R: Read> Read for OneByte<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    fn decode(bytes: &[u8], encoding: &'static Encoding) -> io::Result<String> {
        let mut out = String::new();
        Decoding::new(bytes, encoding).read_to_string(&mut out)?;
        Ok(out)
    }

    fn utf16(text: &str, le: bool) -> Vec<u8> {
        let mut out = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for unit in text.encode_utf16() {
            out.extend(if le {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn windows_1252_decodes_umlauts_and_eszett() {
        let bytes = b"M\xFCller;Stra\xDFe\r\n";
        assert_eq!(
            decode(bytes, encoding_rs::WINDOWS_1252).unwrap(),
            "Müller;Straße\r\n"
        );
    }

    #[test]
    fn windows_1252_is_detected_for_legacy_german_text() {
        let sample = b"Kundennummer;Vorname;Nachname\n1;J\xFCrgen;M\xFCller\n2;Hans;Gro\xDF\n";
        let got = detect(sample);
        assert_eq!(got.encoding, encoding_rs::WINDOWS_1252);
        assert_eq!(got.to_string(), "windows-1252 (detected)");
    }

    #[test]
    fn utf16_with_a_bom_in_either_byte_order() {
        for le in [true, false] {
            let bytes = utf16("name\nMüller\n", le);
            let got = detect(&bytes);
            assert_eq!(got.how, Detection::Bom);
            assert_eq!(got.encoding, if le { UTF_16LE } else { UTF_16BE });
            assert_eq!(decode(&bytes, got.encoding).unwrap(), "name\nMüller\n");
        }
        assert_eq!(
            detect(&utf16("a", true)).to_string(),
            "UTF-16LE (byte order mark)"
        );
    }

    #[test]
    fn utf16_without_a_bom_is_recognised_by_its_zero_bytes() {
        let le = utf16("full_name,email\nMüller,m@x.de\n", true);
        assert_eq!(detect(&le[2..]).encoding, UTF_16LE);
        let be = utf16("full_name,email\nMüller,m@x.de\n", false);
        assert_eq!(detect(&be[2..]).encoding, UTF_16BE);
    }

    #[test]
    fn utf8_bom_is_detected_and_stripped() {
        let bytes = b"\xEF\xBB\xBFname\nM\xC3\xBCller\n";
        let got = detect(bytes);
        assert_eq!(got.to_string(), "UTF-8 (byte order mark)");
        assert_eq!(decode(bytes, got.encoding).unwrap(), "name\nMüller\n");
    }

    #[test]
    fn valid_utf8_with_umlauts_is_utf8_not_1252() {
        let got = detect("Kundennummer;Name\n1;Jürgen Müller\n2;Straße\n".as_bytes());
        assert_eq!(got.encoding, UTF_8);
        assert_eq!(got.how, Detection::Sniffed);
    }

    #[test]
    fn a_utf8_sequence_cut_by_the_sample_end_is_still_utf8() {
        let text = "name\nMüller".as_bytes();
        let cut = &text[..text.len() - 4]; // ends between the two bytes of ü
        assert_eq!(detect(cut).encoding, UTF_8);
    }

    #[test]
    fn utf8_passes_through_untouched_even_when_invalid() {
        let bytes = b"ok\n\xFF\xFE bad";
        assert_eq!(
            {
                let mut out = Vec::new();
                Decoding::new(&bytes[..], UTF_8)
                    .read_to_end(&mut out)
                    .unwrap();
                out
            },
            bytes
        );
    }

    #[test]
    fn shift_jis_and_iso_8859_2_are_detected() {
        let (sjis, _, _) = encoding_rs::SHIFT_JIS
            .encode("氏名,メールアドレス\n山田太郎,taro@example.jp\n佐藤花子,hanako@example.jp\n");
        assert_eq!(detect(&sjis).encoding, encoding_rs::SHIFT_JIS);
        let (latin2, _, _) = encoding_rs::ISO_8859_2.encode(
            "imię;nazwisko;miasto\nŁukasz;Wiśniewski;Łódź\nZbigniew;Żółkiewski;Kraków\n\
             Małgorzata;Szczęsna;Gdańsk\n",
        );
        let got = detect(&latin2).encoding;
        // Central European text: ISO-8859-2 or its Windows sibling, both decode it right.
        assert!(
            got == encoding_rs::ISO_8859_2 || got == encoding_rs::WINDOWS_1250,
            "{}",
            got.name()
        );
        assert!(decode(&latin2, got).unwrap().contains("Łódź"));
    }

    #[test]
    fn detection_is_deterministic() {
        let sample = b"a;b\n\xE4\xF6\xFC;\xDF\n";
        let first = detect(sample);
        for _ in 0..5 {
            assert_eq!(detect(sample), first);
        }
    }

    #[test]
    fn a_reader_giving_one_byte_at_a_time_still_decodes() {
        let bytes = utf16("full_name;email\nMüller;m@x.de\n", true);
        let mut out = String::new();
        Decoding::new(OneByte(&bytes[..]), UTF_16LE)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "full_name;email\nMüller;m@x.de\n");
        let mut out = String::new();
        Decoding::new(OneByte(&b"J\xFCrgen"[..]), encoding_rs::WINDOWS_1252)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "Jürgen");
    }

    #[test]
    fn a_long_input_crosses_chunk_boundaries() {
        let text = "Müller;Straße\n".repeat(3000);
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        assert_eq!(
            decode(&bytes, encoding_rs::WINDOWS_1252).unwrap(),
            text,
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn malformed_utf16_is_an_error_naming_the_line_after_the_good_text() {
        let mut bytes = utf16("a\nb\n", true);
        bytes.extend([0x00, 0xDC]); // a lone low surrogate
        bytes.extend(utf16("c", true).split_off(2));
        let mut decoding = Decoding::new(&bytes[..], UTF_16LE);
        let mut out = Vec::new();
        let err = decoding.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"a\nb\n", "the text before the bad bytes is delivered");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let found = NotValidText::find(&err).unwrap();
        assert_eq!(found.line, 3);
        assert_eq!(err.to_string(), "line 3: not valid UTF-16LE");
        // A truncated final code unit is malformed too.
        let err = decode(&utf16("ab", true)[..5], UTF_16LE).unwrap_err();
        assert_eq!(NotValidText::find(&err).unwrap().line, 1);
    }

    #[test]
    fn labels_name_encodings() {
        assert_eq!(encoding_by_label("utf-16"), Some(UTF_16LE));
        assert_eq!(encoding_by_label(" UTF-8 "), Some(UTF_8));
        assert_eq!(encoding_by_label("latin1"), Some(encoding_rs::WINDOWS_1252));
        assert_eq!(
            encoding_by_label("ISO-8859-15"),
            Some(encoding_rs::ISO_8859_15)
        );
        assert_eq!(encoding_by_label("iso-2022-kr"), None);
        assert_eq!(encoding_by_label("klingon"), None);
        assert_eq!(
            Detected::given(encoding_rs::ISO_8859_15).to_string(),
            "ISO-8859-15 (given)"
        );
    }
}
