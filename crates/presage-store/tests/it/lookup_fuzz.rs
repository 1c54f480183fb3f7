//! Fuzzing the lookup-file reader: whatever the bytes, opening and reading return an
//! error or an answer, never a panic (which is also how an out-of-bounds read would
//! show: every read of the mapping is a checked slice).
//!
//! Three generators: arbitrary bytes; files with a consistent header (valid
//! checksums, sections where the header says) around arbitrary schema, record and
//! index bytes, which is what gets past `open`; and valid files with bytes flipped
//! and cut off, the header checksum sometimes fixed up so the damage reaches the
//! lookups. Every file that opens is read every way there is: `get`, `get_many`,
//! `iter`, every value of every record found, JSON, `verify`.
//!
//! A plain `cargo test` runs 256 cases of each. A longer run, bounded by a timeout:
//!
//! ```text
//! PROPTEST_CASES=100000 timeout 600 cargo test -p presage-store --test it fuzz
//! ```

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use presage_store::lookup::{
    FieldType, Key, KeyType, LookupFile, LookupWriter, ValueField, ranked_list_type,
};
use proptest::prelude::*;

const HEADER_LEN: usize = 128;

/// Reads a file every way the reader offers; returns normally unless something
/// panics. `keys` are looked up besides the keys the file itself holds.
fn read_everything(path: &Path, keys: &[Key<'_>]) {
    let Ok(file) = LookupFile::open(path) else {
        return;
    };
    let _ = file.verify();
    let _ = (
        file.len(),
        file.fields().len(),
        file.slot_width(),
        format!("{file:?}"),
    );
    let mut found: Vec<Key<'_>> = Vec::new();
    // A damaged file can claim any number of records; a few hundred is plenty.
    for item in file.iter().take(512) {
        let Ok((key, record)) = item else { break };
        read_record(record);
        found.push(key);
    }
    let asked: Vec<Key<'_>> = found.iter().chain(keys).copied().collect();
    for key in &asked {
        if let Some(record) = file.get(*key) {
            read_record(record);
        }
    }
    file.get_many(&asked, |_, record| {
        if let Some(record) = record {
            read_record(record);
        }
    });
}

fn read_record(record: presage_store::lookup::Record<'_>) {
    let _ = record.to_json();
    let _ = format!("{record:?}");
    for i in 0..record.len() {
        let _ = (record.is_null(i), format!("{:?}", record.value(i)));
    }
    for field in record.fields() {
        let _ = record.get(&field.name);
    }
    let _ = record.values().count();
}

fn write_and_read(bytes: &[u8], keys: &[Key<'_>]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.lookup");
    fs_err::write(&path, bytes).unwrap();
    read_everything(&path, keys);
}

fn checksum(bytes: &[u8]) -> u64 {
    twox_hash::XxHash3_64::oneshot(bytes)
}

/// Recomputes the header checksum (bytes 120..128 over 0..120).
fn fix_header_checksum(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let sum = checksum(&bytes[..120]);
        bytes[120..128].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Keys to look up in any file: short, long (a two-byte length prefix), integers.
fn probe_keys() -> Vec<Key<'static>> {
    static LONG: OnceLock<String> = OnceLock::new();
    let long = LONG.get_or_init(|| "k".repeat(200));
    vec![
        Key::Str(""),
        Key::Str("a"),
        Key::Str("user-1"),
        Key::Str("0123456789abcdef"),
        Key::Str(long),
        Key::Int(0),
        Key::Int(1),
        Key::Int(-1),
        Key::Int(i64::MAX),
    ]
}

/// A header and sections laid out as a valid file is, with arbitrary content.
#[derive(Debug, Clone)]
struct Parts {
    format: u32,
    key_type: u8,
    rows: u64,
    field_count: u32,
    slot_width: u32,
    seed: u64,
    schema: Vec<u8>,
    data: Vec<u8>,
    home_slots: u64,
    /// One word per table slot.
    words: Vec<u64>,
    /// Bytes after each word when slots are wider than a word, cycled.
    tails: Vec<u8>,
    /// A header word (index into the ten u64 words) replaced after layout, if any.
    tamper: Option<(usize, u64)>,
    data_checksum_right: bool,
}

impl Parts {
    fn encode(&self) -> Vec<u8> {
        let width = self.slot_width as usize;
        let inline = self.slot_width != 8;
        let align = if inline { 64 } else { 8 };
        let schema_offset = HEADER_LEN as u64;
        let data_offset = schema_offset + self.schema.len() as u64;
        let data_end = data_offset + self.data.len() as u64;
        let index_offset = data_end.div_ceil(align) * align;
        let mut out = vec![0u8; HEADER_LEN];
        out.extend_from_slice(&self.schema);
        out.extend_from_slice(&self.data);
        out.resize(index_offset as usize, 0);
        let mut tails = self.tails.iter().copied().cycle();
        // Past the 128 bytes of the widest valid slot, the layout check refuses the
        // file anyway: keep such files small.
        let stride = width.clamp(8, 136);
        for word in &self.words {
            out.extend_from_slice(&word.to_le_bytes());
            out.extend((8..stride).map(|_| tails.next().unwrap_or(0)));
        }
        let table_slots = self.words.len() as u64;
        let mut words = [
            self.seed,
            schema_offset,
            self.schema.len() as u64,
            data_offset,
            self.data.len() as u64,
            index_offset,
            self.home_slots,
            table_slots,
            out.len() as u64,
            0,
        ];
        if self.data_checksum_right {
            words[9] = checksum(&out[HEADER_LEN..]);
        }
        if let Some((i, value)) = self.tamper {
            words[i % words.len()] = value;
        }
        out[0..8].copy_from_slice(b"PRSGLKUP");
        out[8..12].copy_from_slice(&self.format.to_le_bytes());
        out[12] = self.key_type;
        out[16..24].copy_from_slice(&self.rows.to_le_bytes());
        out[24..28].copy_from_slice(&self.field_count.to_le_bytes());
        out[28..32].copy_from_slice(&self.slot_width.to_le_bytes());
        for (i, word) in words.iter().enumerate() {
            out[32 + 8 * i..40 + 8 * i].copy_from_slice(&word.to_le_bytes());
        }
        fix_header_checksum(&mut out);
        out
    }
}

/// A schema section: well-formed fields of any type (bad tags and list lengths
/// included), or arbitrary bytes. Returns the bytes and a field count.
fn schema() -> impl Strategy<Value = (Vec<u8>, u32)> {
    let field = (
        prop_oneof![8 => 1u8..=7, 1 => any::<u8>()],
        prop_oneof![0u32..=4, Just(1u32), Just(2u32), any::<u32>()],
        "[a-z\"\\\\]{0,6}",
    );
    prop_oneof![
        3 => proptest::collection::vec(field, 0..5).prop_map(|fields| {
            let mut out = Vec::new();
            for (tag, param, name) in &fields {
                out.push(*tag);
                out.extend_from_slice(&param.to_le_bytes());
                out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                out.extend_from_slice(name.as_bytes());
            }
            (out, fields.len() as u32)
        }),
        1 => (proptest::collection::vec(any::<u8>(), 0..48), 0u32..6),
    ]
}

/// An index word: arbitrary, or one whose place lands in (or near) a small file.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => any::<u64>(),
        1 => Just(0u64),
        4 => (0u64..1200, any::<u8>(), any::<u16>())
            .prop_map(|(place, disp, tag)| (place << 24) | (u64::from(disp) << 16) | u64::from(tag)),
    ]
}

