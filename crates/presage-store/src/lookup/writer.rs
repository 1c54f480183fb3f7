//! Building a lookup file in one streaming pass.

use std::hash::Hasher as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef};
use fs_err::os::unix::fs::FileExt;

use super::encode::{Column, KeyColumn, KeyValue, put_str};
use super::format::{
    HASH_SEED, HEADER_LEN, Header, MAX_OFFSET, encode_schema, get_varint, home_slot,
    home_slots_for, pack_slot,
};
use super::key::key_hash;
use super::spill::{Entries, Entry};
use super::{KeyType, LookupError, ValueField};

/// Bytes buffered before a write to the file.
const FLUSH_AT: usize = 1 << 20;

/// Writes a lookup file from Arrow batches of keys and prediction columns.
///
/// Records go to the file as batches arrive; only a `(hash, offset)` pair per key is
/// kept, in memory up to a limit ([`LookupWriter::set_memory_limit`], 32 MiB by
/// default) and in a spill file (`<path>.spill`, removed by `finish`) past it. The
/// index is laid out by [`LookupWriter::finish`], which also finds duplicate keys,
/// writes the header last and fsyncs. A file whose build failed or was abandoned has
/// no header and is refused by [`LookupFile::open`](super::LookupFile::open).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use arrow::array::{ArrayRef, Float32Array, StringArray};
/// use presage_store::lookup::{FieldType, KeyType, LookupWriter, ValueField};
///
/// let fields = vec![ValueField::new("probability", FieldType::Float32)];
/// let mut writer = LookupWriter::create("predictions.lookup".as_ref(), KeyType::Str, fields)?;
/// let keys = StringArray::from(vec!["alice", "bob"]);
/// let probability: ArrayRef = Arc::new(Float32Array::from(vec![0.12, 0.5]));
/// writer.append_batch(&keys, &[probability])?;
/// let summary = writer.finish()?;
/// assert_eq!(summary.rows, 2);
/// # Ok::<(), presage_store::lookup::LookupError>(())
/// ```
pub struct LookupWriter {
    out: Output,
    key_type: KeyType,
    fields: Vec<ValueField>,
    null_bytes: usize,
    schema_len: u64,
    data_offset: u64,
    rows: u64,
    entries: Entries,
}

/// What [`LookupWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSummary {
    /// Keys written.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// The file being written: a buffer in front of it, the running position, and the
/// running checksum of everything after the header.
struct Output {
    path: PathBuf,
    file: fs_err::File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    pos: u64,
    checksum: twox_hash::XxHash3_64,
}

impl Output {
    /// The file offset the next byte put into `buf` will have.
    #[inline]
    fn offset(&self) -> u64 {
        self.pos + self.buf.len() as u64
    }

