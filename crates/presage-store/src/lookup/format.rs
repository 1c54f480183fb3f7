//! The on-disk layout: header, schema section, records and index slots, varints.
//!
//! ```text
//! offset 0    header (128 bytes, little-endian)
//!             magic "PRSGLKUP" · format u32 · key type u8 · 3 reserved
//!             rows u64 · field count u32 · slot width u32
//!             hash seed u64
//!             schema offset, len · data offset, len · index offset u64
//!             home slots u64 · table slots u64 · file length u64
//!             data checksum u64 (xxh3 of every byte after the header)
//!             reserved u64 · header checksum u64 (xxh3 of bytes 0..120)
//! schema      per field: type u8 · param u32 (list length) · name length u32 · name
//! data        records, back to back, in slot order (empty when slots hold them):
//!             key (varint length + UTF-8 bytes, or i64) · null bitmap · values
//! padding     to a multiple of 8 (of 64 when slots hold the records)
//! index       table slots × slot width bytes, each starting with a word
//!             `offset or length` (40 bits) · displacement (8) · tag (16)
//! ```
//!
//! Two kinds of index, told apart by the slot width:
//!
//! - **8 bytes**: a slot is the word alone, and its first field is the file offset of
//!   the record in the data section. A hit reads a slot, then the record elsewhere.
//! - **wider**: a slot is the word followed by the record itself, zero-padded, and
//!   the word's first field is the record's length. A hit reads one place. The writer
//!   picks this when every record fits in a slot of at most [`MAX_INLINE_SLOT`] bytes
//!   and the padding at most doubles the file.
//!
//! The index is linear probing filled in hash order: a key's home slot is
//! `hash × home_slots / 2^64`, so slots hold entries sorted by home and a probe stops
//! at the first empty slot (an all-zero word) or the first entry whose home is past
//! the key's. The displacement (slot − home) in each slot is what lets a miss stop
//! early; a displacement of 255 or more is stored as 255, meaning "somewhere before".
//! The header is written last: a file whose build did not finish has no magic.
//!
//! Format 1 (written before slots could hold records) is format 2 with 8-byte slots,
//! a zero where the slot width is, and records in append order; it is still read.

use std::path::Path;

use super::{FieldType, KeyType, LookupError, ValueField};

/// The first 8 bytes of every lookup file.
pub(crate) const MAGIC: [u8; 8] = *b"PRSGLKUP";
/// The format this build writes.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest format this build reads.
const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes of a slot that holds only the word (the record is in the data section).
pub(crate) const WORD_SLOT: u16 = 8;
/// The widest slot that holds its record: two cache lines.
pub(crate) const MAX_INLINE_SLOT: u16 = 128;
/// Alignment of an index whose slots hold records.
pub(crate) const INLINE_INDEX_ALIGN: u64 = 64;
/// Bytes of the header.
pub(crate) const HEADER_LEN: usize = 128;
/// Bytes of the header covered by the header checksum.
const HEADER_CHECKED: usize = 120;
/// The hash seed written into new files ("presage1"); readers use the file's.
pub(crate) const HASH_SEED: u64 = 0x7072_6573_6167_6531;

/// Bits of a slot holding the record's file offset.
const OFFSET_BITS: u32 = 40;
/// The largest record offset a slot can hold.
pub(crate) const MAX_OFFSET: u64 = (1 << OFFSET_BITS) - 1;
/// A stored displacement of this value means "this many or more".
pub(crate) const DISP_SATURATED: u64 = 255;

/// The parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub key_type: KeyType,
    pub rows: u64,
    pub field_count: u32,
    /// Bytes of a slot: [`WORD_SLOT`], or more (at most [`MAX_INLINE_SLOT`]) when
    /// slots hold their records. 16 bits keep the header, and every open version
    /// that holds one, as small as before the field existed.
    pub slot_width: u16,
    pub hash_seed: u64,
    pub schema_offset: u64,
    pub schema_len: u64,
    pub data_offset: u64,
    pub data_len: u64,
    pub index_offset: u64,
    /// Slots that keys hash into; the table may run past them (overflow at the end).
    pub home_slots: u64,
    /// Slots in the table.
    pub table_slots: u64,
    pub file_len: u64,
    pub data_checksum: u64,
}

