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
    #[inline(always)]
    pub(crate) fn hash(&self, seed: u64) -> u64 {
        match self {
            Key::Str(text) => key_hash(seed, text.as_bytes()),
            Key::Int(value) => key_hash(seed, &value.to_le_bytes()),
        }
    }
}

/// xxh3 of a key's bytes as they are stored (string bytes or little-endian `i64`).
///
/// Keys of 4 to 16 bytes (integers, most IDs) are hashed here, inline, by the
/// spec's short-input paths; the rest go to `twox_hash`. Both give the same
/// hash (tested); inlining matters because a lookup waits on a cache miss (two
/// when slots point into a data section), and the fewer instructions there are
/// between one lookup's last miss and the next lookup's first, the more of them
/// the CPU overlaps (docs/benchmarks-history.md).
#[inline(always)]
pub(crate) fn key_hash(seed: u64, bytes: &[u8]) -> u64 {
    match bytes.len() {
        4..=8 => xxh3_4_to_8(seed, bytes),
        9..=16 => xxh3_9_to_16(seed, bytes),
        _ => twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes),
    }
}

/// Bytes 8..56 of xxh3's default secret, as the little-endian words the short
/// paths read (the XXH3 specification's `kSecret`).
const SECRET_WORDS: [u64; 6] = [
    0x1cad_21f7_2c81_017c,
    0xdb97_9083_e96d_d4de,
    0x1f67_b3b7_a4a4_4072,
    0x78e5_c0cc_4ee6_79cb,
    0x2172_ffcc_7dd0_5a82,
    0x8e24_43f7_7446_08b8,
];
const PRIME_MX2: u64 = 0x9fb2_1c65_1e98_df25;
const PRIME_MX1: u64 = 0x1656_6791_9e37_79f9;

/// The first and last `N` bytes of `bytes` (which has at least `N`), little-endian.
#[inline(always)]
fn ends<const N: usize>(bytes: &[u8]) -> ([u8; N], [u8; N]) {
    let mut first = [0u8; N];
    let mut last = [0u8; N];
    first.copy_from_slice(&bytes[..N]);
    last.copy_from_slice(&bytes[bytes.len() - N..]);
    (first, last)
}

/// xxh3-64 of 4 to 8 bytes.
#[inline(always)]
fn xxh3_4_to_8(seed: u64, bytes: &[u8]) -> u64 {
    let (first, last) = ends::<4>(bytes);
    let seed = seed ^ (u64::from((seed as u32).swap_bytes()) << 32);
    let bitflip = (SECRET_WORDS[0] ^ SECRET_WORDS[1]).wrapping_sub(seed);
    let input = u64::from(u32::from_le_bytes(last)) | (u64::from(u32::from_le_bytes(first)) << 32);
    let mut h = input ^ bitflip;
    h ^= h.rotate_left(49) ^ h.rotate_left(24);
    h = h.wrapping_mul(PRIME_MX2);
    h ^= (h >> 35).wrapping_add(bytes.len() as u64);
    h = h.wrapping_mul(PRIME_MX2);
    h ^ (h >> 28)
}

/// xxh3-64 of 9 to 16 bytes.
#[inline(always)]
fn xxh3_9_to_16(seed: u64, bytes: &[u8]) -> u64 {
    let (first, last) = ends::<8>(bytes);
    let low = u64::from_le_bytes(first) ^ (SECRET_WORDS[2] ^ SECRET_WORDS[3]).wrapping_add(seed);
    let high = u64::from_le_bytes(last) ^ (SECRET_WORDS[4] ^ SECRET_WORDS[5]).wrapping_sub(seed);
    let product = u128::from(low) * u128::from(high);
    let folded = (product as u64) ^ ((product >> 64) as u64);
    let mut h = (bytes.len() as u64)
        .wrapping_add(low.swap_bytes())
        .wrapping_add(high)
        .wrapping_add(folded);
    h ^= h >> 37;
    h = h.wrapping_mul(PRIME_MX1);
    h ^ (h >> 32)
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(text) => f.write_str(text),
            Key::Int(value) => write!(f, "{value}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_hash_as_xxh3() {
        let mut bytes = [0u8; 24];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2_000u64 {
            for byte in &mut bytes {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let seed = if round % 3 == 0 {
                0
            } else {
                state.rotate_left(17)
            };
            for len in 0..=bytes.len() {
                let input = &bytes[..len];
                assert_eq!(
                    key_hash(seed, input),
                    twox_hash::XxHash3_64::oneshot_with_seed(seed, input),
                    "length {len}, seed {seed:#x}"
                );
            }
        }
    }
}