    #[inline]
    fn flush_if_full(&mut self) -> Result<(), LookupError> {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LookupError> {
        use std::io::Write as _;
        self.file
            .write_all(&self.buf)
            .map_err(|e| LookupError::io(&self.path, e))?;
        self.checksum.write(&self.buf);
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Appends `count` zero bytes without a buffer that large.
    fn put_zeros(&mut self, mut count: u64) -> Result<(), LookupError> {
        while count > 0 {
            let chunk = count.min(FLUSH_AT as u64) as usize;
            self.buf.resize(self.buf.len() + chunk, 0);
            count -= chunk as u64;
            self.flush_if_full()?;
        }
        Ok(())
    }
}

impl LookupWriter {
    /// Creates (or truncates) the file at `path` for keys of `key_type` and records of
    /// `fields`, in that order.
    pub fn create(
        path: &Path,
        key_type: KeyType,
        fields: Vec<ValueField>,
    ) -> Result<LookupWriter, LookupError> {
        for (i, field) in fields.iter().enumerate() {
            if fields[..i].iter().any(|earlier| earlier.name == field.name) {
                return Err(LookupError::DuplicateField {
                    path: path.to_owned(),
                    field: field.name.clone(),
                });
            }
        }
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LookupError::io(path, e))?;
        let mut out = Output {
            path: path.to_owned(),
            file,
            buf: Vec::with_capacity(FLUSH_AT + (64 << 10)),
            pos: 0,
            checksum: twox_hash::XxHash3_64::with_seed(0),
        };
        // Zeros until `finish` writes the real header: an unfinished file has no
        // magic. The checksum covers what follows the header only.
        {
            use std::io::Write as _;
            out.file
                .write_all(&[0u8; HEADER_LEN])
                .map_err(|e| LookupError::io(path, e))?;
        }
        out.pos = HEADER_LEN as u64;
        let schema = encode_schema(&fields);
        out.buf.extend_from_slice(&schema);
        let mut spill_path = path.as_os_str().to_owned();
        spill_path.push(".spill");
        Ok(LookupWriter {
            key_type,
            null_bytes: fields.len().div_ceil(8),
            fields,
            schema_len: schema.len() as u64,
            data_offset: out.offset(),
            rows: 0,
            entries: Entries::new(PathBuf::from(spill_path)),
            out,
        })
    }

    /// Keeps at most `bytes` of `(hash, offset)` entries (16 bytes a key) in memory;
    /// past that they are spilled to `<path>.spill`. The default is 32 MiB.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.entries.set_memory_limit(bytes);
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.out.path
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one batch: `keys` and one column per field, in the order of the fields
    /// given to [`LookupWriter::create`].
    ///
    /// The batch is checked before anything is written (column count, types, lengths,
    /// null keys, integer keys out of range), so an error leaves the writer as it was.
    /// Duplicate keys are only found by [`LookupWriter::finish`].
    pub fn append_batch(
        &mut self,
        keys: &dyn Array,
        columns: &[ArrayRef],
    ) -> Result<(), LookupError> {
        let path = &self.out.path;
        if columns.len() != self.fields.len() {
            return Err(LookupError::ColumnCount {
                path: path.clone(),
                expected: self.fields.len(),
                found: columns.len(),
            });
        }
        let rows = keys.len();
        let mut readers = Vec::with_capacity(columns.len());
        for (field, column) in self.fields.iter().zip(columns) {
            if column.len() != rows {
                return Err(LookupError::ColumnLength {
                    path: path.clone(),
                    field: field.name.clone(),
                    expected: rows,
                    found: column.len(),
                });
            }
            let reader =
                Column::new(field, column.as_ref()).ok_or_else(|| LookupError::ColumnType {
                    path: path.clone(),
                    field: field.name.clone(),
                    expected: field.field_type,
                    data_type: column.data_type().to_string(),
                })?;
            readers.push(reader);
        }
        let key_column =
            KeyColumn::new(self.key_type, keys).ok_or_else(|| LookupError::KeyType {
                path: path.clone(),
                expected: self.key_type,
                data_type: keys.data_type().to_string(),
            })?;
        if let Some(row) = keys
            .nulls()
            .filter(|nulls| nulls.null_count() > 0)
            .and_then(|nulls| (0..rows).find(|&row| nulls.is_null(row)))
        {
            return Err(LookupError::NullKey {
                path: path.clone(),
                row: self.rows + row as u64,
            });
        }
        if let KeyColumn::U64(array) = &key_column
            && let Some((row, &value)) = array
                .values()
                .iter()
                .enumerate()
                .find(|(_, value)| i64::try_from(**value).is_err())
        {
            return Err(LookupError::KeyOutOfRange {
                path: path.clone(),
                row: self.rows + row as u64,
                value,
            });
        }
        let nulls: Vec<_> = readers.iter().map(Column::nulls).collect();

        for row in 0..rows {
            let offset = self.out.offset();
            let buf = &mut self.out.buf;
            let hash = match key_column.value(row) {
                KeyValue::Str(text) => {
                    put_str(buf, text);
                    key_hash(HASH_SEED, text.as_bytes())
                }
                KeyValue::Int(value) => {
                    let bytes = value.to_le_bytes();
                    buf.extend_from_slice(&bytes);
                    key_hash(HASH_SEED, &bytes)
                }
                // Checked above; unreachable for a batch that got here.
                KeyValue::OutOfRange => 0,
            };
            let bitmap = buf.len();
            buf.resize(bitmap + self.null_bytes, 0);
            for (i, (reader, nulls)) in readers.iter().zip(&nulls).enumerate() {
                let null = nulls.is_some_and(|nulls| nulls.is_null(row));
                if null {
                    buf[bitmap + i / 8] |= 1 << (i % 8);
                }
                reader.encode(row, null, buf);
            }
            self.entries.push(Entry { hash, offset })?;
            self.out.flush_if_full()?;
        }
        self.rows += rows as u64;
        let end = self.out.offset();
        if end > MAX_OFFSET {
            return Err(LookupError::TooLarge {
                path: self.out.path.clone(),
                offset: end,
                limit: MAX_OFFSET,
            });
        }
        Ok(())
    }

    /// Lays out the index, checks for duplicate keys, writes the header and fsyncs.
    pub fn finish(self) -> Result<LookupSummary, LookupError> {
        let LookupWriter {
            mut out,
            key_type,
            fields,
            schema_len,
            data_offset,
            rows,
            entries,
            ..
        } = self;
        let data_len = out.offset() - data_offset;
        // Records are read back to tell duplicates from hash collisions.
        out.flush()?;
        let data_end = out.offset();
        out.put_zeros(data_end.next_multiple_of(8) - data_end)?;
        let index_offset = out.offset();
        let home_slots = home_slots_for(rows);
        let mut cursor = 0u64;
        entries.sorted_runs(|run| {
            check_duplicates(&out, key_type, data_end, run)?;
            for entry in run {
                let home = home_slot(entry.hash, home_slots);
                let slot = home.max(cursor);
                out.put_zeros(8 * (slot - cursor))?;
                out.buf.extend_from_slice(
                    &pack_slot(entry.offset, slot - home, entry.hash).to_le_bytes(),
                );
                cursor = slot + 1;
                out.flush_if_full()?;
            }
            Ok(())
        })?;
        let table_slots = cursor.max(home_slots);
        out.put_zeros(8 * (table_slots - cursor))?;
        out.flush()?;
        let header = Header {
            key_type,
            rows,
            field_count: u32::try_from(fields.len()).unwrap_or(u32::MAX),
            hash_seed: HASH_SEED,
            schema_offset: HEADER_LEN as u64,
            schema_len,
            data_offset,
            data_len,
            index_offset,
            home_slots,
            table_slots,
            file_len: out.pos,
            data_checksum: out.checksum.finish(),
        };
        out.file
            .write_all_at(&header.encode(), 0)
            .map_err(|e| LookupError::io(&out.path, e))?;
        out.file
            .sync_all()
            .map_err(|e| LookupError::io(&out.path, e))?;
        // The written pages are cached in small folios; readers get 2 MiB pages
        // only for pages they read in themselves.
        super::map::drop_cached_pages(out.file.file());
        Ok(LookupSummary {
            rows,
            bytes: out.pos,
        })
    }
}

/// Fails on the first pair of entries of a sorted run whose keys are equal. Equal
/// keys have equal hashes, so only entries of equal hash (almost always duplicates,
/// rarely a 64-bit collision) are read back.
fn check_duplicates(
    out: &Output,
    key_type: KeyType,
    data_end: u64,
    run: &[Entry],
) -> Result<(), LookupError> {
    let mut start = 0;
    while start < run.len() {
        let end = start
            + run[start..]
                .iter()
                .take_while(|e| e.hash == run[start].hash)
                .count();
        if end - start > 1 {
            let mut keys = run[start..end]
                .iter()
                .map(|entry| read_key(out, key_type, data_end, entry.offset))
                .collect::<Result<Vec<_>, _>>()?;
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(LookupError::DuplicateKey {
                    path: out.path.clone(),
                    key: pair[0].to_string(),
                });
            }
        }
        start = end;
    }
    Ok(())
}

/// A key read back from the file being written.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum OwnedKey {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for OwnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnedKey::Str(text) => f.write_str(text),
            OwnedKey::Int(value) => write!(f, "{value}"),
        }
    }
}

fn read_key(
    out: &Output,
    key_type: KeyType,
    data_end: u64,
    offset: u64,
) -> Result<OwnedKey, LookupError> {
    let read = |len: u64, at: u64| -> Result<Vec<u8>, LookupError> {
        let mut bytes = vec![0u8; len as usize];
        out.file
            .read_exact_at(&mut bytes, at)
            .map_err(|e| LookupError::io(&out.path, e))?;
        Ok(bytes)
    };
    match key_type {
        KeyType::Int => {
            let bytes = read(8, offset)?;
            let mut le = [0u8; 8];
            le.copy_from_slice(&bytes);
            Ok(OwnedKey::Int(i64::from_le_bytes(le)))
        }
        KeyType::Str => {
            let prefix = read(10.min(data_end - offset), offset)?;
            let (len, taken) = get_varint(&prefix).ok_or_else(|| {
                LookupError::corrupt(&out.path, "a key written by this build does not parse")
            })?;
            let bytes = read(len, offset + taken as u64)?;
            Ok(OwnedKey::Str(String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}
