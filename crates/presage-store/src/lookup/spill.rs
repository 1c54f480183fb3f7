//! The `(hash, offset)` entries collected while records are written, kept small in
//! memory by spilling to a side file.
//!
//! The index can only be laid out once every key is known, in hash order. Up to a
//! memory limit the entries stay in one vector and are sorted at `finish`. Past the
//! limit they are split by the top 8 bits of the hash into 256 partitions, each
//! buffered in a small block that is appended to a spill file when full. Since the
//! home slot is monotonic in the hash, partition `p` covers a contiguous run of home
//! slots, so `finish` loads, sorts and lays out one partition at a time: memory stays
//! at about 16 bytes × rows / 256 plus the block buffers, whatever the row count.

use std::path::{Path, PathBuf};

use fs_err::os::unix::fs::FileExt;

use super::LookupError;

/// Where a record is, and the hash of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub hash: u64,
    pub offset: u64,
}

/// Bytes of an entry in the spill file.
const ENTRY_BYTES: usize = 16;
/// Partitions by the top bits of the hash.
const PARTITIONS: usize = 256;
/// Entries per spill block: 64 KiB blocks, 16 MiB of buffers for all partitions.
const BLOCK_ENTRIES: usize = 4096;
/// Bytes of entries kept in memory before spilling, unless set otherwise.
pub(crate) const DEFAULT_MEMORY_LIMIT: usize = 32 << 20;

/// Entries collected so far.
pub(crate) struct Entries {
    memory: Vec<Entry>,
    limit: usize,
    spill: Option<Spill>,
    spill_path: PathBuf,
}

struct Spill {
    file: fs_err::File,
    len: u64,
    buffers: Vec<Vec<Entry>>,
    /// Start offset of every full block in the spill file, per partition.
    blocks: Vec<Vec<u64>>,
    /// Block encoding scratch.
    bytes: Vec<u8>,
}

impl Entries {
    /// No entries yet; a spill file, if needed, goes at `spill_path`.
    pub(crate) fn new(spill_path: PathBuf) -> Entries {
        Entries {
            memory: Vec::new(),
            limit: DEFAULT_MEMORY_LIMIT / ENTRY_BYTES,
            spill: None,
            spill_path,
        }
    }

    /// Keeps at most `bytes` of entries in memory before spilling.
    pub(crate) fn set_memory_limit(&mut self, bytes: usize) {
        self.limit = (bytes / ENTRY_BYTES).max(1);
    }

    /// Whether entries went to the spill file.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Adds an entry.
    #[inline]
    pub(crate) fn push(&mut self, entry: Entry) -> Result<(), LookupError> {
        match &mut self.spill {
            None => {
                self.memory.push(entry);
                if self.memory.len() >= self.limit {
                    self.start_spilling()?;
                }
                Ok(())
            }
            Some(spill) => spill.push(entry, &self.spill_path),
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
            bytes: Vec::with_capacity(BLOCK_ENTRIES * ENTRY_BYTES),
        };
        for entry in std::mem::take(&mut self.memory) {
            spill.push(entry, &self.spill_path)?;
        }
        self.spill = Some(spill);
        Ok(())
    }

    /// Calls `lay_out` with all entries sorted by `(hash, offset)`, in one or more
    /// consecutive runs, then removes the spill file.
    pub(crate) fn sorted_runs(
        mut self,
        mut lay_out: impl FnMut(&[Entry]) -> Result<(), LookupError>,
    ) -> Result<(), LookupError> {
        let Some(spill) = &self.spill else {
            let mut memory = std::mem::take(&mut self.memory);
            memory.sort_unstable();
            return lay_out(&memory);
        };
        let mut run = Vec::new();
        let mut block = vec![0u8; BLOCK_ENTRIES * ENTRY_BYTES];
        for (blocks, buffer) in spill.blocks.iter().zip(&spill.buffers) {
            run.clear();
            for &start in blocks {
                spill
                    .file
                    .read_exact_at(&mut block, start)
                    .map_err(|e| LookupError::io(&self.spill_path, e))?;
                run.extend(block.chunks_exact(ENTRY_BYTES).map(decode_entry));
            }
            run.extend_from_slice(buffer);
            run.sort_unstable();
            // On an error the spill file is removed by `drop`.
            lay_out(&run)?;
        }
        self.spill = None;
        remove_spill(&self.spill_path)
    }
}

impl Drop for Entries {
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
    fn push(&mut self, entry: Entry, path: &Path) -> Result<(), LookupError> {
        let partition = (entry.hash >> 56) as usize;
        let buffer = &mut self.buffers[partition];
        if buffer.capacity() == 0 {
            buffer.reserve_exact(BLOCK_ENTRIES);
        }
        buffer.push(entry);
        if buffer.len() == BLOCK_ENTRIES {
            self.bytes.clear();
            for entry in buffer.drain(..) {
                self.bytes.extend_from_slice(&entry.hash.to_le_bytes());
                self.bytes.extend_from_slice(&entry.offset.to_le_bytes());
            }
            self.file
                .write_all_at(&self.bytes, self.len)
                .map_err(|e| LookupError::io(path, e))?;
            self.blocks[partition].push(self.len);
            self.len += self.bytes.len() as u64;
        }
        Ok(())
    }
}

fn decode_entry(bytes: &[u8]) -> Entry {
    let mut hash = [0u8; 8];
    let mut offset = [0u8; 8];
    hash.copy_from_slice(&bytes[..8]);
    offset.copy_from_slice(&bytes[8..16]);
    Entry {
        hash: u64::from_le_bytes(hash),
        offset: u64::from_le_bytes(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spilled or not, the runs come out as one sorted sequence of every entry.
    #[test]
    fn spilled_runs_are_sorted_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        for limit in [usize::MAX, 16 * 100] {
            let spill_path = dir.path().join("x.spill");
            let mut entries = Entries::new(spill_path.clone());
            entries.set_memory_limit(limit);
            let mut expected = Vec::new();
            let mut state = 0x1234_5678_u64;
            for offset in 0..20_000u64 {
                // xorshift: spread hashes over every partition
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let entry = Entry {
                    hash: state,
                    offset,
                };
                expected.push(entry);
                entries.push(entry).unwrap();
            }
            assert_eq!(entries.spilled(), limit != usize::MAX);
            expected.sort_unstable();
            let mut seen = Vec::new();
            entries
                .sorted_runs(|run| {
                    seen.extend_from_slice(run);
                    Ok(())
                })
                .unwrap();
            assert_eq!(seen, expected);
            assert!(!spill_path.exists());
        }
    }
}
