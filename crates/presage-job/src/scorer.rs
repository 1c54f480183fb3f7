//! Scoring Arrow batches: feature columns in, prediction columns out.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use presage_model::{Model, OutputField, score_parallel, scores_to_arrow};

use crate::JobError;
use crate::matrix;

/// Scores record batches with a model: picks the input columns, builds the dense
/// matrix, scores it on all cores, and returns one array per prediction field.
pub struct BatchScorer {
    model: Box<dyn Model>,
    model_name: String,
    query: String,
    outputs: Vec<OutputField>,
    inputs: Vec<usize>,
    buffer: Vec<f32>,
}

impl BatchScorer {
    /// A scorer for batches of `schema`; fails, naming the column, when an input is
    /// missing or not numeric, before any row is read.
    pub fn new(
        model: Box<dyn Model>,
        model_name: &str,
        outputs: Vec<OutputField>,
        query: &str,
        schema: &Schema,
        input_names: &[String],
    ) -> Result<BatchScorer, JobError> {
        let mut inputs = Vec::with_capacity(input_names.len());
        for name in input_names {
            let i = column_index(schema, query, name, "model input")?;
            let data_type = schema.field(i).data_type();
            if !matrix::is_numeric(data_type) {
                return Err(JobError::ColumnType {
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
            model_name: model_name.to_owned(),
            query: query.to_owned(),
            outputs,
            inputs,
            buffer: Vec::new(),
        })
    }

    /// The prediction fields, in the order `score` returns them.
    pub fn outputs(&self) -> &[OutputField] {
        &self.outputs
    }

    /// Scores one batch on all cores (blocking).
    pub fn score(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, JobError> {
        matrix::fill(batch, &self.inputs, &mut self.buffer).map_err(|e| JobError::ColumnType {
            query: self.query.clone(),
            column: self
                .inputs
                .iter()
                .map(|&i| batch.schema().field(i).name().clone())
                .collect::<Vec<_>>()
                .join(", "),
            found: e.to_string(),
            expected: "numbers castable to float32",
        })?;
        let scores = score_parallel(self.model.as_ref(), &self.buffer, batch.num_rows()).map_err(
            |source| JobError::Model {
                model: self.model_name.clone(),
                source,
            },
        )?;
        Ok(scores_to_arrow(self.model.info(), &self.outputs, &scores))
    }
}

/// The index of `column` in `schema`, or an error listing the columns there are.
pub fn column_index(
    schema: &Schema,
    query: &str,
    column: &str,
    role: &'static str,
) -> Result<usize, JobError> {
    schema
        .index_of(column)
        .map_err(|_| JobError::MissingColumn {
            query: query.to_owned(),
            column: column.to_owned(),
            role,
            available: presage_data::column_list(schema),
        })
}
