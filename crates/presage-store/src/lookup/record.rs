//! Records: how a key and its prediction fields sit in the data section, and how a
//! found record becomes typed values or a JSON object.
//!
//! A record is `key · null bitmap · values`. The bitmap has one bit per field (set =
//! null). Every value is stored in declaration order; a null fixed-width value still
//! takes its width (zeros) and a null string is an empty one, so fixed-width fields
//! never need a length.

use super::format::{get_varint, varint_len};
use super::{FieldType, Key, KeyType, RANKED_ITEM, RANKED_SCORE, ValueField};

/// The fields of a file and what answering needs of them, computed once at open.
#[derive(Debug)]
pub(crate) struct Layout {
    pub fields: Box<[ValueField]>,
    /// Bytes of the null bitmap: one bit per field.
    pub null_bytes: usize,
    /// Each field's `"name":` with the name already JSON-escaped.
    json_names: Box<[Box<[u8]>]>,
    /// Where each field's value starts within the values, for the fields that only
    /// fixed-width fields precede: [`Record::value`] reads those without walking
    /// the fields before them.
    starts: Box<[Option<usize>]>,
    /// Bytes of the values when every field is fixed-width: the record's length is
    /// then known without walking it. Its own field, read on every hit: taking it
    /// from an extra last entry of `starts` ran one-key hits 30% slower.
    fixed_len: Option<usize>,
}

impl Layout {
    pub(crate) fn new(fields: Vec<ValueField>) -> Layout {
        let json_names = fields
            .iter()
            .map(|field| {
                let mut name = Vec::new();
                write_json_str(&mut name, &field.name);
                name.push(b':');
                name.into_boxed_slice()
            })
            .collect();
        let mut next = Some(0);
        let starts = fields
            .iter()
            .map(|field| {
                let start = next;
                next = next
                    .zip(field.field_type.fixed_width())
                    .map(|(at, width)| at + width);
                start
            })
            .collect();
        Layout {
            starts,
            fixed_len: next,
            null_bytes: fields.len().div_ceil(8),
            fields: fields.into_boxed_slice(),
            json_names,
        }
    }

    /// Splits the record that starts at `bytes` (just after its key) into a [`Record`]
    /// and its length, or `None` if it runs past `bytes`.
    #[inline]
    pub(crate) fn record<'a>(&'a self, bytes: &'a [u8]) -> Option<(Record<'a>, usize)> {
        let nulls = bytes.get(..self.null_bytes)?;
        let rest = &bytes[self.null_bytes..];
        let values_len = match self.fixed_len {
            Some(len) => len,
            None => {
                let mut pos = 0;
                for field in &self.fields {
                    pos += value_len(field.field_type, rest.get(pos..)?)?;
                }
                pos
            }
        };
        let values = rest.get(..values_len)?;
        let record = Record {
            layout: self,
            nulls,
            values,
        };
        Some((record, self.null_bytes + values_len))
    }
}

/// The bytes a value of `field_type` takes at the start of `bytes`, or `None` if
/// they run past it.
#[inline]
fn value_len(field_type: FieldType, bytes: &[u8]) -> Option<usize> {
    let len = match field_type.fixed_width() {
        Some(width) => width,
        None => {
            let (len, prefix) = get_varint(bytes)?;
            prefix.checked_add(usize::try_from(len).ok()?)?
        }
    };
    (len <= bytes.len()).then_some(len)
}

/// A stored key, as read back from a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawKey<'a> {
    Str(&'a [u8]),
    Int(i64),
}

/// Splits the key at the start of a record: the key and the bytes it took.
#[inline]
pub(crate) fn split_key(key_type: KeyType, bytes: &[u8]) -> Option<(RawKey<'_>, usize)> {
    match key_type {
        KeyType::Str => {
            let (len, prefix) = get_varint(bytes)?;
            let end = prefix.checked_add(usize::try_from(len).ok()?)?;
            Some((RawKey::Str(bytes.get(prefix..end)?), end))
        }
        KeyType::Int => {
            let word = bytes.get(..8)?;
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            Some((RawKey::Int(i64::from_le_bytes(le)), 8))
        }
    }
}

