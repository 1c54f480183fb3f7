//! Population stability index: how far a score distribution moved.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};

/// Number of quantile bins of the reference distribution.
pub(crate) const BINS: usize = 10;
/// Floor for empty bins, so the logarithm stays finite (the usual convention).
const EPSILON: f64 = 1e-4;

/// PSI of `actual` against `expected`, on `BINS` quantile bins of `expected`:
/// `Σ (a − e) · ln(a / e)` over bin fractions. 0 means the same distribution; above
/// 0.25 is commonly read as a major shift. NaN values are ignored.
#[cfg(test)]
pub(crate) fn psi(expected: &[f32], actual: &[f32]) -> f64 {
    match distribution(expected) {
        Some((edges, fractions)) => psi_against(&edges, &fractions, actual),
        None => 0.0,
    }
}

/// The quantile bins of `values` (NaN ignored) and the fraction of values in each:
/// what a manifest keeps so the next run can measure drift without the rows. `None`
/// when there is no value.
pub(crate) fn distribution(values: &[f32]) -> Option<(Vec<f32>, Vec<f64>)> {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f32::total_cmp);
    let mut edges: Vec<f32> = (1..BINS).map(|i| sorted[i * sorted.len() / BINS]).collect();
    edges.dedup();
    let fractions = fractions(&edges, &sorted);
    Some((edges, fractions))
}

/// The fraction of `values` (NaN ignored) in each bin of `edges`, floored at EPSILON.
fn fractions(edges: &[f32], values: &[f32]) -> Vec<f64> {
    let mut counts = vec![0u64; edges.len() + 1];
    let mut n = 0u64;
    for v in values.iter().filter(|v| !v.is_nan()) {
        counts[edges.partition_point(|e| e <= v)] += 1;
        n += 1;
    }
    counts
        .into_iter()
        .map(|c| (c as f64 / n.max(1) as f64).max(EPSILON))
        .collect()
}

/// PSI of `actual` against a recorded distribution (`edges`, `expected` fractions).
pub(crate) fn psi_against(edges: &[f32], expected: &[f64], actual: &[f32]) -> f64 {
    let a = fractions(edges, actual);
    expected
        .iter()
        .zip(&a)
        .map(|(e, a)| (a - e) * (a / e).ln())
        .sum()
}

/// The scores in an output column: the column itself, a fixed-size list's elements,
/// or a ranked list's `score`s; `None` for a list that is not a ranked list.
fn score_values(array: &ArrayRef) -> Option<ArrayRef> {
    Some(match array.data_type() {
        DataType::FixedSizeList(..) => array.as_fixed_size_list().values().clone(),
        DataType::List(_) => {
            let entries = array.as_list::<i32>().values().as_struct_opt()?;
            (entries.num_columns() == 2).then(|| entries.column(1).clone())?
        }
        _ => array.clone(),
    })
}

/// Values kept per numeric output for its distribution: all of them up to this many,
/// a uniform sample beyond (4 bytes each, so a run's memory stays bounded).
const SAMPLE: usize = 1_000_000;

/// A uniform sample (reservoir) of a numeric output's scores, NaN left out.
#[derive(Debug, Clone)]
pub(crate) struct ScoreSample {
    /// The sampled values.
    pub(crate) values: Vec<f32>,
    seen: u64,
    state: u64,
}

impl ScoreSample {
    /// A sample for an output of type `data_type`, `None` when it is not a float (or a
    /// list of floats) and so has no score distribution.
    pub(crate) fn for_type(data_type: &DataType) -> Option<ScoreSample> {
        let numeric = match data_type {
            DataType::Float32 | DataType::Float64 => true,
            DataType::FixedSizeList(item, _) => item.data_type() == &DataType::Float32,
            // A ranked list: its items' scores.
            DataType::List(_) => true,
            _ => false,
        };
        numeric.then(|| ScoreSample {
            values: Vec::new(),
            seen: 0,
            // Fixed seed: the same rows give the same distribution.
            state: 0x9E37_79B9_7F4A_7C15,
        })
    }

    /// Adds a batch's scores (a list output's elements, each on its own).
    pub(crate) fn extend(&mut self, array: &ArrayRef) {
        let Some(array) = score_values(array) else {
            return;
        };
        match array.data_type() {
            DataType::Float32 => {
                for v in array.as_primitive::<Float32Type>().iter().flatten() {
                    self.push(v);
                }
            }
            DataType::Float64 => {
                for v in array.as_primitive::<Float64Type>().iter().flatten() {
                    self.push(v as f32);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, value: f32) {
        if value.is_nan() {
            return;
        }
        self.seen += 1;
        if self.values.len() < SAMPLE {
            self.values.push(value);
            return;
        }
        // xorshift64*: a cheap, seeded generator is enough for a reservoir.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let slot = r % self.seen;
        if let Ok(slot) = usize::try_from(slot)
            && slot < SAMPLE
        {
            self.values[slot] = value;
        }
    }
}

/// A version's prediction field, as the store's columnar copy gave it, as `f32` (a
/// list column is flattened; a ranked list gives its items' scores; nulls become
/// NaN); `None` when the field is not numeric.
pub(crate) fn float_values(arrays: &[ArrayRef]) -> Option<Vec<f32>> {
    let mut values = Vec::new();
    for array in arrays {
        let array = score_values(array)?;
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
            _ => return None,
        }
    }
    Some(values)
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
