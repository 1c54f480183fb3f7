//! Turning Arrow columns into record bytes, one row at a time.
//!
//! Each column is downcast once per batch into a [`Column`], so the per-row work is
//! a match and a few byte copies.

use arrow::array::{
    Array, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    GenericStringArray, ListArray, PrimitiveArray, StringViewArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};

use super::format::put_varint;
use super::{FieldType, KeyType, ValueField};

/// A value column of a batch, downcast to its concrete array.
pub(crate) enum Column<'a> {
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    F32List {
        list: &'a FixedSizeListArray,
        values: &'a Float32Array,
        n: usize,
    },
    Ranked {
        list: &'a ListArray,
        items: KeyColumn<'a>,
        scores: &'a Float32Array,
    },
}

impl<'a> Column<'a> {
    /// Downcasts `array` for `field`, or `None` if its type does not store as the
    /// field's type.
    pub(crate) fn new(field: &ValueField, array: &'a dyn Array) -> Option<Column<'a>> {
        if FieldType::from_arrow(array.data_type()) != Some(field.field_type) {
            return None;
        }
        let column = match array.data_type() {
            DataType::Int8 => Column::I8(array.as_primitive()),
            DataType::Int16 => Column::I16(array.as_primitive()),
            DataType::Int32 => Column::I32(array.as_primitive()),
            DataType::Int64 => Column::I64(array.as_primitive()),
            DataType::UInt8 => Column::U8(array.as_primitive()),
            DataType::UInt16 => Column::U16(array.as_primitive()),
            DataType::UInt32 => Column::U32(array.as_primitive()),
            DataType::Float32 => Column::F32(array.as_primitive()),
            DataType::Float64 => Column::F64(array.as_primitive()),
            DataType::Boolean => Column::Bool(array.as_boolean()),
            DataType::Utf8 => Column::Utf8(array.as_string()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string()),
            DataType::Utf8View => Column::Utf8View(array.as_string_view()),
            DataType::FixedSizeList(_, n) => {
                let list = array.as_fixed_size_list();
                Column::F32List {
                    list,
                    values: list.values().as_primitive_opt()?,
                    n: usize::try_from(*n).ok()?,
                }
            }
            DataType::List(_) => {
                let FieldType::RankedList(item_type) = field.field_type else {
                    return None;
                };
                let list = array.as_list::<i32>();
                let entries = list.values().as_struct_opt()?;
                Column::Ranked {
                    list,
                    items: KeyColumn::new(item_type, entries.column(0).as_ref())?,
                    scores: entries.column(1).as_primitive_opt()?,
                }
            }
            _ => return None,
        };
        Some(column)
    }

    /// The column's null buffer, if it has nulls.
    pub(crate) fn nulls(&self) -> Option<&'a NullBuffer> {
        let nulls = match *self {
            Column::I8(a) => a.nulls(),
            Column::I16(a) => a.nulls(),
            Column::I32(a) => a.nulls(),
            Column::I64(a) => a.nulls(),
            Column::U8(a) => a.nulls(),
            Column::U16(a) => a.nulls(),
            Column::U32(a) => a.nulls(),
            Column::F32(a) => a.nulls(),
            Column::F64(a) => a.nulls(),
            Column::Bool(a) => a.nulls(),
            Column::Utf8(a) => a.nulls(),
            Column::LargeUtf8(a) => a.nulls(),
            Column::Utf8View(a) => a.nulls(),
            Column::F32List { list, .. } => list.nulls(),
            Column::Ranked { list, .. } => list.nulls(),
        };
        nulls.filter(|nulls| nulls.null_count() > 0)
    }

