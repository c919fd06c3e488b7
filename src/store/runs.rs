//! Runs: the index terms of bulk writes, packed in blocks, each run behind a filter (issue
//! 18's "index entries built in sorted bulk").
//!
//! A fold (see `pending`) used to insert every pending term into its term tree, one sled
//! entry a term. At a million records those trees outgrow sled's cache, so each fold paged
//! most of their leaves back in to add a few terms to each: eight folds took 53 s of a 1M-row
//! drop's 106 s, and every lookup of a new row's term read a leaf from disk. Now a fold
//! writes its terms as a new *run* in `index.runs`:
//! - a run's terms are spread over `2^bits` buckets by a hash of the term (bits chosen so a
//!   bucket holds about [`TERMS_PER_BLOCK`]); each bucket is ONE sled entry, a block of its
//!   (term, ids) pairs, so a fold of 65,536 records writes about 30,000 entries, in key
//!   order, at the end of the tree, where it wrote a quarter of a million into the middle
//!   of big trees;
//! - after its blocks, a run holds a bloom filter of its terms (10 bits a term, in 4 KB
//!   pieces; its catalog entry gives its shape), kept in memory while the store is open
//!   (1.2 MB a million terms), so a lookup reads only the blocks of runs that may hold the
//!   term: none for a new row's terms, nearly always;
//! - the term trees keep the terms of single writes (a capture, an edit). A term's holders
//!   are the union of its tree entry, its run blocks and the pending map; a removal takes
//!   the id out of all of them (a run's block is rewritten in the removing transaction);
//! - past [`MAX_RUNS`] runs of an index, its two smallest are merged (streaming their
//!   blocks in bucket order into a new run), so a lookup probes at most that many filters,
//!   and a term is rewritten about log2 times in all however large a drop grows. Runs are
//!   a union, so which two merge does not matter to what a lookup finds.
//!
//! Crash safety: a run's blocks are written before its catalog entry, and a run no catalog
//! entry names is garbage that [`Catalog::load`] deletes at open; a fold cut short leaves
//! its pending entries, so it is done again. A merge writes the merged run, then swaps the
//! catalog entries in one batch, then deletes the old blocks.
//!
//! Owns: the run layout's logic (hash, buckets, filter, blocks' contents, merging) and the
//! catalog in memory. Must not: decide what a term is or which records hold it (`index`),
//! or know transactions beyond reading and rewriting one block; byte layouts are in `codec`.

use sled::Tree;

use super::codec::{self, RunHeader};
use super::error::StoreError;
use super::index::{self, TermIndex};
use super::record::RecordId;

/// The terms a block is sized for. 8 rather than 32: a 1M-row drop took 45.5 s and 855 B a
/// record on disk against 49 s and 919 B (sled rewrites a leaf's page as it fills, and a
/// leaf holds 32 entries whatever their size), and a lookup decodes a quarter as much.
pub const TERMS_PER_BLOCK: u64 = 8;
/// Runs an index may hold; past it the two smallest merge.
pub const MAX_RUNS: usize = 16;
const FILTER_BITS_PER_TERM: u64 = 10;
/// Probes of the filter: with 10 bits a term, about 1% false positives.
const PROBES: u8 = 7;
/// Words of a filter per sled entry (4 KB, about a block's size).
const FILTER_PIECE_WORDS: usize = 512;

/// A fixed 64-bit hash of a term (it places terms in buckets and filters on disk, so it
/// must never change). Terms are keyed hashes already; this only spreads the plain ones and
/// the 4-byte short ids.
pub fn term_hash(term: &[u8]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3 ^ term.len() as u64;
    for chunk in term.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bucket of a hash in a run of `bits` bits: its top bits, so a bucket of a run with
/// fewer bits covers a range of the buckets of one with more (what a merge relies on).
fn bucket(hash: u64, bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        (hash >> (64 - u32::from(bits))) as u32
    }
}

