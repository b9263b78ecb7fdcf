//! Key maps that spill to disk: raw key text → the tenants (a set, see `TenantSets`) its row
//! belongs to.
//!
//! Filtering an archive keeps, for every table other tables reference, a map of the keys of
//! the chosen tenants' rows. They grow with the restore, not with the dump, but a restore of
//! tens of millions of rows would hold gigabytes of them. All maps share one [`KeyBudget`]:
//! while the budget is exceeded, a growing map writes its entries out as a sorted run and
//! starts over. A finished map that spilled (or that finishes over budget) is merged into one
//! sorted file of 4 KiB blocks, of which memory keeps the first key of each block and a Bloom
//! filter of all keys (~10 bits per key): a row whose key is not there — most rows of a dump
//! restoring a few tenants — is answered without touching the disk, and a key that is there
//! costs one block read.
//!
//! `FxHash` throughout: keys come from the user's own backup, and `SipHash`'s protection
//! against hostile keys costs a third of the filter's time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::{FxHashMap, FxHasher};

use crate::members::TenantSets;

/// What one in-memory entry costs: the key, its box, the value and the table's overhead.
const ENTRY_OVERHEAD: usize = 48;
/// A map writes a run only once it holds this much, so runs stay few.
const MIN_RUN_BYTES: usize = 4 << 20;
/// Bytes per block of the merged file (a block ends after the record crossing this): a
/// lookup reads one block and scans it, so blocks are small; memory keeps one key per block.
const BLOCK_BYTES: u64 = 512;
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_HASHES: u64 = 7;

/// The memory all key maps of one filtering may hold.
#[derive(Debug)]
pub struct KeyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl KeyBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    fn over(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit
    }
}

/// A finished map.
#[derive(Debug)]
pub enum KeyMap {
    Memory(FxHashMap<Box<[u8]>, usize>),
    Disk(DiskKeys),
}

impl KeyMap {
    /// The tenant of `key`; a disk map reads at most one block.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<usize>> {
        match self {
            Self::Memory(map) => Ok(map.get(key).copied()),
            Self::Disk(disk) => disk.get(key),
        }
    }
}

/// Builds a map; a key inserted twice (a parent key two rows share) holds the union of their
/// tenants, in memory and on disk.
#[derive(Debug)]
pub struct KeyMapBuilder {
    budget: Arc<KeyBudget>,
    sets: Arc<TenantSets>,
    map: FxHashMap<Box<[u8]>, usize>,
    bytes: usize,
    runs: Vec<File>,
    min_run: usize,
    keys: u64,
}

impl KeyMapBuilder {
    pub fn new(budget: Arc<KeyBudget>, sets: Arc<TenantSets>) -> Self {
        Self::with_min_run(budget, sets, MIN_RUN_BYTES)
    }

    fn with_min_run(budget: Arc<KeyBudget>, sets: Arc<TenantSets>, min_run: usize) -> Self {
        Self {
            budget,
            sets,
            map: FxHashMap::default(),
            bytes: 0,
            runs: Vec::new(),
            min_run,
            keys: 0,
        }
    }

