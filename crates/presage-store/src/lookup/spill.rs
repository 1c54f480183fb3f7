//! The records a writer collects until every key is known, kept small in memory by
//! spilling to a side file.
//!
//! Where a record goes in the file depends on every key (slots are laid out in hash
//! order), so records are staged. Up to a memory limit they stay in one arena and
//! are sorted at `finish`. Past the limit they are split by the top 8 bits of their
//! key's hash into 256 partitions, each buffered in a small block that is appended to
//! a spill file when full. Since the home slot is monotonic in the hash, partition
//! `p` covers a contiguous run of home slots, so `finish` loads, sorts and lays out
//! one partition at a time: memory stays at about 1/256 of the staged bytes plus the
//! block buffers, whatever the row count.

use std::path::{Path, PathBuf};

use fs_err::os::unix::fs::FileExt;

use super::LookupError;

/// A staged record and the hash of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Staged<'a> {
    pub hash: u64,
    /// The record as it goes into the file: key, null bitmap, values.
    pub record: &'a [u8],
}

/// A staged record in memory: its hash and where its bytes are in the arena.
#[derive(Debug, Clone, Copy)]
struct Item {
    hash: u64,
    start: usize,
    len: usize,
}

/// Bytes an item takes besides its record, for the memory limit.
const ITEM_BYTES: usize = std::mem::size_of::<Item>();
/// Bytes before a record in the spill file: hash u64, length u32.
const SPILLED_PREFIX: usize = 12;
/// Partitions by the top bits of the hash.
const PARTITIONS: usize = 256;
/// A partition's block is written out once it holds this many bytes: 64 KiB blocks,
/// 16 MiB of buffers for all partitions.
const BLOCK_BYTES: usize = 64 << 10;
/// Bytes of records kept in memory before spilling, unless set otherwise.
pub(crate) const DEFAULT_MEMORY_LIMIT: usize = 32 << 20;

/// Records staged so far.
pub(crate) struct Stage {
    arena: Vec<u8>,
    items: Vec<Item>,
    limit: usize,
    spill: Option<Spill>,
    spill_path: PathBuf,
}

struct Spill {
    file: fs_err::File,
    len: u64,
    /// Each partition's block being filled, in the spill encoding.
    buffers: Vec<Vec<u8>>,
    /// Offset and length of every written block, per partition.
    blocks: Vec<Vec<(u64, usize)>>,
}

impl Stage {
    /// No records yet; a spill file, if needed, goes at `spill_path`.
    pub(crate) fn new(spill_path: PathBuf) -> Stage {
        Stage {
            arena: Vec::new(),
            items: Vec::new(),
            limit: DEFAULT_MEMORY_LIMIT,
            spill: None,
            spill_path,
        }
    }

    /// Keeps at most about `bytes` of records in memory before spilling.
    pub(crate) fn set_memory_limit(&mut self, bytes: usize) {
        self.limit = bytes.max(1);
    }

    /// Whether records went to the spill file.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Adds a record whose key hashes to `hash`.
    #[inline]
    pub(crate) fn push(&mut self, hash: u64, record: &[u8]) -> Result<(), LookupError> {
        match &mut self.spill {
            None => {
                self.items.push(Item {
                    hash,
                    start: self.arena.len(),
                    len: record.len(),
                });
                self.arena.extend_from_slice(record);
                if self.arena.len() + self.items.len() * ITEM_BYTES >= self.limit {
                    self.start_spilling()?;
                }
                Ok(())
            }
            Some(spill) => spill.push(hash, record, &self.spill_path),
        }
    }

