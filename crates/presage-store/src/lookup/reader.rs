//! Opening a lookup file and answering point lookups from the mapping.

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::format::{
    DISP_SATURATED, HEADER_LEN, Header, WORD_SLOT, checksum, decode_schema, home_slot,
    slot_displacement, slot_place, slot_tag,
};
use super::record::{Layout, RawKey, split_key, stored_key_len_if};
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
            index: range(
                header.index_offset,
                header.table_slots * u64::from(header.slot_width),
            ),
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

    /// Reads the whole file and checks its data checksum. A server loading a version
    /// does not call this: it checks the whole file against the sha256 in the
    /// version's manifest instead (see [`crate::LoadedVersion`]).
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
    /// A lookup reads a random place of a large file, a cache miss, and with word
    /// slots a second one it depends on (the slot, then the record it points to), so
    /// a lone lookup waits for memory once or twice. Here keys go in groups of
    /// [`GET_MANY_GROUP`]: every key's slot is read first, then (with word slots)
    /// every key's record, then the answers are built from cached lines, so the
    /// misses of a group overlap instead of queueing.
    pub fn get_many<'f>(
        &'f self,
        keys: &[Key<'_>],
        mut each: impl FnMut(usize, Option<Record<'f>>),
    ) {
        let seed = self.header.hash_seed;
        let index = &self.map[self.index.clone()];
        let mut hashes = [0u64; GET_MANY_GROUP];
        for (group, chunk) in keys.chunks(GET_MANY_GROUP).enumerate() {
            // Loads whose values only feed `touched`: the CPU issues them all
            // without waiting for any one of them.
            let mut touched = 0u64;
            for (hash, key) in hashes.iter_mut().zip(chunk) {
                *hash = key.hash(seed);
                let home = home_slot(*hash, self.header.home_slots);
                let slot = usize::try_from(home)
                    .ok()
                    .and_then(|at| slot_at(index, at, self.stride()));
                touched ^= slot.unwrap_or(0);
            }
            for (&hash, key) in hashes.iter().zip(chunk) {
                if !self.inline() && key.key_type() == self.header.key_type {
                    self.probe(hash, |_, slot| {
                        touched ^= u64::from(self.data_byte(slot_place(slot)).unwrap_or(0));
                        Some(())
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

    #[inline(always)]
    fn get_hashed(&self, key: Key<'_>, hash: u64) -> Option<Record<'_>> {
        self.probe(hash, |at, slot| {
            let record = if self.inline() {
                self.slot_record(at, slot)?
            } else {
                self.data_from(slot_place(slot))?
            };
            self.record_if_key(record, key)
        })
    }

    /// Calls `candidate` with the position and word of every slot in `hash`'s probe
    /// run whose tag matches, until it returns an answer.
    ///
    /// Inlined, and shaped as below: skipping the entries homed before ours with a
    /// `continue`, or folding the tests into one condition, ran hits about a third
    /// slower on 10 M keys. `candidate` is called from one place: with two call
    /// sites the compiler kept it out of line, and a hit ran 43 more instructions
    /// (284 against 241, callgrind, with the benchmark's rows). A lone
    /// lookup's speed depends on how much of the next lookup the CPU starts while
    /// this one waits for memory, and that proved sensitive to the code's shape
    /// (docs/benchmarks-history.md).
    #[inline(always)]
    fn probe<T>(&self, hash: u64, mut candidate: impl FnMut(usize, u64) -> Option<T>) -> Option<T> {
        let home = home_slot(hash, self.header.home_slots);
        let tag = slot_tag(hash);
        let index = &self.map[self.index.clone()];
        let mut at = usize::try_from(home).ok()?;
        while let Some(slot) = slot_at(index, at, self.stride()) {
            if slot == 0 {
                return None;
            }
            // Slots are sorted by home: an entry homed past ours means the key is
            // absent. A saturated displacement only says "homed well before".
            let displacement = slot_displacement(slot);
            let homed_here = if displacement < DISP_SATURATED {
                let entry_home = (at as u64).wrapping_sub(displacement);
                if entry_home > home {
                    return None;
                }
                entry_home == home
            } else {
                true
            };
            if homed_here
                && slot & 0xffff == tag
                && let Some(answer) = candidate(at, slot)
            {
                return Some(answer);
            }
            at += 1;
        }
        None
    }

    /// The byte at file offset `offset` of the data section.
    #[inline]
    fn data_byte(&self, offset: u64) -> Option<u8> {
        self.data_from(offset)?.first().copied()
    }

    /// Bytes of an index slot.
    #[inline(always)]
    fn stride(&self) -> usize {
        usize::from(self.header.slot_width)
    }

    /// Whether slots hold their records (are wider than a word).
    #[inline(always)]
    fn inline(&self) -> bool {
        self.header.slot_width != WORD_SLOT
    }

    /// The data section from file offset `offset` on: where a word slot's record
    /// starts.
    #[inline(always)]
    fn data_from(&self, offset: u64) -> Option<&[u8]> {
        let data = &self.map[self.data.clone()];
        let start = usize::try_from(offset.checked_sub(self.header.data_offset)?).ok()?;
        data.get(start..)
    }

    /// The record held by slot `at`, whose word is `slot`.
    #[inline(always)]
    fn slot_record(&self, at: usize, slot: u64) -> Option<&[u8]> {
        let index = &self.map[self.index.clone()];
        let start = at * self.stride() + 8;
        index.get(start..start + usize::try_from(slot_place(slot)).ok()?)
    }

    /// The record at the start of `bytes` if its key is `key`.
    #[inline(always)]
    fn record_if_key<'f>(&'f self, bytes: &'f [u8], key: Key<'_>) -> Option<Record<'f>> {
        let key_len = stored_key_len_if(bytes, key)?;
        self.layout
            .record(&bytes[key_len..])
            .map(|(record, _)| record)
    }

    /// Every key and record, in the order they sit in the file: hash order for
    /// files of this build, the order they were appended for format 1 files.
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

    /// Bytes of an index slot: 8 when records are in a data section the slots point
    /// into, more when each slot holds its record (the writer's choice; see
    /// [`LookupWriter`](super::LookupWriter)).
    pub fn slot_width(&self) -> u64 {
        u64::from(self.header.slot_width)
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.header.file_len
    }
}

/// The word of slot `at` of the index section `index` (slots of `width` bytes), or
/// `None` past the table.
#[inline(always)]
fn slot_at(index: &[u8], at: usize, width: usize) -> Option<u64> {
    let start = at * width;
    let bytes = index.get(start..start + 8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    Some(u64::from_le_bytes(word))
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

/// The keys and records of a [`LookupFile`], in file order; see [`LookupFile::iter`].
pub struct Iter<'a> {
    file: &'a LookupFile,
    /// Offset in the data section, or the next slot when slots hold the records.
    pos: usize,
    seen: u64,
    done: bool,
}

impl<'a> Iter<'a> {
    /// The bytes from the next record on: `None` past the last one, `Some(None)` for
    /// a slot whose record runs past it. Moves past the slot when slots hold records;
    /// the caller moves past a record in the data section once it knows its length.
    fn next_record(&mut self) -> Option<Option<&'a [u8]>> {
        let file = self.file;
        if !file.inline() {
            let data = &file.map[file.data.clone()];
            return data
                .get(self.pos..)
                .filter(|rest| !rest.is_empty())
                .map(Some);
        }
        let index = &file.map[file.index.clone()];
        while let Some(slot) = slot_at(index, self.pos, file.stride()) {
            self.pos += 1;
            if slot != 0 {
                return Some(file.slot_record(self.pos - 1, slot));
            }
        }
        None
    }

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
        let Some(bytes) = self.next_record() else {
            self.done = true;
            if self.seen != file.header.rows {
                let reason = format!(
                    "the file holds `{}` records, the header says `{}`",
                    self.seen, file.header.rows
                );
                return self.fail(reason);
            }
            return None;
        };
        let Some(bytes) = bytes else {
            return self.fail(format!("record `{}` runs past its slot", self.seen));
        };
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
        if !file.inline() {
            self.pos += key_len + record_len;
        }
        self.seen += 1;
        Some(Ok((key, record)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{Float32Array, StringArray};

    use super::super::format::{HASH_SEED, home_slots_for};
    use super::super::key::key_hash;
    use super::super::{FieldType, LookupWriter, Value};
    use super::*;

    const ROWS: usize = 2000;

    /// Where a string key lands in a file of `ROWS` keys: its home slot and tag.
    fn place(key: &str) -> (u64, u64) {
        let hash = key_hash(HASH_SEED, key.as_bytes());
        (home_slot(hash, home_slots_for(ROWS as u64)), slot_tag(hash))
    }

    /// Probes that do not end at the first slot they read: a home holding more keys
    /// than a cache line of slots, and two keys with the same home and tag (the
    /// first candidate is the other key). Hashes are searched for such keys, so the
    /// test holds whatever the hash seed.
    #[test]
    fn crowded_homes_and_shared_tags_are_probed_to_the_right_key() {
        let mut by_home: HashMap<u64, Vec<String>> = HashMap::new();
        let crowded = (0..)
            .map(|i| format!("crowd{i}"))
            .find_map(|key| {
                let keys = by_home.entry(place(&key).0).or_default();
                keys.push(key);
                (keys.len() > 12).then(|| keys.clone())
            })
            .unwrap();
        let mut by_place: HashMap<(u64, u64), String> = HashMap::new();
        let twins = (0..)
            .map(|i| format!("twin{i}"))
            .find_map(|key| {
                by_place
                    .insert(place(&key), key.clone())
                    .map(|other| [other, key])
            })
            .unwrap();
        // The last crowded key stays out: a miss that probes the whole crowd.
        let (absent, crowded) = crowded.split_last().unwrap();
        let mut keys: Vec<String> = crowded.iter().chain(&twins).cloned().collect();
        keys.extend((keys.len()..ROWS).map(|i| format!("filler{i}")));
        let dir = tempfile::tempdir().unwrap();
        // Records in the slots, then (with one key too long for a slot) in a data
        // section the slots point into.
        for long in [false, true] {
            if long {
                *keys.last_mut().unwrap() = "filler-".repeat(20);
            }
            let path = dir.path().join(format!("crowded-{long}.lookup"));
            let fields = vec![ValueField::new("index", FieldType::Float32)];
            let mut writer = LookupWriter::create(&path, KeyType::Str, fields).unwrap();
            let index: Float32Array = (0..keys.len()).map(|i| i as f32).collect();
            writer
                .append_batch(&StringArray::from_iter_values(&keys), &[Arc::new(index)])
                .unwrap();
            writer.finish().unwrap();
            let file = LookupFile::open(&path).unwrap();
            assert_eq!(file.inline(), !long);
            check_crowded(&file, &keys, crowded, &twins, absent);
        }
    }

    fn check_crowded(
        file: &LookupFile,
        keys: &[String],
        crowded: &[String],
        twins: &[String],
        absent: &str,
    ) {
        fn answer(record: Option<Record<'_>>) -> Option<Value<'_>> {
            record.map(|record| record.value(0))
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                answer(file.get(Key::Str(key))),
                Some(Value::Float32(i as f32)),
                "{key}"
            );
        }
        assert!(file.get(Key::Str(absent)).is_none());
        let asked: Vec<Key<'_>> = crowded
            .iter()
            .chain(twins)
            .map(|key| Key::Str(key))
            .chain([Key::Str(absent)])
            .collect();
        let mut answers = Vec::new();
        file.get_many(&asked, |_, record| answers.push(answer(record)));
        let expected: Vec<_> = (0..asked.len() - 1)
            .map(|i| Some(Value::Float32(i as f32)))
            .chain([None])
            .collect();
        assert_eq!(answers, expected);
    }
}
