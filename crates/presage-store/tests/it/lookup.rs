//! The lookup file: round trips, misses, nulls, bad input and damaged files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array, Int64Array,
    LargeStringArray, StringArray, StringViewArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field};
use presage_store::lookup::{
    FieldType, Key, KeyType, LookupError, LookupFile, LookupWriter, RankedItem, Value, ValueField,
    ranked_list_type,
};
use proptest::prelude::*;

fn f32_list(rows: &[Option<[Option<f32>; 3]>]) -> ArrayRef {
    let values: Vec<Option<f32>> = rows
        .iter()
        .flat_map(|row| row.unwrap_or([Some(0.0); 3]))
        .collect();
    let nulls = rows.iter().map(Option::is_some).collect::<Vec<_>>();
    Arc::new(FixedSizeListArray::new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        3,
        Arc::new(Float32Array::from(values)),
        Some(nulls.into()),
    ))
}

/// Every field type, with a null in each column (row 2 of the second batch).
fn all_fields() -> Vec<ValueField> {
    vec![
        ValueField::new("probability", FieldType::Float32),
        ValueField::new("label", FieldType::Int64),
        ValueField::new("score", FieldType::Float64),
        ValueField::new("flag", FieldType::Bool),
        ValueField::new("segment", FieldType::Utf8),
        ValueField::new("embedding", FieldType::Float32List(3)),
        ValueField::new("small", FieldType::Int64),
    ]
}

fn batch_one() -> Vec<ArrayRef> {
    vec![
        Arc::new(Float32Array::from(vec![0.12, 0.5])),
        Arc::new(Int64Array::from(vec![1, -7])),
        Arc::new(Float64Array::from(vec![0.1, 1e300])),
        Arc::new(BooleanArray::from(vec![true, false])),
        Arc::new(StringArray::from(vec!["gold", "say \"hi\"\n"])),
        f32_list(&[
            Some([Some(1.0), Some(0.25), Some(-3.5)]),
            Some([Some(0.1), None, Some(2.0)]),
        ]),
        Arc::new(Int32Array::from(vec![3, i32::MIN])),
    ]
}