/// The bucket bits for a run of `terms` terms.
pub fn bits_for(terms: u64) -> u8 {
    let mut bits = 0u8;
    while bits < 24 && (terms >> bits) > TERMS_PER_BLOCK {
        bits += 1;
    }
    bits
}

/// A bloom filter over term hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    probes: u8,
    words: Vec<u64>,
}

impl Filter {
    fn with_capacity(terms: u64) -> Self {
        // Pieces are numbered by a u16: at most 2^25 words (256 MB, 27 million terms).
        let words = (terms.saturating_mul(FILTER_BITS_PER_TERM) / 64).clamp(1, 1 << 25);
        Filter {
            probes: PROBES,
            words: vec![0; words as usize],
        }
    }

    fn positions(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let m = self.words.len() as u64 * 64;
        let (a, b) = (
            mix(hash ^ 0x5851_F42D_4C95_7F2D),
            mix(hash ^ 0x1405_7B7E_F767_814F) | 1,
        );
        (0..u64::from(self.probes)).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % m) as usize)
    }

    fn insert(&mut self, hash: u64) {
        let positions: Vec<usize> = self.positions(hash).collect();
        for p in positions {
            self.words[p / 64] |= 1 << (p % 64);
        }
    }

    fn may_hold(&self, hash: u64) -> bool {
        self.positions(hash)
            .all(|p| self.words[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// One run of one index, as its catalog entry describes it.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u32,
    bits: u8,
    /// Terms written into it (removals since are not counted).
    pub terms: u64,
    filter: Filter,
}

impl Run {
    fn header(&self) -> RunHeader {
        RunHeader {
            bits: self.bits,
            terms: self.terms,
            probes: self.filter.probes,
            words: self.filter.words.len() as u32,
        }
    }

    /// The run a catalog entry names, its filter read from its pieces.
    fn read(tree: &Tree, index: TermIndex, id: u32, header: RunHeader) -> Result<Self, StoreError> {
        let mut words = Vec::with_capacity(header.words as usize);
        let start = codec::run_filter_start(index, id).to_vec();
        for kv in tree.range(start..run_end(index, id)) {
            codec::decode_filter_words(&kv?.1, &mut words)?;
        }
        if words.len() != header.words as usize {
            return Err(StoreError::Corrupt {
                what: "index run",
                detail: format!(
                    "a filter of {} words, {} expected",
                    words.len(),
                    header.words
                ),
            });
        }
        Ok(Run {
            id,
            bits: header.bits,
            terms: header.terms,
            filter: Filter {
                probes: header.probes,
                words,
            },
        })
    }
}

fn slot(index: TermIndex) -> usize {
    match index {
        TermIndex::ExternalId => 0,
        TermIndex::Email => 1,
        TermIndex::Content => 2,
        TermIndex::Short => 3,
    }
}

/// Every index's runs, oldest first, as the catalog entries in `index.runs` say.
#[derive(Debug, Default)]
pub struct Catalog {
    runs: [Vec<Run>; 4],
    next: u32,
}

impl Catalog {
    /// Reads the catalog, then deletes the blocks of runs it does not name (a fold or a
    /// merge cut short).
    pub fn load(tree: &Tree) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog::default();
        for kv in tree.scan_prefix([0u8]) {
            let (key, value) = kv?;
            let (index, id) = codec::decode_run_catalog_key(&key)?;
            let run = Run::read(tree, index, id, codec::decode_run_header(&value)?)?;
            catalog.next = catalog.next.max(id.saturating_add(1));
            catalog.runs[slot(index)].push(run);
        }
        for index in TermIndex::ALL {
            let mut from = codec::run_blocks_start(index, 0).to_vec();
            let end = [index.tag() + 1];
            while let Some(kv) = tree.range(from.clone()..end.to_vec()).keys().next() {
                let id = codec::decode_run_block_key(&kv?)?;
                if !catalog.runs(index).iter().any(|r| r.id == id) {
                    delete_run(tree, index, id)?;
                    tracing::info!(run = id, "deleted the blocks of an unfinished index run");
                }
                catalog.next = catalog.next.max(id.saturating_add(1));
                match id.checked_add(1) {
                    Some(next) => from = codec::run_blocks_start(index, next).to_vec(),
                    None => break,
                }
            }
        }
        Ok(catalog)
    }

    pub fn runs(&self, index: TermIndex) -> &[Run] {
        &self.runs[slot(index)]
    }

    /// The keys of the blocks that may hold `term`: one per run whose filter lets it by.
    pub fn blocks_for(&self, index: TermIndex, term: &[u8]) -> Vec<[u8; 9]> {
        let runs = self.runs(index);
        if runs.is_empty() {
            return Vec::new();
        }
        let hash = term_hash(term);
        runs.iter()
            .filter(|run| run.filter.may_hold(hash))
            .map(|run| codec::run_block_key(index, run.id, bucket(hash, run.bits)))
            .collect()
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next;
        self.next = self.next.saturating_add(1);
        id
    }
}

/// Adds to `ids` (an ascending set) the ids the runs of `index` hold for `term`, reading the
/// block of each run whose filter lets it by with `get`: a tree, or a transaction's view of
/// it.
pub fn extend_holders<E: From<StoreError>>(
    catalog: &Catalog,
    index: TermIndex,
    term: &[u8],
    ids: &mut Vec<RecordId>,
    mut get: impl FnMut([u8; 9]) -> Result<Option<sled::IVec>, E>,
) -> Result<(), E> {
    for key in catalog.blocks_for(index, term) {
        if let Some(block) = get(key)? {
            for id in find_in_block(&block, term)?.unwrap_or_default() {
                index::set_insert(ids, id);
            }
        }
    }
    Ok(())
}

/// The ids `block` lists under `term`.
fn find_in_block(block: &[u8], term: &[u8]) -> Result<Option<Vec<RecordId>>, StoreError> {
    for entry in codec::run_block_entries(block)? {
        let (t, ids) = entry?;
        if t == term {
            return codec::decode_id_set(ids).map(Some);
        }
    }
    Ok(None)
}

/// `block` with `id` taken out of `term`'s ids: `None` when it does not hold them (nothing
/// to write), `Some(None)` when the block is left empty (delete it).
pub fn remove_from_block(
    block: &[u8],
    term: &[u8],
    id: RecordId,
) -> Result<Option<Option<Vec<u8>>>, StoreError> {
    let mut entries = Vec::new();
    let mut changed = false;
    for entry in codec::run_block_entries(block)? {
        let (t, ids) = entry?;
        let mut ids = codec::decode_id_set(ids)?;
        if t == term {
            changed = index::set_remove(&mut ids, id);
        }
        if !ids.is_empty() {
            entries.push((t, ids));
        }
    }
    Ok(changed.then(|| (!entries.is_empty()).then(|| codec::encode_run_block(&entries))))
}

/// Every (term, ids) of an index's runs, run by run (a term may come from several: its ids
/// are the union). For `check`.
pub fn for_each_term(
    tree: &Tree,
    catalog: &Catalog,
    index: TermIndex,
    mut f: impl FnMut(&[u8], Vec<RecordId>),
) -> Result<(), StoreError> {
    for run in catalog.runs(index) {
        for kv in blocks(tree, index, run.id) {
            let (_, block) = kv?;
            for entry in codec::run_block_entries(&block)? {
                let (term, ids) = entry?;
                f(term, codec::decode_id_set(ids)?);
            }
        }
    }
    Ok(())
}

/// The end of a run's keys (blocks, then filter).
fn run_end(index: TermIndex, id: u32) -> Vec<u8> {
    match id.checked_add(1) {
        Some(next) => codec::run_blocks_start(index, next).to_vec(),
        None => vec![index.tag() + 1],
    }
}

/// A run's blocks, in bucket order.
fn blocks(tree: &Tree, index: TermIndex, id: u32) -> sled::Iter {
    let start = codec::run_blocks_start(index, id).to_vec();
    tree.range(start..codec::run_filter_start(index, id).to_vec())
}

/// Deletes a run's blocks and filter (not its catalog entry).
fn delete_run(tree: &Tree, index: TermIndex, id: u32) -> Result<(), StoreError> {
    let start = codec::run_blocks_start(index, id).to_vec();
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in tree
            .range(start.clone()..run_end(index, id))
            .keys()
            .take(4096)
        {
            batch.remove(key?);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        tree.apply_batch(batch)?;
    }
}

/// A term placed in a run: (bucket, hash, term, ids).
type Placed = (u32, u64, Vec<u8>, Vec<RecordId>);

/// Writes blocks in bucket order, filling the run's filter.
struct RunWriter<'a> {
    tree: &'a Tree,
    index: TermIndex,
    run: Run,
    bucket: Option<u32>,
    block: Vec<(Vec<u8>, Vec<RecordId>)>,
}