impl Header {
    /// The header's bytes, with its checksum.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12] = self.key_type.tag();
        out[16..24].copy_from_slice(&self.rows.to_le_bytes());
        out[24..28].copy_from_slice(&self.field_count.to_le_bytes());
        out[28..32].copy_from_slice(&u32::from(self.slot_width).to_le_bytes());
        let words = [
            self.hash_seed,
            self.schema_offset,
            self.schema_len,
            self.data_offset,
            self.data_len,
            self.index_offset,
            self.home_slots,
            self.table_slots,
            self.file_len,
            self.data_checksum,
        ];
        for (i, word) in words.iter().enumerate() {
            let at = 32 + 8 * i;
            out[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        let checksum = checksum(&out[..HEADER_CHECKED]);
        out[HEADER_CHECKED..HEADER_CHECKED + 8].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Parses and checks a header: magic, format version, header checksum, and that
    /// every section lies inside a file of `actual_len` bytes.
    pub(crate) fn decode(
        bytes: &[u8],
        actual_len: u64,
        path: &Path,
    ) -> Result<Header, LookupError> {
        if bytes.len() < HEADER_LEN {
            return Err(LookupError::corrupt(
                path,
                format!("the file has `{}` bytes, fewer than a header", bytes.len()),
            ));
        }
        if bytes[0..8] != MAGIC {
            return Err(LookupError::corrupt(
                path,
                "no lookup-file magic (not a lookup file, or its build did not finish)",
            ));
        }
        let found = u32_at(bytes, 8);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&found) {
            return Err(LookupError::UnsupportedVersion {
                path: path.to_owned(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        let stored = u64_at(bytes, HEADER_CHECKED);
        let actual = checksum(&bytes[..HEADER_CHECKED]);
        if stored != actual {
            return Err(LookupError::ChecksumMismatch {
                path: path.to_owned(),
                section: "header",
                expected: stored,
                actual,
            });
        }
        let key_type = KeyType::from_tag(bytes[12]).ok_or_else(|| {
            LookupError::corrupt(path, format!("unknown key type `{}`", bytes[12]))
        })?;
        let word = |i: usize| u64_at(bytes, 32 + 8 * i);
        let header = Header {
            key_type,
            rows: u64_at(bytes, 16),
            field_count: u32_at(bytes, 24),
            // Format 1 kept zero there and had only word slots.
            slot_width: match u32_at(bytes, 28) {
                0 if found == 1 => WORD_SLOT,
                // Past 16 bits is past any valid width: `check_layout` refuses it.
                width => u16::try_from(width).unwrap_or(u16::MAX),
            },
            hash_seed: word(0),
            schema_offset: word(1),
            schema_len: word(2),
            data_offset: word(3),
            data_len: word(4),
            index_offset: word(5),
            home_slots: word(6),
            table_slots: word(7),
            file_len: word(8),
            data_checksum: word(9),
        };
        header.check_layout(actual_len, path)?;
        Ok(header)
    }

    /// Checks that the sections follow each other inside the file, so readers can
    /// slice them without further checks.
    fn check_layout(&self, actual_len: u64, path: &Path) -> Result<(), LookupError> {
        if self.file_len != actual_len {
            return Err(LookupError::corrupt(
                path,
                format!(
                    "the header says the file has `{}` bytes, it has `{actual_len}` (truncated or appended to)",
                    self.file_len
                ),
            ));
        }
        let bad = |what: &str| Err(LookupError::corrupt(path, format!("bad header: {what}")));
        let schema_end = self.schema_offset.checked_add(self.schema_len);
        let data_end = self.data_offset.checked_add(self.data_len);
        let index_end = self
            .table_slots
            .checked_mul(u64::from(self.slot_width))
            .and_then(|len| len.checked_add(self.index_offset));
        if self.schema_offset != HEADER_LEN as u64 || schema_end != Some(self.data_offset) {
            return bad("the schema section is out of place");
        }
        let inline = self.slot_width != WORD_SLOT;
        if inline
            && (!self.slot_width.is_multiple_of(8)
                || !(16..=MAX_INLINE_SLOT).contains(&self.slot_width)
                || self.data_len != 0)
        {
            return bad("the slot width does not fit the data section");
        }
        let align = if inline { INLINE_INDEX_ALIGN } else { 8 };
        match data_end {
            Some(end) if end <= self.index_offset && self.index_offset - end < align => {}
            _ => return bad("the data section is out of place"),
        }
        if !self.index_offset.is_multiple_of(align) || index_end != Some(self.file_len) {
            return bad("the index section is out of place");
        }
        if self.home_slots == 0 || self.table_slots < self.home_slots || self.rows > self.home_slots
        {
            return bad("the slot counts do not fit the row count");
        }
        if data_end.is_some_and(|end| end > MAX_OFFSET) {
            return bad("the data section is larger than slots can address");
        }
        Ok(())
    }
}

/// The checksum used for the header and the data: xxh3, seedless.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// Encodes the schema section.
pub(crate) fn encode_schema(fields: &[ValueField]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.push(field.field_type.tag());
        out.extend_from_slice(&field.field_type.param().to_le_bytes());
        let name_len = u32::try_from(field.name.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(field.name.as_bytes());
    }
    out
}

/// Decodes the schema section of `count` fields.
pub(crate) fn decode_schema(
    mut bytes: &[u8],
    count: u32,
    path: &Path,
) -> Result<Vec<ValueField>, LookupError> {
    let bad = |what: String| LookupError::corrupt(path, format!("bad schema section: {what}"));
    let mut fields = Vec::new();
    for i in 0..count {
        if bytes.len() < 9 {
            return Err(bad(format!("field `{i}` is cut short")));
        }
        let tag = bytes[0];
        let param = u32_at(bytes, 1);
        let name_len = u32_at(bytes, 5) as usize;
        let rest = &bytes[9..];
        let Some(name) = rest.get(..name_len) else {
            return Err(bad(format!("the name of field `{i}` is cut short")));
        };
        let name = std::str::from_utf8(name)
            .map_err(|_| bad(format!("the name of field `{i}` is not UTF-8")))?;
        let field_type = FieldType::from_tag(tag, param)
            .ok_or_else(|| bad(format!("field `{name}` has unknown type `{tag}`")))?;
        fields.push(ValueField::new(name, field_type));
        bytes = &rest[name_len..];
    }
    if !bytes.is_empty() {
        return Err(bad(format!(
            "`{}` bytes follow the last field",
            bytes.len()
        )));
    }
    Ok(fields)
}

/// Packs an index slot's word. `place` (a record's offset, or its length when the
/// slot holds it) must be at most [`MAX_OFFSET`] and non-zero (records start after
/// the header, and hold at least a key), so an all-zero word means empty.
#[inline]
pub(crate) fn pack_slot(place: u64, displacement: u64, hash: u64) -> u64 {
    debug_assert!(place != 0 && place <= MAX_OFFSET);
    (place << 24) | (displacement.min(DISP_SATURATED) << 16) | slot_tag(hash)
}

/// The 16 bits of a key's hash kept in its slot, to skip records of other keys
/// without reading them. Low bits: the home slot is taken from the high bits.
#[inline]
pub(crate) fn slot_tag(hash: u64) -> u64 {
    hash & 0xffff
}

/// A slot's record offset, or the record's length when the slot holds it.
#[inline]
pub(crate) fn slot_place(slot: u64) -> u64 {
    slot >> 24
}

/// A slot's stored displacement (saturated at [`DISP_SATURATED`]).
#[inline]
pub(crate) fn slot_displacement(slot: u64) -> u64 {
    (slot >> 16) & 0xff
}

/// A key's home slot: `hash × slots / 2^64`, monotonic in the hash, so sorting
/// entries by hash sorts them by home slot.
#[inline]
pub(crate) fn home_slot(hash: u64, slots: u64) -> u64 {
    ((u128::from(hash) * u128::from(slots)) >> 64) as u64
}

/// The number of home slots for `rows` keys: a load factor of 3/4, so that probe
/// runs stay within a cache line or two.
pub(crate) fn home_slots_for(rows: u64) -> u64 {
    rows + rows / 3 + 1
}

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The bytes [`put_varint`] writes for `value`.
#[inline]
pub(crate) fn varint_len(value: u64) -> usize {
    (u64::BITS - (value | 1).leading_zeros()).div_ceil(7) as usize
}

/// Reads an unsigned LEB128 varint at the start of `bytes`: the value and the bytes
/// it took, or `None` if cut short or longer than 10 bytes.
#[inline]
pub(crate) fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    if first < 0x80 {
        return Some((u64::from(first), 1));
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The little-endian `u32` at `at`; the caller checked the bounds.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// The little-endian `u64` at `at`; the caller checked the bounds.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(get_varint(&out), Some((value, out.len())));
            assert_eq!(get_varint(&out[..out.len() - 1]), None);
        }
    }

    #[test]
    fn slots_round_trip() {
        let slot = pack_slot(MAX_OFFSET, 3, 0xdead_beef_cafe_f00d);
        assert_eq!(slot_place(slot), MAX_OFFSET);
        assert_eq!(slot_displacement(slot), 3);
        assert_eq!(slot & 0xffff, 0xf00d);
        assert_eq!(slot_displacement(pack_slot(1, 1000, 0)), DISP_SATURATED);
    }

    #[test]
    fn home_slots_are_monotonic_and_in_range() {
        let slots = 1_000_003;
        assert_eq!(home_slot(0, slots), 0);
        assert_eq!(home_slot(u64::MAX, slots), slots - 1);
        assert!(home_slot(1 << 63, slots) <= home_slot((1 << 63) + 1, slots));
    }

    #[test]
    fn schema_round_trips() {
        let fields = vec![
            ValueField::new("probability", FieldType::Float32),
            ValueField::new("embedding", FieldType::Float32List(4)),
            ValueField::new("naïve", FieldType::Utf8),
        ];
        let bytes = encode_schema(&fields);
        let path = Path::new("x.lookup");
        assert_eq!(decode_schema(&bytes, 3, path).unwrap(), fields);
        assert!(decode_schema(&bytes[..bytes.len() - 1], 3, path).is_err());
        assert!(decode_schema(&bytes, 2, path).is_err());
    }
}
