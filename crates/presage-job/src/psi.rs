//! Population stability index: how far a score distribution moved.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Number of quantile bins of the reference distribution.
pub(crate) const BINS: usize = 10;
/// Floor for empty bins, so the logarithm stays finite (the usual convention).
const EPSILON: f64 = 1e-4;

/// PSI of `actual` against `expected`, on `BINS` quantile bins of `expected`:
/// `Σ (a − e) · ln(a / e)` over bin fractions. 0 means the same distribution; above
/// 0.25 is commonly read as a major shift. NaN values are ignored.
pub(crate) fn psi(expected: &[f32], actual: &[f32]) -> f64 {
    let mut sorted: Vec<f32> = expected.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f32::total_cmp);
    let mut edges: Vec<f32> = (1..BINS).map(|i| sorted[i * sorted.len() / BINS]).collect();
    edges.dedup();
    let fractions = |values: &[f32]| {
        let mut counts = vec![0u64; edges.len() + 1];
        let mut n = 0u64;
        for v in values.iter().filter(|v| !v.is_nan()) {
            counts[edges.partition_point(|e| e <= v)] += 1;
            n += 1;
        }
        counts
            .into_iter()
            .map(|c| (c as f64 / n.max(1) as f64).max(EPSILON))
            .collect::<Vec<_>>()
    };
    let e = fractions(&sorted);
    let a = fractions(actual);
    e.iter().zip(&a).map(|(e, a)| (a - e) * (a / e).ln()).sum()
}

/// Reads a float column of a `predictions.parquet` as `f32` (a list column is
/// flattened; a ranked list gives its items' scores); `None` when the file has no
/// such numeric column.
pub(crate) fn read_float_column(path: &Path, column: &str) -> Result<Option<Vec<f32>>, String> {
    let file = fs_err::File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    let Some(index) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == column)
    else {
        return Ok(None);
    };
    let leaves: Vec<usize> = builder
        .parquet_schema()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path().parts().first().map(String::as_str) == Some(column))
        .map(|(i, _)| i)
        .collect();
    let _ = index;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut values = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("`{}`: {e}", path.display()))?;
        let array = batch.column(0);
        let array = match array.data_type() {
            DataType::FixedSizeList(..) => array.as_fixed_size_list().values().clone(),
            DataType::List(_) => match array.as_list::<i32>().values().as_struct_opt() {
                Some(entries) if entries.num_columns() == 2 => entries.column(1).clone(),
                _ => return Ok(None),
            },
            _ => array.clone(),
        };
        match array.data_type() {
            DataType::Float32 => values.extend(
                array
                    .as_primitive::<Float32Type>()
                    .iter()
                    .map(|v| v.unwrap_or(f32::NAN)),
            ),
            DataType::Float64 => values.extend(
                array
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.map_or(f32::NAN, |v| v as f32)),
            ),
            _ => return Ok(None),
        }
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_distribution_is_zero_and_shift_is_large() {
        let base: Vec<f32> = (0..10_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        assert!(psi(&base, &base) < 1e-9);
        let shifted: Vec<f32> = base.iter().map(|v| (v * 0.5 + 0.5).min(1.0)).collect();
        assert!(psi(&base, &shifted) > 0.25, "{}", psi(&base, &shifted));
        let slightly: Vec<f32> = base.iter().map(|v| v + 0.005).collect();
        assert!(psi(&base, &slightly) < 0.05);
    }
}
