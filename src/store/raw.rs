//! Reading sled 0.34's on-disk log without sled, for `recover` when sled cannot open a
//! damaged database at all. Pure parsing: bytes in, the (key, value) pairs the log's messages
//! carry out; nothing here decrypts, opens files or trusts what it reads (the caller accepts
//! a record only if its sealed value authenticates under its id, see `raw_salvage`).
//!
//! The format, from the vendored sled (`vendor/sled/src/pagecache/logger.rs` and
//! `serialization.rs`):
//! - the `db` file is a sequence of segments of `segment_size` bytes (the `conf` file says
//!   how big; 512 KiB by default), each starting with a 20-byte segment header;
//! - after it, messages: `crc32: u32 LE, kind: u8, len, segment_number, pid` (the last three
//!   in sled's varint), then `len` bytes of body. The CRC is crc32 over the body then the
//!   header after the CRC, xor `0xFFFF_FFFF`. A message's log sequence number is
//!   `segment_number * segment_size + its offset in the segment`;
//! - a node (kind 8 inline, 9 in a blob file) is `next, merging_child, merging: u8,
//!   prefix_len: u8, lo, hi, data`; a leaf's data is `0, n, n keys, n values` (each a varint
//!   length and bytes). Keys are stored without the node's prefix, `lo[..prefix_len]`;
//! - a link (kind 10 inline, 11 in a blob file) is `0, key, value` for a set, with the key
//!   also without its node's prefix (known only from a node message of the same page id);
//! - a blob file (`blobs/<lsn>`) is `crc32: u32 LE, kind: u8, body`.
//!
//! Damage is met by resynchronising: where a message's CRC fails, its body is still parsed
//! as far as it goes (an intact record after a flipped byte is still worth trying), and the
//! scan moves on one byte at a time until the next message whose CRC holds.

/// sled's segment size when its `conf` file cannot be read.
pub const DEFAULT_SEGMENT_SIZE: usize = 512 * 1024;
/// The segment header's length (lsn, max stable lsn, crc).
const SEG_HEADER_LEN: usize = 20;

const KIND_CAP: u8 = 2;
const KIND_INLINE_NODE: u8 = 8;
const KIND_BLOB_NODE: u8 = 9;
const KIND_INLINE_LINK: u8 = 10;
const KIND_BLOB_LINK: u8 = 11;
/// The highest message kind sled writes.
const KIND_MAX: u8 = 11;
/// Pairs read from one node at most (sled splits nodes long before this).
const NODE_PAIRS_MAX: usize = 1 << 16;

/// The segment size a sled `conf` file names (`segment_size: N`), if it is one sled accepts
/// (a power of two between 256 bytes and 16 MiB).
pub fn segment_size(conf: &str) -> Option<usize> {
    conf.lines()
        .filter_map(|l| l.strip_prefix("segment_size:"))
        .filter_map(|v| v.trim().parse::<usize>().ok())
        .find(|&n| n.is_power_of_two() && (256..=1 << 24).contains(&n))
}

/// Whether a sled `conf` file says the log is compressed (this reader cannot read that).
pub fn compressed(conf: &str) -> bool {
    conf.lines()
        .filter_map(|l| l.strip_prefix("use_compression:"))
        .any(|v| v.trim() == "true")
}

/// A cursor over bytes that never reads past the end (sled's own readers index freely).
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    /// sled's variable-length u64.
    fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        Some(match first {
            0..=240 => u64::from(first),
            241..=248 => 240 + 256 * (u64::from(first) - 241) + u64::from(self.u8()?),
            249 => 2288 + 256 * u64::from(self.u8()?) + u64::from(self.u8()?),
            _ => {
                let n = usize::from(first) - 247;
                let mut le = [0u8; 8];
                le[..n].copy_from_slice(self.take(n)?);
                u64::from_le_bytes(le)
            }
        })
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }
}

/// A message's header as read, and where its body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    crc: u32,
    kind: u8,
    len: usize,
    segment_number: u64,
    pid: u64,
    /// The header's length in bytes.
    header_len: usize,
}

