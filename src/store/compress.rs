//! Record compression: zstd with a fixed dictionary trained on records as the store writes
//! them (`assets/zstd/`, README there). A record's JSON is mostly field names, states and
//! timestamps every record repeats; with the dictionary a queued record of ~700 bytes takes
//! ~100 and a synced one (the server's copy beside ours) ~170, where zstd alone gets ~430
//! and ~650 (issue 18, docs/benchmarks.md).
//!
//! It owns the dictionary bytes and the zstd contexts, and nothing else: bytes in, bytes
//! out. `codec` decides what is compressed and seals the result; nothing here knows about
//! records, keys or sled. The dictionary is part of the stored format: a value compressed
//! with it can only be read with it, so it never changes. Another dictionary would be another
//! value format in `codec`, with the old one kept for reading.

use std::cell::RefCell;
use std::sync::OnceLock;

use zeroize::Zeroizing;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The dictionary of value format 3 (`codec`). Never edited: see the module docs.
const DICTIONARY_V1: &[u8] = include_bytes!("../../assets/zstd/records-v1.dict");
/// zstd's default level: higher levels took longer and came out no smaller on records.
const LEVEL: i32 = 3;
/// The most a stored value may expand to. A record is bounded well below this (a body is at
/// most 1 MiB, `contract::MAX_BODY_BYTES`, and a record holds a few copies plus its history),
/// so a frame that claims more is damage, and is refused before anything is allocated.
pub const MAX_EXPANDED: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("zstd could not compress: {0}")]
    Compress(String),
    /// Never quotes the bytes: they hold customer data.
    #[error("not a readable frame: {0}")]
    Frame(String),
    #[error("the frame expands to {0} bytes, over the {MAX_EXPANDED}-byte bound")]
    TooLarge(u64),
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICT: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICT.get_or_init(|| EncoderDictionary::copy(DICTIONARY_V1, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static DICT: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICT.get_or_init(|| DecoderDictionary::copy(DICTIONARY_V1))
}

thread_local! {
    // One context of each per thread: making one (and loading the dictionary into it) costs
    // more than compressing a record.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

fn new_compressor() -> std::io::Result<Compressor<'static>> {
    let mut c = Compressor::with_prepared_dictionary(encoder_dictionary())?;
    // The frame says how long it expands to (so `expand` allocates once, exactly, and
    // refuses a claim over the bound); the dictionary's id and a checksum would only add
    // bytes: the format byte names the dictionary and the seal authenticates every byte.
    c.include_contentsize(true)?;
    c.include_dictid(false)?;
    c.include_checksum(false)?;
    Ok(c)
}

/// `plain` compressed with the dictionary: one zstd frame that records its expanded size.
/// The result is as sensitive as `plain` (the caller seals it).
pub fn squeeze(plain: &[u8]) -> Result<Zeroizing<Vec<u8>>, CompressError> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(new_compressor().map_err(|e| CompressError::Compress(e.to_string()))?);
        }
        let Some(c) = slot.as_mut() else {
            unreachable!("set just above")
        };
        c.compress(plain)
            .map(Zeroizing::new)
            .map_err(|e| CompressError::Compress(e.to_string()))
    })
}

/// The bytes `squeeze` was given. Refuses a frame that does not record its size, claims more
/// than [`MAX_EXPANDED`], or does not decode to exactly that size.
pub fn expand(frame: &[u8]) -> Result<Zeroizing<Vec<u8>>, CompressError> {
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err(CompressError::Frame("no content size".into())),
        Err(_) => return Err(CompressError::Frame("no frame header".into())),
    };
    let capacity = usize::try_from(size)
        .ok()
        .filter(|&n| n <= MAX_EXPANDED)
        .ok_or(CompressError::TooLarge(size))?;
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                Decompressor::with_prepared_dictionary(decoder_dictionary())
                    .map_err(|e| CompressError::Frame(e.to_string()))?,
            );
        }
        let Some(d) = slot.as_mut() else {
            unreachable!("set just above")
        };
        let out = Zeroizing::new(
            d.decompress(frame, capacity)
                .map_err(|e| CompressError::Frame(e.to_string()))?,
        );
        if out.len() != capacity {
            return Err(CompressError::Frame(format!(
                "{} bytes where the frame said {capacity}",
                out.len()
            )));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"id":"01a24c14-fe39-72e9-ab7c-f2e1347226c9","revision":1,"payload":{"email":"fraccibruno@example.net","external_id":"crm-100000","full_name":"Angelina Zabarella","type":"INDIVIDUAL"},"origin":{"kind":"cli"},"state":"queued","last_error":null,"remote":null,"synced_revision":null,"linked_customer_id":null,"existing":null,"failures":0,"next_attempt_at":null,"created_at":"2026-12-06T15:59:33.945950864Z","updated_at":"2026-12-06T15:59:35.074785275Z","history":[{"event":"action","at":"2026-12-06T15:59:33.945950864Z","action":"created","revision":1,"detail":"command line"}]}"#;

    #[test]
    fn a_record_comes_back_byte_for_byte_and_the_dictionary_earns_its_place() {
        let frame = squeeze(RECORD.as_bytes()).unwrap();
        assert_eq!(expand(&frame).unwrap().as_slice(), RECORD.as_bytes());
        let alone = zstd::bulk::compress(RECORD.as_bytes(), LEVEL).unwrap();
        // A record is mostly what every record repeats: the dictionary holds it.
        assert!(
            frame.len() * 2 < alone.len(),
            "{} bytes with the dictionary, {} without",
            frame.len(),
            alone.len()
        );
        assert!(frame.len() * 3 < RECORD.len());
    }

    #[test]
    fn empty_and_incompressible_inputs_round_trip() {
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for input in [&b""[..], &noise] {
            assert_eq!(expand(&squeeze(input).unwrap()).unwrap().as_slice(), input);
        }
    }

    #[test]
    fn damaged_frames_are_refused_not_trusted() {
        let frame = squeeze(RECORD.as_bytes()).unwrap();
        assert!(matches!(expand(&[]), Err(CompressError::Frame(_))));
        assert!(matches!(
            expand(&frame[..frame.len() / 2]),
            Err(CompressError::Frame(_))
        ));
        // A frame without the dictionary's content is not this format.
        assert!(expand(b"{\"json\": true}").is_err());
    }

    #[test]
    fn a_frame_claiming_more_than_the_bound_allocates_nothing() {
        let huge = vec![0u8; MAX_EXPANDED + 1];
        let frame = zstd::bulk::compress(&huge, 1).unwrap();
        assert!(
            matches!(expand(&frame), Err(CompressError::TooLarge(n)) if n == (MAX_EXPANDED as u64) + 1)
        );
    }
}