fn parts() -> impl Strategy<Value = Parts> {
    let sections = (
        schema(),
        prop_oneof![
            1 => Just(Vec::new()),
            3 => proptest::collection::vec(any::<u8>(), 0..600),
        ],
        proptest::collection::vec(word(), 1..48),
        proptest::collection::vec(any::<u8>(), 1..256),
    );
    let header = (
        prop_oneof![8 => Just(2u32), 2 => Just(1u32), 1 => any::<u32>()],
        prop_oneof![8 => 1u8..=2, 1 => any::<u8>()],
        prop_oneof![4 => Just(8u32), 4 => (2u32..=16).prop_map(|w| w * 8), 1 => 0u32..200],
        prop_oneof![Just(presage_seed()), any::<u64>()],
        any::<u64>(),
        any::<u64>(),
        prop_oneof![8 => Just(None), 1 => (0usize..10, any::<u64>()).prop_map(Some)],
        any::<bool>(),
        // Slots that hold records go with an empty data section, mostly.
        prop_oneof![8 => Just(true), 1 => Just(false)],
    );
    (sections, header).prop_map(
        |(
            ((schema, field_count), data, words, tails),
            (
                format,
                key_type,
                slot_width,
                seed,
                home_pick,
                rows_pick,
                tamper,
                data_checksum_right,
                fit_data,
            ),
        )| {
            let data = if fit_data && slot_width != 8 {
                Vec::new()
            } else {
                data
            };
            let table = words.len() as u64;
            let home_slots = 1 + home_pick % table;
            Parts {
                format,
                key_type,
                // Now and then one more row than home slots, which is refused.
                rows: rows_pick % (home_slots + 1) + u64::from(rows_pick % 16 == 0),
                field_count,
                slot_width,
                seed,
                schema,
                data,
                home_slots,
                words,
                tails,
                tamper,
                data_checksum_right,
            }
        },
    )
}

