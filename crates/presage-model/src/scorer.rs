//! Scoring Arrow batches: feature columns in, prediction columns out.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::Schema;

use crate::error::quoted_list;
use crate::matrix::{self, Feed, FillError};
use crate::{
    Categories, InputKind, LoadedModel, OutputField, ScoreError, score_parallel, scores_to_arrow,
};

/// Scores record batches with a model: picks the input columns, builds the dense
/// matrix, scores it on all cores, and returns one array per prediction field.
///
/// The columns are bound once, from the schema, so a missing or non-numeric input
/// fails before any row is read; the matrix buffer is reused from batch to batch.
pub struct BatchScorer {
    model: LoadedModel,
    query: String,
    feeds: Vec<Feed>,
    buffer: Vec<f32>,
}

impl BatchScorer {
    /// A scorer for batches of `schema`, the output of the feature query `query`;
    /// fails, naming the column, when one of the model's inputs is missing or of a
    /// type it cannot take (numbers for number inputs, strings for string inputs).
    pub fn new(
        model: LoadedModel,
        query: &str,
        schema: &Schema,
    ) -> Result<BatchScorer, ScoreError> {
        // The kind of each matrix column, from the model's named inputs.
        let mut kinds: Vec<Option<Arc<Categories>>> = Vec::new();
        for input in &model.info().inputs {
            let categories = match &input.kind {
                InputKind::Number => None,
                InputKind::Category(categories) => Some(Arc::new(categories.clone())),
            };
            kinds.extend(std::iter::repeat_n(categories, input.width));
        }
        let mut feeds = Vec::with_capacity(model.spec().inputs.len());
        for (j, name) in model.spec().inputs.iter().enumerate() {
            let column = column_index(schema, query, name, "model input")?;
            let data_type = schema.field(column).data_type();
            let categories = kinds.get(j).cloned().flatten();
            let (fits, expected) = match categories {
                Some(_) => (
                    matrix::is_string(data_type),
                    "strings (the model input of this name takes strings)",
                ),
                None => (matrix::is_numeric(data_type), "a number (model input)"),
            };
            if !fits {
                return Err(ScoreError::ColumnType {
                    query: query.to_owned(),
                    column: name.clone(),
                    found: data_type.to_string(),
                    expected,
                });
            }
            feeds.push(Feed { column, categories });
        }
        Ok(BatchScorer {
            model,
            query: query.to_owned(),
            feeds,
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
        matrix::fill(batch, &self.feeds, &mut self.buffer)
            .map_err(|e| self.fill_error(batch, e))?;
        let model = self.model.model();
        let scores = score_parallel(model, &self.buffer, batch.num_rows()).map_err(|source| {
            ScoreError::Model {
                model: self.model.spec().name.clone(),
                source,
            }
        })?;
        Ok(scores_to_arrow(model.info(), self.model.outputs(), &scores))
    }

    fn fill_error(&self, batch: &RecordBatch, error: FillError) -> ScoreError {
        let column_name = |i: usize| batch.schema().field(i).name().clone();
        match error {
            FillError::Cast(column, e) => ScoreError::ColumnType {
                query: self.query.clone(),
                column: column_name(column),
                found: e.to_string(),
                expected: "values the model input can take",
            },
            FillError::UnknownCategory { column, value } => {
                let categories = self
                    .feeds
                    .iter()
                    .find(|f| f.column == column)
                    .and_then(|f| f.categories.clone())
                    .unwrap_or_default();
                let mut known: Vec<&str> = categories.codes.keys().map(String::as_str).collect();
                known.sort_unstable();
                let shown = known.len().min(10);
                let mut known_text = quoted_list(known[..shown].iter().copied());
                if known.len() > shown {
                    known_text.push_str(&format!(" and {} more", known.len() - shown));
                }
                ScoreError::UnknownCategory {
                    query: self.query.clone(),
                    model: self.model.spec().name.clone(),
                    column: column_name(column),
                    value: value.chars().take(64).collect(),
                    why: format!(
                        "its {} was exported to refuse unknown categories; it knows {known_text}",
                        categories.encoders.join(", ")
                    ),
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray, Float32Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Float32Type, Int64Type};
    use serde_json::Value;

    use super::*;
    use crate::spec::tests::imputer_logreg;

    const INPUTS: [&str; 5] = ["f0", "f1", "f2", "f3", "f4"];

    fn scorer_error(schema: &Schema) -> ScoreError {
        let model = imputer_logreg(&INPUTS, &[]).load().expect("loading");
        match BatchScorer::new(model, "users", schema) {
            Ok(_) => panic!("bound columns of {schema:?}"),
            Err(e) => e,
        }
    }

    fn float_fields(names: &[&str]) -> Vec<Field> {
        names
            .iter()
            .map(|&n| Field::new(n, DataType::Float64, true))
            .collect()
    }

    #[test]
    fn a_missing_input_column_is_named_with_the_columns_there_are() {
        let mut fields = vec![Field::new("key", DataType::Utf8, false)];
        fields.extend(float_fields(&["f0", "f1", "f2", "f4"]));
        let error = scorer_error(&Schema::new(fields));
        assert!(
            matches!(error, ScoreError::MissingColumn { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "feature SQL of `users` has no column `f3` (model input); it has: \
             `key`, `f0`, `f1`, `f2`, `f4`"
        );
    }

    #[test]
    fn a_non_numeric_input_column_is_named_with_its_type() {
        let mut fields = float_fields(&["f0", "f1", "f2", "f3"]);
        fields.push(Field::new("f4", DataType::Utf8, true));
        let error = scorer_error(&Schema::new(fields));
        assert!(matches!(error, ScoreError::ColumnType { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "column `f4` of `users` has type Utf8; expected a number (model input)"
        );
    }

    /// The rows and answers onnxruntime gave in `tests/data/imputer_logreg.expected.json`,
    /// with missing inputs as Arrow nulls.
    fn expected_rows() -> (RecordBatch, Vec<i64>, Vec<f32>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/imputer_logreg.expected.json"
        );
        let doc: Value =
            serde_json::from_str(&fs_err::read_to_string(path).expect("reading")).expect("JSON");
        let rows = doc["inputs"].as_array().expect("inputs");
        let column =
            |j: usize| -> Vec<Option<f64>> { rows.iter().map(|row| row[j].as_f64()).collect() };
        // The key first and the inputs out of order: the scorer binds columns by name.
        // `f0` is Float32 and the rest Float64: both become the f32 matrix.
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("f4", DataType::Float64, true),
            Field::new("f0", DataType::Float32, true),
            Field::new("f1", DataType::Float64, true),
            Field::new("f2", DataType::Float64, true),
            Field::new("f3", DataType::Float64, true),
        ]));
        let f32_column: Float32Array = column(0).iter().map(|v| v.map(|v| v as f32)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..rows.len()).map(|i| format!("u{i}")),
                )),
                Arc::new(Float64Array::from(column(4))),
                Arc::new(f32_column),
                Arc::new(Float64Array::from(column(1))),
                Arc::new(Float64Array::from(column(2))),
                Arc::new(Float64Array::from(column(3))),
            ],
        )
        .expect("a batch");
        let labels = doc["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|l| l.as_i64().expect("integer labels"))
            .collect();
        let probabilities = doc["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|p| p[1].as_f64().expect("a probability") as f32)
            .collect();
        (batch, labels, probabilities)
    }

    #[test]
    fn scores_batches_by_column_name_with_nulls_as_missing() {
        let (batch, labels, probabilities) = expected_rows();
        assert!(
            batch.column(1).null_count() > 0,
            "the rows have missing inputs"
        );
        let model = imputer_logreg(&INPUTS, &[("probability", "churn_p")])
            .load()
            .expect("loading");
        let mut scorer = BatchScorer::new(model, "users", &batch.schema()).expect("binding");
        let names: Vec<&str> = scorer.outputs().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["label", "churn_p"]);
        // Twice: the reused buffer must not carry anything over.
        for _ in 0..2 {
            let arrays = scorer.score(&batch).expect("scoring");
            let got_labels = arrays[0].as_primitive::<Int64Type>();
            assert_eq!(got_labels, &Int64Array::from(labels.clone()));
            let got = arrays[1].as_primitive::<Float32Type>();
            assert_eq!(got.len(), probabilities.len());
            for (row, (g, want)) in got.values().iter().zip(&probabilities).enumerate() {
                assert!(
                    (g - want).abs() <= 1e-5,
                    "row {row}: got {g}, expected {want}"
                );
            }
        }
    }

    fn strict_onehot(inputs: &[&str]) -> crate::ModelSpec {
        crate::ModelSpec {
            name: "plans".to_owned(),
            path: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/strict_onehot.onnx"),
            inputs: inputs.iter().map(|&i| i.to_owned()).collect(),
            outputs: Default::default(),
        }
    }

    fn plan_batch(plans: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("age", DataType::Float64, true),
            Field::new("plan", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![30.0; plans.len()])),
                Arc::new(StringArray::from(plans.to_vec())),
            ],
        )
        .expect("a batch")
    }

    #[test]
    fn string_columns_bind_by_name_and_an_unknown_category_names_column_and_value() {
        let model = strict_onehot(&[]).load().expect("loading");
        assert_eq!(model.spec().inputs, ["plan", "age"]);
        let batch = plan_batch(&[Some("pro"), Some("team")]);
        let mut scorer = BatchScorer::new(model, "accounts", &batch.schema()).expect("binding");
        let arrays = scorer.score(&batch).expect("scoring known plans");
        assert_eq!(arrays[0].len(), 2);

        let error = scorer
            .score(&plan_batch(&[Some("pro"), Some("enterprise")]))
            .expect_err("an unknown plan");
        assert_eq!(
            error.to_string(),
            "column `plan` of `accounts` holds `enterprise`, a category model `plans` does not \
             know (its OneHotEncoder was exported to refuse unknown categories; it knows \
             `basic`, `pro`, `team`)"
        );
    }

    #[test]
    fn named_inputs_are_checked_against_the_columns_listed() {
        // Listed in another order: bound by name all the same.
        let model = strict_onehot(&["age", "plan"]).load().expect("loading");
        assert_eq!(model.spec().inputs, ["plan", "age"]);
        let Err(error) = strict_onehot(&["age", "tier"]).load() else {
            panic!("`tier` is no input of the model");
        };
        assert_eq!(
            error.to_string(),
            "model `plans` reads the feature columns named like its inputs (`plan`, `age`), \
             but `inputs` lists `age`, `tier`"
        );
        let Err(error) = imputer_logreg(&[], &[]).load() else {
            panic!("a model without input names loaded without `inputs`");
        };
        assert_eq!(
            error.to_string(),
            "model `churn` takes 5 input features without names; list the feature columns \
             in `inputs`, in the model's order"
        );
        let schema = Schema::new(vec![
            Field::new("age", DataType::Float64, true),
            Field::new("plan", DataType::Int64, true),
        ]);
        let Err(error) = BatchScorer::new(model, "accounts", &schema) else {
            panic!("an integer column bound to a string input");
        };
        assert_eq!(
            error.to_string(),
            "column `plan` of `accounts` has type Int64; expected strings (the model input of \
             this name takes strings)"
        );
    }
}
