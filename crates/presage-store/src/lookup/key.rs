use std::fmt;

use arrow::datatypes::DataType;

/// What the keys of a lookup file are: the key column's type, normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// UTF-8 strings (Arrow `Utf8`, `LargeUtf8`, `Utf8View`).
    Str,
    /// Signed 64-bit integers (any Arrow integer type).
    Int,
}

impl KeyType {
    /// The key type for an Arrow key column, or `None` if the type cannot be a key.
    pub fn from_arrow(data_type: &DataType) -> Option<KeyType> {
        match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(KeyType::Str),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Some(KeyType::Int),
            _ => None,
        }
    }

    /// The byte stored in the header.
    pub(crate) fn tag(self) -> u8 {
        match self {
            KeyType::Str => 1,
            KeyType::Int => 2,
        }
    }

    /// The key type for a header byte.
    pub(crate) fn from_tag(tag: u8) -> Option<KeyType> {
        match tag {
            1 => Some(KeyType::Str),
            2 => Some(KeyType::Int),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Str => "string",
            KeyType::Int => "integer",
        })
    }
}

/// A key to look up, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key<'a> {
    /// A string key.
    Str(&'a str),
    /// An integer key.
    Int(i64),
}

impl<'a> Key<'a> {
    /// Reads a key that arrived as text (an HTTP path, a Redis `GET`) for a file whose
    /// keys are `key_type`.
    ///
    /// For an integer file, text that is not a decimal `i64` cannot be in the file, so
    /// the answer is `None` (a miss), not an error.
    pub fn parse(key_type: KeyType, text: &'a str) -> Option<Key<'a>> {
        match key_type {
            KeyType::Str => Some(Key::Str(text)),
            KeyType::Int => text.parse().ok().map(Key::Int),
        }
    }

    /// The type of this key.
    pub fn key_type(&self) -> KeyType {
        match self {
            Key::Str(_) => KeyType::Str,
            Key::Int(_) => KeyType::Int,
        }
    }

    /// The 64-bit hash that places this key in the index.
    ///
    /// xxh3 is a specified algorithm, so the hash of a key never changes between
    /// builds: the file format depends on it.
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        match self {
            Key::Str(text) => key_hash(seed, text.as_bytes()),
            Key::Int(value) => key_hash(seed, &value.to_le_bytes()),
        }
    }
}

/// xxh3 of a key's bytes as they are stored (string bytes or little-endian `i64`).
#[inline]
pub(crate) fn key_hash(seed: u64, bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes)
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(text) => f.write_str(text),
            Key::Int(value) => write!(f, "{value}"),
        }
    }
}