/// The seed new files are written with: keys of the probe list then hash as in them.
fn presage_seed() -> u64 {
    0x7072_6573_6167_6531
}

/// Valid files to damage: string keys with records in the slots, string keys with
/// records in a data section (one long key), integer keys, and ranked lists.
fn valid_files() -> &'static [Vec<u8>] {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let str_keys: Vec<String> = (0..150).map(|i| format!("user-{i}")).collect();
        let mut long_keys = str_keys.clone();
        long_keys.push("k".repeat(200));
        let fields = || {
            vec![
                ValueField::new("probability", FieldType::Float32),
                ValueField::new("label", FieldType::Int64),
                ValueField::new("segment", FieldType::Utf8),
                ValueField::new("embedding", FieldType::Float32List(2)),
            ]
        };
        let columns = |n: usize| -> Vec<ArrayRef> {
            use arrow::array::FixedSizeListArray;
            vec![
                Arc::new(Float32Array::from_iter_values(
                    (0..n).map(|i| i as f32 / 7.0),
                )),
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i as i64 - 50))),
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 5 != 0).then(|| "ab\"c".repeat(i % 4))),
                )),
                Arc::new(FixedSizeListArray::new(
                    Arc::new(Field::new_list_field(DataType::Float32, true)),
                    2,
                    Arc::new(Float32Array::from_iter_values((0..2 * n).map(|i| i as f32))),
                    None,
                )),
            ]
        };
        for (name, keys) in [("inline", &str_keys), ("word", &long_keys)] {
            let path = dir.path().join(format!("{name}.lookup"));
            let mut writer = LookupWriter::create(&path, KeyType::Str, fields()).unwrap();
            writer
                .append_batch(&StringArray::from_iter_values(keys), &columns(keys.len()))
                .unwrap();
            writer.finish().unwrap();
            files.push(fs_err::read(&path).unwrap());
        }
        let path = dir.path().join("int.lookup");
        let mut writer = LookupWriter::create(&path, KeyType::Int, fields()).unwrap();
        writer
            .append_batch(&Int64Array::from_iter_values(-75..75), &columns(150))
            .unwrap();
        writer.finish().unwrap();
        files.push(fs_err::read(&path).unwrap());
        // Ranked lists of string items, three entries per key.
        let path = dir.path().join("ranked.lookup");
        let list_type = ranked_list_type(KeyType::Str);
        let fields =
            vec![ValueField::from_arrow(&Field::new("items", list_type.clone(), false)).unwrap()];
        let mut writer = LookupWriter::create(&path, KeyType::Str, fields).unwrap();
        let DataType::List(entry) = list_type else {
            unreachable!()
        };
        let DataType::Struct(struct_fields) = entry.data_type().clone() else {
            unreachable!()
        };
        let items: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..300).map(|i| format!("item-{i}")),
        ));
        let scores: ArrayRef = Arc::new(Float32Array::from_iter_values((0..300).map(|i| i as f32)));
        let lists: ArrayRef = Arc::new(arrow::array::ListArray::new(
            entry,
            arrow::buffer::OffsetBuffer::from_lengths([3; 100]),
            Arc::new(arrow::array::StructArray::new(
                struct_fields,
                vec![items, scores],
                None,
            )),
            None,
        ));
        writer
            .append_batch(&StringArray::from_iter_values(&str_keys[..100]), &[lists])
            .unwrap();
        writer.finish().unwrap();
        files.push(fs_err::read(&path).unwrap());
        files
    })
}

