//! Opening a lookup file and answering point lookups from the mapping.

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::format::{
    DISP_SATURATED, HEADER_LEN, Header, checksum, decode_schema, home_slot, slot_displacement,
    slot_offset, slot_tag,
};
use super::record::{Layout, RawKey, split_key};
use super::{Key, KeyType, LookupError, Record, ValueField, map};

/// Keys per group in [`LookupFile::get_many`]: enough misses in flight to cover
/// memory latency, few enough that a group's lines stay in L1.
pub const GET_MANY_GROUP: usize = 8;

/// An open lookup file: a read-only mapping and its parsed header.
///
/// Opening reads only the header and the schema; the records and the index are paged
/// in by lookups. [`LookupFile::verify`] reads everything once to check the data
/// checksum. A `LookupFile` is `Send + Sync`: share one behind an `Arc` between
/// threads.
pub struct LookupFile {
    path: PathBuf,
    map: Mmap,
    header: Header,
    layout: Layout,
    data: Range<usize>,
    index: Range<usize>,
}

impl LookupFile {
    /// Opens and maps the file at `path`, checking its magic, format version, header
    /// checksum and length, but not its data (see [`LookupFile::verify`]).
    pub fn open(path: &Path) -> Result<LookupFile, LookupError> {
        let file = fs_err::File::open(path).map_err(|e| LookupError::io(path, e))?;
        let len = file.metadata().map_err(|e| LookupError::io(path, e))?.len();
        if len < HEADER_LEN as u64 {
            return Err(LookupError::corrupt(
                path,
                format!("the file has `{len}` bytes, fewer than a header"),
            ));
        }
        let map = map::map(&file, path)?;
        let header = Header::decode(&map[..HEADER_LEN], map.len() as u64, path)?;
        // The header's layout check guarantees these ranges lie inside the map.
        let range = |offset: u64, len: u64| offset as usize..(offset + len) as usize;
        let schema = &map[range(header.schema_offset, header.schema_len)];
        let fields = decode_schema(schema, header.field_count, path)?;
        Ok(LookupFile {
            path: path.to_owned(),
            data: range(header.data_offset, header.data_len),
            index: range(header.index_offset, header.table_slots * 8),
            layout: Layout::new(fields),
            header,
            map,
        })
    }

