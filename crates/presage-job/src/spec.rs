use presage_data::{FeatureSpec, SourceSpec, StorageOptions};
use presage_model::ModelSpec;

/// A job, resolved from the config: everything one run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The job's name (also its folder in the store).
    pub name: String,
    /// The feature query.
    pub features: FeatureSpec,
    /// Where the predictions come from: a model scoring the feature rows, or columns
    /// of rows that already hold predictions.
    pub predictor: Predictor,
    /// Every configured source; a run opens only those its SQL reads.
    pub sources: Vec<SourceSpec>,
    /// How many versions to keep on disk, the current one included.
    pub keep_versions: usize,
    /// How many blocked runs the embedded store keeps for inspection.
    pub keep_blocked: usize,
    /// Gates that must pass before publish.
    pub checks: Checks,
    /// Set for a ranked-list job: the feature rows are candidates and each entity's
    /// prediction is its best `top_k` items.
    pub ranked: Option<RankedSpec>,
    /// Where each published version's predictions are copied, if anywhere.
    pub export: Option<ExportSpec>,
}

/// A destination for published predictions (`[jobs.NAME] export = "s3://…"`): each
/// version lands under `<destination>/version=<id>/` as `predictions.parquet` and
/// `manifest.json`, so analysts can query what was served.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSpec {
    /// A local folder or an object-storage prefix.
    pub destination: String,
    /// Settings of the destination's store (`[storage."s3://bucket"]`).
    pub storage: StorageOptions,
}

/// Where a job's predictions come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictor {
    /// A model scores every feature row.
    Model(ModelSpec),
    /// The feature rows already hold predictions, computed by another system (Spark,
    /// BigQuery, dbt): their columns are checked and published as they are.
    Imported(ImportedPredictions),
}

impl Predictor {
    /// The model, for a job that scores with one.
    pub fn model(&self) -> Option<&ModelSpec> {
        match self {
            Predictor::Model(model) => Some(model),
            Predictor::Imported(_) => None,
        }
    }
}

/// Predictions read from a source (`[jobs.NAME] predictions = "SOURCE"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedPredictions {
    /// The source holding them.
    pub source: String,
    /// The prediction columns stored per key; empty: every column but the key, the
    /// item and `as_of_column`.
    pub columns: Vec<String>,
    /// A timestamp column saying when each row's features were computed: the
    /// version's `features_as_of` is its oldest value. `None`: the run's `--as-of`.
    pub as_of_column: Option<String>,
    /// For a ranked-list job: the column holding each candidate's score.
    pub score: Option<String>,
}

/// A ranked-list job (recommendations): the feature SQL yields candidate rows
/// `(key, item, features…)`, the model scores each, and the job keeps each entity's
/// `top_k` items by score as its prediction `{"items":[{"item","score"},…]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedSpec {
    /// The column naming the candidate item (a string or an integer).
    pub item: String,
    /// How many items to keep per entity.
    pub top_k: usize,
}

/// Publish gates (`[jobs.NAME.checks]`); `None` disables a check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checks {
    /// At least this many predictions.
    pub min_rows: Option<u64>,
    /// Relative change of the row count against the previous version, at most.
    pub max_row_change: Option<f64>,
    /// Fraction of null or NaN values in any output, at most.
    pub max_null_fraction: Option<f64>,
    /// Population stability index of each numeric output against the previous
    /// version, at most (10 quantile bins of the previous version).
    pub max_psi: Option<f64>,
    /// SQL whose first column lists keys that must all have a prediction
    /// (`{{as_of}}` is rendered as in the feature SQL).
    pub expected_keys: Option<String>,
}
