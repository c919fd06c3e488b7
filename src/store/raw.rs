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
//! scan moves on one byte at a time until the next message whose CRC holds. Inside a damaged
//! leaf, the values after a flipped length are found again from the end of the node (values
//! are stored back to back, so the last ones are placed by where they end, see
//! `resync_values`): a flip costs the value it lands in, not the rest of its node.

use super::codec;

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
/// The largest value area of a damaged node searched for values after the damage.
const RESYNC_AREA_MAX: usize = 4 << 20;

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

/// Whether `value` can be a record's sealed value (`codec`: format byte, 24-byte nonce,
/// 16-byte tag, then the ciphertext): the only values a salvage can use.
pub fn sealed_value(value: &[u8]) -> bool {
    value.len() >= SEALED_OVERHEAD && codec::is_sealed(value)
}

/// The bytes a sealed value adds to its plaintext.
const SEALED_OVERHEAD: usize = 1 + 24 + 16;

/// The pairs of a leaf node's body, with full keys, as far as the body parses; for a damaged
/// body (`resync`), also the values found after the damage (`resync_values`).
fn parse_node(body: &[u8], resync: bool) -> (Option<&[u8]>, Vec<Pair<'_>>) {
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
    let values_at = body.len() - c.buf.len();
    let full = |key: &[u8]| {
        let mut full = prefix.to_vec();
        full.extend_from_slice(key);
        Key::Full(full)
    };
    let mut pairs = Vec::with_capacity(keys.len());
    for key in &keys {
        let Some(value) = c.bytes() else { break };
        pairs.push(Pair {
            key: full(key),
            value,
        });
    }
    if resync && keys.len() == n {
        let read = pairs.len();
        for (index, value) in resync_values(&body[values_at..], n) {
            // A value the plain parse already paired with its key is not taken twice.
            let again = index < read && std::ptr::eq(pairs[index].value, value);
            if let (Some(key), false) = (keys.get(index), again) {
                pairs.push(Pair {
                    key: full(key),
                    value,
                });
            }
        }
    }
    (Some(prefix), pairs)
}

/// The values of a damaged leaf's value area (`area`, `n` values) that can still be placed:
/// a node's values are stored back to back up to the end of its body, so every sealed value
/// (`sealed_value`, with its varint length) that ends exactly where the next placed one
/// starts, or at the end, is the value of key `n - 1 - (how many placed values follow it)`.
/// A flipped length or value loses only its own value this way; a position misread as a
/// value start (a sealed value's first byte inside a ciphertext) rarely ends on a placed
/// one, and when it does it is paired with a key its bytes do not authenticate under.
/// One pass from the end: O(area) time, 4 bytes of memory per byte of area, and nothing for
/// an area over `RESYNC_AREA_MAX` (inline nodes are smaller than a segment).
fn resync_values(area: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    const NONE: u32 = u32::MAX;
    if area.len() > RESYNC_AREA_MAX {
        return Vec::new();
    }
    // after[i]: how many placed values start at or after byte i, if one starts at i (or i is
    // the end of the area); NONE if none does.
    let mut after: Vec<u32> = vec![NONE; area.len() + 1];
    after[area.len()] = 0;
    let mut found = Vec::new();
    for at in (0..area.len()).rev() {
        let mut c = Cursor { buf: &area[at..] };
        let Some(value) = c.bytes() else { continue };
        let end = area.len() - c.buf.len();
        let following = after[end];
        if following == NONE || following as usize >= n || !sealed_value(value) {
            continue;
        }
        after[at] = following + 1;
        found.push((n - 1 - following as usize, value));
    }
    found.reverse();
    found
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
        KIND_INLINE_NODE | KIND_BLOB_NODE => parse_node(body, !trusted),
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

/// A segment header whose CRC holds: the segment's base lsn, and the highest stable lsn sled
/// knew of when it began the segment (-1 when nothing was stable yet). Everything below that
/// stable lsn had been written out in full.
struct SegmentHeader {
    lsn: u64,
    max_stable: i64,
}

fn segment_header(seg: &[u8]) -> Option<SegmentHeader> {
    let head = seg.get(..SEG_HEADER_LEN)?;
    let crc = u32::from_le_bytes(head[..4].try_into().ok()?) ^ 0xFFFF_FFFF;
    let mut h = crc32fast::Hasher::new();
    h.update(&head[4..]);
    if h.finalize() != crc {
        return None;
    }
    let lsn = i64::from_le_bytes(head[4..12].try_into().ok()?) ^ 0x7FFF_FFFF_FFFF_FFFF;
    let max_stable = i64::from_le_bytes(head[12..20].try_into().ok()?) ^ 0x7FFF_FFFF_FFFF_FFFF;
    Some(SegmentHeader {
        lsn: u64::try_from(lsn).ok()?,
        max_stable,
    })
}

/// The base lsn a segment header names, if its CRC holds.
fn segment_lsn(seg: &[u8]) -> Option<u64> {
    segment_header(seg).map(|h| h.lsn)
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
    walk_segment(seg, |pos, header, body, trusted| {
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
        } else if damage_kind(header.kind) && !in_damage {
            stats.damaged += 1;
            in_damage = true;
        }
        if let Some(m) = parse_body(header.kind, body, Some(header.pid), lsn, trusted) {
            each(m);
        }
    });
    stats
}