impl<'a> RunWriter<'a> {
    fn new(tree: &'a Tree, index: TermIndex, id: u32, terms: u64) -> Self {
        RunWriter {
            tree,
            index,
            run: Run {
                id,
                bits: bits_for(terms),
                terms: 0,
                filter: Filter::with_capacity(terms),
            },
            bucket: None,
            block: Vec::new(),
        }
    }

    /// Adds a term; calls come in (bucket, term) order.
    fn push(
        &mut self,
        bucket: u32,
        hash: u64,
        term: Vec<u8>,
        ids: Vec<RecordId>,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        if self.bucket != Some(bucket) {
            self.write_block()?;
            self.bucket = Some(bucket);
        }
        self.run.filter.insert(hash);
        self.run.terms += 1;
        self.block.push((term, ids));
        Ok(())
    }

    fn write_block(&mut self) -> Result<(), StoreError> {
        if let (Some(bucket), false) = (self.bucket, self.block.is_empty()) {
            let key = codec::run_block_key(self.index, self.run.id, bucket);
            self.tree
                .insert(key, codec::encode_run_block(&self.block))?;
            self.block.clear();
        }
        Ok(())
    }

    /// Writes the last block, then the filter after the blocks.
    fn finish(mut self) -> Result<Run, StoreError> {
        self.write_block()?;
        for (n, piece) in self.run.filter.words.chunks(FILTER_PIECE_WORDS).enumerate() {
            let key = codec::run_filter_key(self.index, self.run.id, n as u16);
            self.tree.insert(key, codec::encode_filter_words(piece))?;
        }
        Ok(self.run)
    }
}

