use presage_data::{FeatureSpec, SourceSpec};
use presage_model::ModelSpec;

/// A job, resolved from the config: everything one run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The job's name (also its folder in the store).
    pub name: String,
    /// The feature query.
    pub features: FeatureSpec,
    /// The model and how its outputs are named.
    pub model: ModelSpec,
    /// Every configured source; a run opens only those its SQL reads.
    pub sources: Vec<SourceSpec>,
    /// How many versions to keep on disk, the current one included.
    pub keep_versions: usize,
    /// Gates that must pass before publish.
    pub checks: Checks,
    /// Set for a ranked-list job: the feature rows are candidates and each entity's
    /// prediction is its best `top_k` items.
    pub ranked: Option<RankedSpec>,
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
