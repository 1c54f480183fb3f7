use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A version's id: 1 for a job's first version, then counting up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(pub u64);

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for VersionId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(VersionId)
    }
}

/// Everything recorded about a published version (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format, for readers of older versions.
    pub format: u32,
    /// The version id.
    pub id: VersionId,
    /// The job that produced it.
    pub job: String,
    /// When the predictions were computed (the run's end).
    pub created_at: DateTime<Utc>,
    /// The feature data cutoff the run used (`{{as_of}}`).
    pub features_as_of: DateTime<Utc>,
    /// The model that scored it.
    pub model: ModelInfo,
    /// The sources the features read, as they were.
    pub sources: Vec<SourceInfo>,
    /// Number of predictions (keys).
    pub rows: u64,
    /// The key column.
    pub key: KeyInfo,
    /// The prediction fields.
    pub outputs: Vec<OutputColumn>,
    /// Gates evaluated before publish.
    pub checks: Vec<CheckResult>,
    /// The score distribution of each numeric output, which the next run's `max_psi`
    /// check compares against (so drift needs no copy of the rows; the Redis store
    /// keeps none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<Distribution>,
    /// True when checks failed and `--force` published anyway.
    #[serde(default)]
    pub forced: bool,
    /// Every file of the version with its size and sha256.
    pub files: Vec<FileEntry>,
    /// The version that was current when this one was published.
    pub parent: Option<VersionId>,
    /// Seconds the run took, end to end.
    pub run_seconds: f64,
    /// Where the run's time went (absent in versions published before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<RunStages>,
    /// Set when the job keeps a ranked list per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranked: Option<RankedInfo>,
}

impl Manifest {
    /// The instant the version's age counts from: when it was computed, or when its
    /// features were cut off if that is older. A version computed today from
    /// month-old features is a month old.
    pub fn aged_from(&self) -> DateTime<Utc> {
        self.created_at.min(self.features_as_of)
    }
}

/// Where a run's time went, in seconds per stage, and what its feature query spilled.
///
/// Each stage is the time the run was busy with it. The feature query, scoring and
/// writing run at the same time (writing has its own thread, and the query computes
/// ahead of scoring), so these three can add up to more than the run's wall time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStages {
    /// Waiting for feature rows: the whole query before its first row, then any wait
    /// for the next batch.
    pub features: f64,
    /// Scoring feature rows with the model (and ranking, for ranked lists).
    pub scoring: f64,
    /// Writing predictions into the store, closing and checksumming its files.
    pub writing: f64,
    /// The checks (gates), `expected_keys` query included.
    pub checks: f64,
    /// Moving the version into place.
    pub publish: f64,
    /// Bytes the feature query wrote to spill files to stay within its memory limit.
    #[serde(default)]
    pub spilled_bytes: u64,
}

/// How a ranked-list version was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedInfo {
    /// The candidate item column.
    pub item: String,
    /// Items kept per key, at most.
    pub top_k: usize,
    /// The model output the items are ranked by (`probability`, `value`).
    pub score: String,
    /// Candidate rows scored.
    pub candidates: u64,
}

/// The manifest format written by this build.
pub const MANIFEST_FORMAT: u32 = 1;

/// The model a version was scored with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name in the config.
    pub name: String,
    /// Its file.
    pub path: String,
    /// `sha256:` of the file's bytes.
    pub sha256: String,
    /// The file format (`ONNX`, `XGBoost JSON`, `CatBoost JSON`, `LightGBM text`).
    pub format: String,
    /// The engine that ran it (`tree`, `tract`).
    pub engine: String,
    /// The feature columns given to it, in order.
    pub inputs: Vec<String>,
}

/// A source as it was when the version was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The source's name.
    pub name: String,
    /// Its configured path.
    pub path: String,
    /// Number of files.
    pub files: usize,
    /// Total bytes.
    pub bytes: u64,
    /// A fingerprint of paths, sizes and modification times.
    pub fingerprint: String,
}

/// The key column of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The column name in the feature SQL.
    pub column: String,
    /// `string` or `int`.
    #[serde(rename = "type")]
    pub key_type: String,
}

/// A prediction field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputColumn {
    /// Field name.
    pub name: String,
    /// Arrow type, as text.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// One gate's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check (`min_rows`, `max_null_fraction`, ...).
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The configured threshold.
    pub threshold: f64,
    /// Whether it passed.
    pub passed: bool,
    /// A detail, e.g. which output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name inside the version folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// `sha256:` of its content.
    pub sha256: String,
}

/// A numeric output's score distribution on quantile bins: what `max_psi` needs of
/// the previous version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// The output (prediction field).
    pub output: String,
    /// Bin edges: the deciles of the scores, duplicates removed (a value `v` is in
    /// bin `i` when `i` edges are `<= v`).
    pub edges: Vec<f32>,
    /// The fraction of scores in each bin (one more than `edges`), floored at a small
    /// epsilon so empty bins keep the logarithm finite.
    pub fractions: Vec<f64>,
}
