use presage_data::DataError;
use presage_model::ScoreError;

use crate::metrics::MetricsError;

/// Why a backtest or staleness report could not be made.
///
/// Input mistakes (labels, cadences, challenger) are found before any feature is
/// computed and name the column, value or model at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading sources or running the feature SQL failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The model could not be loaded or scored, or the features do not fit it.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// The labels lack a column.
    #[error("labels `{labels}` have no column `{column}` ({role}); columns: {available}")]
    LabelColumn {
        /// The labels source.
        labels: String,
        /// The missing column.
        column: String,
        /// What it is for: key, time or label.
        role: &'static str,
        /// The columns they have.
        available: String,
    },
    /// A labels column has an unusable type.
    #[error("labels `{labels}`: column `{column}` is {found}; expected {expected}")]
    LabelType {
        /// The labels source.
        labels: String,
        /// The column.
        column: String,
        /// Its type.
        found: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A labels row has no key, time or label.
    #[error("labels `{labels}`: row {row} has no `{column}`")]
    LabelNull {
        /// The labels source.
        labels: String,
        /// The row, counted from 0 in the source's order.
        row: usize,
        /// The empty column.
        column: String,
    },
    /// No label rows fall in the window.
    #[error("labels `{labels}`: no rows with `{column}` in {window}")]
    NoLabels {
        /// The labels source.
        labels: String,
        /// The time column.
        column: String,
        /// The window, as given.
        window: String,
    },
    /// Label times fall outside the span the sources' data covers.
    #[error(
        "labels `{labels}`: {count} rows have `{column}` outside the data's range {data_range} (first: {first}); narrow the window with --from / --to"
    )]
    LabelsOutsideData {
        /// The labels source.
        labels: String,
        /// The time column.
        column: String,
        /// Rows outside.
        count: usize,
        /// The first such time.
        first: String,
        /// The earliest and latest timestamp in the sources (`a .. b`).
        data_range: String,
    },
    /// Labels are not what the model predicts (a class label for a regressor, 0/1 …).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A cadence or lag does not parse.
    #[error("cadence `{text}`: {message}; examples: `0` (online), `1h`, `6h`, `1d`, `7d`")]
    Cadence {
        /// The item as given.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// The lag does not parse.
    #[error("lag `{text}`: {message}; examples: `0s`, `30m`, `2h`")]
    Lag {
        /// As given.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// The model's task is not one a backtest can score.
    #[error(
        "model `{model}` is {task}; backtests evaluate binary classifiers (probability of the second class) and single-target regressors"
    )]
    Task {
        /// The model.
        model: String,
        /// What it is.
        task: String,
    },
    /// The challenger cannot be scored on the job's features.
    #[error("challenger `{challenger}`: {reason}")]
    Challenger {
        /// The challenger as given.
        challenger: String,
        /// Why not.
        reason: String,
    },
}
