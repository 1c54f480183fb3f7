use std::path::PathBuf;

/// Why a model could not be loaded or could not score.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file could not be read.
    #[error("reading model `{path}`")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a model in any supported format, or is malformed.
    #[error("`{path}` is not a valid {format} model: {reason}")]
    NotAModel {
        /// The model file (or a description of where the bytes came from).
        path: PathBuf,
        /// The format it was read as.
        format: crate::ModelFormat,
        /// What was wrong, in a few words.
        reason: String,
    },
    /// The model uses an operator presage cannot evaluate; found at load, never mid-run.
    #[error("model `{path}` uses unsupported operator `{op}` (node `{node}`)")]
    UnsupportedOperator {
        /// The model file.
        path: PathBuf,
        /// The operator type, e.g. `SVMClassifier`.
        op: String,
        /// The node's name in the graph.
        node: String,
    },
    /// `score` was given a matrix that does not match the model's inputs.
    #[error(
        "feature matrix has {found} values for {rows} rows, expected {rows} × {expected} features"
    )]
    WrongShape {
        /// Number of features the model expects per row.
        expected: usize,
        /// Number of rows given.
        rows: usize,
        /// Number of values given.
        found: usize,
    },
    /// The engine failed while scoring.
    #[error("scoring failed: {0}")]
    Scoring(String),
}

impl ModelError {
    /// `Ok` when `features` holds exactly `rows` rows of `n_features` values.
    pub fn check_shape(features: &[f32], rows: usize, n_features: usize) -> Result<(), ModelError> {
        if features.len() == rows * n_features {
            Ok(())
        } else {
            Err(ModelError::WrongShape {
                expected: n_features,
                rows,
                found: features.len(),
            })
        }
    }
}