fn read_header(at: &[u8]) -> Option<Header> {
    let mut c = Cursor { buf: at };
    let crc = u32::from_le_bytes(c.take(4)?.try_into().ok()?);
    let kind = c.u8()?;
    let len = usize::try_from(c.varint()?).ok()?;
    let segment_number = c.varint()?;
    let pid = c.varint()?;
    Some(Header {
        crc,
        kind,
        len,
        segment_number,
        pid,
        header_len: at.len() - c.buf.len(),
    })
}

fn message_crc(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(body);
    h.update(header.get(4..).unwrap_or_default());
    h.finalize() ^ 0xFFFF_FFFF
}

/// Whether a blob file's bytes pass its CRC; its kind and body.
pub fn blob_body(file: &[u8]) -> Option<(u8, &[u8], bool)> {
    let crc = u32::from_le_bytes(file.get(..4)?.try_into().ok()?);
    let kind = *file.get(4)?;
    let body = &file[5..];
    let mut h = crc32fast::Hasher::new();
    h.update(&file[4..5]);
    h.update(body);
    Some((kind, body, h.finalize() == crc))
}

/// Where a pair's key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// The whole key (a node's prefix put back).
    Full(Vec<u8>),
    /// A link's key without its node's prefix.
    Suffix(&'a [u8]),
}

/// One key and value a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<'a> {
    pub key: Key<'a>,
    pub value: &'a [u8],
}

/// What one message holds that a salvage can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The page the message belongs to (None for a blob file read on its own).
    pub pid: Option<u64>,
    /// Its log sequence number: later messages are newer.
    pub lsn: u64,
    /// Whether its CRC held (an untrusted one was read as far as it parsed).
    pub trusted: bool,
    /// For a node: the prefix its keys were stored without.
    pub prefix: Option<&'a [u8]>,
    pub pairs: Vec<Pair<'a>>,
}

/// The pairs of a leaf node's body, with full keys, as far as the body parses.
fn parse_node(body: &[u8]) -> (Option<&[u8]>, Vec<Pair<'_>>) {
    let mut c = Cursor { buf: body };
    let mut head = || -> Option<(&[u8], u8, usize)> {
        c.varint()?; // next
        c.varint()?; // merging_child
        c.u8()?; // merging
        let prefix_len = c.u8()?;
        let lo = c.bytes()?;
        c.bytes()?; // hi
        let kind = c.u8()?;
        let n = usize::try_from(c.varint()?).ok()?;
        Some((lo, prefix_len, if kind == 0 { n } else { 0 }))
    };
    let Some((lo, prefix_len, n)) = head() else {
        return (None, Vec::new());
    };
    let Some(prefix) = lo.get(..usize::from(prefix_len)) else {
        return (None, Vec::new());
    };
    let n = n.min(NODE_PAIRS_MAX);
    let mut keys = Vec::new();
    while keys.len() < n {
        match c.bytes() {
            Some(k) => keys.push(k),
            None => break,
        }
    }
    let mut pairs = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(value) = c.bytes() else { break };
        let mut full = prefix.to_vec();
        full.extend_from_slice(key);
        pairs.push(Pair {
            key: Key::Full(full),
            value,
        });
    }
    (Some(prefix), pairs)
}

/// The pair a link's body sets, if it is a set.
fn parse_link(body: &[u8]) -> Option<Pair<'_>> {
    let mut c = Cursor { buf: body };
    if c.u8()? != 0 {
        return None;
    }
    let key = c.bytes()?;
    let value = c.bytes()?;
    Some(Pair {
        key: Key::Suffix(key),
        value,
    })
}

/// The message a node or link body makes (None for other kinds or nothing parsed).
pub fn parse_body(
    kind: u8,
    body: &[u8],
    pid: Option<u64>,
    lsn: u64,
    trusted: bool,
) -> Option<Message<'_>> {
    let (prefix, pairs) = match kind {
        KIND_INLINE_NODE | KIND_BLOB_NODE => parse_node(body),
        KIND_INLINE_LINK | KIND_BLOB_LINK => (None, parse_link(body).into_iter().collect()),
        _ => return None,
    };
    (prefix.is_some() || !pairs.is_empty()).then_some(Message {
        pid,
        lsn,
        trusted,
        prefix,
        pairs,
    })
}