    fn start_spilling(&mut self) -> Result<(), LookupError> {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.spill_path)
            .map_err(|e| LookupError::io(&self.spill_path, e))?;
        let mut spill = Spill {
            file,
            len: 0,
            buffers: (0..PARTITIONS).map(|_| Vec::new()).collect(),
            blocks: vec![Vec::new(); PARTITIONS],
        };
        let arena = std::mem::take(&mut self.arena);
        for item in std::mem::take(&mut self.items) {
            let record = &arena[item.start..item.start + item.len];
            spill.push(item.hash, record, &self.spill_path)?;
        }
        self.spill = Some(spill);
        Ok(())
    }

    /// Calls `lay_out` with every record, sorted by hash (then by bytes), in one or
    /// more consecutive runs, then removes the spill file.
    pub(crate) fn sorted_runs(
        mut self,
        mut lay_out: impl FnMut(&[Staged<'_>]) -> Result<(), LookupError>,
    ) -> Result<(), LookupError> {
        let Some(spill) = &self.spill else {
            let arena = std::mem::take(&mut self.arena);
            let mut run: Vec<Staged<'_>> = self
                .items
                .iter()
                .map(|item| Staged {
                    hash: item.hash,
                    record: &arena[item.start..item.start + item.len],
                })
                .collect();
            self.items = Vec::new();
            run.sort_unstable();
            return lay_out(&run);
        };
        let mut bytes = Vec::new();
        for (blocks, buffer) in spill.blocks.iter().zip(&spill.buffers) {
            bytes.clear();
            for &(start, len) in blocks {
                let at = bytes.len();
                bytes.resize(at + len, 0);
                spill
                    .file
                    .read_exact_at(&mut bytes[at..], start)
                    .map_err(|e| LookupError::io(&self.spill_path, e))?;
            }
            bytes.extend_from_slice(buffer);
            let mut run = decode_block(&bytes).ok_or_else(|| {
                LookupError::corrupt(&self.spill_path, "a spilled block is cut short")
            })?;
            run.sort_unstable();
            // On an error the spill file is removed by `drop`.
            lay_out(&run)?;
        }
        self.spill = None;
        remove_spill(&self.spill_path)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.spill.take().is_some() {
            // An abandoned build: the spill file is garbage. Best effort, since the
            // staging folder it sits in is cleaned up anyway.
            let _ = remove_spill(&self.spill_path);
        }
    }
}

fn remove_spill(path: &Path) -> Result<(), LookupError> {
    match fs_err::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LookupError::io(path, e)),
        _ => Ok(()),
    }
}

impl Spill {
    #[inline]
    fn push(&mut self, hash: u64, record: &[u8], path: &Path) -> Result<(), LookupError> {
        let partition = (hash >> 56) as usize;
        let buffer = &mut self.buffers[partition];
        if buffer.capacity() == 0 {
            buffer.reserve_exact(BLOCK_BYTES + 256);
        }
        buffer.extend_from_slice(&hash.to_le_bytes());
        // A record is far below 4 GiB: the writer refuses files past 1 TiB and a
        // record's fields come from one Arrow row.
        buffer.extend_from_slice(&(record.len() as u32).to_le_bytes());
        buffer.extend_from_slice(record);
        if buffer.len() >= BLOCK_BYTES {
            self.file
                .write_all_at(buffer, self.len)
                .map_err(|e| LookupError::io(path, e))?;
            self.blocks[partition].push((self.len, buffer.len()));
            self.len += buffer.len() as u64;
            buffer.clear();
        }
        Ok(())
    }
}

/// The records of a partition's blocks, in the spill encoding, or `None` if one is
/// cut short.
fn decode_block(mut bytes: &[u8]) -> Option<Vec<Staged<'_>>> {
    let mut run = Vec::new();
    while !bytes.is_empty() {
        let prefix = bytes.get(..SPILLED_PREFIX)?;
        let mut hash = [0u8; 8];
        let mut len = [0u8; 4];
        hash.copy_from_slice(&prefix[..8]);
        len.copy_from_slice(&prefix[8..]);
        let end = SPILLED_PREFIX + u32::from_le_bytes(len) as usize;
        run.push(Staged {
            hash: u64::from_le_bytes(hash),
            record: bytes.get(SPILLED_PREFIX..end)?,
        });
        bytes = &bytes[end..];
    }
    Some(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spilled or not, the runs come out as one sorted sequence of every record.
    #[test]
    fn spilled_runs_are_sorted_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        for limit in [usize::MAX, 1000] {
            let spill_path = dir.path().join("x.spill");
            let mut stage = Stage::new(spill_path.clone());
            stage.set_memory_limit(limit);
            let mut expected = Vec::new();
            let mut state = 0x1234_5678_u64;
            for i in 0..20_000u64 {
                // xorshift: spread hashes over every partition
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // records of different lengths, some empty
                let record = i.to_le_bytes()[..(i % 9) as usize].to_vec();
                stage.push(state, &record).unwrap();
                expected.push((state, record));
            }
            assert_eq!(stage.spilled(), limit != usize::MAX);
            expected.sort_unstable();
            let mut seen = Vec::new();
            stage
                .sorted_runs(|run| {
                    seen.extend(run.iter().map(|s| (s.hash, s.record.to_vec())));
                    Ok(())
                })
                .unwrap();
            assert_eq!(seen, expected);
            assert!(!spill_path.exists());
        }
    }
}