fn batch_two() -> Vec<ArrayRef> {
    vec![
        Arc::new(Float32Array::from(vec![Some(f32::NAN), None])),
        Arc::new(Int64Array::from(vec![Some(i64::MAX), None])),
        Arc::new(Float64Array::from(vec![Some(f64::NEG_INFINITY), None])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(LargeStringArray::from(vec![Some("naïve ☃"), None])),
        f32_list(&[Some([Some(f32::INFINITY), Some(0.0), Some(1e-7)]), None]),
        Arc::new(Int32Array::from(vec![Some(0), None])),
    ]
}

const JSON_ROWS: [&str; 4] = [
    r#"{"probability":0.12,"label":1,"score":0.1,"flag":true,"segment":"gold","embedding":[1.0,0.25,-3.5],"small":3}"#,
    r#"{"probability":0.5,"label":-7,"score":1e300,"flag":false,"segment":"say \"hi\"\n","embedding":[0.1,null,2.0],"small":-2147483648}"#,
    r#"{"probability":null,"label":9223372036854775807,"score":null,"flag":true,"segment":"naïve ☃","embedding":[null,0.0,1e-7],"small":0}"#,
    r#"{"probability":null,"label":null,"score":null,"flag":null,"segment":null,"embedding":null,"small":null}"#,
];

fn json(file: &LookupFile, key: Key<'_>) -> Option<String> {
    file.get(key).map(|record| record.to_json())
}

fn write_all_types(path: &Path, key_type: KeyType, keys: [ArrayRef; 2]) {
    let mut writer = LookupWriter::create(path, key_type, all_fields()).unwrap();
    writer.append_batch(keys[0].as_ref(), &batch_one()).unwrap();
    writer.append_batch(keys[1].as_ref(), &batch_two()).unwrap();
    let summary = writer.finish().unwrap();
    assert_eq!(summary.rows, 4);
    assert_eq!(summary.bytes, fs_err::metadata(path).unwrap().len());
}

#[test]
fn string_keys_round_trip_every_field_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    write_all_types(
        &path,
        KeyType::Str,
        [
            Arc::new(StringArray::from(vec!["alice", "bob"])),
            Arc::new(StringViewArray::from(vec![
                "carol",
                "a rather longer key than twelve bytes",
            ])),
        ],
    );
    let file = LookupFile::open(&path).unwrap();
    file.verify().unwrap();
    assert_eq!(file.len(), 4);
    assert_eq!(file.key_type(), KeyType::Str);
    assert_eq!(file.fields(), all_fields().as_slice());
    let keys = [
        "alice",
        "bob",
        "carol",
        "a rather longer key than twelve bytes",
    ];
    for (key, expected) in keys.iter().zip(JSON_ROWS) {
        assert_eq!(
            json(&file, Key::Str(key)).as_deref(),
            Some(expected),
            "{key}"
        );
        // The JSON is valid and holds what was stored.
        let parsed: serde_json::Value = serde_json::from_str(expected).unwrap();
        assert!(parsed.is_object());
        // `value(i)` reads fields at known offsets directly and walks the rest; both
        // agree with the values in order (compared as text: NaN is not equal to NaN).
        let record = file.get(Key::Str(key)).unwrap();
        let walked: Vec<String> = record.values().map(|v| format!("{v:?}")).collect();
        let direct: Vec<String> = (0..record.len())
            .map(|i| format!("{:?}", record.value(i)))
            .collect();
        assert_eq!(direct, walked, "{key}");
    }

    let record = file.get(Key::Str("alice")).unwrap();
    assert_eq!(record.value(0), Value::Float32(0.12));
    assert_eq!(record.value(1), Value::Int64(1));
    assert_eq!(record.value(2), Value::Float64(0.1));
    assert_eq!(record.value(3), Value::Bool(true));
    assert_eq!(record.value(4), Value::Utf8("gold"));
    let Value::Float32List(list) = record.value(5) else {
        panic!("not a list: {:?}", record.value(5));
    };
    assert_eq!(list.to_vec(), vec![1.0, 0.25, -3.5]);
    assert_eq!(record.get("small"), Some(Value::Int64(3)));
    assert_eq!(record.get("nope"), None);

    let nulls = file
        .get(Key::Str("a rather longer key than twelve bytes"))
        .unwrap();
    assert!((0..nulls.len()).all(|i| nulls.is_null(i) && nulls.value(i) == Value::Null));
    // NaN is a value, not a null, though JSON prints it as null.
    let carol = file.get(Key::Str("carol")).unwrap();
    assert!(!carol.is_null(0));
    assert!(matches!(carol.value(0), Value::Float32(v) if v.is_nan()));
}

#[test]
fn integer_keys_round_trip_from_any_integer_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    write_all_types(
        &path,
        KeyType::Int,
        [
            Arc::new(Int32Array::from(vec![-1, 42])),
            Arc::new(UInt64Array::from(vec![0, i64::MAX as u64])),
        ],
    );
    let file = LookupFile::open(&path).unwrap();
    file.verify().unwrap();
    assert_eq!(file.key_type(), KeyType::Int);
    for (key, expected) in [-1, 42, 0, i64::MAX].into_iter().zip(JSON_ROWS) {
        assert_eq!(
            json(&file, Key::Int(key)).as_deref(),
            Some(expected),
            "{key}"
        );
    }
    let parsed = Key::parse(KeyType::Int, "42").unwrap();
    assert_eq!(json(&file, parsed).as_deref(), Some(JSON_ROWS[1]));
    assert_eq!(Key::parse(KeyType::Int, "-1"), Some(Key::Int(-1)));
}

/// Ranked lists of `(item, score)` with items of `item_type`, one list per row.
fn ranked_lists(
    item_type: KeyType,
    rows: &[Vec<(i64, f32)>],
    nulls: Option<Vec<bool>>,
) -> ArrayRef {
    use arrow::array::{ListArray, StructArray};
    let DataType::List(entry) = ranked_list_type(item_type) else {
        unreachable!()
    };
    let DataType::Struct(fields) = entry.data_type().clone() else {
        unreachable!()
    };
    let flat: Vec<(i64, f32)> = rows.iter().flatten().copied().collect();
    let items: ArrayRef = match item_type {
        KeyType::Str => Arc::new(StringArray::from_iter_values(
            flat.iter().map(|(i, _)| format!("item-{i}")),
        )),
        KeyType::Int => Arc::new(Int64Array::from_iter_values(flat.iter().map(|(i, _)| *i))),
    };
    let scores = Arc::new(Float32Array::from_iter_values(flat.iter().map(|(_, s)| *s)));
    let entries = StructArray::new(fields, vec![items, scores], None);
    Arc::new(ListArray::new(
        entry,
        arrow::buffer::OffsetBuffer::from_lengths(rows.iter().map(Vec::len)),
        Arc::new(entries),
        nulls.map(Into::into),
    ))
}

