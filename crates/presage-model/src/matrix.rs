//! Feature columns → the dense row-major `f32` matrix models score.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};

use crate::{Categories, UNKNOWN_CATEGORY};

/// Whether a column type can feed a model's number input (numbers and booleans).
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Whether a column type can feed a model's string input.
pub(crate) fn is_string(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

/// One matrix column: the batch column feeding it, and how its values become `f32`.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    /// Index of the batch column.
    pub column: usize,
    /// `None` for numbers; the codes of the strings the model knows otherwise.
    pub categories: Option<Arc<Categories>>,
}

/// Why a batch could not become a matrix.
#[derive(Debug)]
pub(crate) enum FillError {
    /// A column would not cast to the type the model reads.
    Cast(usize, arrow::error::ArrowError),
    /// A string the model's strict encoder does not know.
    UnknownCategory {
        /// Index of the batch column.
        column: usize,
        /// The value.
        value: String,
    },
}

/// Fills `out` with `batch`'s `feeds` as rows × columns `f32`; null numbers become
/// NaN, which every engine treats as missing; strings become their codes, and
/// null or unknown strings [`UNKNOWN_CATEGORY`].
pub(crate) fn fill(
    batch: &RecordBatch,
    feeds: &[Feed],
    out: &mut Vec<f32>,
) -> Result<(), FillError> {
    let rows = batch.num_rows();
    let width = feeds.len();
    out.clear();
    out.resize(rows * width, f32::NAN);
    for (j, feed) in feeds.iter().enumerate() {
        let source = batch.column(feed.column);
        if let Some(categories) = &feed.categories {
            let strings =
                cast(source, &DataType::Utf8).map_err(|e| FillError::Cast(feed.column, e))?;
            let strings = strings.as_string::<i32>();
            for (i, value) in strings.iter().enumerate() {
                out[i * width + j] = match value.map(|v| (v, categories.codes.get(v))) {
                    Some((_, Some(&code))) => code as f32,
                    Some((value, None)) if categories.strict => {
                        return Err(FillError::UnknownCategory {
                            column: feed.column,
                            value: value.to_owned(),
                        });
                    }
                    _ => UNKNOWN_CATEGORY,
                };
            }
            continue;
        }
        let column =
            cast(source, &DataType::Float32).map_err(|e| FillError::Cast(feed.column, e))?;
        let values = column.as_primitive::<Float32Type>();
        let raw = values.values();
        match values.nulls() {
            None => {
                for (i, v) in raw.iter().enumerate() {
                    out[i * width + j] = *v;
                }
            }
            Some(nulls) => {
                for (i, v) in raw.iter().enumerate() {
                    if nulls.is_valid(i) {
                        out[i * width + j] = *v;
                    }
                }
            }
        }
    }
    Ok(())
}
