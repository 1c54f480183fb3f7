use std::fmt;

use arrow::datatypes::DataType;

use super::{KeyType, LookupError};

/// How one prediction field is stored in a record.
///
/// Numbers are stored fixed-width and little-endian, strings length-prefixed; the
/// JSON answer is built from these at lookup time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// A signed integer, 8 bytes (any Arrow integer type that fits: `Int8`..`Int64`,
    /// `UInt8`..`UInt32`).
    Int64,
    /// A 32-bit float, 4 bytes; printed in its shortest round-trip form.
    Float32,
    /// A 64-bit float, 8 bytes.
    Float64,
    /// A boolean, 1 byte.
    Bool,
    /// UTF-8 text (Arrow `Utf8`, `LargeUtf8`, `Utf8View`): a varint length, then the bytes.
    Utf8,
    /// A fixed-size list of `n` 32-bit floats (`FixedSizeList<Float32, n>`), `4n` bytes;
    /// a null element is stored as NaN and printed as `null`.
    Float32List(u32),
    /// A ranked list: `(item, score)` pairs, best first (Arrow
    /// `List<Struct<item, score: Float32>>`, see [`ranked_list_type`]). Stored as a
    /// varint byte length, a varint count, then each item (a length-prefixed string
    /// or 8 bytes) and its 4-byte score; printed as `[{"item":…,"score":…},…]`.
    RankedList(KeyType),
}

/// Name of the item field in a ranked list's entries.
pub const RANKED_ITEM: &str = "item";
/// Name of the score field in a ranked list's entries.
pub const RANKED_SCORE: &str = "score";

/// The Arrow type of a ranked list whose items are strings or integers:
/// `List<Struct<item: Utf8 | Int64, score: Float32>>`, no nulls inside.
pub fn ranked_list_type(item: KeyType) -> DataType {
    let item_type = match item {
        KeyType::Str => DataType::Utf8,
        KeyType::Int => DataType::Int64,
    };
    let entry = DataType::Struct(
        vec![
            arrow::datatypes::Field::new(RANKED_ITEM, item_type, false),
            arrow::datatypes::Field::new(RANKED_SCORE, DataType::Float32, false),
        ]
        .into(),
    );
    DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
        "entry", entry, false,
    )))
}

/// The item type of an Arrow ranked-list type, or `None` if `data_type` is not one.
fn ranked_item_type(data_type: &DataType) -> Option<KeyType> {
    let DataType::List(entry) = data_type else {
        return None;
    };
    let DataType::Struct(fields) = entry.data_type() else {
        return None;
    };
    match &fields[..] {
        [item, score]
            if item.name() == RANKED_ITEM
                && score.name() == RANKED_SCORE
                && score.data_type() == &DataType::Float32
                // Items are stored as i64: an unsigned 64-bit one may not fit.
                && item.data_type() != &DataType::UInt64 =>
        {
            KeyType::from_arrow(item.data_type())
        }
        _ => None,
    }
}

impl FieldType {
    /// The field type that stores an Arrow column of `data_type`, or `None` if the type
    /// has no lookup-file encoding.
    ///
    /// `UInt64` is refused because its values may not fit in a signed 64-bit integer.
    pub fn from_arrow(data_type: &DataType) -> Option<FieldType> {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Some(FieldType::Int64),
            DataType::Float32 => Some(FieldType::Float32),
            DataType::Float64 => Some(FieldType::Float64),
            DataType::Boolean => Some(FieldType::Bool),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(FieldType::Utf8),
            DataType::FixedSizeList(item, n) if item.data_type() == &DataType::Float32 => {
                u32::try_from(*n).ok().map(FieldType::Float32List)
            }
            DataType::List(_) => ranked_item_type(data_type).map(FieldType::RankedList),
            _ => None,
        }
    }

    /// Bytes a value of this type takes in a record, or `None` for variable-length text.
    pub(crate) fn fixed_width(self) -> Option<usize> {
        match self {
            FieldType::Int64 | FieldType::Float64 => Some(8),
            FieldType::Float32 => Some(4),
            FieldType::Bool => Some(1),
            FieldType::Utf8 | FieldType::RankedList(_) => None,
            FieldType::Float32List(n) => Some(4 * n as usize),
        }
    }

    /// The byte stored in the schema section.
    pub(crate) fn tag(self) -> u8 {
        match self {
            FieldType::Int64 => 1,
            FieldType::Float32 => 2,
            FieldType::Float64 => 3,
            FieldType::Bool => 4,
            FieldType::Utf8 => 5,
            FieldType::Float32List(_) => 6,
            FieldType::RankedList(_) => 7,
        }
    }

    /// The field type for a schema byte and its parameter (the list length).
    pub(crate) fn from_tag(tag: u8, param: u32) -> Option<FieldType> {
        match tag {
            1 => Some(FieldType::Int64),
            2 => Some(FieldType::Float32),
            3 => Some(FieldType::Float64),
            4 => Some(FieldType::Bool),
            5 => Some(FieldType::Utf8),
            6 => Some(FieldType::Float32List(param)),
            7 => u8::try_from(param)
                .ok()
                .and_then(KeyType::from_tag)
                .map(FieldType::RankedList),
            _ => None,
        }
    }

    /// The parameter stored beside the tag (the list length, a ranked list's item
    /// type, else 0).
    pub(crate) fn param(self) -> u32 {
        match self {
            FieldType::Float32List(n) => n,
            FieldType::RankedList(item) => u32::from(item.tag()),
            _ => 0,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Int64 => f.write_str("int64"),
            FieldType::Float32 => f.write_str("float32"),
            FieldType::Float64 => f.write_str("float64"),
            FieldType::Bool => f.write_str("bool"),
            FieldType::Utf8 => f.write_str("utf8"),
            FieldType::Float32List(n) => write!(f, "float32[{n}]"),
            FieldType::RankedList(item) => write!(f, "ranked list of {item} items"),
        }
    }
}

/// One prediction field of a lookup file: its JSON name and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueField {
    /// The name used as the JSON object key.
    pub name: String,
    /// How values are stored.
    pub field_type: FieldType,
}

impl ValueField {
    /// A field named `name` stored as `field_type`.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> ValueField {
        ValueField {
            name: name.into(),
            field_type,
        }
    }

    /// The value field for an Arrow field, or [`LookupError::FieldType`] naming it.
    pub fn from_arrow(field: &arrow::datatypes::Field) -> Result<ValueField, LookupError> {
        let field_type =
            FieldType::from_arrow(field.data_type()).ok_or_else(|| LookupError::FieldType {
                field: field.name().clone(),
                data_type: field.data_type().to_string(),
            })?;
        Ok(ValueField::new(field.name().clone(), field_type))
    }
}
