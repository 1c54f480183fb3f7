use presage_data::DataError;
use presage_model::ScoreError;
use presage_store::{CheckResult, StoreError};

/// Why a run did not publish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Sources or feature SQL failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model could not be loaded or scored, or the feature columns do not fit
    /// it or the job (missing, wrong type).
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// Writing or publishing the version failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key is null.
    #[error("key column `{column}` of `{query}` is null in row {row}")]
    NullKey {
        /// The feature set.
        query: String,
        /// The key column.
        column: String,
        /// The row (0-based, in query output order).
        row: u64,
    },
    /// A key appears more than once.
    #[error(
        "key column `{column}` of `{query}` has duplicate key `{key}`; each entity needs exactly one row"
    )]
    DuplicateKey {
        /// The feature set.
        query: String,
        /// The key column.
        column: String,
        /// The repeated key.
        key: String,
    },
    /// A candidate item is null (ranked-list jobs).
    #[error("item column `{column}` of `{query}` is null in row {row}")]
    NullItem {
        /// The feature set.
        query: String,
        /// The item column.
        column: String,
        /// The row (0-based, in query output order).
        row: u64,
    },
    /// One entity has the same candidate item twice (ranked-list jobs).
    #[error(
        "feature SQL of `{query}` yields item `{item}` twice for key `{key}`; each (`{key_column}`, `{item_column}`) pair needs at most one row"
    )]
    DuplicateCandidate {
        /// The feature set.
        query: String,
        /// The key column.
        key_column: String,
        /// The item column.
        item_column: String,
        /// The entity.
        key: String,
        /// The repeated item.
        item: String,
    },
    /// A ranked-list job's model has no single score to rank by.
    #[error(
        "model `{model}` has no single score to rank items by (a binary classifier's `probability` or a regressor's `value`); its outputs: {available}"
    )]
    NoRankingScore {
        /// The model's name.
        model: String,
        /// The model's outputs.
        available: String,
    },
    /// A source of predictions has no column besides the key (and item).
    #[error(
        "source `{source_name}` holds no prediction column besides the key; its columns: {available}"
    )]
    NoPredictionColumns {
        /// The source.
        source_name: String,
        /// Its columns.
        available: String,
    },
    /// The job's `features_as_of` column has no value in any row.
    #[error("column `{column}` of `{query}` (the job's `features_as_of`) is null in every row")]
    NoAsOf {
        /// The source.
        query: String,
        /// The column.
        column: String,
    },
    /// A check could not be evaluated (unreadable previous version, bad query).
    #[error("check `{check}`: {message}")]
    CheckFailed {
        /// The check.
        check: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A gate failed; nothing was published.
    #[error("publish blocked by {}: {kept}", failed_names(.checks))]
    Blocked {
        /// Every check with its value.
        checks: Vec<CheckResult>,
        /// What happened to the staged version, as the store reports it (kept for
        /// inspection, or deleted).
        kept: String,
    },
}

fn failed_names(checks: &[CheckResult]) -> String {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}