/// One op of a fold, in the order the transactions made them: `true` adds the id to the
/// term, `false` cancels an earlier add.
pub type FoldOp = (Vec<u8>, RecordId, bool);

/// Writes the net of `ops` as a new run of `index`, not yet in the catalog (see
/// [`publish`]); `None` when nothing is left (every add cancelled). The ops are placed and
/// sorted in one vector (a stable sort keeps each term's ops in their order), so a fold of
/// 65,536 records holds about 100 B a term while it runs.
pub fn write_ops(
    tree: &Tree,
    catalog: &mut Catalog,
    index: TermIndex,
    ops: Vec<FoldOp>,
) -> Result<Option<Run>, StoreError> {
    let adds = ops.iter().filter(|op| op.2).count() as u64;
    if adds == 0 {
        return Ok(None);
    }
    let id = catalog.take_id();
    let mut writer = RunWriter::new(tree, index, id, adds);
    let bits = writer.run.bits;
    let mut placed: Vec<(u32, u64, FoldOp)> = ops
        .into_iter()
        .map(|op| {
            let hash = term_hash(&op.0);
            (bucket(hash, bits), hash, op)
        })
        .collect();
    placed.sort_by(|a, b| (a.0, &a.2 .0).cmp(&(b.0, &b.2 .0)));
    let mut placed = placed.into_iter().peekable();
    while let Some((bucket, hash, (term, id, add))) = placed.next() {
        let mut ids = Vec::new();
        let mut apply = |id, add| {
            if add {
                index::set_insert(&mut ids, id);
            } else {
                index::set_remove(&mut ids, id);
            }
        };
        apply(id, add);
        while let Some((_, _, (_, id, add))) =
            placed.next_if(|next| next.0 == bucket && next.2 .0 == term)
        {
            apply(id, add);
        }
        writer.push(bucket, hash, term, ids)?;
    }
    let run = writer.finish()?;
    if run.terms == 0 {
        delete_run(tree, index, run.id)?;
        return Ok(None);
    }
    Ok(Some(run))
}