/// The bytes the key at the start of `bytes` takes, if it is `key`.
///
/// A stored key equal to `key` has `key`'s length, so every address read here
/// follows from `bytes` and `key`, none from the stored bytes: no load waits for the
/// stored length to arrive before it can start (see [`split_key`] for the reading
/// that follows the stored length).
#[inline]
pub(crate) fn stored_key_len_if(bytes: &[u8], key: Key<'_>) -> Option<usize> {
    match key {
        Key::Str(text) => {
            // A key under 128 bytes (nearly every key) has a one-byte length prefix:
            // its length. Comparing that byte saves sizing the key's varint and
            // decoding the stored one, about 20 instructions a hit.
            let len = text.len();
            if len < 0x80 {
                let stored = bytes.get(..=len)?;
                return (stored[0] == len as u8 && same_bytes(&stored[1..], text.as_bytes()))
                    .then_some(len + 1);
            }
            stored_long_key_len_if(bytes, text)
        }
        Key::Int(value) => (bytes.get(..8)? == value.to_le_bytes()).then_some(8),
    }
}

/// [`stored_key_len_if`] for a string key of 128 bytes or more. Out of line: inlined,
/// the compiler computes its prefix size ahead of every lookup's probe loop.
#[inline(never)]
fn stored_long_key_len_if(bytes: &[u8], text: &str) -> Option<usize> {
    let prefix = varint_len(text.len() as u64);
    let stored = bytes.get(..prefix.checked_add(text.len())?)?;
    let same_len = get_varint(stored) == Some((text.len() as u64, prefix));
    (same_len && same_bytes(&stored[prefix..], text.as_bytes())).then_some(stored.len())
}

/// Whether `a` and `b` hold the same bytes. Keys of 8 to 16 bytes (most IDs) are
/// compared as two overlapping words each, without a call to `memcmp`: with the
/// addressing of [`stored_key_len_if`], hits on a cached file got 11% faster
/// (docs/benchmarks-history.md).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |bytes: &[u8], at: usize| {
        let mut le = [0u8; 8];
        le.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(le)
    };
    match (a.len(), b.len()) {
        (len, other) if len != other => false,
        (8..=16, len) => ((word(a, 0) ^ word(b, 0)) | (word(a, len - 8) ^ word(b, len - 8))) == 0,
        _ => a == b,
    }
}

/// The prediction fields stored for one key, borrowed from the mapped file.
///
/// Values are decoded on access; nothing is copied until [`Record::write_json`] or a
/// [`Value::Utf8`] is turned into a `String` by the caller.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    layout: &'a Layout,
    nulls: &'a [u8],
    values: &'a [u8],
}

impl<'a> Record<'a> {
    /// The fields, in the order of the values.
    pub fn fields(&self) -> &'a [ValueField] {
        &self.layout.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.layout.fields.len()
    }

    /// Whether the file has no value fields (only keys).
    pub fn is_empty(&self) -> bool {
        self.layout.fields.is_empty()
    }

    /// Whether field `i` is null.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn is_null(&self, i: usize) -> bool {
        assert!(
            i < self.len(),
            "field index `{i}` out of range: the record has `{}` fields",
            self.len()
        );
        is_null_in(self.nulls, i)
    }

    /// The value of field `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[inline]
    pub fn value(&self, i: usize) -> Value<'a> {
        assert!(
            i < self.len(),
            "field index `{i}` out of range: the record has `{}` fields",
            self.len()
        );
        let Some(start) = self.layout.starts[i] else {
            return self.values().nth(i).unwrap_or(Value::Null);
        };
        if is_null_in(self.nulls, i) {
            return Value::Null;
        }
        let field_type = self.layout.fields[i].field_type;
        // As in `Values::next`: bytes that do not parse can only come from a file
        // that failed (or skipped) `verify`, and read as null.
        let bytes = self.values.get(start..).unwrap_or_default();
        match value_len(field_type, bytes) {
            Some(len) => decode(field_type, &bytes[..len]),
            None => Value::Null,
        }
    }

    /// The value of the field called `name`, or `None` if there is no such field.
    pub fn get(&self, name: &str) -> Option<Value<'a>> {
        let i = self
            .layout
            .fields
            .iter()
            .position(|field| field.name == name)?;
        Some(self.value(i))
    }

    /// The values of all fields, in order.
    pub fn values(&self) -> Values<'a> {
        Values {
            record: *self,
            index: 0,
            pos: 0,
        }
    }

    /// Appends the record as a JSON object, e.g. `{"probability":0.12,"label":1}`.
    ///
    /// Null values, and floats that JSON cannot hold (NaN, infinities), are `null`;
    /// floats are printed in their shortest round-trip form.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, value) in self.values().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.layout.json_names[i]);
            value.write_json(out);
        }
        out.push(b'}');
    }

    /// The record as a JSON string; see [`Record::write_json`].
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // write_json only writes UTF-8: ASCII punctuation, numbers and `&str`s.
        String::from_utf8(out).unwrap_or_default()
    }
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (field, value) in self.layout.fields.iter().zip(self.values()) {
            map.entry(&field.name, &value);
        }
        map.finish()
    }
}