/// Whether a message kind whose CRC fails counts as damage (the kinds every write makes; a
/// random byte run mistaken for a header of another kind is not counted).
fn damage_kind(kind: u8) -> bool {
    matches!(kind, KIND_INLINE_NODE | KIND_INLINE_LINK)
}

/// Walks one segment's messages in file order, handing `each` the message's offset in the
/// segment, its header, its body and whether its CRC holds. Stops after an intact cap. A
/// damaged message's length is not believed: the walk goes on byte by byte.
fn walk_segment<'a>(seg: &'a [u8], mut each: impl FnMut(usize, &Header, &'a [u8], bool)) {
    let mut pos = SEG_HEADER_LEN;
    while pos + 5 < seg.len() {
        // A header's kind (its fifth byte) is never 0: skip zeroed stretches (a segment's
        // unwritten end) without reading a header at every byte.
        if seg[pos + 4] == 0 {
            let next = seg[pos + 4..].iter().position(|&b| b != 0);
            pos += next.map_or(seg.len(), |n| n.max(1));
            continue;
        }
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
        each(pos, &header, body, trusted);
        if trusted && header.kind == KIND_CAP {
            break;
        }
        pos += if trusted { end } else { 1 };
    }
}

/// The base lsn a segment's header names, from its first `SEG_HEADER_LEN` bytes (or fewer),
/// if its CRC holds.
pub fn segment_header_lsn(head: &[u8]) -> Option<u64> {
    segment_lsn(head)
}

/// The segment header's length: read this much of a segment for [`segment_header_lsn`].
pub const SEGMENT_HEADER_LEN: usize = SEG_HEADER_LEN;

/// The stable lsn a sled snapshot file's name (`snap.{:016X}`) carries.
pub fn snapshot_lsn(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("snap.")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// What a segment of the replayed log holds, for [`damage_before_valid`]: the lsn of its
/// first damaged message and of its last intact message of the segment's current use, the
/// stable lsn its header records, and whether the header itself is damaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentDamage {
    pub first_damaged: Option<u64>,
    pub last_intact: Option<u64>,
    /// The header's max stable lsn, when its CRC holds.
    pub max_stable: Option<i64>,
    /// The header's CRC fails while messages of the segment's current use are intact.
    pub header_damaged: bool,
}

/// Reads one segment for the open-time check. A message counts as intact only when its CRC
/// holds and its segment number is this segment's (messages left from an earlier use of the
/// segment, after the current tip, are stale, not evidence). A segment whose header is
/// damaged gets its lsn from its intact messages; with none, it holds nothing. Returns the
/// segment's base lsn (if known) and what it holds.
pub fn segment_damage(seg: &[u8], segment_size: usize) -> (Option<u64>, SegmentDamage) {
    let ss = segment_size.max(1) as u64;
    let header = segment_header(seg);
    let mut base = header.as_ref().map(|h| h.lsn);
    let mut out = SegmentDamage {
        max_stable: header.as_ref().map(|h| h.max_stable),
        ..SegmentDamage::default()
    };
    // Damage positions seen before the base is known (a damaged segment header).
    let mut first_damaged_pos: Option<usize> = None;
    walk_segment(seg, |pos, header, _body, trusted| {
        if trusted && header.kind != KIND_CAP {
            let own = header.segment_number.saturating_mul(ss);
            let base = *base.get_or_insert(own);
            if own == base {
                out.last_intact = Some(base.saturating_add(pos as u64));
            }
        } else if !trusted && damage_kind(header.kind) && first_damaged_pos.is_none() {
            first_damaged_pos = Some(pos);
        }
    });
    if let (Some(base), Some(pos)) = (base, first_damaged_pos) {
        out.first_damaged = Some(base.saturating_add(pos as u64));
    }
    if header.is_none() && out.last_intact.is_some() {
        // A damaged header before intact messages of the segment's current use.
        out.first_damaged = base;
        out.header_damaged = true;
    }
    (base, out)
}