/// The keys the valid files hold, to look up in their damaged copies.
fn valid_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<String> = (0..150).map(|i| format!("user-{i}")).collect();
        keys.push("k".repeat(200));
        keys
    })
}

/// How a valid file is damaged.
#[derive(Debug, Clone)]
struct Damage {
    file: usize,
    /// (position, as a fraction of the file or of the header; xor mask).
    flips: Vec<(bool, f64, u8)>,
    /// Keep this fraction of the file.
    truncate: Option<f64>,
    fix_header: bool,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        0usize..4,
        proptest::collection::vec((any::<bool>(), 0.0f64..1.0, 1u8..=255), 0..8),
        prop_oneof![4 => Just(None), 1 => (0.0f64..1.0).prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(|(file, flips, truncate, fix_header)| Damage {
            file,
            flips,
            truncate,
            fix_header,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    /// Arbitrary bytes are refused or read; nothing panics.
    #[test]
    fn fuzz_arbitrary_bytes(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            // With the magic and a fixed-up header checksum, so more than the first
            // check is reached.
            proptest::collection::vec(any::<u8>(), 128..2048).prop_map(|mut bytes| {
                bytes[..8].copy_from_slice(b"PRSGLKUP");
                fix_header_checksum(&mut bytes);
                bytes
            }),
        ],
    ) {
        write_and_read(&bytes, &probe_keys());
    }

    /// Files laid out as valid files are, with arbitrary schema, records and index
    /// slots, are refused or read; nothing panics.
    #[test]
    fn fuzz_consistent_header_arbitrary_sections(parts in parts()) {
        write_and_read(&parts.encode(), &probe_keys());
    }

    /// Valid files with bytes flipped or cut off are refused or read; nothing panics.
    #[test]
    fn fuzz_damaged_valid_files(damage in damage()) {
        let mut bytes = valid_files()[damage.file].clone();
        for &(in_header, at, mask) in &damage.flips {
            let span = if in_header { HEADER_LEN } else { bytes.len() };
            let at = ((at * span as f64) as usize).min(bytes.len() - 1);
            bytes[at] ^= mask;
        }
        if let Some(keep) = damage.truncate {
            bytes.truncate((keep * bytes.len() as f64) as usize);
        }
        if damage.fix_header {
            fix_header_checksum(&mut bytes);
        }
        let mut keys: Vec<Key<'_>> = valid_keys().iter().map(|key| Key::Str(key)).collect();
        keys.extend((-80..80).map(Key::Int));
        keys.extend(probe_keys());
        write_and_read(&bytes, &keys);
    }
}
