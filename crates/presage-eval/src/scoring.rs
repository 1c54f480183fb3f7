//! The job's model (or a challenger) scoring backtest features.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Schema};
use presage_job::{BatchScorer, JobError, JobSpec, load_model};
use presage_model::{OutputKind, Task as ModelTask, output_fields};

use crate::EvalError;
use crate::metrics::Task;

/// A job as a backtest sees it.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// The job: sources, feature SQL, model.
    pub spec: JobSpec,
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
    /// Loads `path`, checks that its `inputs` are numeric columns of `schema` (the
    /// feature query's output), and finds the field that is the score.
    pub fn load(
        name: &str,
        path: &Path,
        inputs: &[String],
        renames: &BTreeMap<String, String>,
        schema: &Schema,
        query: &str,
        default: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<EvalModel, EvalError> {
        let (model, _) = load_model(name, path)?;
        let info = model.info().clone();
        if info.n_features != inputs.len() {
            return Err(JobError::InputCount {
                model: name.to_owned(),
                expected: info.n_features,
                configured: inputs.len(),
                inputs: inputs.join(", "),
            }
            .into());
        }
        let (task, kind) = match &info.task {
            ModelTask::Classifier { classes } if classes.len() == 2 => {
                (Task::Classification, OutputKind::Probability)
            }
            ModelTask::Regressor { targets: 1 } => (Task::Regression, OutputKind::Value),
            ModelTask::Classifier { classes } => {
                return Err(EvalError::Task {
                    model: name.to_owned(),
                    task: format!("a classifier with {} classes", classes.len()),
                });
            }
            ModelTask::Regressor { targets } => {
                return Err(EvalError::Task {
                    model: name.to_owned(),
                    task: format!("a regressor with {targets} targets"),
                });
            }
        };
        let mut outputs = output_fields(&info);
        for field in &mut outputs {
            if let Some(to) = renames.get(&field.name) {
                field.name = to.clone();
            }
        }
        let score_index = outputs
            .iter()
            .position(|o| o.kind == kind)
            .expect("binary classifiers and regressors have a score field");
        let default_score = default
            .and_then(|d| d.get(&outputs[score_index].name))
            .and_then(serde_json::Value::as_f64);
        let scorer = BatchScorer::new(model, name, outputs, query, schema, inputs)?;
        Ok(EvalModel {
            name: name.to_owned(),
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
    let spec = &job.spec;
    EvalModel::load(
        &spec.model.name,
        &spec.model.path,
        &spec.model.inputs,
        &spec.model.outputs,
        schema,
        &spec.features.name,
        job.default.as_ref(),
    )
}
