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
    /// The file's extension names no format presage reads.
    #[error(
        "model file `{path}` has {}; accepted: {}",
        extension_text(.extension.as_deref()),
        crate::ModelFormat::accepted_extensions()
    )]
    UnknownExtension {
        /// The model file.
        path: PathBuf,
        /// Its extension, if it has one.
        extension: Option<String>,
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
    /// A `.json` file that is neither an XGBoost nor a CatBoost JSON model (or not JSON).
    #[error("`{path}` is not an XGBoost JSON or CatBoost JSON model: {reason}")]
    NotAJsonModel {
        /// The model file.
        path: PathBuf,
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

fn extension_text(extension: Option<&str>) -> String {
    match extension {
        Some(extension) => format!("unknown extension `.{extension}`"),
        None => "no extension".to_owned(),
    }
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

/// Why feature rows could not be scored with a configured model: the model failed
/// to load or score, or the config and the feature columns do not fit it. Every
/// variant but a scoring failure is found before a row is read.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The model could not be loaded or failed to score.
    #[error("model `{model}`")]
    Model {
        /// The model's name in the config.
        model: String,
        /// What failed.
        #[source]
        source: ModelError,
    },
    /// The model expects a different number of inputs than configured.
    #[error(
        "model `{model}` takes {expected} input features but `inputs` lists {configured}: {inputs}"
    )]
    InputCount {
        /// The model's name.
        model: String,
        /// What the model file says.
        expected: usize,
        /// What the config lists.
        configured: usize,
        /// The configured inputs.
        inputs: String,
    },
    /// A config rename names an output the model does not have.
    #[error("model `{model}` has no output `{output}` to rename; it has: {available}")]
    UnknownOutput {
        /// The model's name.
        model: String,
        /// The configured name.
        output: String,
        /// The model's outputs.
        available: String,
    },
    /// A column the scorer (or its caller) needs is not in the feature query's output.
    #[error("feature SQL of `{query}` has no column `{column}` ({role}); it has: {available}")]
    MissingColumn {
        /// The feature set.
        query: String,
        /// The missing column.
        column: String,
        /// Why it is needed: `key`, `item` or `model input`.
        role: &'static str,
        /// The columns the query does return.
        available: String,
    },
    /// A column has a type the scorer (or its caller) cannot use.
    #[error("column `{column}` of `{query}` has type {found}; expected {expected}")]
    ColumnType {
        /// The feature set.
        query: String,
        /// The column.
        column: String,
        /// Its type.
        found: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// Names as an error message lists them: `` `a`, `b` ``.
pub(crate) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