#[test]
fn ranked_lists_round_trip_as_item_score_objects() {
    let dir = tempfile::tempdir().unwrap();
    for item_type in [KeyType::Str, KeyType::Int] {
        let path = dir.path().join(format!("{item_type}.lookup"));
        let list_type = ranked_list_type(item_type);
        let fields = vec![
            ValueField::from_arrow(&Field::new("items", list_type, false)).unwrap(),
            ValueField::new("model", FieldType::Utf8),
        ];
        assert_eq!(fields[0].field_type, FieldType::RankedList(item_type));
        let mut writer = LookupWriter::create(&path, KeyType::Str, fields.clone()).unwrap();
        let lists = ranked_lists(
            item_type,
            &[vec![(7, 0.9), (3, 0.25)], vec![], vec![(1, f32::NAN)]],
            Some(vec![true, true, false]),
        );
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["u1", "u2", "u3"]));
        let models: ArrayRef = Arc::new(StringArray::from(vec!["m", "m", "m"]));
        writer
            .append_batch(keys.as_ref(), &[lists, models])
            .unwrap();
        writer.finish().unwrap();

        let file = LookupFile::open(&path).unwrap();
        file.verify().unwrap();
        assert_eq!(file.fields(), fields.as_slice());
        let item = |i: i64| match item_type {
            KeyType::Str => format!("\"item-{i}\""),
            KeyType::Int => i.to_string(),
        };
        assert_eq!(
            json(&file, Key::Str("u1")).unwrap(),
            format!(
                r#"{{"items":[{{"item":{},"score":0.9}},{{"item":{},"score":0.25}}],"model":"m"}}"#,
                item(7),
                item(3)
            )
        );
        assert_eq!(
            json(&file, Key::Str("u2")).unwrap(),
            r#"{"items":[],"model":"m"}"#
        );
        assert_eq!(
            json(&file, Key::Str("u3")).unwrap(),
            r#"{"items":null,"model":"m"}"#
        );
        let record = file.get(Key::Str("u1")).unwrap();
        let Value::Ranked(list) = record.value(0) else {
            panic!("not a ranked list: {:?}", record.value(0));
        };
        assert_eq!(list.len(), 2);
        let first = list.iter().next().unwrap();
        assert_eq!(first.score, 0.9);
        match item_type {
            KeyType::Str => assert_eq!(first.item, RankedItem::Str("item-7")),
            KeyType::Int => assert_eq!(first.item, RankedItem::Int(7)),
        }
        assert_eq!(record.value(1), Value::Utf8("m"));
    }
    // Unsigned 64-bit items may not fit the stored i64: not a ranked list.
    let u64_list = DataType::List(Arc::new(Field::new(
        "entry",
        DataType::Struct(
            vec![
                Field::new("item", DataType::UInt64, false),
                Field::new("score", DataType::Float32, false),
            ]
            .into(),
        ),
        false,
    )));
    assert_eq!(FieldType::from_arrow(&u64_list), None);
}

#[test]
fn misses_answer_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    write_f32(&path, &keys);
    let file = LookupFile::open(&path).unwrap();
    for i in 1000..3000 {
        assert!(file.get(Key::Str(&format!("user-{i}"))).is_none());
    }
    assert!(file.get(Key::Str("")).is_none());
    assert!(file.get(Key::Str("user-1 ")).is_none());
    // Keys of the other type are simply absent.
    assert!(file.get(Key::Int(1)).is_none());
    // Text that is not an integer is no key of an integer file.
    assert_eq!(Key::parse(KeyType::Int, "12a"), None);
    assert_eq!(Key::parse(KeyType::Int, ""), None);
    assert_eq!(Key::parse(KeyType::Str, "12a"), Some(Key::Str("12a")));
}