/// The values of a [`Record`], in field order.
#[derive(Debug, Clone)]
pub struct Values<'a> {
    record: Record<'a>,
    index: usize,
    pos: usize,
}

impl<'a> Iterator for Values<'a> {
    type Item = Value<'a>;

    #[inline]
    fn next(&mut self) -> Option<Value<'a>> {
        let field = self.record.layout.fields.get(self.index)?;
        let null = is_null_in(self.record.nulls, self.index);
        self.index += 1;
        let bytes = self.record.values.get(self.pos..).unwrap_or_default();
        // The record was bounds-checked when it was found; a failure here can only
        // come from a file that failed (or skipped) `verify`, and reads as null.
        let Some(len) = value_len(field.field_type, bytes) else {
            self.pos = self.record.values.len();
            return Some(Value::Null);
        };
        self.pos += len;
        if null {
            return Some(Value::Null);
        }
        Some(decode(field.field_type, &bytes[..len]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.record.layout.fields.len() - self.index;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Values<'_> {}

/// Whether bit `i` of a record's null bitmap is set.
#[inline(always)]
fn is_null_in(nulls: &[u8], i: usize) -> bool {
    nulls[i / 8] & (1 << (i % 8)) != 0
}

/// Decodes a non-null value from exactly its bytes.
///
/// Numbers are decoded inline; the other types, which walk varints, out of line, so
/// that a caller reading one number is not made too large to inline.
#[inline(always)]
fn decode(field_type: FieldType, bytes: &[u8]) -> Value<'_> {
    match field_type {
        FieldType::Int64 => Value::Int64(i64::from_le_bytes(array(bytes))),
        FieldType::Float32 => Value::Float32(f32::from_le_bytes(array(bytes))),
        FieldType::Float64 => Value::Float64(f64::from_le_bytes(array(bytes))),
        FieldType::Bool => Value::Bool(bytes[0] != 0),
        _ => decode_variable(field_type, bytes),
    }
}

/// [`decode`] for the types that are not a fixed-width number.
#[inline(never)]
fn decode_variable(field_type: FieldType, bytes: &[u8]) -> Value<'_> {
    match field_type {
        FieldType::Int64 | FieldType::Float32 | FieldType::Float64 | FieldType::Bool => {
            unreachable!("`decode` reads numbers itself")
        }
        FieldType::Utf8 => {
            let prefix = get_varint(bytes).map_or(bytes.len(), |(_, prefix)| prefix);
            match std::str::from_utf8(&bytes[prefix..]) {
                Ok(text) => Value::Utf8(text),
                Err(_) => Value::Null,
            }
        }
        FieldType::Float32List(_) => Value::Float32List(Float32Values { bytes }),
        FieldType::RankedList(item_type) => {
            let prefix = get_varint(bytes).map_or(bytes.len(), |(_, prefix)| prefix);
            let payload = &bytes[prefix..];
            match get_varint(payload) {
                Some((len, count_prefix)) => Value::Ranked(RankedItems {
                    item_type,
                    len: usize::try_from(len).unwrap_or(0),
                    bytes: &payload[count_prefix..],
                }),
                None => Value::Null,
            }
        }
    }
}

/// The first `N` bytes as an array; `bytes` has exactly the field's width.
#[inline]
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// One decoded value of a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// An integer field.
    Int64(i64),
    /// A 32-bit float field.
    Float32(f32),
    /// A 64-bit float field.
    Float64(f64),
    /// A boolean field.
    Bool(bool),
    /// A text field, borrowed from the file.
    Utf8(&'a str),
    /// A list of 32-bit floats, borrowed from the file.
    Float32List(Float32Values<'a>),
    /// A ranked list of `(item, score)`, best first, borrowed from the file.
    Ranked(RankedItems<'a>),
    /// A null value (null in the Arrow column).
    Null,
}

impl Value<'_> {
    /// Appends the value as JSON: numbers in shortest round-trip form, `null` for
    /// null and for NaN or infinite floats, strings escaped.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Int64(value) => {
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes())
            }
            Value::Float32(value) => write_f32(out, value),
            Value::Float64(value) => {
                if value.is_finite() {
                    out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            Value::Bool(value) => out.extend_from_slice(if value { b"true" } else { b"false" }),
            Value::Utf8(text) => write_json_str(out, text),
            Value::Float32List(values) => {
                out.push(b'[');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_f32(out, value);
                }
                out.push(b']');
            }
            Value::Ranked(items) => write_ranked_json(out, items.iter()),
            Value::Null => out.extend_from_slice(b"null"),
        }
    }
}