    pub fn insert(&mut self, key: &[u8], tenant: usize) -> io::Result<()> {
        let cost = key.len() + ENTRY_OVERHEAD;
        if let Some(existing) = self.map.get_mut(key) {
            *existing = self.sets.union(*existing as u32, tenant as u32) as usize;
        } else {
            self.map.insert(key.into(), tenant);
            self.bytes += cost;
            self.budget.used.fetch_add(cost, Ordering::Relaxed);
            self.keys += 1;
        }
        if self.bytes >= self.min_run && self.budget.over() {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the entries in memory as a sorted run and gives their memory back.
    fn spill(&mut self) -> io::Result<()> {
        let mut entries: Vec<(Box<[u8]>, usize)> = self.map.drain().collect();
        self.map.shrink_to_fit();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = BufWriter::new(tempfile::tempfile()?);
        for (key, tenant) in &entries {
            write_record(&mut out, key, *tenant)?;
        }
        let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
        Ok(())
    }

    /// The map, in memory if it never spilled and the budget still holds it, on disk otherwise.
    pub fn finish(mut self) -> io::Result<KeyMap> {
        if self.runs.is_empty() && !self.budget.over() {
            // Its memory stays counted: the map lives on.
            self.bytes = 0;
            return Ok(KeyMap::Memory(std::mem::take(&mut self.map)));
        }
        if !self.map.is_empty() {
            self.spill()?;
        }
        let runs = std::mem::take(&mut self.runs);
        Ok(KeyMap::Disk(DiskKeys::merge(runs, self.keys, &self.sets)?))
    }
}

impl Drop for KeyMapBuilder {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A merged map on disk: sorted records in blocks, the first key of each block, a Bloom filter.
#[derive(Debug)]
pub struct DiskKeys {
    file: File,
    /// (first key, offset) of each block.
    blocks: Vec<(Box<[u8]>, u64)>,
    end: u64,
    bloom: Vec<u64>,
    keys: u64,
}

impl DiskKeys {
    /// Merges sorted runs; a key in several runs holds the union of their tenants.
    fn merge(runs: Vec<File>, keys: u64, sets: &TenantSets) -> io::Result<Self> {
        let bloom_bits = (keys.max(1) * BLOOM_BITS_PER_KEY).div_ceil(64) * 64;
        let mut bloom = vec![0u64; (bloom_bits / 64) as usize];
        let mut readers: Vec<BufReader<File>> = runs.into_iter().map(BufReader::new).collect();
        // Min-heap on (key, newest run first).
        let mut heap = BinaryHeap::new();
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some((key, tenant)) = read_record(reader)? {
                heap.push(Reverse((key, Reverse(run), tenant)));
            }
        }
        let mut out = BufWriter::new(tempfile::tempfile()?);
        let mut blocks: Vec<(Box<[u8]>, u64)> = Vec::new();
        let mut offset = 0u64;
        let mut block_start: Option<u64> = None;
        let mut pending: Option<(Box<[u8]>, usize)> = None;
        let mut written = 0u64;
        let mut emit = |key: Box<[u8]>, tenant: usize, out: &mut BufWriter<File>| {
            if block_start.is_none_or(|start| offset - start >= BLOCK_BYTES) {
                blocks.push((key.clone(), offset));
                block_start = Some(offset);
            }
            for bit in bloom_bits_of(&key, bloom_bits) {
                bloom[(bit / 64) as usize] |= 1 << (bit % 64);
            }
            offset += write_record(out, &key, tenant)? as u64;
            written += 1;
            Ok::<(), io::Error>(())
        };
        while let Some(Reverse((key, Reverse(run), tenant))) = heap.pop() {
            if let Some((next, next_tenant)) = read_record(&mut readers[run])? {
                heap.push(Reverse((next, Reverse(run), next_tenant)));
            }
            // Equal keys pop one after the other: their tenants are joined.
            match &mut pending {
                Some((last, sum)) if **last == *key => {
                    *sum = sets.union(*sum as u32, tenant as u32) as usize;
                }
                _ => {
                    if let Some((last, sum)) = pending.replace((key, tenant)) {
                        emit(last, sum, &mut out)?;
                    }
                }
            }
        }
        if let Some((last, sum)) = pending {
            emit(last, sum, &mut out)?;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(Self {
            file,
            blocks,
            end: offset,
            bloom,
            keys: written,
        })
    }

    /// How many keys it holds.
    pub fn len(&self) -> u64 {
        self.keys
    }

    fn get(&self, key: &[u8]) -> io::Result<Option<usize>> {
        let bits = self.bloom.len() as u64 * 64;
        if !bloom_bits_of(key, bits)
            .all(|bit| self.bloom[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
        {
            return Ok(None);
        }
        // The last block whose first key is not after `key`.
        let block = self.blocks.partition_point(|(first, _)| &**first <= key);
        let Some(index) = block.checked_sub(1) else {
            return Ok(None);
        };
        let start = self.blocks[index].1;
        let end = self.blocks.get(index + 1).map_or(self.end, |next| next.1);
        let length = usize::try_from(end - start).map_err(io::Error::other)?;
        BLOCK.with_borrow_mut(|buffer| {
            buffer.resize(length, 0);
            read_exact_at(&self.file, buffer, start)?;
            let mut records = &buffer[..];
            while let Some((found, tenant)) = split_record(&mut records)? {
                match found.cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(Some(tenant)),
                    std::cmp::Ordering::Greater => return Ok(None),
                }
            }
            Ok(None)
        })
    }
}

thread_local! {
    /// The block a lookup reads, reused.
    static BLOCK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The next record of a block, borrowed from it.
fn split_record<'b>(records: &mut &'b [u8]) -> io::Result<Option<(&'b [u8], usize)>> {
    if records.is_empty() {
        return Ok(None);
    }
    let damaged = || io::Error::new(io::ErrorKind::InvalidData, "a damaged key file");
    let (length, rest) = records.split_first_chunk::<4>().ok_or_else(damaged)?;
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length + 4 {
        return Err(damaged());
    }
    let (key, rest) = rest.split_at(length);
    let (tenant, rest) = rest.split_at(4);
    *records = rest;
    let tenant = u32::from_le_bytes(tenant.try_into().map_err(|_| damaged())?);
    Ok(Some((key, tenant as usize)))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buffer.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buffer, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => {
                buffer = &mut buffer[read..];
                offset += read as u64;
            }
        }
    }
    Ok(())
}

/// `BLOOM_HASHES` bit positions for `key` by double hashing.
fn bloom_bits_of(key: &[u8], bits: u64) -> impl Iterator<Item = u64> {
    let mut hasher = FxHasher::default();
    hasher.write(key);
    let hash = hasher.finish();
    let first = mix(hash);
    let second = mix(hash ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (0..BLOOM_HASHES).map(move |i| first.wrapping_add(i.wrapping_mul(second)) % bits)
}

/// The finalizer of `splitmix64`: spreads `FxHash`'s bits over the whole word.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// A record: key length (u32 LE), key, tenant (u32 LE). Returns its size.
fn write_record(out: &mut impl Write, key: &[u8], tenant: usize) -> io::Result<usize> {
    let length = u32::try_from(key.len()).map_err(io::Error::other)?;
    let tenant = u32::try_from(tenant).map_err(io::Error::other)?;
    out.write_all(&length.to_le_bytes())?;
    out.write_all(key)?;
    out.write_all(&tenant.to_le_bytes())?;
    Ok(8 + key.len())
}

fn read_record(input: &mut impl Read) -> io::Result<Option<(Box<[u8]>, usize)>> {
    let mut word = [0u8; 4];
    match input.read_exact(&mut word) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut key = vec![0u8; u32::from_le_bytes(word) as usize];
    input.read_exact(&mut key)?;
    input.read_exact(&mut word)?;
    Ok(Some((key.into(), u32::from_le_bytes(word) as usize)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::sync::Arc;

    use super::{KeyBudget, KeyMap, KeyMapBuilder};
    use crate::members::TenantSets;

    fn sets() -> Arc<TenantSets> {
        Arc::new(TenantSets::new(200))
    }

    fn key(number: u64) -> Vec<u8> {
        format!("{number}\tk{}", number * 7919 % 1000).into_bytes()
    }

    #[test]
    fn a_map_within_budget_stays_in_memory() {
        let budget = KeyBudget::new(1 << 30);
        let mut builder = KeyMapBuilder::new(budget.clone(), sets());
        for number in 0..1000 {
            builder.insert(&key(number), (number % 5) as usize).unwrap();
        }
        let map = builder.finish().unwrap();
        assert!(matches!(map, KeyMap::Memory(_)));
        assert_eq!(map.get(&key(42)).unwrap(), Some(2));
        assert_eq!(map.get(b"42").unwrap(), None);
    }

    #[test]
    fn spilled_runs_answer_like_a_hash_map_and_shared_keys_join_their_tenants() {
        let budget = KeyBudget::new(0);
        let sets = sets();
        // Runs of ~2 KiB: dozens of runs, several blocks each.
        let mut builder = KeyMapBuilder::with_min_run(budget.clone(), Arc::clone(&sets), 2048);
        let mut expected = HashMap::new();
        for number in 0..20_000u64 {
            let tenant = (number % 13) as usize;
            builder.insert(&key(number), tenant).unwrap();
            expected.insert(key(number), tenant);
        }
        // Some keys again, for another tenant, after they were spilled.
        for number in (0..20_000u64).step_by(97) {
            builder.insert(&key(number), 99).unwrap();
            let joined = sets.union((number % 13) as u32, 99) as usize;
            expected.insert(key(number), joined);
        }
        assert!(builder.runs.len() > 10, "{} runs", builder.runs.len());
        let map = builder.finish().unwrap();
        let KeyMap::Disk(disk) = &map else {
            panic!("an over-budget map goes to disk");
        };
        assert!(disk.blocks.len() > 10, "{} blocks", disk.blocks.len());
        for (key, tenant) in &expected {
            assert_eq!(map.get(key).unwrap(), Some(*tenant), "{key:?}");
        }
        let mut false_hits = 0;
        for number in 20_000..40_000u64 {
            assert_eq!(map.get(&key(number)).unwrap(), None);
            assert_eq!(map.get(format!("{number}").as_bytes()).unwrap(), None);
        }
        for number in 20_000..40_000u64 {
            let bits = disk.bloom.len() as u64 * 64;
            if super::bloom_bits_of(&key(number), bits)
                .all(|bit| disk.bloom[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
            {
                false_hits += 1;
            }
        }
        assert!(
            false_hits < 600,
            "{false_hits} of 20,000 absent keys pass the filter"
        );
        // Before the first key, after the last, empty.
        assert_eq!(map.get(b"").unwrap(), None);
        assert_eq!(map.get(b"\xff\xff").unwrap(), None);
        drop(map);
        assert_eq!(budget.used.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn an_empty_map_over_budget_is_an_empty_disk_map() {
        let budget = KeyBudget::new(0);
        budget.used.store(1, std::sync::atomic::Ordering::Relaxed);
        let map = KeyMapBuilder::new(budget, sets()).finish().unwrap();
        assert!(matches!(map, KeyMap::Disk(_)));
        assert_eq!(map.get(b"1").unwrap(), None);
    }
}