/// Writes string keys with a float `probability` of `i / 1000`.
fn write_f32(path: &Path, keys: &[String]) -> LookupFile {
    let mut writer = LookupWriter::create(
        path,
        KeyType::Str,
        vec![ValueField::new("probability", FieldType::Float32)],
    )
    .unwrap();
    for (chunk_index, chunk) in keys.chunks(300).enumerate() {
        let probabilities: Float32Array = (0..chunk.len())
            .map(|i| ((chunk_index * 300 + i) as f32) / 1000.0)
            .collect();
        writer
            .append_batch(
                &StringArray::from_iter_values(chunk),
                &[Arc::new(probabilities)],
            )
            .unwrap();
    }
    writer.finish().unwrap();
    LookupFile::open(path).unwrap()
}

/// A key long enough that no slot can hold its record: a file with it gets 8-byte
/// slots pointing into a data section.
fn long_key() -> String {
    "long-".repeat(30)
}

#[test]
fn slots_hold_short_records_and_point_to_long_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let short = write_f32(&dir.path().join("short.lookup"), &keys);
    // key (1 + 4 bytes at most) · bitmap 1 · f32 4, after an 8-byte word
    assert_eq!(short.slot_width(), 24);
    let mut with_long = keys.clone();
    with_long.push(long_key());
    let long = write_f32(&dir.path().join("long.lookup"), &with_long);
    assert_eq!(long.slot_width(), 8);
    for file in [&short, &long] {
        file.verify().unwrap();
        let record = file.get(Key::Str("k999")).unwrap();
        assert_eq!(record.value(0), Value::Float32(0.999));
        assert!(file.get(Key::Str("k1000")).is_none());
    }
    let record = long.get(Key::Str(&long_key())).unwrap();
    assert_eq!(record.value(0), Value::Float32(1.0));
}

/// A stored string key starts with its length as a varint: one byte under 128
/// bytes, two from 128 on. Lookups read the two kinds by different paths.
#[test]
fn keys_either_side_of_a_two_byte_length_prefix_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let lengths = [1, 8, 16, 17, 126, 127, 128, 129, 300];
    let keys: Vec<String> = lengths.iter().map(|&n| "k".repeat(n)).collect();
    let file = write_f32(&dir.path().join("p.lookup"), &keys);
    for (i, key) in keys.iter().enumerate() {
        let record = file.get(Key::Str(key));
        let value = record.map(|record| record.value(0));
        assert_eq!(
            value,
            Some(Value::Float32(i as f32 / 1000.0)),
            "{}-byte key",
            key.len()
        );
    }
    for n in [0, 2, 125, 130, 256, 299, 301] {
        assert!(file.get(Key::Str(&"k".repeat(n))).is_none(), "{n}-byte key");
    }
}

#[test]
fn iteration_yields_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let mut with_long = keys.clone();
    with_long.push(long_key());
    for (name, keys) in [("short.lookup", &keys), ("long.lookup", &with_long)] {
        let file = write_f32(&dir.path().join(name), keys);
        let mut seen: Vec<(String, Value<'_>)> = file
            .iter()
            .map(|item| {
                let (key, record) = item.unwrap();
                (key.to_string(), record.value(0))
            })
            .collect();
        assert_eq!(seen.len(), keys.len(), "{name}");
        let position: HashMap<&str, usize> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| (key.as_str(), i))
            .collect();
        seen.sort_by_key(|(key, _)| position[key.as_str()]);
        for (i, (key, value)) in seen.iter().enumerate() {
            assert_eq!(key, &keys[i], "{name}");
            assert_eq!(*value, Value::Float32(i as f32 / 1000.0), "{name}");
        }
    }
}