/// Writes `terms` (ids non-empty, any order) as a new run of `index` (see [`write_ops`]).
#[cfg(test)]
pub fn write_run(
    tree: &Tree,
    catalog: &mut Catalog,
    index: TermIndex,
    terms: Vec<(Vec<u8>, Vec<RecordId>)>,
) -> Result<Run, StoreError> {
    let ops = terms
        .into_iter()
        .flat_map(|(term, ids)| ids.into_iter().map(move |id| (term.clone(), id, true)))
        .collect();
    write_ops(tree, catalog, index, ops)?.ok_or_else(|| StoreError::Corrupt {
        what: "index run",
        detail: "no terms".into(),
    })
}

/// Adds written runs to the catalog, on disk (one batch) and in memory, then merges what the
/// merge rule asks for.
pub fn publish(
    tree: &Tree,
    catalog: &mut Catalog,
    written: Vec<(TermIndex, Run)>,
) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for (index, run) in &written {
        batch.insert(
            &codec::run_catalog_key(*index, run.id),
            codec::encode_run_header(&run.header()),
        );
    }
    tree.apply_batch(batch)?;
    for (index, run) in written {
        catalog.runs[slot(index)].push(run);
        while needs_merge(catalog.runs(index)) {
            merge_two_smallest(tree, catalog, index)?;
        }
    }
    Ok(())
}

/// Runs merge only past [`MAX_RUNS`]: a merge rewrites what it merges, and a merge rule
/// like a binary counter's (merge while the run before is no larger) made a 1M-row drop
/// write every term about twice more (53.5 s and 1,296 B a record, against 49 s and 919 B
/// with no merge). Lookups pay a filter probe per run, and a block read for about 1% of
/// runs, so a few more runs cost little.
fn needs_merge(runs: &[Run]) -> bool {
    runs.len() > MAX_RUNS
}

/// One run's terms in the (bucket, term) order of a run of `bits` bits.
struct RunReader {
    iter: sled::Iter,
    bits: u8,
    ready: std::vec::IntoIter<Placed>,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<Placed>, StoreError> {
        loop {
            if let Some(item) = self.ready.next() {
                return Ok(Some(item));
            }
            let Some(kv) = self.iter.next() else {
                return Ok(None);
            };
            let (_, block) = kv?;
            let mut items = Vec::new();
            for entry in codec::run_block_entries(&block)? {
                let (term, ids) = entry?;
                let hash = term_hash(term);
                items.push((
                    bucket(hash, self.bits),
                    hash,
                    term.to_vec(),
                    codec::decode_id_set(ids)?,
                ));
            }
            // A block of a run with fewer bits spans several buckets of the merged run; they
            // follow each other, so sorting within the block keeps the whole stream sorted.
            items.sort_unstable_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
            self.ready = items.into_iter();
        }
    }
}

