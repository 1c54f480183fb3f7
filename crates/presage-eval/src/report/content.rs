//! What the reports say: the numbers behind the verdict, the figures and the tables.
//! These types are also the `--json` output, so their serde names are a contract.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::{Histogram, MetricName, Metrics, Task};

/// A stage on the path from batch to online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The answer served at request time was computed at the last scheduled run before it
    /// (run every cadence, available after the pipeline lag), on features as of that run.
    Batch,
    /// The model runs at request time on features as of the last run; only
    /// `{{now}}`-dependent features move.
    OnlinePrediction,
    /// Features as of the request time itself (cadence 0).
    OnlineFeatures,
}

impl Stage {
    /// Human-readable name, as shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::OnlinePrediction => "online prediction, batch features",
            Self::OnlineFeatures => "online features",
        }
    }
}

/// One stage × cadence of a staleness backtest.
#[derive(Debug, Clone, Serialize)]
pub struct StalenessCell {
    /// Where predictions are computed.
    pub stage: Stage,
    /// The cadence as the user wrote it: "1h", "1d", "0".
    pub cadence: String,
    /// The cadence in seconds; 0 for online features.
    pub cadence_seconds: i64,
    /// Mean over label rows of (request time − feature cutoff).
    pub mean_feature_age_seconds: f64,
    /// Metrics of this setup over the label rows.
    pub metrics: Metrics,
    /// Metric key → relative improvement over the baseline (positive = better); empty for the baseline.
    pub improvement_vs_daily_batch: BTreeMap<String, f64>,
    /// Model evaluations this setup would cost over the window.
    pub model_evaluations: u64,
    /// Point-in-time feature queries the backtest ran for this cell (0 when reused).
    pub feature_queries: u64,
    /// Scores (20 bins on `[0, 1]`) or predictions (on the targets' range).
    pub histogram: Histogram,
}

/// How much better fresher predictions would be, per stage and cadence.
#[derive(Debug, Clone, Serialize)]
pub struct StalenessReport {
    /// Job name.
    pub job: String,
    /// Model name.
    pub model: String,
    /// Label source name or file path.
    pub labels: String,
    /// Earliest label time evaluated.
    pub from: DateTime<Utc>,
    /// Latest label time evaluated.
    pub to: DateTime<Utc>,
    /// Pipeline lag between a scheduled run and its answers being served.
    pub lag_seconds: i64,
    /// Label rows evaluated.
    pub rows: u64,
    /// Label rows left out because some cell had no features for their entity.
    pub excluded_rows: u64,
    /// Rows a full batch run scores.
    pub entities_per_run: u64,
    /// Kind of model output.
    pub task: Task,
    /// The metric the verdict and main figure use: log loss or RMSE.
    pub primary_metric: MetricName,
    /// Whether the feature SQL uses `{{now}}`; when false, online prediction equals batch.
    pub uses_now: bool,
    /// What online setups' model evaluations count: `labels` (one per label row) or
    /// `lookup log` (the answers `presage serve` logged in the window).
    pub online_requests_from: String,
    /// Every stage × cadence evaluated.
    pub cells: Vec<StalenessCell>,
    /// Plain-language summary, filled by [`verdict`](crate::report::verdict).
    pub verdict: String,
    /// How long the backtest took, in seconds.
    pub seconds: f64,
    /// When the report was produced.
    pub generated_at: DateTime<Utc>,
}

/// One model evaluated over historical labels, optionally against a challenger.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    /// Job name.
    pub job: String,
    /// Champion model name.
    pub model: String,
    /// Label source name or file path.
    pub labels: String,
    /// Earliest label time evaluated.
    pub from: DateTime<Utc>,
    /// Latest label time evaluated.
    pub to: DateTime<Utc>,
    /// Label rows evaluated.
    pub rows: u64,
    /// Label rows left out because their entity had no features at that time.
    pub excluded_rows: u64,
    /// Champion metrics.
    pub metrics: Metrics,
    /// Champion scores or predictions.
    pub histogram: Histogram,
    /// The challenger, when one was given.
    pub challenger: Option<ChallengerResult>,
    /// How long the backtest took, in seconds.
    pub seconds: f64,
    /// When the report was produced.
    pub generated_at: DateTime<Utc>,
}

/// A challenger model evaluated on the same rows as the champion.
#[derive(Debug, Clone, Serialize)]
pub struct ChallengerResult {
    /// Challenger model name.
    pub model: String,
    /// Challenger metrics.
    pub metrics: Metrics,
    /// Challenger scores or predictions.
    pub histogram: Histogram,
    /// Metric key → challenger − champion.
    pub difference: BTreeMap<String, f64>,
}

// The cadences with names of their own ("hourly", "daily", "weekly"), in seconds.
pub(super) const HOUR: i64 = 3_600;
pub(super) const DAY: i64 = 86_400;
pub(super) const WEEK: i64 = 604_800;

/// The cell improvements are measured against: the daily batch cell, else the slowest
/// batch cadence. `None` when there is no batch cell.
pub fn baseline(report: &StalenessReport) -> Option<&StalenessCell> {
    let batch = || report.cells.iter().filter(|c| c.stage == Stage::Batch);
    batch()
        .find(|c| c.cadence_seconds == DAY)
        .or_else(|| batch().max_by_key(|c| c.cadence_seconds))
}