#[test]
fn an_empty_file_opens_verifies_and_misses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let writer = LookupWriter::create(&path, KeyType::Int, all_fields()).unwrap();
    let summary = writer.finish().unwrap();
    assert_eq!(summary.rows, 0);
    let file = LookupFile::open(&path).unwrap();
    file.verify().unwrap();
    assert!(file.is_empty());
    assert_eq!(file.fields().len(), 7);
    assert!(file.get(Key::Int(0)).is_none());
    assert_eq!(file.iter().count(), 0);

    // A batch of zero rows is fine too, and so is a file with no value fields.
    let path = dir.path().join("keys-only.lookup");
    let mut writer = LookupWriter::create(&path, KeyType::Str, Vec::new()).unwrap();
    writer
        .append_batch(&StringArray::from(Vec::<&str>::new()), &[])
        .unwrap();
    writer
        .append_batch(&StringArray::from(vec!["a"]), &[])
        .unwrap();
    writer.finish().unwrap();
    let file = LookupFile::open(&path).unwrap();
    assert_eq!(json(&file, Key::Str("a")).as_deref(), Some("{}"));
}

#[test]
fn a_null_key_is_refused_naming_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let mut writer = LookupWriter::create(&path, KeyType::Int, Vec::new()).unwrap();
    writer
        .append_batch(&Int64Array::from(vec![1, 2, 3]), &[])
        .unwrap();
    let err = writer
        .append_batch(&Int64Array::from(vec![Some(4), None]), &[])
        .unwrap_err();
    assert!(
        matches!(err, LookupError::NullKey { row: 4, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("row `4`"), "{err}");
    // The refused batch left nothing behind.
    writer
        .append_batch(&Int64Array::from(vec![4]), &[])
        .unwrap();
    assert_eq!(writer.finish().unwrap().rows, 4);
}

#[test]
fn a_duplicate_key_is_refused_at_finish_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // Records in slots, and (with one long key) in a data section.
    for (memory_limit, long) in [(usize::MAX, false), (1024, false), (1024, true)] {
        let path = dir.path().join("p.lookup");
        let mut writer = LookupWriter::create(&path, KeyType::Str, Vec::new()).unwrap();
        writer.set_memory_limit(memory_limit);
        let mut keys: Vec<String> = (0..5000).map(|i| format!("key-{i}")).collect();
        if long {
            keys.push(long_key());
        }
        writer
            .append_batch(&StringArray::from_iter_values(&keys), &[])
            .unwrap();
        writer
            .append_batch(&StringArray::from(vec!["key-4321"]), &[])
            .unwrap();
        let err = writer.finish().unwrap_err();
        assert!(
            matches!(&err, LookupError::DuplicateKey { key, .. } if key == "key-4321"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`key-4321`"), "{err}");
        // The half-built file is refused, and the spill file is gone.
        assert!(matches!(
            LookupFile::open(&path),
            Err(LookupError::Corrupt { .. })
        ));
        assert!(!dir.path().join("p.lookup.spill").exists());
        assert!(!dir.path().join("p.lookup.index").exists());
    }

    let path = dir.path().join("int.lookup");
    let mut writer = LookupWriter::create(&path, KeyType::Int, Vec::new()).unwrap();
    writer
        .append_batch(&Int64Array::from(vec![7, -3, 7]), &[])
        .unwrap();
    let err = writer.finish().unwrap_err();
    assert!(
        matches!(&err, LookupError::DuplicateKey { key, .. } if key == "7"),
        "{err:?}"
    );
}

#[test]
fn badly_shaped_batches_are_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let fields = vec![ValueField::new("probability", FieldType::Float32)];
    let mut writer = LookupWriter::create(&path, KeyType::Int, fields.clone()).unwrap();
    let keys = Int64Array::from(vec![1, 2]);
    let f64s: ArrayRef = Arc::new(Float64Array::from(vec![0.1, 0.2]));
    let short: ArrayRef = Arc::new(Float32Array::from(vec![0.1]));

    let err = writer.append_batch(&keys, &[f64s]).unwrap_err();
    assert!(
        matches!(&err, LookupError::ColumnType { field, .. } if field == "probability"),
        "{err:?}"
    );
    let err = writer.append_batch(&keys, &[short]).unwrap_err();
    assert!(
        matches!(
            &err,
            LookupError::ColumnLength {
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let err = writer.append_batch(&keys, &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            LookupError::ColumnCount {
                expected: 1,
                found: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let ok: ArrayRef = Arc::new(Float32Array::from(vec![0.1, 0.2]));
    let err = writer
        .append_batch(
            &StringArray::from(vec!["a", "b"]),
            std::slice::from_ref(&ok),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LookupError::KeyType {
                expected: KeyType::Int,
                ..
            }
        ),
        "{err:?}"
    );
    let err = writer
        .append_batch(
            &UInt64Array::from(vec![1, u64::MAX]),
            std::slice::from_ref(&ok),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            LookupError::KeyOutOfRange {
                row: 1,
                value: u64::MAX,
                ..
            }
        ),
        "{err:?}"
    );

    let twice = vec![fields[0].clone(), fields[0].clone()];
    let err = LookupWriter::create(&path, KeyType::Int, twice)
        .err()
        .unwrap();
    assert!(matches!(&err, LookupError::DuplicateField { field, .. } if field == "probability"));

    let list = Field::new_list_field(DataType::Float64, true);
    let err = ValueField::from_arrow(&Field::new(
        "v",
        DataType::FixedSizeList(Arc::new(list), 2),
        true,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, LookupError::FieldType { field, .. } if field == "v"),
        "{err:?}"
    );
    assert_eq!(FieldType::from_arrow(&DataType::UInt64), None);
    assert_eq!(KeyType::from_arrow(&DataType::UInt64), Some(KeyType::Int));
    assert_eq!(KeyType::from_arrow(&DataType::Float32), None);
}

/// A file of 2000 keys, its bytes, and where each section starts.
fn sample_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("p.lookup");
    let keys: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    write_f32(&path, &keys);
    let bytes = fs_err::read(&path).unwrap();
    (path, bytes)
}

fn mentions_path(err: &LookupError, path: &Path) -> bool {
    err.to_string().contains(&path.display().to_string())
}

#[test]
fn a_truncated_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_file(dir.path());
    for len in [0, 10, 127, 128, 4096, bytes.len() - 8, bytes.len() - 1] {
        fs_err::write(&path, &bytes[..len]).unwrap();
        let err = LookupFile::open(&path).unwrap_err();
        assert!(matches!(err, LookupError::Corrupt { .. }), "{len}: {err:?}");
        assert!(mentions_path(&err, &path), "{err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    fs_err::write(&path, &longer).unwrap();
    assert!(matches!(
        LookupFile::open(&path),
        Err(LookupError::Corrupt { .. })
    ));
}

#[test]
fn a_flipped_byte_is_refused_at_open_or_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = sample_file(dir.path());
    // One byte in every 97 across the whole file, header, schema, records and index.
    for at in (0..bytes.len()).step_by(97).chain([bytes.len() - 1]) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        fs_err::write(&path, &damaged).unwrap();
        let err = match LookupFile::open(&path) {
            Err(err) => {
                // Only the header and the schema are read at open.
                assert!(
                    at < 128 + 9 + "probability".len(),
                    "data byte {at} refused at open: {err}"
                );
                err
            }
            Ok(file) => {
                let err = file.verify().unwrap_err();
                // Lookups on an unverified damaged file never panic.
                for i in (0..2000).step_by(7) {
                    let _ = file
                        .get(Key::Str(&format!("user-{i}")))
                        .map(|r| r.to_json());
                }
                let _ = file.iter().count();
                err
            }
        };
        assert!(mentions_path(&err, &path), "{at}: {err}");
        if at >= 128 {
            assert!(
                matches!(
                    err,
                    LookupError::ChecksumMismatch {
                        section: "data",
                        ..
                    }
                ) || matches!(err, LookupError::Corrupt { .. }),
                "{at}: {err:?}"
            );
        } else {
            assert!(
                matches!(
                    err,
                    LookupError::ChecksumMismatch {
                        section: "header",
                        ..
                    } | LookupError::Corrupt { .. }
                        | LookupError::UnsupportedVersion { .. }
                ),
                "{at}: {err:?}"
            );
        }
    }
}

#[test]
fn another_format_version_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes) = sample_file(dir.path());
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    fs_err::write(&path, &bytes).unwrap();
    let err = LookupFile::open(&path).unwrap_err();
    assert!(
        matches!(err, LookupError::UnsupportedVersion { found: 3, .. }),
        "{err:?}"
    );
    assert!(mentions_path(&err, &path), "{err}");
}

