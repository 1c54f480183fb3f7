//! Arrow rows to Redis keys and JSON values.
//!
//! A value is the prediction JSON object, byte for byte what the embedded lookup
//! file answers (`{"probability":0.12,"label":1}`: numbers in shortest round-trip
//! form, `null` for nulls and non-finite floats), so any Redis client can read it
//! and both backends serve the same bytes. Columns are cast once per batch to one
//! array type per field type, so the per-row work is a match and a few copies.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int64Array, ListArray, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, UInt64Type};

use super::RedisStoreError;
use crate::lookup::record::write_ranked_json;
use crate::lookup::{FieldType, KeyType, RankedEntry, RankedItem, Value};

/// The prediction fields of a version: how to print each.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    /// Each field's `"name":`, JSON-escaped.
    names: Vec<Box<[u8]>>,
    types: Vec<FieldType>,
}

/// A prediction column of one batch, cast to the array its field type reads.
pub(crate) enum Column {
    Int(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Bool(BooleanArray),
    Utf8(StringArray),
    Ranked {
        list: ListArray,
        items: RankedItems,
        scores: Float32Array,
    },
    F32List {
        list: FixedSizeListArray,
        values: Float32Array,
        n: usize,
    },
}

/// The items of a batch's ranked lists.
pub(crate) enum RankedItems {
    Str(StringArray),
    Int(Int64Array),
}

/// The key column of one batch.
pub(crate) enum KeyColumn {
    Str(StringArray),
    Int(Int64Array),
    UInt(UInt64Array),
}

impl Encoder {
    /// The encoder for prediction fields `outputs`; a type without a JSON encoding
    /// is refused, naming the field.
    pub(crate) fn new(job: &str, outputs: &[Field]) -> Result<Encoder, RedisStoreError> {
        let mut names = Vec::with_capacity(outputs.len());
        let mut types = Vec::with_capacity(outputs.len());
        for field in outputs {
            let field_type = FieldType::from_arrow(field.data_type()).ok_or_else(|| {
                RedisStoreError::FieldType {
                    job: job.to_owned(),
                    field: field.name().clone(),
                    data_type: field.data_type().to_string(),
                }
            })?;
            let mut name = Vec::new();
            Value::Utf8(field.name()).write_json(&mut name);
            name.push(b':');
            names.push(name.into_boxed_slice());
            types.push(field_type);
        }
        Ok(Encoder { names, types })
    }

    /// Casts a batch's prediction arrays, checking them against the fields.
    pub(crate) fn columns(
        &self,
        job: &str,
        rows: usize,
        outputs: &[ArrayRef],
    ) -> Result<Vec<Column>, RedisStoreError> {
        let mismatch = |message: String| RedisStoreError::Batch {
            job: job.to_owned(),
            message,
        };
        if outputs.len() != self.types.len() {
            return Err(mismatch(format!(
                "`{}` prediction columns, expected `{}`",
                outputs.len(),
                self.types.len()
            )));
        }
        let mut columns = Vec::with_capacity(outputs.len());
        for (i, (array, &field_type)) in outputs.iter().zip(&self.types).enumerate() {
            let name = String::from_utf8_lossy(&self.names[i]).into_owned();
            if array.len() != rows {
                return Err(mismatch(format!(
                    "column {name} has `{}` rows, the keys `{rows}`",
                    array.len()
                )));
            }
            if FieldType::from_arrow(array.data_type()) != Some(field_type) {
                return Err(mismatch(format!(
                    "column {name} has type `{}`, expected `{field_type}`",
                    array.data_type()
                )));
            }
            let cast = |to: &DataType| {
                arrow::compute::cast(array, to).map_err(|e| mismatch(format!("column {name}: {e}")))
            };
            let column = match field_type {
                FieldType::Int64 => {
                    Column::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
                }
                FieldType::Float32 => Column::F32(array.as_primitive::<Float32Type>().clone()),
                FieldType::Float64 => Column::F64(array.as_primitive::<Float64Type>().clone()),
                FieldType::Bool => Column::Bool(array.as_boolean().clone()),
                FieldType::Utf8 => Column::Utf8(cast(&DataType::Utf8)?.as_string::<i32>().clone()),
                FieldType::RankedList(_) => {
                    let list = array.as_list::<i32>().clone();
                    let entries = list
                        .values()
                        .as_struct_opt()
                        .ok_or_else(|| mismatch(format!("column {name} is not a ranked list")))?;
                    let items = match entries.column(0).data_type() {
                        t if t.is_integer() => RankedItems::Int(
                            arrow::compute::cast(entries.column(0), &DataType::Int64)
                                .map_err(|e| mismatch(format!("column {name}: {e}")))?
                                .as_primitive::<Int64Type>()
                                .clone(),
                        ),
                        _ => RankedItems::Str(
                            arrow::compute::cast(entries.column(0), &DataType::Utf8)
                                .map_err(|e| mismatch(format!("column {name}: {e}")))?
                                .as_string::<i32>()
                                .clone(),
                        ),
                    };
                    let scores = entries.column(1).as_primitive::<Float32Type>().clone();
                    Column::Ranked {
                        list,
                        items,
                        scores,
                    }
                }
                FieldType::Float32List(n) => {
                    let list = array.as_fixed_size_list().clone();
                    let values = list
                        .values()
                        .as_primitive_opt::<Float32Type>()
                        .ok_or_else(|| mismatch(format!("column {name} is not a list of float32")))?
                        .clone();
                    Column::F32List {
                        list,
                        values,
                        n: n as usize,
                    }
                }
            };
            columns.push(column);
        }
        Ok(columns)
    }