/// Where sled's unstable tail begins: the segment holding the highest stable lsn any replayed
/// segment header records (at least `replay_from`, the newest snapshot's lsn). sled writes
/// its log buffers on a thread pool, so at a crash a buffer in the tail can be torn or
/// unwritten while a later one is complete; sled's recovery cuts the tail at the first tear
/// (`check_contiguity_in_unstable_tail` in the vendored `pagecache/iterator.rs`), and no
/// flush it acknowledged lies past one. Below this lsn every buffer had been written in full.
pub fn unstable_tail(segments: &[SegmentDamage], segment_size: usize, replay_from: u64) -> u64 {
    let ss = segment_size.max(1) as u64;
    let stable = segments
        .iter()
        .filter_map(|s| s.max_stable)
        .filter_map(|lsn| u64::try_from(lsn).ok())
        .fold(replay_from, u64::max);
    stable / ss * ss
}

/// The decision at open: the lsn of the first damaged message that an intact message follows
/// somewhere later in the replayed log (real damage: sled would take it for a torn write and
/// zero what follows it), or `None`. Not damage:
/// - a damaged message with nothing intact after it: the torn tail a crash or power loss
///   leaves, which sled is right to cut;
/// - a damaged message in the unstable tail ([`unstable_tail`]) even with intact ones after
///   it: a buffer a kill or power loss caught mid-write while a later buffer was already out.
///   sled cuts the log there, and nothing it cuts was acknowledged as flushed. (Bit rot in
///   the tail, the newest one or two segments, looks the same and is cut the same way.)
///
/// A damaged segment header is always damage: a crash leaves a header whole or unwritten.
pub fn damage_before_valid(
    segments: &[SegmentDamage],
    segment_size: usize,
    replay_from: u64,
) -> Option<u64> {
    let tail = unstable_tail(segments, segment_size, replay_from);
    let first = segments
        .iter()
        .filter_map(|s| {
            s.first_damaged
                .filter(|&lsn| s.header_damaged || lsn < tail)
        })
        .min()?;
    let last = segments.iter().filter_map(|s| s.last_intact).max()?;
    (last > first).then_some(first)
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

    /// A value shaped like a sealed one (format byte 2, long enough), marked with `tag`.
    fn sealed(tag: u8) -> Vec<u8> {
        let mut v = vec![2];
        v.extend(std::iter::repeat_n(tag, 60));
        v
    }

    #[test]
    fn after_a_flipped_length_the_values_that_follow_are_found_again_with_their_keys() {
        let (v1, v2, v3, v4) = (sealed(b'a'), sealed(b'b'), sealed(b'c'), sealed(b'd'));
        let first = node(0, b"", &[(b"k1", &v1), (b"k2", &v2), (b"k3", &v3)]);
        let second = node(0, b"", &[(b"k4", &v4)]);
        let mut seg = segment(&[message(8, 1, 1, &first), message(8, 1, 2, &second)]);
        // The length byte of the second value: the plain parse misreads everything after it.
        let at = seg.windows(v2.len()).position(|w| w == v2).unwrap() - 1;
        seg[at] ^= 0x5a;
        let mut seen = Vec::new();
        let stats = scan_segment(&seg, 1024, |m| seen.push(m));
        assert_eq!(stats.damaged, 1);
        let damaged = seen
            .iter()
            .find(|m| !m.trusted && m.pid == Some(1))
            .unwrap();
        let pairs: Vec<(Key<'_>, &[u8])> = damaged
            .pairs
            .iter()
            .map(|p| (p.key.clone(), p.value))
            .collect();
        assert!(pairs.contains(&(Key::Full(b"k1".to_vec()), &v1[..])));
        assert!(pairs.contains(&(Key::Full(b"k3".to_vec()), &v3[..])));
        // The damaged value is not found whole, and nothing is paired with another's key.
        assert!(pairs.iter().all(|(_, v)| *v != &v2[..]));
        assert!(!pairs.contains(&(Key::Full(b"k2".to_vec()), &v3[..])));
        let next = seen.iter().find(|m| m.trusted).unwrap();
        assert_eq!(next.pairs[0].value, v4);
    }

    #[test]
    fn a_flipped_value_is_not_read_twice_and_a_healthy_node_is_not_searched() {
        let values: Vec<Vec<u8>> = (0..4).map(|i| sealed(b'a' + i)).collect();
        let pairs: Vec<(&[u8], &[u8])> = [b"k1", b"k2", b"k3", b"k4"]
            .iter()
            .zip(&values)
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        let body = node(0, b"", &pairs);
        let (_, intact) = parse_node(&body, false);
        assert_eq!(intact.len(), 4);
        let mut flipped = body.clone();
        let at = flipped.windows(10).position(|w| w == [b'c'; 10]).unwrap();
        flipped[at] ^= 0x5a;
        let (_, damaged) = parse_node(&flipped, true);
        assert_eq!(damaged.len(), 4, "{damaged:?}");
        assert_eq!(damaged[3].value, values[3]);
    }

    #[test]
    fn resync_is_bounded_and_never_panics_on_noise() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        for round in 0..100 {
            let len = (round * 97) % 4000;
            let area: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Many format bytes and short lengths, to make false starts likely.
                    [2u8, 41, 45, 60, (state % 256) as u8][(state % 5) as usize]
                })
                .collect();
            for n in [0, 1, 17] {
                let found = resync_values(&area, n);
                assert!(found.iter().all(|&(i, v)| i < n.max(1) && sealed_value(v)));
            }
        }
        assert!(resync_values(&vec![2u8; RESYNC_AREA_MAX + 1], 4).is_empty());
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
            let _ = segment_damage(&seg, 4096);
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

    /// A segment with an intact header naming `lsn`, holding `messages`, then zeros. Its
    /// header records a stable lsn just before it (everything before it written out).
    fn headed_segment(lsn: u64, messages: &[Vec<u8>]) -> Vec<u8> {
        headed_segment_stable(lsn, lsn as i64 - 1, messages)
    }

    fn headed_segment_stable(lsn: u64, max_stable: i64, messages: &[Vec<u8>]) -> Vec<u8> {
        let mut head = vec![0u8; 4];
        head.extend(((lsn as i64) ^ 0x7FFF_FFFF_FFFF_FFFF).to_le_bytes());
        head.extend((max_stable ^ 0x7FFF_FFFF_FFFF_FFFF).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&head[4..]);
        let crc = h.finalize() ^ 0xFFFF_FFFF;
        head[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(segment_header_lsn(&head), Some(lsn));
        let mut seg = segment(messages);
        seg[..SEG_HEADER_LEN].copy_from_slice(&head);
        seg
    }

    const SS: usize = 4096;

    fn leaf(i: u8) -> Vec<u8> {
        node(0, b"", &[(&[b'k', i], &[b'v', i, i, i])])
    }

    /// The verdict on `segs`, followed by a fresh segment whose header says all of them had
    /// been written out (so none of them is in the unstable tail).
    fn damage_in(segs: &[Vec<u8>]) -> Option<u64> {
        let next = (segs.len() as u64 + 2) * SS as u64;
        let mut all = segs.to_vec();
        all.push(headed_segment(next, &[]));
        verdict(&all)
    }

    fn verdict(segs: &[Vec<u8>]) -> Option<u64> {
        damage_before_valid(&found_in(segs), SS, 0)
    }

    /// What each of `segs` holds, for the open-time decision.
    fn found_in(segs: &[Vec<u8>]) -> Vec<SegmentDamage> {
        segs.iter().map(|s| segment_damage(s, SS).1).collect()
    }

    /// Flips a byte inside the body of the message that starts at `at` in `seg`.
    fn flip(seg: &mut [u8], at: usize) {
        seg[at + 9] ^= 0x5a;
    }

    #[test]
    fn a_damaged_message_before_an_intact_one_is_damage() {
        let (a, b, c) = (
            message(KIND_INLINE_NODE, 1, 1, &leaf(1)),
            message(KIND_INLINE_NODE, 1, 2, &leaf(2)),
            message(KIND_INLINE_NODE, 1, 3, &leaf(3)),
        );
        let second_at = SEG_HEADER_LEN + a.len();
        let mut seg = headed_segment(SS as u64, &[a, b, c]);
        assert_eq!(damage_in(std::slice::from_ref(&seg)), None);
        flip(&mut seg, second_at);
        assert_eq!(
            damage_in(&[seg]),
            Some(SS as u64 + second_at as u64),
            "a flip in the middle of a segment"
        );
    }

    #[test]
    fn damage_with_intact_messages_only_in_a_later_segment_is_damage() {
        let mut first = headed_segment(0, &[message(KIND_INLINE_NODE, 0, 1, &leaf(1))]);
        flip(&mut first, SEG_HEADER_LEN);
        let second = headed_segment(SS as u64, &[message(KIND_INLINE_LINK, 1, 1, &leaf(2))]);
        assert_eq!(damage_in(&[first.clone()]), None, "alone it is a torn tail");
        assert_eq!(damage_in(&[first, second]), Some(SEG_HEADER_LEN as u64));
    }

    #[test]
    fn a_torn_or_damaged_last_message_is_a_torn_tail() {
        let a = message(KIND_INLINE_NODE, 1, 1, &leaf(1));
        let b = message(KIND_INLINE_NODE, 1, 2, &leaf(2));
        let b_at = SEG_HEADER_LEN + a.len();
        // Cut in the middle of the last message (a write the crash stopped), then zeros.
        let mut torn = headed_segment(SS as u64, &[a.clone(), b[..b.len() / 2].to_vec()]);
        assert_eq!(damage_in(std::slice::from_ref(&torn)), None);
        // The last message written but wrong (a write torn inside its sectors).
        torn = headed_segment(SS as u64, &[a.clone(), b.clone()]);
        flip(&mut torn, b_at);
        assert_eq!(damage_in(std::slice::from_ref(&torn)), None);
        // Stale messages of the segment's earlier use after the torn tip are not evidence.
        let stale = message(KIND_INLINE_NODE, 0, 7, &leaf(7));
        let mut reused = headed_segment(SS as u64, &[a, b, stale]);
        flip(&mut reused, b_at);
        assert_eq!(damage_in(&[reused]), None);
    }

    #[test]
    fn a_damaged_segment_header_before_its_intact_messages_is_damage() {
        let seg = segment(&[message(KIND_INLINE_NODE, 3, 1, &leaf(1))]);
        let (base, found) = segment_damage(&seg, SS);
        assert_eq!(base, Some(3 * SS as u64));
        assert!(found.header_damaged);
        // Even as the newest segment: a crash leaves a header whole or unwritten.
        assert_eq!(damage_before_valid(&[found], SS, 0), Some(3 * SS as u64));
        // An empty or zeroed segment holds nothing either way.
        assert_eq!(
            segment_damage(&vec![0u8; SS], SS),
            (None, SegmentDamage::default())
        );
    }

    #[test]
    fn a_tear_in_the_unstable_tail_with_a_later_buffer_out_is_a_crash_not_damage() {
        // Segment 1 began when everything before it was stable; its second buffer was torn
        // by a kill while its third, written by another thread, was already out.
        let (a, b, c) = (
            message(KIND_INLINE_NODE, 1, 1, &leaf(1)),
            message(KIND_INLINE_NODE, 1, 2, &leaf(2)),
            message(KIND_INLINE_LINK, 1, 3, &leaf(3)),
        );
        let b_at = SEG_HEADER_LEN + a.len();
        let mut seg = headed_segment(SS as u64, &[a, b, c]);
        flip(&mut seg, b_at);
        let earlier = headed_segment(0, &[message(KIND_INLINE_NODE, 0, 4, &leaf(4))]);
        assert_eq!(verdict(&[earlier.clone(), seg.clone()]), None);
        // Across segments: the torn buffer ends segment 1, the later one opens segment 2,
        // begun while the stable lsn was still inside segment 1.
        let next = headed_segment_stable(
            2 * SS as u64,
            SS as i64 + 100,
            &[message(KIND_INLINE_NODE, 2, 5, &leaf(5))],
        );
        assert_eq!(verdict(&[earlier.clone(), seg.clone(), next]), None);
        // Once a later header records segment 1 as written out, the same bytes are damage.
        let later = headed_segment(3 * SS as u64, &[]);
        assert_eq!(
            verdict(&[earlier.clone(), seg.clone(), later]),
            Some(SS as u64 + b_at as u64)
        );
        // So is damage below the snapshot sled replays from.
        let found = found_in(&[earlier, seg]);
        assert_eq!(
            damage_before_valid(&found, SS, 2 * SS as u64),
            Some(SS as u64 + b_at as u64)
        );
        // The tail starts at the segment holding the highest stable lsn a header records.
        assert_eq!(unstable_tail(&found, SS, 0), 0);
        assert_eq!(unstable_tail(&found, SS, SS as u64 + 5), SS as u64);
    }

    #[test]
    fn snapshot_names_carry_their_lsn() {
        assert_eq!(snapshot_lsn("snap.0000000000080014"), Some(0x80014));
        assert_eq!(snapshot_lsn("snap.0000000000080014.generating"), None);
        assert_eq!(snapshot_lsn("snap.xyz"), None);
        assert_eq!(snapshot_lsn("db"), None);
    }
}
