//! The job's model (or a challenger) scoring backtest features.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema};
use presage_data::{FeatureSpec, SourceSpec};
use presage_model::{BatchScorer, ModelSpec, OutputKind, Task as ModelTask};

use crate::EvalError;
use crate::metrics::Task;

/// A job as a backtest sees it.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// The job's name.
    pub name: String,
    /// Every configured source (the feature SQL may read any of them).
    pub sources: Vec<SourceSpec>,
    /// The feature query.
    pub features: FeatureSpec,
    /// The job's model.
    pub model: ModelSpec,
    /// The job's answer for unknown keys, when configured: what a request for an
    /// entity missing from a version would have been served.
    pub default: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A model that turns feature batches into one score per row.
pub(crate) struct EvalModel {
    /// How it is named in reports.
    pub name: String,
    pub task: Task,
    /// The job's `default` for this model's score field, when there is one.
    pub default_score: Option<f64>,
    scorer: BatchScorer,
    score_index: usize,
}

impl EvalModel {
    /// Loads `spec`'s model, checks that its inputs are numeric columns of `schema`
    /// (the output of the feature query `query`), and finds the field that is the
    /// score.
    pub fn load(
        spec: &ModelSpec,
        schema: &Schema,
        query: &str,
        default: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<EvalModel, EvalError> {
        let model = spec.load()?;
        let (task, kind) = match &model.info().task {
            ModelTask::Classifier { classes } if classes.len() == 2 => {
                (Task::Classification, OutputKind::Probability)
            }
            ModelTask::Regressor { targets: 1 } => (Task::Regression, OutputKind::Value),
            ModelTask::Classifier { classes } => {
                return Err(EvalError::Task {
                    model: spec.name.clone(),
                    task: format!("a classifier with {} classes", classes.len()),
                });
            }
            ModelTask::Regressor { targets } => {
                return Err(EvalError::Task {
                    model: spec.name.clone(),
                    task: format!("a regressor with {targets} targets"),
                });
            }
        };
        let outputs = model.outputs();
        let score_index = outputs
            .iter()
            .position(|o| o.kind == kind)
            .expect("binary classifiers and regressors have a score field");
        let default_score = default
            .and_then(|d| d.get(&outputs[score_index].name))
            .and_then(serde_json::Value::as_f64);
        let scorer = BatchScorer::new(model, query, schema)?;
        Ok(EvalModel {
            name: spec.name.clone(),
            task,
            default_score,
            scorer,
            score_index,
        })
    }

    /// One score per row of `batch`: the positive class's probability, or the value.
    pub fn score(&mut self, batch: &RecordBatch) -> Result<Vec<f64>, EvalError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let arrays = self.scorer.score(batch)?;
        let scores =
            cast(&arrays[self.score_index], &DataType::Float64).expect("scores are float32");
        Ok(scores.as_primitive::<Float64Type>().values().to_vec())
    }
}

/// The job's model, as the job config names it.
pub(crate) fn job_model(job: &EvalJob, schema: &Schema) -> Result<EvalModel, EvalError> {
    EvalModel::load(&job.model, schema, &job.features.name, job.default.as_ref())
}
