//! The prediction fields a model's scores become.

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};

use crate::{ClassLabels, ModelInfo, Scores, Task};

/// Which part of [`Scores`] a prediction field carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The predicted class label.
    Label,
    /// Binary classifier: the probability of the second (positive) class.
    Probability,
    /// Multiclass classifier: one probability per class, in class order.
    Probabilities,
    /// Single-target regressor: the predicted value.
    Value,
    /// Multi-target regressor: one value per target.
    Values,
}

impl OutputKind {
    /// The default field name for this kind (`label`, `probability`, ...).
    pub fn default_name(self) -> &'static str {
        match self {
            OutputKind::Label => "label",
            OutputKind::Probability => "probability",
            OutputKind::Probabilities => "probabilities",
            OutputKind::Value => "value",
            OutputKind::Values => "values",
        }
    }
}

/// One prediction field: its name (renamable by config), kind and Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputField {
    /// Field name in the prediction document and in `predictions.parquet`.
    pub name: String,
    /// What it carries.
    pub kind: OutputKind,
    /// Its Arrow type.
    pub data_type: DataType,
}

impl OutputField {
    /// The Arrow field (never nullable: every scored row has every output).
    pub fn arrow_field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), false)
    }
}

fn f32_list(width: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, false)),
        width as i32,
    )
}

/// The prediction fields of a model, with their default names: a binary classifier
/// gives `label` and `probability`, a multiclass one `label` and `probabilities`, a
/// regressor `value` (or `values` for several targets).
pub fn output_fields(info: &ModelInfo) -> Vec<OutputField> {
    let field = |kind: OutputKind, data_type: DataType| OutputField {
        name: kind.default_name().to_owned(),
        kind,
        data_type,
    };
    match &info.task {
        Task::Classifier { classes } => {
            let label_type = match classes {
                ClassLabels::Int(_) => DataType::Int64,
                ClassLabels::Str(_) => DataType::Utf8,
            };
            let probabilities = if classes.len() == 2 {
                field(OutputKind::Probability, DataType::Float32)
            } else {
                field(OutputKind::Probabilities, f32_list(classes.len()))
            };
            vec![field(OutputKind::Label, label_type), probabilities]
        }
        Task::Regressor { targets: 1 } => vec![field(OutputKind::Value, DataType::Float32)],
        Task::Regressor { targets } => vec![field(OutputKind::Values, f32_list(*targets))],
    }
}

/// Turns scores into one Arrow array per field of `fields` (from [`output_fields`],
/// possibly renamed), in the same order.
pub fn scores_to_arrow(info: &ModelInfo, fields: &[OutputField], scores: &Scores) -> Vec<ArrayRef> {
    fields
        .iter()
        .map(|field| -> ArrayRef {
            match field.kind {
                OutputKind::Label => {
                    let Task::Classifier { classes } = &info.task else {
                        unreachable!("label field on a regressor")
                    };
                    let idx = scores.label_index.iter().map(|&i| i as usize);
                    match classes {
                        ClassLabels::Int(c) => {
                            Arc::new(Int64Array::from_iter_values(idx.map(|i| c[i])))
                        }
                        ClassLabels::Str(c) => {
                            Arc::new(StringArray::from_iter_values(idx.map(|i| &c[i])))
                        }
                    }
                }
                OutputKind::Probability => Arc::new(Float32Array::from_iter_values(
                    scores.probabilities.chunks_exact(2).map(|p| p[1]),
                )),
                OutputKind::Probabilities => fixed_list(&scores.probabilities, &field.data_type),
                OutputKind::Value => Arc::new(Float32Array::from(scores.values.clone())),
                OutputKind::Values => fixed_list(&scores.values, &field.data_type),
            }
        })
        .collect()
}

fn fixed_list(values: &[f32], data_type: &DataType) -> ArrayRef {
    let DataType::FixedSizeList(item, width) = data_type else {
        unreachable!("list output with a non-list type")
    };
    Arc::new(FixedSizeListArray::new(
        item.clone(),
        *width,
        Arc::new(Float32Array::from(values.to_vec())),
        None,
    ))
}
