//! Loading models and scoring Arrow batches of feature rows.
//!
//! Every model, whatever its file format, sits behind one narrow trait, [`Model`]:
//! it takes a dense, row-major `f32` matrix whose columns are the model's inputs in
//! order (NaN marks a missing value) and returns [`Scores`]. Dense `f32` is what
//! every supported format (ONNX, XGBoost, LightGBM, CatBoost) computes on, so Arrow
//! feature columns are converted once, by [`BatchScorer`], and every engine stays
//! free of Arrow.
//!
//! Two engines implement it: a native tree-ensemble evaluator (ONNX-ML TreeEnsemble*,
//! XGBoost JSON, CatBoost JSON, LightGBM text) and general ONNX graphs on tract.
//! [`load`] picks the engine from the file: its extension, and for `.json` the
//! top-level keys, which tell XGBoost's JSON from CatBoost's. [`score_parallel`]
//! splits rows over all cores.
//!
//! The one scoring path every command shares (`run`, `score`, `backtest`,
//! `staleness`) lives here too: [`ModelSpec::load`] loads the file and checks the
//! configured input count and output renames; [`BatchScorer::new`] binds the feature
//! columns and checks they exist and are numeric before any row is read;
//! [`BatchScorer::score`] turns each batch into one Arrow array per output.

mod error;
mod load;
mod matrix;
mod onnx;
mod output;
mod parallel;
mod scorer;
mod spec;
mod tree;

pub use error::{ModelError, ScoreError, UnsupportedOperator};
pub use load::{ModelFile, ModelFormat, load, load_bytes};
pub use output::{OutputField, OutputKind};
pub(crate) use output::{output_fields, scores_to_arrow};
pub use parallel::score_parallel;
pub use scorer::{BatchScorer, column_index};
pub use spec::{LoadedModel, ModelSpec};

/// What a model predicts, known at load time.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// A classifier: a label per row and one probability per class.
    Classifier {
        /// Class labels in probability-column order (`probabilities[i]` is the
        /// probability of `classes[i]`).
        classes: ClassLabels,
    },
    /// A regressor with `targets` outputs per row (usually 1).
    Regressor {
        /// Number of predicted values per row.
        targets: usize,
    },
}

/// Class labels of a classifier, as the exporter wrote them.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassLabels {
    /// Integer labels (scikit-learn, XGBoost, LightGBM usually).
    Int(Vec<i64>),
    /// String labels.
    Str(Vec<String>),
}

impl ClassLabels {
    /// Number of classes.
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Str(v) => v.len(),
        }
    }

    /// True when there are no classes (never for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is known about a loaded model before it scores a row.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The engine that scores it, for logs and manifests: `"tree"` or `"tract"`.
    pub engine: &'static str,
    /// The file format it was loaded from.
    pub format: ModelFormat,
    /// Number of input features (columns of the matrix given to [`Model::score`]).
    pub n_features: usize,
    /// The model's named inputs, in matrix-column order, when it has several or
    /// takes strings (scikit-learn pipelines with a `ColumnTransformer`); empty
    /// when it takes one unnamed matrix of `n_features` numbers.
    pub inputs: Vec<ModelInput>,
    /// Classifier or regressor, with classes or targets.
    pub task: Task,
}

/// One named input of a model with several: the matrix columns it reads and what
/// a feature column must hold to feed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInput {
    /// Its name in the model file; a feature column of this name feeds it.
    pub name: String,
    /// How many matrix columns it takes (1 for one feature column).
    pub width: usize,
    /// Numbers, or strings the model encodes.
    pub kind: InputKind,
}

/// What a model input takes.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// Numbers; NaN means missing.
    Number,
    /// Strings. The model's encoders know a fixed set of them: each value goes into
    /// the matrix as its code, and any other value as [`UNKNOWN_CATEGORY`].
    Category(Categories),
}

/// The matrix value of a string a model's encoders do not know (and of a null).
pub const UNKNOWN_CATEGORY: f32 = -1.0;

/// The strings a string input's encoders know, with the code each is fed as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Categories {
    /// Each known string and its code.
    pub codes: std::collections::HashMap<String, u32>,
    /// Whether a value outside `codes` is an error (an encoder exported with
    /// `handle_unknown="error"`) instead of the encoder's "unknown" answer.
    pub strict: bool,
    /// The encoder operators reading the input, for messages (`OneHotEncoder`).
    pub encoders: Vec<String>,
}

/// The raw result of scoring `rows` rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Number of rows scored.
    pub rows: usize,
    /// Classifier: index into the class labels of the predicted class, per row.
    pub label_index: Vec<u32>,
    /// Classifier: `rows × classes` probabilities, row-major.
    pub probabilities: Vec<f32>,
    /// Regressor: `rows × targets` values, row-major.
    pub values: Vec<f32>,
}

impl Scores {
    /// Empty scores for a whole of `rows` rows, to [`append`](Self::append) its parts to.
    pub fn with_rows(rows: usize) -> Scores {
        Scores {
            rows,
            ..Scores::default()
        }
    }

    /// Appends the rows of `part` (scores of the rows that follow these). `rows` is
    /// not changed: it is set once for the whole.
    pub fn append(&mut self, part: &Scores) {
        self.label_index.extend_from_slice(&part.label_index);
        self.probabilities.extend_from_slice(&part.probabilities);
        self.values.extend_from_slice(&part.values);
    }
}

/// A loaded model that scores dense feature rows.
///
/// Implementations must be deterministic and thread-safe: [`score_parallel`] calls
/// `score` from several threads at once on disjoint row ranges.
///
/// ```no_run
/// # fn main() -> Result<(), presage_model::ModelError> {
/// let model = presage_model::load(std::path::Path::new("model.onnx"))?.model;
/// let n = model.info().n_features;
/// let rows = vec![0.5_f32; 3 * n]; // three rows, row-major
/// let scores = model.score(&rows, 3)?;
/// assert_eq!(scores.rows, 3);
/// # Ok(()) }
/// ```
pub trait Model: Send + Sync {
    /// Shape, task and engine of the model.
    fn info(&self) -> &ModelInfo;

    /// Scores `rows` rows of `features`, a row-major matrix of
    /// `rows × info().n_features` values where NaN means missing.
    fn score(&self, features: &[f32], rows: usize) -> Result<Scores, ModelError>;
}