    /// Appends row `row` of `columns` as a JSON object.
    #[inline]
    pub(crate) fn write_json(&self, columns: &[Column], row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.names[i]);
            column.write_json(row, out);
        }
        out.push(b'}');
    }
}

impl Column {
    #[inline]
    fn write_json(&self, row: usize, out: &mut Vec<u8>) {
        let value = match self {
            Column::Int(a) => a.is_valid(row).then(|| Value::Int64(a.value(row))),
            Column::F32(a) => a.is_valid(row).then(|| Value::Float32(a.value(row))),
            Column::F64(a) => a.is_valid(row).then(|| Value::Float64(a.value(row))),
            Column::Bool(a) => a.is_valid(row).then(|| Value::Bool(a.value(row))),
            Column::Utf8(a) => a.is_valid(row).then(|| Value::Utf8(a.value(row))),
            Column::Ranked {
                list,
                items,
                scores,
            } => {
                if list.is_null(row) {
                    None
                } else {
                    let offsets = list.value_offsets();
                    let range = offsets[row] as usize..offsets[row + 1] as usize;
                    let entries = range.map(|i| RankedEntry {
                        item: match items {
                            RankedItems::Str(a) => RankedItem::Str(a.value(i)),
                            RankedItems::Int(a) => RankedItem::Int(a.value(i)),
                        },
                        score: scores.value(i),
                    });
                    write_ranked_json(out, entries);
                    return;
                }
            }
            Column::F32List { list, values, n } => {
                if list.is_null(row) {
                    None
                } else {
                    out.push(b'[');
                    let start = list.value_offset(row) as usize;
                    for i in start..start + n {
                        if i > start {
                            out.push(b',');
                        }
                        // A null element prints as null, as in the lookup file (NaN).
                        let value = if values.is_null(i) {
                            f32::NAN
                        } else {
                            values.value(i)
                        };
                        Value::Float32(value).write_json(out);
                    }
                    out.push(b']');
                    return;
                }
            }
        };
        value.unwrap_or(Value::Null).write_json(out);
    }
}

/// The key type for a key column's Arrow type.
pub(crate) fn key_type(job: &str, key: &Field) -> Result<KeyType, RedisStoreError> {
    KeyType::from_arrow(key.data_type()).ok_or_else(|| RedisStoreError::KeyType {
        job: job.to_owned(),
        column: key.name().clone(),
        data_type: key.data_type().to_string(),
    })
}

impl KeyColumn {
    /// Casts a batch's key array, checking it holds keys of `key_type`.
    pub(crate) fn new(
        job: &str,
        key_type: KeyType,
        array: &ArrayRef,
    ) -> Result<KeyColumn, RedisStoreError> {
        let mismatch = |message: String| RedisStoreError::Batch {
            job: job.to_owned(),
            message,
        };
        if KeyType::from_arrow(array.data_type()) != Some(key_type) {
            return Err(mismatch(format!(
                "key column has type `{}`, expected {key_type} keys",
                array.data_type()
            )));
        }
        let cast = |to: &DataType| {
            arrow::compute::cast(array, to).map_err(|e| mismatch(format!("key column: {e}")))
        };
        Ok(match array.data_type() {
            DataType::UInt64 => KeyColumn::UInt(array.as_primitive::<UInt64Type>().clone()),
            _ if key_type == KeyType::Int => {
                KeyColumn::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            _ => KeyColumn::Str(cast(&DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    /// Whether the key at `row` is null.
    #[inline]
    pub(crate) fn is_null(&self, row: usize) -> bool {
        match self {
            KeyColumn::Str(a) => a.is_null(row),
            KeyColumn::Int(a) => a.is_null(row),
            KeyColumn::UInt(a) => a.is_null(row),
        }
    }

    /// Appends the key at `row` as text (integers in decimal).
    #[inline]
    pub(crate) fn write(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            KeyColumn::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            KeyColumn::Int(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.value(row)).as_bytes())
            }
            KeyColumn::UInt(a) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.value(row)).as_bytes())
            }
        }
    }
}

/// The text a key is stored under, for a key that arrived as text (an HTTP path, a
/// RESP `GET`): integer keys are normalised (`+042` finds `42`), and text that is not
/// an integer cannot be an integer key (`None`, a miss).
pub(crate) fn normalise_key(key_type: KeyType, key: &str, out: &mut Vec<u8>) -> bool {
    match key_type {
        KeyType::Str => {
            out.extend_from_slice(key.as_bytes());
            true
        }
        KeyType::Int => match key.parse::<i64>() {
            Ok(value) => {
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
                true
            }
            Err(_) => false,
        },
    }
}