/// Merges the two smallest runs of `index` into one, streaming their blocks.
fn merge_two_smallest(
    tree: &Tree,
    catalog: &mut Catalog,
    index: TermIndex,
) -> Result<(), StoreError> {
    let mut by_size: Vec<&Run> = catalog.runs(index).iter().collect();
    by_size.sort_by_key(|run| run.terms);
    let inputs: Vec<Run> = by_size.into_iter().take(2).cloned().collect();
    let total: u64 = inputs.iter().map(|r| r.terms).sum();
    let id = catalog.take_id();
    let mut writer = RunWriter::new(tree, index, id, total);
    let bits = writer.run.bits;
    let mut readers: Vec<RunReader> = inputs
        .iter()
        .map(|run| RunReader {
            iter: blocks(tree, index, run.id),
            bits,
            ready: Vec::new().into_iter(),
        })
        .collect();
    let mut heads = Vec::with_capacity(readers.len());
    for reader in &mut readers {
        heads.push(reader.next()?);
    }
    loop {
        let smallest = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, (h.0, &h.2))))
            .min_by(|a, b| a.1.cmp(&b.1))
            .map(|(i, _)| i);
        let Some(i) = smallest else { break };
        let Some((bucket, hash, term, mut ids)) = heads[i].take() else {
            break;
        };
        heads[i] = readers[i].next()?;
        // The same term in the other run: its ids join.
        for (j, head) in heads.iter_mut().enumerate() {
            if j != i && head.as_ref().is_some_and(|h| h.0 == bucket && h.2 == term) {
                if let Some((.., more)) = head.take() {
                    for id in more {
                        index::set_insert(&mut ids, id);
                    }
                }
                *head = readers[j].next()?;
            }
        }
        writer.push(bucket, hash, term, ids)?;
    }
    let merged = writer.finish()?;
    let mut batch = sled::Batch::default();
    batch.insert(
        &codec::run_catalog_key(index, merged.id),
        codec::encode_run_header(&merged.header()),
    );
    for run in &inputs {
        batch.remove(&codec::run_catalog_key(index, run.id));
    }
    tree.apply_batch(batch)?;
    let list = &mut catalog.runs[slot(index)];
    list.retain(|run| inputs.iter().all(|input| input.id != run.id));
    list.push(merged);
    for run in &inputs {
        delete_run(tree, index, run.id)?;
    }
    Ok(())
}