/// A file of format 1 (8-byte slots, zero where the slot width now is) still opens
/// and answers: made here from a file of 8-byte slots by rewriting its header.
#[test]
fn format_1_files_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let mut keys: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    keys.push(long_key());
    assert_eq!(write_f32(&path, &keys).slot_width(), 8);
    let mut bytes = fs_err::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[28..32].copy_from_slice(&0u32.to_le_bytes());
    let checksum = twox_hash::XxHash3_64::oneshot(&bytes[..120]);
    bytes[120..128].copy_from_slice(&checksum.to_le_bytes());
    fs_err::write(&path, &bytes).unwrap();
    let file = LookupFile::open(&path).unwrap();
    file.verify().unwrap();
    assert_eq!(file.slot_width(), 8);
    for (i, key) in keys.iter().enumerate().take(2000) {
        let record = file.get(Key::Str(key)).unwrap();
        assert_eq!(record.value(0), Value::Float32(i as f32 / 1000.0));
    }
    assert_eq!(file.iter().count(), keys.len());
}

#[test]
fn an_abandoned_build_leaves_a_file_that_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let mut writer = LookupWriter::create(&path, KeyType::Int, Vec::new()).unwrap();
    writer.set_memory_limit(1024);
    writer
        .append_batch(&Int64Array::from_iter_values(0..10_000), &[])
        .unwrap();
    assert!(dir.path().join("p.lookup.spill").exists());
    drop(writer);
    assert!(!dir.path().join("p.lookup.spill").exists());
    let err = LookupFile::open(&path).unwrap_err();
    assert!(err.to_string().contains("did not finish"), "{err}");
}