    /// Appends the value at `row`. A null row still gets its bytes (zeros, an empty
    /// string or list) so fixed-width fields keep their width; the bitmap says null.
    #[inline]
    pub(crate) fn encode(&self, row: usize, null: bool, out: &mut Vec<u8>) {
        match self {
            Column::I8(a) => put_i64(out, i64::from(a.value(row))),
            Column::I16(a) => put_i64(out, i64::from(a.value(row))),
            Column::I32(a) => put_i64(out, i64::from(a.value(row))),
            Column::I64(a) => put_i64(out, a.value(row)),
            Column::U8(a) => put_i64(out, i64::from(a.value(row))),
            Column::U16(a) => put_i64(out, i64::from(a.value(row))),
            Column::U32(a) => put_i64(out, i64::from(a.value(row))),
            Column::F32(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Column::F64(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            Column::Bool(a) => out.push(u8::from(a.value(row))),
            Column::Utf8(a) => put_str(out, if null { "" } else { a.value(row) }),
            Column::LargeUtf8(a) => put_str(out, if null { "" } else { a.value(row) }),
            Column::Utf8View(a) => put_str(out, if null { "" } else { a.value(row) }),
            Column::F32List { values, n, .. } => {
                let start = row * n;
                let raw = &values.values()[start..start + n];
                match values.nulls().filter(|nulls| nulls.null_count() > 0) {
                    None => {
                        for value in raw {
                            out.extend_from_slice(&value.to_le_bytes());
                        }
                    }
                    Some(nulls) => {
                        for (i, value) in raw.iter().enumerate() {
                            let value = if nulls.is_null(start + i) {
                                f32::NAN
                            } else {
                                *value
                            };
                            out.extend_from_slice(&value.to_le_bytes());
                        }
                    }
                }
            }
            Column::Ranked {
                list,
                items,
                scores,
            } => {
                let range = if null {
                    0..0
                } else {
                    let offsets = list.value_offsets();
                    offsets[row] as usize..offsets[row + 1] as usize
                };
                let mut payload = Vec::with_capacity(range.len() * 16 + 2);
                put_varint(&mut payload, range.len() as u64);
                for entry in range {
                    match items.value(entry) {
                        KeyValue::Str(text) => put_str(&mut payload, text),
                        KeyValue::Int(value) => put_i64(&mut payload, value),
                        // `FieldType::from_arrow` refuses UInt64 items, the only
                        // ones that can be out of range.
                        KeyValue::OutOfRange => unreachable!("ranked items are never UInt64"),
                    }
                    payload.extend_from_slice(&scores.value(entry).to_le_bytes());
                }
                put_varint(out, payload.len() as u64);
                out.extend_from_slice(&payload);
            }
        }
    }
}

#[inline]
fn put_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a length-prefixed string.
#[inline]
pub(crate) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// A key column of a batch, downcast to its concrete array.
pub(crate) enum KeyColumn<'a> {
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
}

/// One key read from a key column.
pub(crate) enum KeyValue<'a> {
    Str(&'a str),
    Int(i64),
    /// An unsigned key above `i64::MAX`.
    OutOfRange,
}

impl<'a> KeyColumn<'a> {
    /// Downcasts a key column for a file of `key_type`, or `None` if its type does
    /// not hold such keys.
    pub(crate) fn new(key_type: KeyType, array: &'a dyn Array) -> Option<KeyColumn<'a>> {
        if KeyType::from_arrow(array.data_type()) != Some(key_type) {
            return None;
        }
        Some(match array.data_type() {
            DataType::Utf8 => KeyColumn::Utf8(array.as_string()),
            DataType::LargeUtf8 => KeyColumn::LargeUtf8(array.as_string()),
            DataType::Utf8View => KeyColumn::Utf8View(array.as_string_view()),
            DataType::Int8 => KeyColumn::I8(array.as_primitive()),
            DataType::Int16 => KeyColumn::I16(array.as_primitive()),
            DataType::Int32 => KeyColumn::I32(array.as_primitive()),
            DataType::Int64 => KeyColumn::I64(array.as_primitive()),
            DataType::UInt8 => KeyColumn::U8(array.as_primitive()),
            DataType::UInt16 => KeyColumn::U16(array.as_primitive()),
            DataType::UInt32 => KeyColumn::U32(array.as_primitive()),
            DataType::UInt64 => KeyColumn::U64(array.as_primitive()),
            _ => return None,
        })
    }

    /// The key at `row`; the caller checked it is not null.
    #[inline]
    pub(crate) fn value(&self, row: usize) -> KeyValue<'a> {
        match self {
            KeyColumn::Utf8(a) => KeyValue::Str(a.value(row)),
            KeyColumn::LargeUtf8(a) => KeyValue::Str(a.value(row)),
            KeyColumn::Utf8View(a) => KeyValue::Str(a.value(row)),
            KeyColumn::I8(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::I16(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::I32(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::I64(a) => KeyValue::Int(a.value(row)),
            KeyColumn::U8(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::U16(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::U32(a) => KeyValue::Int(i64::from(a.value(row))),
            KeyColumn::U64(a) => {
                let value = a.value(row);
                i64::try_from(value).map_or(KeyValue::OutOfRange, KeyValue::Int)
            }
        }
    }
}
