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
    /// The model uses an operator presage cannot evaluate; found at load, never
    /// mid-run.
    #[error("{0}")]
    UnsupportedOperator(Box<UnsupportedOperator>),
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

/// An operator no engine implements, where it sits in which model. Tree ensembles
/// are native wherever they sit, so the general ONNX engine (tract) is the one
/// that refuses.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{path}` uses operator `{op}` (domain `{domain}`, opset {opset}) in node `{node}`, which the general ONNX engine (tract) does not implement"
)]
pub struct UnsupportedOperator {
    /// The model file.
    pub path: PathBuf,
    /// The operator type, e.g. `SVMClassifier`.
    pub op: String,
    /// Its operator-set domain (`ai.onnx`, `ai.onnx.ml`, ...).
    pub domain: String,
    /// The version of that domain the model imports (`?` when it imports none).
    pub opset: String,
    /// The node's name in the graph.
    pub node: String,
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
    /// The model takes one unnamed matrix and the config lists no feature columns.
    #[error(
        "model `{model}` takes {features} input features without names; list the feature columns in `inputs`, in the model's order"
    )]
    InputsNotListed {
        /// The model's name.
        model: String,
        /// How many features it takes.
        features: usize,
    },
    /// `inputs` does not name the model's named inputs.
    #[error(
        "model `{model}` reads the feature columns named like its inputs ({inputs}), but `inputs` lists {listed}"
    )]
    InputNames {
        /// The model's name.
        model: String,
        /// The model's input names.
        inputs: String,
        /// What the config lists.
        listed: String,
    },
    /// A named input takes several columns, so `inputs` must list every column.
    #[error(
        "model `{model}` input `{input}` takes {width} columns; list all {features} feature columns in `inputs`, in the model's order"
    )]
    InputWidth {
        /// The model's name.
        model: String,
        /// The input.
        input: String,
        /// Its columns.
        width: usize,
        /// Columns of all inputs.
        features: usize,
    },
    /// A string feature holds a value the model's encoders refuse (exported with
    /// `handle_unknown="error"`).
    #[error(
        "column `{column}` of `{query}` holds `{value}`, a category model `{model}` does not know ({why})"
    )]
    UnknownCategory {
        /// The feature set.
        query: String,
        /// The model's name.
        model: String,
        /// The column.
        column: String,
        /// The value, shortened.
        value: String,
        /// Which encoder refuses it, and some of the categories it knows.
        why: String,
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