#[test]
fn spilling_builds_the_same_file_as_building_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<i64> = (0..60_000).map(|i| i * 7919 - 1_000_000).collect();
    // A short note per key, and one long one, so that slots point to records.
    let note = |key: i64| {
        if key == keys[0] {
            "x".repeat(200)
        } else {
            String::new()
        }
    };
    for with_notes in [false, true] {
        let mut files = Vec::new();
        for (name, limit) in [("memory.lookup", usize::MAX), ("spilled.lookup", 4096)] {
            let path = dir.path().join(name);
            let mut fields = vec![ValueField::new("label", FieldType::Int64)];
            if with_notes {
                fields.push(ValueField::new("note", FieldType::Utf8));
            }
            let mut writer = LookupWriter::create(&path, KeyType::Int, fields).unwrap();
            writer.set_memory_limit(limit);
            for chunk in keys.chunks(8192) {
                let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|k| k % 3),
                ))];
                if with_notes {
                    columns.push(Arc::new(StringArray::from_iter_values(
                        chunk.iter().map(|&k| note(k)),
                    )));
                }
                writer
                    .append_batch(&Int64Array::from(chunk.to_vec()), &columns)
                    .unwrap();
            }
            writer.finish().unwrap();
            let file = LookupFile::open(&path).unwrap();
            file.verify().unwrap();
            assert_eq!(file.slot_width(), if with_notes { 8 } else { 32 });
            for &key in &keys {
                let record = file.get(Key::Int(key)).unwrap();
                assert_eq!(record.value(0), Value::Int64(key % 3));
                if with_notes {
                    assert_eq!(record.value(1), Value::Utf8(&note(key)));
                }
                assert!(file.get(Key::Int(key + 1)).is_none());
            }
            files.push(fs_err::read(&path).unwrap());
        }
        assert!(files[0] == files[1], "spilling changed the file");
        assert!(!dir.path().join("spilled.lookup.spill").exists());
        assert!(!dir.path().join("spilled.lookup.index").exists());
    }
}

#[test]
fn get_many_answers_like_get_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.lookup");
    let keys: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let file = write_f32(&path, &keys);
    // Hits, misses, an integer key in a file of string keys, and more keys than
    // one group, so groups and their last partial group are covered.
    let mut asked: Vec<Key<'_>> = Vec::new();
    for (i, key) in keys.iter().enumerate().take(45) {
        asked.push(Key::Str(key));
        if i % 4 == 0 {
            asked.push(Key::Str("nobody"));
        }
        if i % 9 == 0 {
            asked.push(Key::Int(i as i64));
        }
    }
    assert!(asked.len() > 3 * presage_store::lookup::GET_MANY_GROUP);
    let mut seen = Vec::new();
    file.get_many(&asked, |i, record| {
        seen.push((i, record.map(|r| r.value(0))));
    });
    let expected: Vec<_> = asked
        .iter()
        .enumerate()
        .map(|(i, key)| (i, file.get(*key).map(|r| r.value(0))))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().filter(|(_, v)| v.is_some()).count(), 45);
    file.get_many(&[], |_, _| panic!("no keys, no calls"));
}

