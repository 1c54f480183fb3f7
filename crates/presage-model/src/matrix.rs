//! Feature columns → the dense row-major `f32` matrix models score.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};

/// Whether a column type can feed a model (numbers and booleans).
pub(crate) fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Fills `out` with `batch`'s `columns` as rows × columns `f32`; nulls become NaN,
/// which every engine treats as missing.
pub(crate) fn fill(
    batch: &RecordBatch,
    columns: &[usize],
    out: &mut Vec<f32>,
) -> Result<(), arrow::error::ArrowError> {
    let rows = batch.num_rows();
    let width = columns.len();
    out.clear();
    out.resize(rows * width, f32::NAN);
    for (j, &c) in columns.iter().enumerate() {
        let column = cast(batch.column(c), &DataType::Float32)?;
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