/// Counts of what a segment scan met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Messages whose CRC held.
    pub intact: u64,
    /// Damaged stretches: runs of bytes, each starting at a node or link header whose CRC
    /// fails, scanned byte by byte up to the next intact message (a flipped byte makes one;
    /// the candidate headers found inside the run are not counted again).
    pub damaged: u64,
}

/// The base lsn a segment header names, if its CRC holds.
fn segment_lsn(seg: &[u8]) -> Option<u64> {
    let head = seg.get(..SEG_HEADER_LEN)?;
    let crc = u32::from_le_bytes(head[..4].try_into().ok()?) ^ 0xFFFF_FFFF;
    let mut h = crc32fast::Hasher::new();
    h.update(&head[4..]);
    if h.finalize() != crc {
        return None;
    }
    let lsn = i64::from_le_bytes(head[4..12].try_into().ok()?) ^ 0x7FFF_FFFF_FFFF_FFFF;
    u64::try_from(lsn).ok()
}

/// Every node and link message in one segment (`seg`), handed to `each` in file order. `seg`
/// may be shorter than a segment (a truncated file).
///
/// A message's lsn comes from its own segment number when its CRC holds (a message left from
/// an earlier use of the segment is older, and says so); a damaged one may have a flipped
/// segment number, so it gets no more than the segment header's lsn allows (or 0 when that
/// header is damaged too): a damaged copy never outranks an intact later one by accident.
pub fn scan_segment<'a>(
    seg: &'a [u8],
    segment_size: usize,
    mut each: impl FnMut(Message<'a>),
) -> ScanStats {
    let mut stats = ScanStats::default();
    let base = segment_lsn(seg);
    let mut in_damage = false;
    let mut pos = SEG_HEADER_LEN;
    while pos + 5 < seg.len() {
        let at = &seg[pos..];
        let header = match read_header(at) {
            Some(h) if (1..=KIND_MAX).contains(&h.kind) => h,
            _ => {
                pos += 1;
                continue;
            }
        };
        let end = header.header_len.saturating_add(header.len);
        let Some(body) = at.get(header.header_len..end) else {
            pos += 1;
            continue;
        };
        let trusted = message_crc(&at[..header.header_len], body) == header.crc;
        let own = header
            .segment_number
            .saturating_mul(segment_size as u64)
            .saturating_add(pos as u64);
        let lsn = match (trusted, base) {
            (true, _) => own,
            (false, Some(base)) => own.min(base.saturating_add(pos as u64)),
            (false, None) => 0,
        };
        if trusted {
            stats.intact += 1;
            in_damage = false;
            if header.kind == KIND_CAP {
                break;
            }
        } else if matches!(header.kind, KIND_INLINE_NODE | KIND_INLINE_LINK) && !in_damage {
            stats.damaged += 1;
            in_damage = true;
        }
        if let Some(m) = parse_body(header.kind, body, Some(header.pid), lsn, trusted) {
            each(m);
        }
        // A damaged message's length is not believed: the scan goes on byte by byte.
        pos += if trusted { end } else { 1 };
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(n: u64) -> Vec<u8> {
        // sled's encoding, for the sizes the tests use.
        if n <= 240 {
            vec![n as u8]
        } else if n <= 2287 {
            vec![((n - 240) / 256 + 241) as u8, ((n - 240) % 256) as u8]
        } else {
            let mut v = vec![249, ((n - 2288) / 256) as u8, ((n - 2288) % 256) as u8];
            v.truncate(3);
            v
        }
    }

    fn bytes(b: &[u8]) -> Vec<u8> {
        let mut v = varint(b.len() as u64);
        v.extend_from_slice(b);
        v
    }

    fn node(prefix_len: u8, lo: &[u8], pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, prefix_len];
        v.extend(bytes(lo));
        v.extend(bytes(b""));
        v.push(0);
        v.extend(varint(pairs.len() as u64));
        for (k, _) in pairs {
            v.extend(bytes(k));
        }
        for (_, val) in pairs {
            v.extend(bytes(val));
        }
        v
    }

    fn message(kind: u8, segment_number: u64, pid: u64, body: &[u8]) -> Vec<u8> {
        let mut header = vec![0, 0, 0, 0, kind];
        header.extend(varint(body.len() as u64));
        header.extend(varint(segment_number));
        header.extend(varint(pid));
        let crc = message_crc(&header, body);
        header[..4].copy_from_slice(&crc.to_le_bytes());
        header.extend_from_slice(body);
        header
    }

    fn segment(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut seg = vec![0xEE; SEG_HEADER_LEN]; // a damaged segment header
        for m in messages {
            seg.extend_from_slice(m);
        }
        seg.extend(std::iter::repeat_n(0, 64));
        seg
    }

    #[test]
    fn varints_read_as_sled_writes_them() {
        for n in [0u64, 240, 241, 2287, 2288, 67823] {
            let v = varint(n);
            assert_eq!(Cursor { buf: &v }.varint(), Some(n), "{n}");
        }
        let big = [250u8, 1, 2, 3];
        assert_eq!(Cursor { buf: &big }.varint(), Some(0x030201));
        assert_eq!(Cursor { buf: &[250u8, 1] }.varint(), None);
        assert_eq!(Cursor { buf: &[245u8] }.varint(), None);
    }

    #[test]
    fn nodes_get_their_prefix_back_and_links_keep_the_suffix() {
        let n = node(2, b"abcd", &[(b"cx", b"v1"), (b"cy", b"v2")]);
        let l = {
            let mut b = vec![0];
            b.extend(bytes(b"cz"));
            b.extend(bytes(b"v3"));
            b
        };
        let seg = segment(&[message(8, 3, 7, &n), message(10, 3, 7, &l)]);
        let mut seen = Vec::new();
        let stats = scan_segment(&seg, 1024, |m| seen.push(m));
        assert_eq!(
            stats,
            ScanStats {
                intact: 2,
                damaged: 0
            }
        );
        assert_eq!(seen[0].prefix, Some(&b"ab"[..]));
        assert_eq!(seen[0].pairs[1].key, Key::Full(b"abcy".to_vec()));
        assert_eq!(seen[0].pairs[1].value, b"v2");
        assert_eq!(seen[0].lsn, 3 * 1024 + SEG_HEADER_LEN as u64);
        assert!(seen[0].trusted);
        assert_eq!(seen[1].pairs[0].key, Key::Suffix(b"cz"));
        assert_eq!(seen[1].pid, Some(7));
        assert!(seen[1].lsn > seen[0].lsn);
    }

    #[test]
    fn a_damaged_message_is_read_as_far_as_it_goes_and_the_next_one_is_found() {
        let first = node(0, b"", &[(b"k1", b"value-one"), (b"k2", b"value-two")]);
        let second = node(0, b"", &[(b"k3", b"value-three")]);
        let mut seg = segment(&[message(8, 1, 1, &first), message(8, 1, 2, &second)]);
        // Flip a byte inside the second value of the first message.
        let at = seg.windows(9).position(|w| w == b"value-two").unwrap();
        seg[at + 3] ^= 0x20;
        let mut seen = Vec::new();
        let stats = scan_segment(&seg, 1024, |m| seen.push(m));
        assert_eq!(
            stats,
            ScanStats {
                intact: 1,
                damaged: 1
            }
        );
        let damaged = seen
            .iter()
            .find(|m| !m.trusted && m.pid == Some(1))
            .unwrap();
        assert_eq!(damaged.pairs[0].value, b"value-one");
        let next = seen.iter().find(|m| m.trusted).unwrap();
        assert_eq!(next.pairs[0].key, Key::Full(b"k3".to_vec()));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..200 {
            let len = 20 + (round * 37) % 3000;
            let seg: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 256) as u8
                })
                .collect();
            scan_segment(&seg, 4096, |_| {});
            let _ = blob_body(&seg);
        }
    }

    #[test]
    fn conf_files_name_the_segment_size() {
        let conf = "segment_size: 524288\nuse_compression: false\nversion: 0.34\n";
        assert_eq!(segment_size(conf), Some(524288));
        assert!(!compressed(conf));
        assert_eq!(segment_size("segment_size: 1000\n"), None);
        assert_eq!(segment_size(""), None);
        assert!(compressed("use_compression: true\n"));
    }
}