/// Appends ranked-list entries as `[{"item":…,"score":…},…]`: the one JSON form of
/// a ranked list, for the lookup file and the Redis backend alike.
pub(crate) fn write_ranked_json<'a>(
    out: &mut Vec<u8>,
    entries: impl Iterator<Item = RankedEntry<'a>>,
) {
    out.push(b'[');
    for (i, entry) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(RANKED_ITEM.as_bytes());
        out.extend_from_slice(b"\":");
        match entry.item {
            RankedItem::Str(text) => write_json_str(out, text),
            RankedItem::Int(value) => {
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes())
            }
        }
        out.extend_from_slice(b",\"");
        out.extend_from_slice(RANKED_SCORE.as_bytes());
        out.extend_from_slice(b"\":");
        write_f32(out, entry.score);
        out.push(b'}');
    }
    out.push(b']');
}

/// Appends an `f32` in its shortest round-trip form (`0.12`, not `0.11999999731779099`).
#[inline]
fn write_f32(out: &mut Vec<u8>, value: f32) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends `text` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A stored list of 32-bit floats (a `FixedSizeList<Float32, n>` value).
#[derive(Clone, Copy, PartialEq)]
pub struct Float32Values<'a> {
    bytes: &'a [u8],
}

impl<'a> Float32Values<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < 4
    }

    /// Element `i` (NaN where the Arrow element was null), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<f32> {
        let bytes = self.bytes.get(4 * i..4 * i + 4)?;
        Some(f32::from_le_bytes(array(bytes)))
    }

    /// The elements in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = f32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes(array(bytes)))
    }

    /// The elements, copied.
    pub fn to_vec(&self) -> Vec<f32> {
        self.iter().collect()
    }
}

impl std::fmt::Debug for Float32Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A stored ranked list (a `List<Struct<item, score>>` value), best first.
#[derive(Clone, Copy, PartialEq)]
pub struct RankedItems<'a> {
    item_type: KeyType,
    len: usize,
    /// The entries, after the count.
    bytes: &'a [u8],
}

/// An item of a ranked list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RankedItem<'a> {
    /// A string item, borrowed from the file.
    Str(&'a str),
    /// An integer item.
    Int(i64),
}

/// One entry of a ranked list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedEntry<'a> {
    /// The item.
    pub item: RankedItem<'a>,
    /// Its score.
    pub score: f32,
}

impl<'a> RankedItems<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, best first. Stops early (yields fewer than [`len`](Self::len))
    /// only in a file that failed its checksum.
    pub fn iter(&self) -> impl Iterator<Item = RankedEntry<'a>> + 'a {
        let (item_type, mut rest) = (self.item_type, self.bytes);
        (0..self.len).map_while(move |_| {
            let (item, used) = match item_type {
                KeyType::Str => {
                    let (len, prefix) = get_varint(rest)?;
                    let end = prefix.checked_add(usize::try_from(len).ok()?)?;
                    let text = std::str::from_utf8(rest.get(prefix..end)?).ok()?;
                    (RankedItem::Str(text), end)
                }
                KeyType::Int => (
                    RankedItem::Int(i64::from_le_bytes(array(rest.get(..8)?))),
                    8,
                ),
            };
            let score = f32::from_le_bytes(array(rest.get(used..used + 4)?));
            rest = &rest[used + 4..];
            Some(RankedEntry { item, score })
        })
    }
}

impl std::fmt::Debug for RankedItems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_str(text: &str) -> String {
        let mut out = Vec::new();
        write_json_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        for text in [
            "plain",
            "quote \" and \\",
            "line\nbreak\ttab",
            "\u{1}\u{1f}",
            "naïve ☃",
            "",
        ] {
            assert_eq!(
                json_str(text),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn floats_print_shortest() {
        let mut out = Vec::new();
        Value::Float32(0.12).write_json(&mut out);
        out.push(b' ');
        Value::Float32(f32::NAN).write_json(&mut out);
        out.push(b' ');
        Value::Float64(f64::INFINITY).write_json(&mut out);
        out.push(b' ');
        Value::Float64(1e-7).write_json(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "0.12 null null 1e-7");
    }
}