    /// Runs `f` over every byte of the file, with read-ahead on: for whole-file
    /// checksums. Reading through the mapping (not `read`) is what lets the kernel
    /// cache the file in 2 MiB pages for the lookups that follow.
    pub fn scan<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        map::sequential(&self.map, || f(&self.map))
    }

    /// Reads the whole file and checks its data checksum; a server calls this once
    /// when it loads a new version, before answering from it.
    pub fn verify(&self) -> Result<(), LookupError> {
        let actual = self.scan(|bytes| checksum(&bytes[HEADER_LEN..]));
        if actual != self.header.data_checksum {
            return Err(LookupError::ChecksumMismatch {
                path: self.path.clone(),
                section: "data",
                expected: self.header.data_checksum,
                actual,
            });
        }
        Ok(())
    }

    /// The record stored for `key`, or `None` if the file does not hold it (or holds
    /// keys of the other type).
    #[inline]
    pub fn get(&self, key: Key<'_>) -> Option<Record<'_>> {
        if key.key_type() != self.header.key_type {
            return None;
        }
        self.get_hashed(key, key.hash(self.header.hash_seed))
    }

    /// Looks up every key of `keys` and calls `each` with its index and record
    /// (`None` when absent), in order: the same answers as [`LookupFile::get`] per
    /// key, faster.
    ///
    /// A lookup is two dependent reads at random places (an index slot, then the
    /// record it points to), each a cache miss on a large file, so a lone lookup
    /// waits for memory twice. Here keys go in groups of [`GET_MANY_GROUP`]: every
    /// key's slot is read first, then every key's record, then the answers are
    /// built from cached lines, so the misses of a group overlap instead of queueing.
    pub fn get_many<'f>(
        &'f self,
        keys: &[Key<'_>],
        mut each: impl FnMut(usize, Option<Record<'f>>),
    ) {
        let seed = self.header.hash_seed;
        let mut hashes = [0u64; GET_MANY_GROUP];
        for (group, chunk) in keys.chunks(GET_MANY_GROUP).enumerate() {
            // Loads whose values only feed `touched`: the CPU issues them all
            // without waiting for any one of them.
            let mut touched = 0u64;
            for (hash, key) in hashes.iter_mut().zip(chunk) {
                *hash = key.hash(seed);
                let home = home_slot(*hash, self.header.home_slots);
                touched ^= self.slot(home).unwrap_or(0);
            }
            for (&hash, key) in hashes.iter().zip(chunk) {
                if key.key_type() == self.header.key_type {
                    self.probe(hash, |offset| {
                        touched ^= u64::from(self.data_byte(offset).unwrap_or(0));
                        true
                    });
                }
            }
            std::hint::black_box(touched);
            for (i, (&hash, key)) in hashes.iter().zip(chunk).enumerate() {
                let record = if key.key_type() == self.header.key_type {
                    self.get_hashed(*key, hash)
                } else {
                    None
                };
                each(group * GET_MANY_GROUP + i, record);
            }
        }
    }

    #[inline]
    fn get_hashed(&self, key: Key<'_>, hash: u64) -> Option<Record<'_>> {
        let mut found = None;
        self.probe(hash, |offset| {
            found = self.record_if_key(offset, key);
            found.is_some()
        });
        found
    }

    /// Calls `candidate` with the record offset of every slot in `hash`'s probe run
    /// whose tag matches, until it returns true.
    #[inline]
    fn probe(&self, hash: u64, mut candidate: impl FnMut(u64) -> bool) {
        let home = home_slot(hash, self.header.home_slots);
        let tag = slot_tag(hash);
        let mut at = home;
        while let Some(slot) = self.slot(at) {
            if slot == 0 {
                return;
            }
            let displacement = slot_displacement(slot);
            // Slots are sorted by home: an entry homed past ours means the key is
            // absent. A saturated displacement only says "homed well before".
            if displacement < DISP_SATURATED {
                let entry_home = at.wrapping_sub(displacement);
                if entry_home > home {
                    return;
                }
                if entry_home < home {
                    at += 1;
                    continue;
                }
            }
            if slot & 0xffff == tag && candidate(slot_offset(slot)) {
                return;
            }
            at += 1;
        }
    }

    /// Index slot `at`, or `None` past the table.
    #[inline]
    fn slot(&self, at: u64) -> Option<u64> {
        let start = usize::try_from(at).ok()?.checked_mul(8)?;
        let bytes = self.map[self.index.clone()].get(start..start + 8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Some(u64::from_le_bytes(word))
    }

    /// The byte at file offset `offset` of the data section.
    #[inline]
    fn data_byte(&self, offset: u64) -> Option<u8> {
        let start = usize::try_from(offset.checked_sub(self.header.data_offset)?).ok()?;
        self.map[self.data.clone()].get(start).copied()
    }

    /// The record at file offset `offset` if its key is `key`.
    #[inline]
    fn record_if_key(&self, offset: u64, key: Key<'_>) -> Option<Record<'_>> {
        let data = &self.map[self.data.clone()];
        let start = usize::try_from(offset.checked_sub(self.header.data_offset)?).ok()?;
        let bytes = data.get(start..)?;
        let (stored, key_len) = split_key(self.header.key_type, bytes)?;
        let same = match (stored, key) {
            (RawKey::Str(stored), Key::Str(key)) => stored == key.as_bytes(),
            (RawKey::Int(stored), Key::Int(key)) => stored == key,
            _ => false,
        };
        if !same {
            return None;
        }
        self.layout
            .record(&bytes[key_len..])
            .map(|(record, _)| record)
    }

    /// Every key and record, in the order they were appended.
    ///
    /// A record that does not parse (a file that fails `verify`) ends the iteration
    /// with an error.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            file: self,
            pos: 0,
            seen: 0,
            done: false,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.header.rows
    }

    /// Whether the file holds no keys.
    pub fn is_empty(&self) -> bool {
        self.header.rows == 0
    }

    /// The type of the keys.
    pub fn key_type(&self) -> KeyType {
        self.header.key_type
    }

    /// The prediction fields of every record, in order.
    pub fn fields(&self) -> &[ValueField] {
        &self.layout.fields
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.header.file_len
    }
}

impl std::fmt::Debug for LookupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupFile")
            .field("path", &self.path)
            .field("rows", &self.header.rows)
            .field("key_type", &self.header.key_type)
            .field("fields", &self.layout.fields)
            .finish_non_exhaustive()
    }
}

/// The keys and records of a [`LookupFile`], in append order; see [`LookupFile::iter`].
pub struct Iter<'a> {
    file: &'a LookupFile,
    /// Offset in the data section.
    pos: usize,
    seen: u64,
    done: bool,
}

impl<'a> Iter<'a> {
    fn fail(&mut self, reason: String) -> Option<Result<(Key<'a>, Record<'a>), LookupError>> {
        self.done = true;
        Some(Err(LookupError::corrupt(&self.file.path, reason)))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<(Key<'a>, Record<'a>), LookupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let file = self.file;
        let data = &file.map[file.data.clone()];
        if self.pos >= data.len() {
            self.done = true;
            if self.seen != file.header.rows {
                let reason = format!(
                    "the data section holds `{}` records, the header says `{}`",
                    self.seen, file.header.rows
                );
                return self.fail(reason);
            }
            return None;
        }
        let bytes = &data[self.pos..];
        let Some((stored, key_len)) = split_key(file.header.key_type, bytes) else {
            return self.fail(format!("record `{}` has a cut-short key", self.seen));
        };
        let key = match stored {
            RawKey::Int(value) => Key::Int(value),
            RawKey::Str(text) => match std::str::from_utf8(text) {
                Ok(text) => Key::Str(text),
                Err(_) => {
                    return self.fail(format!(
                        "record `{}` has a key that is not UTF-8",
                        self.seen
                    ));
                }
            },
        };
        let Some((record, record_len)) = file.layout.record(&bytes[key_len..]) else {
            return self.fail(format!("record `{}` (key `{key}`) is cut short", self.seen));
        };
        self.pos += key_len + record_len;
        self.seen += 1;
        Some(Ok((key, record)))
    }
}
