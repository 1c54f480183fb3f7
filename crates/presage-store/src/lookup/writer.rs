//! Building a lookup file in one streaming pass.

use std::hash::Hasher as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef};
use fs_err::os::unix::fs::FileExt;

use super::encode::{Column, KeyColumn, KeyValue, put_str};
use super::format::{
    HASH_SEED, HEADER_LEN, Header, INLINE_INDEX_ALIGN, MAX_INLINE_SLOT, MAX_OFFSET, WORD_SLOT,
    encode_schema, home_slot, home_slots_for, pack_slot,
};
use super::key::key_hash;
use super::record::{RawKey, split_key};
use super::spill::{Stage, Staged};
use super::{KeyType, LookupError, ValueField};

/// Bytes buffered before a write to the file.
const FLUSH_AT: usize = 1 << 20;

/// Writes a lookup file from Arrow batches of keys and prediction columns.
///
/// Records are encoded as batches arrive and staged by the hash of their key, in
/// memory up to a limit ([`LookupWriter::set_memory_limit`], 32 MiB by default) and
/// in a spill file (`<path>.spill`, removed by `finish`) past it, since where a
/// record goes depends on every key. [`LookupWriter::finish`] lays out the records
/// and the index in hash order, one partition of the hash space at a time, finds
/// duplicate keys, writes the header last and fsyncs. When every record fits in a
/// slot of at most 128 bytes without doubling the file, slots hold their records and
/// a lookup reads one place; otherwise records go to a data section that 8-byte
/// slots point into (the `format` module has the layout). A file whose build failed
/// or was abandoned has no header and is refused by
/// [`LookupFile::open`](super::LookupFile::open).
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
    stage: Stage,
    /// The record being encoded.
    record: Vec<u8>,
    /// Bytes of the longest record so far.
    max_record: usize,
    /// Bytes of every record so far.
    record_bytes: u64,
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
    /// Creates (or truncates) the file at `path`, empty.
    fn create(path: &Path) -> Result<Output, LookupError> {
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| LookupError::io(path, e))?;
        Ok(Output {
            path: path.to_owned(),
            file,
            buf: Vec::with_capacity(FLUSH_AT + (64 << 10)),
            pos: 0,
            checksum: twox_hash::XxHash3_64::with_seed(0),
        })
    }

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
        let mut out = Output::create(path)?;
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
            stage: Stage::new(PathBuf::from(spill_path)),
            record: Vec::new(),
            max_record: 0,
            record_bytes: 0,
            out,
        })
    }

    /// Keeps at most about `bytes` of records in memory until `finish`; past that they
    /// are spilled to `<path>.spill`. The default is 32 MiB.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.stage.set_memory_limit(bytes);
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
            let record = &mut self.record;
            record.clear();
            let hash = match key_column.value(row) {
                KeyValue::Str(text) => {
                    put_str(record, text);
                    key_hash(HASH_SEED, text.as_bytes())
                }
                KeyValue::Int(value) => {
                    let bytes = value.to_le_bytes();
                    record.extend_from_slice(&bytes);
                    key_hash(HASH_SEED, &bytes)
                }
                // Checked above; unreachable for a batch that got here.
                KeyValue::OutOfRange => 0,
            };
            let bitmap = record.len();
            record.resize(bitmap + self.null_bytes, 0);
            for (i, (reader, nulls)) in readers.iter().zip(&nulls).enumerate() {
                let null = nulls.is_some_and(|nulls| nulls.is_null(row));
                if null {
                    record[bitmap + i / 8] |= 1 << (i % 8);
                }
                reader.encode(row, null, record);
            }
            self.max_record = self.max_record.max(record.len());
            self.record_bytes += record.len() as u64;
            self.stage.push(hash, record)?;
        }
        self.rows += rows as u64;
        let end = self.data_offset + self.record_bytes;
        if end > MAX_OFFSET {
            return Err(LookupError::TooLarge {
                path: self.out.path.clone(),
                offset: end,
                limit: MAX_OFFSET,
            });
        }
        Ok(())
    }

    /// Lays out the records and the index, checks for duplicate keys, writes the
    /// header and fsyncs.
    pub fn finish(self) -> Result<LookupSummary, LookupError> {
        let LookupWriter {
            mut out,
            key_type,
            fields,
            schema_len,
            data_offset,
            rows,
            stage,
            max_record,
            record_bytes,
            ..
        } = self;
        let home_slots = home_slots_for(rows);
        let slot_width = inline_slot_width(max_record, record_bytes, home_slots);
        let layout = match slot_width {
            Some(width) => lay_out_inline(&mut out, stage, key_type, home_slots, u64::from(width))?,
            None => lay_out_words(&mut out, stage, key_type, home_slots)?,
        };
        out.flush()?;
        let header = Header {
            key_type,
            rows,
            field_count: u32::try_from(fields.len()).unwrap_or(u32::MAX),
            slot_width: slot_width.unwrap_or(WORD_SLOT),
            hash_seed: HASH_SEED,
            schema_offset: HEADER_LEN as u64,
            schema_len,
            data_offset,
            data_len: layout.data_end - data_offset,
            index_offset: layout.index_offset,
            home_slots,
            table_slots: layout.table_slots,
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

/// Where [`LookupWriter::finish`] put the sections.
struct Laid {
    /// File offset just past the data section (its start when slots hold records).
    data_end: u64,
    index_offset: u64,
    table_slots: u64,
}

/// The slot width that holds every record, if slots should: at most
/// [`MAX_INLINE_SLOT`] bytes, and at most twice the bytes of a data section with
/// 8-byte slots (one long key would otherwise widen every slot).
fn inline_slot_width(max_record: usize, record_bytes: u64, home_slots: u64) -> Option<u16> {
    let width = u16::try_from(max_record)
        .ok()?
        .checked_add(WORD_SLOT)?
        .checked_next_multiple_of(8)?;
    let inline_bytes = home_slots.saturating_mul(u64::from(width));
    let word_bytes = record_bytes.saturating_add(home_slots.saturating_mul(u64::from(WORD_SLOT)));
    (max_record > 0 && width <= MAX_INLINE_SLOT && inline_bytes <= word_bytes.saturating_mul(2))
        .then_some(width)
}

/// Writes the index with each record in its slot, slots of `width` bytes.
fn lay_out_inline(
    out: &mut Output,
    stage: Stage,
    key_type: KeyType,
    home_slots: u64,
    width: u64,
) -> Result<Laid, LookupError> {
    let data_end = out.offset();
    out.put_zeros(data_end.next_multiple_of(INLINE_INDEX_ALIGN) - data_end)?;
    let index_offset = out.offset();
    let path = out.path.clone();
    let (table_slots, empty_at_end) = place_records(
        &path,
        stage,
        key_type,
        home_slots,
        |gap, displacement, staged| {
            out.put_zeros(width * gap)?;
            let start = out.buf.len();
            let len = staged.record.len() as u64;
            out.buf
                .extend_from_slice(&pack_slot(len, displacement, staged.hash).to_le_bytes());
            out.buf.extend_from_slice(staged.record);
            out.buf.resize(start + width as usize, 0);
            out.flush_if_full()
        },
    )?;
    out.put_zeros(width * empty_at_end)?;
    Ok(Laid {
        data_end,
        index_offset,
        table_slots,
    })
}

/// Calls `place` with every staged record in hash order, after checking for
/// duplicate keys: with the empty slots to leave before the record's slot, and its
/// displacement. Returns the slots in the table and how many of them are empty
/// after the last record.
fn place_records(
    path: &Path,
    stage: Stage,
    key_type: KeyType,
    home_slots: u64,
    mut place: impl FnMut(u64, u64, &Staged<'_>) -> Result<(), LookupError>,
) -> Result<(u64, u64), LookupError> {
    let mut cursor = 0u64;
    stage.sorted_runs(|run| {
        check_duplicates(path, key_type, run)?;
        for staged in run {
            let home = home_slot(staged.hash, home_slots);
            let slot = home.max(cursor);
            place(slot - cursor, slot - home, staged)?;
            cursor = slot + 1;
        }
        Ok(())
    })?;
    let table_slots = cursor.max(home_slots);
    Ok((table_slots, table_slots - cursor))
}

/// Writes the records to the data section and the index of 8-byte slots after it.
/// The slots are built alongside the records, in a side file (`<path>.index`)
/// copied in at the end, so neither is held in memory.
fn lay_out_words(
    out: &mut Output,
    stage: Stage,
    key_type: KeyType,
    home_slots: u64,
) -> Result<Laid, LookupError> {
    let mut index_path = out.path.as_os_str().to_owned();
    index_path.push(".index");
    let mut index = SideFile::create(PathBuf::from(index_path))?;
    let path = out.path.clone();
    let (table_slots, empty_at_end) = place_records(
        &path,
        stage,
        key_type,
        home_slots,
        |gap, displacement, staged| {
            index.put_zeros(8 * gap)?;
            index.put(&pack_slot(out.offset(), displacement, staged.hash).to_le_bytes())?;
            out.buf.extend_from_slice(staged.record);
            out.flush_if_full()
        },
    )?;
    index.put_zeros(8 * empty_at_end)?;
    let data_end = out.offset();
    out.put_zeros(data_end.next_multiple_of(8) - data_end)?;
    let index_offset = out.offset();
    index.copy_into(out)?;
    Ok(Laid {
        data_end,
        index_offset,
        table_slots,
    })
}

/// A scratch file written front to back, then copied into the output and removed
/// (also when dropped on an error).
struct SideFile {
    /// `None` once copied.
    out: Option<Output>,
}

impl SideFile {
    fn create(path: PathBuf) -> Result<SideFile, LookupError> {
        Ok(SideFile {
            out: Some(Output::create(&path)?),
        })
    }

    /// The side file; always there until `copy_into` consumes `self`.
    fn out(&mut self) -> &mut Output {
        self.out.as_mut().expect("side file is open")
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LookupError> {
        let out = self.out();
        out.buf.extend_from_slice(bytes);
        out.flush_if_full()
    }

    fn put_zeros(&mut self, count: u64) -> Result<(), LookupError> {
        self.out().put_zeros(count)
    }

    /// Appends everything written to `dest`, then removes the file.
    fn copy_into(mut self, dest: &mut Output) -> Result<(), LookupError> {
        let side = self.out();
        side.flush()?;
        let mut at = 0u64;
        while at < side.pos {
            let chunk = (side.pos - at).min(FLUSH_AT as u64) as usize;
            let start = dest.buf.len();
            dest.buf.resize(start + chunk, 0);
            side.file
                .read_exact_at(&mut dest.buf[start..], at)
                .map_err(|e| LookupError::io(&side.path, e))?;
            at += chunk as u64;
            dest.flush_if_full()?;
        }
        let path = side.path.clone();
        self.out = None;
        fs_err::remove_file(&path).map_err(|e| LookupError::io(&path, e))
    }
}

impl Drop for SideFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // An abandoned build; the staging folder is cleaned up anyway.
            let _ = fs_err::remove_file(&out.path);
        }
    }
}

/// Fails on the first pair of records of a sorted run whose keys are equal. Equal
/// keys have equal hashes and, records being sorted by bytes after the hash, sit
/// next to each other; only neighbours of equal hash are compared.
fn check_duplicates(path: &Path, key_type: KeyType, run: &[Staged<'_>]) -> Result<(), LookupError> {
    for pair in run.windows(2) {
        if pair[0].hash != pair[1].hash {
            continue;
        }
        let key = |record| {
            split_key(key_type, record)
                .map(|(key, _)| key)
                .ok_or_else(|| {
                    LookupError::corrupt(path, "a key written by this build does not parse")
                })
        };
        let first = key(pair[0].record)?;
        if first == key(pair[1].record)? {
            let key = match first {
                RawKey::Str(text) => String::from_utf8_lossy(text).into_owned(),
                RawKey::Int(value) => value.to_string(),
            };
            return Err(LookupError::DuplicateKey {
                path: path.to_owned(),
                key,
            });
        }
    }
    Ok(())
}