#[test]
fn lookup_files_can_be_shared_between_threads() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<LookupFile>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any set of distinct string keys round-trips, and keys not written miss.
    #[test]
    fn any_distinct_string_keys_round_trip(
        keys in proptest::collection::hash_set(".{0,24}", 0..300),
        absent in proptest::collection::vec(".{0,24}", 0..50),
        spill in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lookup");
        let keys: Vec<String> = keys.into_iter().collect();
        let fields = vec![ValueField::new("row", FieldType::Int64), ValueField::new("key", FieldType::Utf8)];
        let mut writer = LookupWriter::create(&path, KeyType::Str, fields).unwrap();
        if spill {
            writer.set_memory_limit(160);
        }
        for (start, chunk) in (0..).step_by(37).zip(keys.chunks(37)) {
            let rows: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + chunk.len() as i64));
            let copies: ArrayRef = Arc::new(StringArray::from_iter_values(chunk));
            writer.append_batch(&StringArray::from_iter_values(chunk), &[rows, copies]).unwrap();
        }
        writer.finish().unwrap();
        let file = LookupFile::open(&path).unwrap();
        file.verify().unwrap();
        prop_assert_eq!(file.len(), keys.len() as u64);
        for (row, key) in keys.iter().enumerate() {
            let record = file.get(Key::Str(key)).unwrap();
            prop_assert_eq!(record.value(0), Value::Int64(row as i64));
            prop_assert_eq!(record.value(1), Value::Utf8(key));
            let parsed: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
            prop_assert_eq!(parsed["key"].as_str(), Some(key.as_str()));
        }
        for key in absent.iter().filter(|key| !keys.contains(key)) {
            prop_assert!(file.get(Key::Str(key)).is_none());
        }
        // get_many gives get's answers, in order, for hits and misses mixed.
        let mixed: Vec<Key<'_>> = keys
            .iter()
            .zip(absent.iter().cycle())
            .flat_map(|(hit, other)| [Key::Str(hit), Key::Str(other)])
            .collect();
        let mut answers = Vec::new();
        file.get_many(&mixed, |i, record| answers.push((i, record.map(|r| r.to_json()))));
        let expected: Vec<_> = mixed
            .iter()
            .enumerate()
            .map(|(i, key)| (i, file.get(*key).map(|r| r.to_json())))
            .collect();
        prop_assert_eq!(answers, expected);
    }

    /// Any set of distinct integer keys round-trips, and keys not written miss.
    #[test]
    fn any_distinct_integer_keys_round_trip(
        keys in proptest::collection::hash_set(any::<i64>(), 0..500),
        absent in proptest::collection::vec(any::<i64>(), 0..50),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.lookup");
        let keys: Vec<i64> = keys.into_iter().collect();
        let fields = vec![ValueField::new("p", FieldType::Float32)];
        let mut writer = LookupWriter::create(&path, KeyType::Int, fields).unwrap();
        let values: ArrayRef = Arc::new(Float32Array::from_iter_values(keys.iter().map(|k| *k as f32)));
        writer.append_batch(&Int64Array::from(keys.clone()), &[values]).unwrap();
        writer.finish().unwrap();
        let file = LookupFile::open(&path).unwrap();
        file.verify().unwrap();
        for key in &keys {
            prop_assert_eq!(file.get(Key::Int(*key)).unwrap().value(0), Value::Float32(*key as f32));
            let text = key.to_string();
            prop_assert!(Key::parse(KeyType::Int, &text).and_then(|k| file.get(k)).is_some());
        }
        for key in absent.iter().filter(|key| !keys.contains(key)) {
            prop_assert!(file.get(Key::Int(*key)).is_none());
        }
    }
}
