//! A general ONNX graph scored by tract.
//!
//! The graph is optimised once at load with a symbolic batch dimension, so one
//! plan serves every chunk size `score_parallel` hands it. Each call builds the
//! input tensor from the slice, runs a fresh plan state (states are cheap and not
//! shareable across threads), and turns the outputs into [`Scores`]. The label
//! comes from the graph's own label output, mapped back to its class index, so
//! ties and thresholds are decided exactly as the exporter wrote them; only where
//! the graph itself computes it as the first arg max of the probabilities is the
//! label computed here instead (see `signature::label_is_argmax`).

use std::collections::HashMap;

use tract_onnx::prelude::*;

use super::signature::Outputs;
use crate::{ClassLabels, Model, ModelError, ModelInfo, Scores, Task};

/// Class labels to their index, for mapping the graph's label output.
#[derive(Debug)]
enum LabelIndex {
    /// Labels `0..n`: the label is its own index.
    Dense(usize),
    /// Other integer labels.
    Int(HashMap<i64, u32>),
    /// String labels.
    Str(HashMap<String, u32>),
}

impl LabelIndex {
    fn new(classes: &ClassLabels) -> LabelIndex {
        match classes {
            ClassLabels::Int(c) if c.iter().enumerate().all(|(i, &l)| l == i as i64) => {
                LabelIndex::Dense(c.len())
            }
            ClassLabels::Int(c) => {
                LabelIndex::Int(c.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect())
            }
            ClassLabels::Str(c) => LabelIndex::Str(
                c.iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), i as u32))
                    .collect(),
            ),
        }
    }

    /// The class index of every label in `labels`, a tensor of `rows` labels.
    fn indices(&self, labels: &Tensor, rows: usize) -> Result<Vec<u32>, ModelError> {
        let unknown = |label: String| {
            ModelError::Scoring(format!(
                "the model predicted `{label}`, which is not one of its classes"
            ))
        };
        if labels.len() != rows {
            return Err(ModelError::Scoring(format!(
                "the label output has {} values for {rows} rows",
                labels.len()
            )));
        }
        match self {
            LabelIndex::Str(map) if labels.datum_type() == String::datum_type() => {
                plain::<String>(labels)?
                    .iter()
                    .map(|l| map.get(l).copied().ok_or_else(|| unknown(l.clone())))
                    .collect()
            }
            // A classifier whose string labels were replaced by their indices at load
            // (see `onnx::index_string_labels`).
            LabelIndex::Str(map) => LabelIndex::Dense(map.len()).indices(labels, rows),
            LabelIndex::Dense(n) => {
                let ints = labels.cast_to::<i64>().map_err(tract_error)?;
                plain::<i64>(&ints)?
                    .iter()
                    .map(|&l| {
                        if (0..*n as i64).contains(&l) {
                            Ok(l as u32)
                        } else {
                            Err(unknown(l.to_string()))
                        }
                    })
                    .collect()
            }
            LabelIndex::Int(map) => {
                let ints = labels.cast_to::<i64>().map_err(tract_error)?;
                plain::<i64>(&ints)?
                    .iter()
                    .map(|l| map.get(l).copied().ok_or_else(|| unknown(l.to_string())))
                    .collect()
            }
        }
    }
}

fn tract_error(e: TractError) -> ModelError {
    ModelError::Scoring(format!("{e:#}"))
}

/// The values of a tensor held in memory (tract's CPU plans always produce these).
fn plain<D: Datum>(tensor: &Tensor) -> Result<&[D], ModelError> {
    tensor
        .try_as_plain_ram()
        .and_then(|view| view.as_slice::<D>())
        .map_err(tract_error)
}

/// The index of each row's largest value (the first on ties, as ONNX `ArgMax`).
pub(super) fn first_arg_max(values: &[f32], width: usize) -> Vec<u32> {
    values
        .chunks_exact(width)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate().skip(1) {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// Rows per tract run.
const TRACT_BLOCK_ROWS: usize = 512;

/// An ONNX graph running on tract.
#[derive(Debug)]
pub(super) struct TractModel {
    info: ModelInfo,
    plan: Arc<TypedRunnableModel>,
    outputs: Outputs,
    labels: Option<LabelIndex>,
}

impl TractModel {
    /// Wraps an optimised plan whose outputs were classified by
    /// [`super::signature::find_outputs`].
    pub(super) fn new(info: ModelInfo, plan: Arc<TypedRunnableModel>, outputs: Outputs) -> Self {
        let labels = match &info.task {
            Task::Classifier { classes } => Some(LabelIndex::new(classes)),
            Task::Regressor { .. } => None,
        };
        TractModel {
            info,
            plan,
            outputs,
            labels,
        }
    }
}

/// Copies a `[rows, width]` float output, checking its size.
fn float_block(
    tensor: &Tensor,
    rows: usize,
    width: usize,
    what: &str,
) -> Result<Vec<f32>, ModelError> {
    let values = plain::<f32>(tensor)?;
    if values.len() != rows * width {
        return Err(ModelError::Scoring(format!(
            "the {what} output has {} values for {rows} rows × {width}",
            values.len()
        )));
    }
    Ok(values.to_vec())
}

impl Model for TractModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn score(&self, features: &[f32], rows: usize) -> Result<Scores, ModelError> {
        let n = self.info.n_features;
        ModelError::check_shape(features, rows, n)?;
        if rows > TRACT_BLOCK_ROWS {
            // Intermediate tensors of a whole batch fall out of cache; blocks keep
            // every layer's activations in cache (measured: 1.5x rows/s on the MLP fixture).
            let mut all = Scores::with_rows(rows);
            for block in features.chunks(TRACT_BLOCK_ROWS * n) {
                all.append(&self.score(block, block.len() / n)?);
            }
            return Ok(all);
        }
        let mut scores = Scores::with_rows(rows);
        if rows == 0 {
            return Ok(scores);
        }
        let input = Tensor::from_shape(&[rows, n], features).map_err(tract_error)?;
        let outputs = self
            .plan
            .run(tvec![input.into_tvalue()])
            .map_err(tract_error)?;
        match (&self.outputs, &self.info.task, &self.labels) {
            (
                Outputs::Classifier {
                    label,
                    probabilities,
                },
                Task::Classifier { classes },
                Some(index),
            ) => {
                scores.probabilities = float_block(
                    &outputs[*probabilities],
                    rows,
                    classes.len(),
                    "probabilities",
                )?;
                scores.label_index = match label {
                    Some(label) => index.indices(&outputs[*label], rows)?,
                    None => first_arg_max(&scores.probabilities, classes.len()),
                };
            }
            (Outputs::Regressor { values }, Task::Regressor { targets }, _) => {
                scores.values = float_block(&outputs[*values], rows, *targets, "values")?;
            }
            _ => unreachable!("outputs and task are derived together at load"),
        }
        Ok(scores)
    }
}