/// Deletes every run of `index` (tests: a store from before an index existed).
pub fn clear(tree: &Tree, catalog: &mut Catalog, index: TermIndex) -> Result<(), StoreError> {
    for run in std::mem::take(&mut catalog.runs[slot(index)]) {
        tree.remove(codec::run_catalog_key(index, run.id))?;
        delete_run(tree, index, run.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    fn term(n: u32) -> Vec<u8> {
        let mut t = vec![2u8];
        t.extend_from_slice(&n.to_be_bytes());
        t.extend_from_slice(&[7; 28]);
        t
    }

    fn holders(tree: &Tree, catalog: &Catalog, index: TermIndex, t: &[u8]) -> Vec<RecordId> {
        let mut ids = Vec::new();
        extend_holders(catalog, index, t, &mut ids, |key| {
            Ok::<_, StoreError>(tree.get(key)?)
        })
        .unwrap();
        ids
    }

    fn fold(
        tree: &Tree,
        catalog: &mut Catalog,
        index: TermIndex,
        terms: Vec<(Vec<u8>, Vec<RecordId>)>,
    ) {
        let run = write_run(tree, catalog, index, terms).unwrap();
        publish(tree, catalog, vec![(index, run)]).unwrap();
    }

    #[test]
    fn the_filter_has_no_false_negatives_and_few_false_positives() {
        let mut filter = Filter::with_capacity(10_000);
        for n in 0..10_000u32 {
            filter.insert(term_hash(&term(n)));
        }
        assert!((0..10_000u32).all(|n| filter.may_hold(term_hash(&term(n)))));
        let false_hits = (10_000..110_000u32)
            .filter(|n| filter.may_hold(term_hash(&term(*n))))
            .count();
        // 10 bits a term and 7 probes: about 1%.
        assert!(false_hits < 2_000, "{false_hits} false hits in 100,000");
    }

    #[test]
    fn buckets_of_fewer_bits_cover_ranges_of_buckets_of_more() {
        for n in 0..1000u32 {
            let h = term_hash(&term(n));
            for bits in 0..20u8 {
                assert_eq!(bucket(h, bits + 1) >> 1, bucket(h, bits));
            }
        }
        assert_eq!(bits_for(0), 0);
        assert_eq!(bits_for(TERMS_PER_BLOCK), 0);
        assert!(bits_for(1_000_000) >= 14);
    }

    #[test]
    fn runs_past_the_bound_merge_and_keep_every_id() {
        let db = db();
        let tree = db.open_tree("runs").unwrap();
        let mut catalog = Catalog::default();
        // Folds of growing sizes (so merged runs have more bucket bits than their inputs),
        // each sharing its first term with the fold before.
        let folds = MAX_RUNS as u32 + 4;
        let mut expected: std::collections::BTreeMap<u32, Vec<RecordId>> = Default::default();
        let mut first = 0u32;
        for fold_no in 0..folds {
            let size = 50 + 40 * fold_no;
            let terms: Vec<(Vec<u8>, Vec<RecordId>)> = (first..first + size)
                .map(|n| {
                    let id = RecordId::new();
                    index::set_insert(expected.entry(n).or_default(), id);
                    (term(n), vec![id])
                })
                .collect();
            fold(&tree, &mut catalog, TermIndex::Email, terms);
            assert!(catalog.runs(TermIndex::Email).len() <= MAX_RUNS);
            first += size - 1;
        }
        assert_eq!(catalog.runs(TermIndex::Email).len(), MAX_RUNS);
        let check = |catalog: &Catalog| {
            for (n, ids) in &expected {
                assert_eq!(
                    &holders(&tree, catalog, TermIndex::Email, &term(*n)),
                    ids,
                    "term {n}"
                );
            }
        };
        check(&catalog);
        assert!(
            expected.values().any(|ids| ids.len() == 2),
            "terms in two folds"
        );
        assert!(holders(&tree, &catalog, TermIndex::ExternalId, &term(3)).is_empty());
        assert!(holders(&tree, &catalog, TermIndex::Email, &term(999_999)).is_empty());
        // Only the catalogued runs' keys are left: the merged ones were deleted.
        let live: Vec<u32> = catalog
            .runs(TermIndex::Email)
            .iter()
            .map(|r| r.id)
            .collect();
        for kv in tree.iter().keys() {
            let key = kv.unwrap();
            let run = if key[0] == 0 {
                codec::decode_run_catalog_key(&key).unwrap().1
            } else {
                codec::decode_run_block_key(&key).unwrap()
            };
            assert!(live.contains(&run), "run {run} left behind");
        }
        let reloaded = Catalog::load(&tree).unwrap();
        assert_eq!(reloaded.runs(TermIndex::Email).len(), MAX_RUNS);
        check(&reloaded);
    }

    #[test]
    fn a_smaller_run_stays_apart_and_removal_rewrites_its_block() {
        let db = db();
        let tree = db.open_tree("runs").unwrap();
        let mut catalog = Catalog::default();
        let (a, b) = (RecordId::new(), RecordId::new());
        fold(
            &tree,
            &mut catalog,
            TermIndex::Short,
            (0..100).map(|n| (term(n), vec![a])).collect(),
        );
        fold(
            &tree,
            &mut catalog,
            TermIndex::Short,
            vec![(term(7), vec![b])],
        );
        assert_eq!(catalog.runs(TermIndex::Short).len(), 2);
        assert_eq!(holders(&tree, &catalog, TermIndex::Short, &term(7)), {
            let mut both = vec![a, b];
            both.sort();
            both
        });
        for key in catalog.blocks_for(TermIndex::Short, &term(7)) {
            let block = tree.get(key).unwrap().unwrap();
            match remove_from_block(&block, &term(7), b).unwrap() {
                None => {}
                Some(None) => {
                    tree.remove(key).unwrap();
                }
                Some(Some(rest)) => {
                    tree.insert(key, rest).unwrap();
                }
            }
        }
        assert_eq!(
            holders(&tree, &catalog, TermIndex::Short, &term(7)),
            vec![a]
        );
        assert_eq!(
            holders(&tree, &catalog, TermIndex::Short, &term(8)),
            vec![a]
        );
    }

    #[test]
    fn a_fold_writes_the_net_of_its_ops_in_their_order() {
        let db = db();
        let tree = db.open_tree("runs").unwrap();
        let mut catalog = Catalog::default();
        let (a, b, c) = (RecordId::new(), RecordId::new(), RecordId::new());
        let ops = vec![
            (term(1), a, true),
            (term(1), a, false),
            (term(2), b, true),
            (term(1), c, true),
            (term(3), a, true),
            (term(3), a, false),
            (term(2), a, true),
        ];
        let run = write_ops(&tree, &mut catalog, TermIndex::Email, ops)
            .unwrap()
            .unwrap();
        assert_eq!(
            run.terms, 2,
            "a term whose adds were all cancelled is not written"
        );
        publish(&tree, &mut catalog, vec![(TermIndex::Email, run)]).unwrap();
        assert_eq!(
            holders(&tree, &catalog, TermIndex::Email, &term(1)),
            vec![c]
        );
        let mut ab = vec![a, b];
        ab.sort();
        assert_eq!(holders(&tree, &catalog, TermIndex::Email, &term(2)), ab);
        assert!(holders(&tree, &catalog, TermIndex::Email, &term(3)).is_empty());
        // Everything cancelled: no run, and nothing left on disk by it.
        let before = tree.len();
        let ops = vec![(term(9), a, true), (term(9), a, false)];
        assert!(write_ops(&tree, &mut catalog, TermIndex::Email, ops)
            .unwrap()
            .is_none());
        assert_eq!(tree.len(), before);
    }

    #[test]
    fn blocks_of_a_run_no_catalog_entry_names_are_deleted_at_load() {
        let db = db();
        let tree = db.open_tree("runs").unwrap();
        let mut catalog = Catalog::default();
        let a = RecordId::new();
        fold(
            &tree,
            &mut catalog,
            TermIndex::Email,
            vec![(term(1), vec![a])],
        );
        // A fold cut short: its blocks written, its catalog entry not.
        write_run(
            &tree,
            &mut catalog,
            TermIndex::Email,
            vec![(term(2), vec![a])],
        )
        .unwrap();
        let catalog = Catalog::load(&tree).unwrap();
        assert_eq!(catalog.runs(TermIndex::Email).len(), 1);
        assert_eq!(
            tree.len(),
            3,
            "one catalog entry, one block, one filter piece"
        );
        assert!(holders(&tree, &catalog, TermIndex::Email, &term(2)).is_empty());
        assert_eq!(
            holders(&tree, &catalog, TermIndex::Email, &term(1)),
            vec![a]
        );
    }

    #[test]
    fn damaged_blocks_and_catalog_entries_are_errors() {
        let entries = vec![(term(1), vec![RecordId::new(), RecordId::new()])];
        let block = codec::encode_run_block(&entries);
        for cut in 0..block.len() {
            assert!(
                find_in_block(&block[..cut], &term(2)).is_err(),
                "cut at {cut}"
            );
        }
        let header = RunHeader {
            bits: 3,
            terms: 9,
            probes: 7,
            words: 2,
        };
        let bytes = codec::encode_run_header(&header);
        assert_eq!(codec::decode_run_header(&bytes).unwrap(), header);
        for cut in 0..bytes.len() {
            assert!(
                codec::decode_run_header(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
