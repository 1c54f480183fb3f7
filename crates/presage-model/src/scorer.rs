//! Scoring Arrow batches: feature columns in, prediction columns out.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;

use crate::error::quoted_list;
use crate::{LoadedModel, OutputField, ScoreError, matrix, score_parallel, scores_to_arrow};

/// Scores record batches with a model: picks the input columns, builds the dense
/// matrix, scores it on all cores, and returns one array per prediction field.
///
/// The columns are bound once, from the schema, so a missing or non-numeric input
/// fails before any row is read; the matrix buffer is reused from batch to batch.
pub struct BatchScorer {
    model: LoadedModel,
    query: String,
    inputs: Vec<usize>,
    buffer: Vec<f32>,
}

impl BatchScorer {
    /// A scorer for batches of `schema`, the output of the feature query `query`;
    /// fails, naming the column, when one of the model's inputs is missing or not
    /// numeric.
    pub fn new(
        model: LoadedModel,
        query: &str,
        schema: &Schema,
    ) -> Result<BatchScorer, ScoreError> {
        let mut inputs = Vec::with_capacity(model.spec().inputs.len());
        for name in &model.spec().inputs {
            let i = column_index(schema, query, name, "model input")?;
            let data_type = schema.field(i).data_type();
            if !matrix::is_numeric(data_type) {
                return Err(ScoreError::ColumnType {
                    query: query.to_owned(),
                    column: name.clone(),
                    found: data_type.to_string(),
                    expected: "a number (model input)",
                });
            }
            inputs.push(i);
        }
        Ok(BatchScorer {
            model,
            query: query.to_owned(),
            inputs,
            buffer: Vec::new(),
        })
    }

    /// The model it scores with.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The prediction fields, in the order `score` returns them.
    pub fn outputs(&self) -> &[OutputField] {
        self.model.outputs()
    }

    /// Scores one batch on all cores (blocking).
    pub fn score(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, ScoreError> {
        matrix::fill(batch, &self.inputs, &mut self.buffer).map_err(|e| {
            ScoreError::ColumnType {
                query: self.query.clone(),
                column: self
                    .inputs
                    .iter()
                    .map(|&i| batch.schema().field(i).name().clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                found: e.to_string(),
                expected: "numbers castable to float32",
            }
        })?;
        let model = self.model.model();
        let scores = score_parallel(model, &self.buffer, batch.num_rows()).map_err(|source| {
            ScoreError::Model {
                model: self.model.spec().name.clone(),
                source,
            }
        })?;
        Ok(scores_to_arrow(model.info(), self.model.outputs(), &scores))
    }
}

/// The index of `column` in `schema`, the output of the feature query `query`, or
/// an error listing the columns there are; `role` says what the column is for
/// (`key`, `item`, `model input`).
pub fn column_index(
    schema: &Schema,
    query: &str,
    column: &str,
    role: &'static str,
) -> Result<usize, ScoreError> {
    schema
        .index_of(column)
        .map_err(|_| ScoreError::MissingColumn {
            query: query.to_owned(),
            column: column.to_owned(),
            role,
            available: quoted_list(schema.fields().iter().map(|f| f.name().as_str())),
        })
}
