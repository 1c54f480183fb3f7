//! Evaluation metrics for backtests: classification and regression scores,
//! calibration bins, score histograms and the metric vocabulary reports use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which kind of model output is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Binary classification: scores are probabilities of the positive class.
    Classification,
    /// Regression: predictions are real numbers compared with real targets.
    Regression,
}

/// Why metrics could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// There are no rows to evaluate.
    #[error("no rows to evaluate")]
    Empty,
    /// Predictions and labels differ in length.
    #[error("length mismatch: `{predictions}` predictions but `{labels}` labels")]
    LengthMismatch {
        /// Number of scores or predictions.
        predictions: usize,
        /// Number of labels or targets.
        labels: usize,
    },
    /// A classification label is neither 0 nor 1.
    #[error("label `{value}` at row `{row}` is not 0 or 1")]
    NotBinary {
        /// Zero-based row index.
        row: usize,
        /// The offending label.
        value: f64,
    },
    /// A score or prediction is NaN.
    #[error("score at row `{row}` is NaN")]
    NanScore {
        /// Zero-based row index.
        row: usize,
    },
    /// A regression target is NaN or infinite.
    #[error("target `{value}` at row `{row}` is not finite")]
    NonFiniteTarget {
        /// Zero-based row index.
        row: usize,
        /// The offending target.
        value: f64,
    },
}

/// Metrics of one model output over a set of labelled rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Metrics {
    /// Binary classification metrics.
    Classification(Classification),
    /// Regression metrics.
    Regression(Regression),
}

/// Binary classification metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Rows evaluated.
    pub rows: u64,
    /// Rows whose label is 1.
    pub positives: u64,
    /// Area under the ROC curve; `None` when only one class is present.
    pub roc_auc: Option<f64>,
    /// Mean negative log-likelihood (natural log, scores clipped to `[1e-15, 1 − 1e-15]`).
    pub log_loss: f64,
    /// Mean squared error of the probability (scores clamped to `[0, 1]`).
    pub brier: f64,
    /// Share of rows classified correctly when `score >= 0.5` predicts 1.
    pub accuracy: f64,
    /// Ten equal-width bins of predicted probability on `[0, 1]`, empty bins included.
    pub calibration: Vec<CalibrationBin>,
}

/// One bin of a calibration (reliability) curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Lower edge of the bin (inclusive).
    pub lower: f64,
    /// Upper edge of the bin (exclusive, except for the last bin).
    pub upper: f64,
    /// Rows whose score falls in the bin.
    pub rows: u64,
    /// Mean score of those rows; `None` for an empty bin.
    pub mean_predicted: Option<f64>,
    /// Share of those rows whose label is 1; `None` for an empty bin.
    pub observed: Option<f64>,
}

/// Regression metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    /// Rows evaluated.
    pub rows: u64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, 1 − SS_res / SS_tot (see [`regression`] for constant targets).
    pub r2: f64,
}

/// Names of the metrics a report can show or compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Area under the ROC curve.
    RocAuc,
    /// Log loss (cross-entropy).
    LogLoss,
    /// Brier score.
    Brier,
    /// Accuracy at threshold 0.5.
    Accuracy,
    /// Root mean squared error.
    Rmse,
    /// Mean absolute error.
    Mae,
    /// Coefficient of determination.
    R2,
}

const CLASSIFICATION_METRICS: [MetricName; 4] = [
    MetricName::RocAuc,
    MetricName::LogLoss,
    MetricName::Brier,
    MetricName::Accuracy,
];
const REGRESSION_METRICS: [MetricName; 3] = [MetricName::Rmse, MetricName::Mae, MetricName::R2];

impl MetricName {
    /// Whether a larger value of this metric means a better model.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Self::RocAuc | Self::Accuracy | Self::R2)
    }

    /// Human-readable name, as shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::RocAuc => "ROC AUC",
            Self::LogLoss => "log loss",
            Self::Brier => "Brier score",
            Self::Accuracy => "accuracy",
            Self::Rmse => "RMSE",
            Self::Mae => "MAE",
            Self::R2 => "R²",
        }
    }

    /// Stable machine key, identical to the serde name.
    pub fn key(self) -> &'static str {
        match self {
            Self::RocAuc => "roc_auc",
            Self::LogLoss => "log_loss",
            Self::Brier => "brier",
            Self::Accuracy => "accuracy",
            Self::Rmse => "rmse",
            Self::Mae => "mae",
            Self::R2 => "r2",
        }
    }

    /// Every metric computed for `task`, in display order.
    pub fn for_task(task: Task) -> &'static [MetricName] {
        match task {
            Task::Classification => &CLASSIFICATION_METRICS,
            Task::Regression => &REGRESSION_METRICS,
        }
    }

    /// The metric reports lead with: log loss for classification, RMSE for regression.
    pub fn primary(task: Task) -> MetricName {
        match task {
            Task::Classification => Self::LogLoss,
            Task::Regression => Self::Rmse,
        }
    }
}

impl Metrics {
    /// The value of `name`, or `None` when it does not apply to this task or is undefined.
    pub fn get(&self, name: MetricName) -> Option<f64> {
        match (self, name) {
            (Self::Classification(c), MetricName::RocAuc) => c.roc_auc,
            (Self::Classification(c), MetricName::LogLoss) => Some(c.log_loss),
            (Self::Classification(c), MetricName::Brier) => Some(c.brier),
            (Self::Classification(c), MetricName::Accuracy) => Some(c.accuracy),
            (Self::Regression(r), MetricName::Rmse) => Some(r.rmse),
            (Self::Regression(r), MetricName::Mae) => Some(r.mae),
            (Self::Regression(r), MetricName::R2) => Some(r.r2),
            _ => None,
        }
    }

    /// The task these metrics describe.
    pub fn task(&self) -> Task {
        match self {
            Self::Classification(_) => Task::Classification,
            Self::Regression(_) => Task::Regression,
        }
    }

    /// Rows evaluated.
    pub fn rows(&self) -> u64 {
        match self {
            Self::Classification(c) => c.rows,
            Self::Regression(r) => r.rows,
        }
    }

    /// The calibration bins, for classification only.
    pub fn calibration(&self) -> Option<&[CalibrationBin]> {
        match self {
            Self::Classification(c) => Some(&c.calibration),
            Self::Regression(_) => None,
        }
    }
}

/// Relative improvement of `value` over `baseline` for `metric`, positive = better:
/// (baseline − value)/|baseline| when lower is better, (value − baseline)/|baseline|
/// when higher is better. `None` when `baseline` is 0 or either is not finite.
pub fn improvement(metric: MetricName, baseline: f64, value: f64) -> Option<f64> {
    if !baseline.is_finite() || !value.is_finite() || baseline == 0.0 {
        return None;
    }
    let delta = if metric.higher_is_better() {
        value - baseline
    } else {
        baseline - value
    };
    Some(delta / baseline.abs())
}

/// [`improvement`] of every metric of `metrics` over `baseline`, keyed by [`MetricName::key`].
/// Metrics that are undefined on either side are left out.
pub fn improvements(baseline: &Metrics, metrics: &Metrics) -> BTreeMap<String, f64> {
    MetricName::for_task(metrics.task())
        .iter()
        .filter_map(|&name| {
            let rel = improvement(name, baseline.get(name)?, metrics.get(name)?)?;
            Some((name.key().to_owned(), rel))
        })
        .collect()
}

/// `challenger − champion` for every metric defined on both sides, keyed by [`MetricName::key`].
pub fn differences(champion: &Metrics, challenger: &Metrics) -> BTreeMap<String, f64> {
    MetricName::for_task(champion.task())
        .iter()
        .filter_map(|&name| {
            let diff = challenger.get(name)? - champion.get(name)?;
            diff.is_finite().then(|| (name.key().to_owned(), diff))
        })
        .collect()
}

/// Log loss clips probabilities this far from 0 and 1 so one confident mistake stays finite.
const LOG_LOSS_EPS: f64 = 1e-15;
/// Number of equal-width calibration bins on `[0, 1]`.
const CALIBRATION_BINS: usize = 10;

fn check_lengths(predictions: usize, labels: usize) -> Result<(), MetricsError> {
    if predictions != labels {
        return Err(MetricsError::LengthMismatch {
            predictions,
            labels,
        });
    }
    if predictions == 0 {
        return Err(MetricsError::Empty);
    }
    Ok(())
}

/// Classification metrics of probability `scores` against 0/1 `labels`.
///
/// Scores are treated as probabilities of label 1: they are clipped for log loss and
/// clamped to `[0, 1]` for the Brier score and calibration; ROC AUC uses them as given.
pub fn classification(scores: &[f64], labels: &[f64]) -> Result<Classification, MetricsError> {
    check_lengths(scores.len(), labels.len())?;
    let mut positives = 0u64;
    for (row, (&score, &label)) in scores.iter().zip(labels).enumerate() {
        if score.is_nan() {
            return Err(MetricsError::NanScore { row });
        }
        if label == 1.0 {
            positives += 1;
        } else if label != 0.0 {
            return Err(MetricsError::NotBinary { row, value: label });
        }
    }

    let mut log_loss = 0.0;
    let mut brier = 0.0;
    let mut correct = 0u64;
    for (&score, &label) in scores.iter().zip(labels) {
        let positive = label == 1.0;
        let clipped = score.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
        // ln_1p keeps precision for the negative class when the score is tiny.
        log_loss -= if positive {
            clipped.ln()
        } else {
            (-clipped).ln_1p()
        };
        let error = score.clamp(0.0, 1.0) - label;
        brier += error * error;
        if (score >= 0.5) == positive {
            correct += 1;
        }
    }
    let n = scores.len() as f64;
    Ok(Classification {
        rows: scores.len() as u64,
        positives,
        roc_auc: roc_auc(scores, labels),
        log_loss: log_loss / n,
        brier: brier / n,
        accuracy: correct as f64 / n,
        calibration: calibration(scores, labels),
    })
}

/// Exact ROC AUC via the Mann–Whitney U statistic; tied scores count half.
/// Inputs are already validated (no NaN scores, 0/1 labels).
fn roc_auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| (s, l == 1.0))
        .collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));

    // Twice U, kept in integers so large inputs stay exact.
    let mut twice_u: u128 = 0;
    let mut negatives_below: u128 = 0;
    let mut start = 0;
    while start < pairs.len() {
        let score = pairs[start].0;
        // `==` rather than total_cmp so -0.0 and 0.0 (adjacent after sorting) tie.
        let end = start + pairs[start..].iter().take_while(|p| p.0 == score).count();
        let group_positives = pairs[start..end].iter().filter(|p| p.1).count() as u128;
        let group_negatives = (end - start) as u128 - group_positives;
        twice_u += group_positives * (2 * negatives_below + group_negatives);
        negatives_below += group_negatives;
        start = end;
    }
    let positives = pairs.iter().filter(|p| p.1).count() as u128;
    let negatives = pairs.len() as u128 - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    Some(twice_u as f64 / (2 * positives * negatives) as f64)
}

fn calibration(scores: &[f64], labels: &[f64]) -> Vec<CalibrationBin> {
    let mut rows = [0u64; CALIBRATION_BINS];
    let mut sum_predicted = [0.0f64; CALIBRATION_BINS];
    let mut sum_observed = [0.0f64; CALIBRATION_BINS];
    for (&score, &label) in scores.iter().zip(labels) {
        let p = score.clamp(0.0, 1.0);
        let bin = bin_index(p, 0.0, 1.0, CALIBRATION_BINS);
        rows[bin] += 1;
        sum_predicted[bin] += p;
        sum_observed[bin] += label;
    }
    (0..CALIBRATION_BINS)
        .map(|i| {
            let count = rows[i];
            let mean = |sum: f64| (count > 0).then(|| sum / count as f64);
            CalibrationBin {
                lower: i as f64 / CALIBRATION_BINS as f64,
                upper: (i + 1) as f64 / CALIBRATION_BINS as f64,
                rows: count,
                mean_predicted: mean(sum_predicted[i]),
                observed: mean(sum_observed[i]),
            }
        })
        .collect()
}

/// Regression metrics of `predictions` against `targets`.
///
/// When every target is the same, SS_tot is 0 and R² is undefined; we then report 1.0
/// for perfect predictions and 0.0 otherwise (no variance to explain, so no model does
/// better than the constant), keeping R² finite for tables and plots.
pub fn regression(predictions: &[f64], targets: &[f64]) -> Result<Regression, MetricsError> {
    check_lengths(predictions.len(), targets.len())?;
    for (row, (&prediction, &target)) in predictions.iter().zip(targets).enumerate() {
        if prediction.is_nan() {
            return Err(MetricsError::NanScore { row });
        }
        if !target.is_finite() {
            return Err(MetricsError::NonFiniteTarget { row, value: target });
        }
    }
    let n = predictions.len() as f64;
    let mean_target = targets.iter().sum::<f64>() / n;
    let mut ss_res = 0.0;
    let mut ss_tot = 0.0;
    let mut abs = 0.0;
    for (&prediction, &target) in predictions.iter().zip(targets) {
        let error = prediction - target;
        ss_res += error * error;
        abs += error.abs();
        let spread = target - mean_target;
        ss_tot += spread * spread;
    }
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(Regression {
        rows: predictions.len() as u64,
        rmse: (ss_res / n).sqrt(),
        mae: abs / n,
        r2,
    })
}

/// Counts of values in equal-width bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Lower edge of the first bin.
    pub lower: f64,
    /// Upper edge of the last bin.
    pub upper: f64,
    /// Count per bin, from `lower` to `upper`.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Total count over all bins.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Lower and upper edge of bin `i`.
    pub fn edges(&self, i: usize) -> (f64, f64) {
        let width = (self.upper - self.lower) / self.counts.len().max(1) as f64;
        (
            self.lower + width * i as f64,
            self.lower + width * (i + 1) as f64,
        )
    }
}

/// Histogram of `values` in `bins` equal-width bins on `[lower, upper]`.
///
/// Values outside the range land in the end bins and NaN is skipped. A degenerate
/// range (`upper <= lower`, or not finite) puts every value in the first bin.
pub fn histogram(values: &[f64], bins: usize, lower: f64, upper: f64) -> Histogram {
    let mut counts = vec![0u64; bins];
    if bins > 0 {
        for &value in values.iter().filter(|v| !v.is_nan()) {
            counts[bin_index(value, lower, upper, bins)] += 1;
        }
    }
    Histogram {
        lower,
        upper,
        counts,
    }
}

/// Bin of `value` (not NaN) among `bins` (> 0) equal bins on `[lower, upper]`, clamped to the ends.
fn bin_index(value: f64, lower: f64, upper: f64, bins: usize) -> usize {
    let span = upper - lower;
    if !(span > 0.0 && span.is_finite()) {
        return 0;
    }
    // Multiply before dividing so edges like 0.3 on [0, 1] × 10 land in their own bin.
    let position = ((value - lower) * bins as f64 / span).floor();
    if position.is_nan() || position < 0.0 {
        0
    } else if position >= bins as f64 {
        bins - 1
    } else {
        position as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auc_perfect_and_inverted() {
        let labels = [0.0, 0.0, 1.0, 1.0];
        let perfect = classification(&[0.1, 0.2, 0.8, 0.9], &labels).unwrap();
        assert_eq!(perfect.roc_auc, Some(1.0));
        let inverted = classification(&[0.9, 0.8, 0.2, 0.1], &labels).unwrap();
        assert_eq!(inverted.roc_auc, Some(0.0));
    }

    #[test]
    fn auc_hand_computed() {
        // Pairs (pos, neg): (0.35 vs 0.1 ✓, 0.4 ✗), (0.8 vs 0.1 ✓, 0.4 ✓) → 3/4.
        let m = classification(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!(close(m.roc_auc.unwrap(), 0.75));
    }

    #[test]
    fn auc_ties_count_half() {
        // Every score equal: every pair is a tie → 0.5.
        let m = classification(&[0.5; 4], &[0.0, 1.0, 0.0, 1.0]).unwrap();
        assert!(close(m.roc_auc.unwrap(), 0.5));
        // pos {0.5, 0.9}, neg {0.5, 0.1}: 0.5 vs 0.5 tie (½), 0.5 vs 0.1 ✓, 0.9 ✓✓ → 3.5/4.
        let m = classification(&[0.5, 0.9, 0.5, 0.1], &[1.0, 1.0, 0.0, 0.0]).unwrap();
        assert!(close(m.roc_auc.unwrap(), 0.875));
        // -0.0 and 0.0 are the same score.
        let m = classification(&[-0.0, 0.0], &[1.0, 0.0]).unwrap();
        assert!(close(m.roc_auc.unwrap(), 0.5));
    }

    #[test]
    fn auc_one_class_is_none() {
        let m = classification(&[0.2, 0.7], &[1.0, 1.0]).unwrap();
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.positives, 2);
        let m = classification(&[0.2, 0.7], &[0.0, 0.0]).unwrap();
        assert_eq!(m.roc_auc, None);
    }

    #[test]
    fn log_loss_brier_accuracy() {
        let scores = [0.9, 0.2, 0.6, 0.5];
        let labels = [1.0, 0.0, 0.0, 1.0];
        let m = classification(&scores, &labels).unwrap();
        let expected_ll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.5f64.ln()) / 4.0;
        assert!(close(m.log_loss, expected_ll));
        let expected_brier = (0.01 + 0.04 + 0.36 + 0.25) / 4.0;
        assert!(close(m.brier, expected_brier));
        // 0.9→1 ✓, 0.2→0 ✓, 0.6→1 ✗, 0.5→1 ✓ (threshold is inclusive).
        assert!(close(m.accuracy, 0.75));
        assert_eq!(m.rows, 4);
        assert_eq!(m.positives, 2);
    }

    #[test]
    fn log_loss_is_clipped() {
        let m = classification(&[0.0, 1.0], &[1.0, 0.0]).unwrap();
        assert!(m.log_loss.is_finite());
        // 1 − 1e-15 is not exact in f64, hence the loose tolerance.
        assert!(
            (m.log_loss - -(1e-15f64).ln()).abs() < 1e-3,
            "{}",
            m.log_loss
        );
        assert!(close(m.brier, 1.0));
    }

    #[test]
    fn calibration_bins() {
        let scores = [0.05, 0.15, 0.12, 0.95, 1.0, 0.3];
        let labels = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let m = classification(&scores, &labels).unwrap();
        let bins = &m.calibration;
        assert_eq!(bins.len(), 10);
        assert!(close(bins[0].lower, 0.0) && close(bins[9].upper, 1.0));
        assert_eq!(bins[0].rows, 1);
        assert_eq!(bins[1].rows, 2);
        assert!(close(bins[1].mean_predicted.unwrap(), 0.135));
        assert!(close(bins[1].observed.unwrap(), 0.5));
        assert_eq!(bins[2].rows, 0);
        assert_eq!(bins[2].mean_predicted, None);
        assert_eq!(bins[2].observed, None);
        assert_eq!(bins[3].rows, 1);
        // 1.0 goes in the last bin.
        assert_eq!(bins[9].rows, 2);
        assert_eq!(bins.iter().map(|b| b.rows).sum::<u64>(), 6);
        let json = serde_json::to_string(&bins[2]).unwrap();
        assert!(json.contains("\"mean_predicted\":null"), "{json}");
    }

    #[test]
    fn regression_metrics() {
        let m = regression(&[2.5, 0.0, 2.0, 8.0], &[3.0, -0.5, 2.0, 7.0]).unwrap();
        assert!(close(m.rmse, (1.5f64 / 4.0).sqrt()));
        assert!(close(m.mae, 0.5));
        // mean 2.875; ss_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875
        assert!(close(m.r2, 1.0 - 1.5 / 29.1875));
    }

    #[test]
    fn regression_constant_targets() {
        assert!(close(regression(&[1.0, 1.0], &[1.0, 1.0]).unwrap().r2, 1.0));
        assert!(close(regression(&[1.0, 2.0], &[1.0, 1.0]).unwrap().r2, 0.0));
    }

    #[test]
    fn errors() {
        assert_eq!(classification(&[], &[]), Err(MetricsError::Empty));
        assert_eq!(regression(&[], &[]), Err(MetricsError::Empty));
        assert_eq!(
            classification(&[0.1], &[1.0, 0.0]),
            Err(MetricsError::LengthMismatch {
                predictions: 1,
                labels: 2
            })
        );
        assert_eq!(
            classification(&[0.1, 0.2], &[1.0, 2.0]),
            Err(MetricsError::NotBinary { row: 1, value: 2.0 })
        );
        assert!(matches!(
            classification(&[0.1], &[f64::NAN]),
            Err(MetricsError::NotBinary { row: 0, .. })
        ));
        assert_eq!(
            classification(&[0.1, f64::NAN], &[1.0, 0.0]),
            Err(MetricsError::NanScore { row: 1 })
        );
        assert_eq!(
            regression(&[f64::NAN], &[1.0]),
            Err(MetricsError::NanScore { row: 0 })
        );
        assert!(matches!(
            regression(&[1.0], &[f64::INFINITY]),
            Err(MetricsError::NonFiniteTarget { row: 0, .. })
        ));
        let message = MetricsError::NotBinary { row: 3, value: 0.5 }.to_string();
        assert_eq!(message, "label `0.5` at row `3` is not 0 or 1");
    }

    #[test]
    fn metric_vocabulary() {
        let m =
            Metrics::Classification(classification(&[0.1, 0.8, 0.3], &[0.0, 1.0, 1.0]).unwrap());
        assert_eq!(m.task(), Task::Classification);
        assert_eq!(m.rows(), 3);
        assert!(m.get(MetricName::LogLoss).is_some());
        assert_eq!(m.get(MetricName::Rmse), None);
        for &name in MetricName::for_task(Task::Classification) {
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.key()));
        }
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["task"], "classification");
        assert!(json["log_loss"].is_number());
        assert_eq!(MetricName::R2.label(), "R²");
        assert!(MetricName::RocAuc.higher_is_better());
        assert!(!MetricName::Rmse.higher_is_better());
    }

    #[test]
    fn improvement_signs() {
        assert!(close(
            improvement(MetricName::LogLoss, 0.5, 0.4).unwrap(),
            0.2
        ));
        assert!(close(
            improvement(MetricName::LogLoss, 0.5, 0.6).unwrap(),
            -0.2
        ));
        assert!(close(
            improvement(MetricName::RocAuc, 0.8, 0.88).unwrap(),
            0.1
        ));
        // Negative baselines (R² can be) still give "positive = better".
        assert!(close(improvement(MetricName::R2, -0.5, 0.0).unwrap(), 1.0));
        assert_eq!(improvement(MetricName::Rmse, 0.0, 1.0), None);
        assert_eq!(improvement(MetricName::Rmse, f64::NAN, 1.0), None);
        assert_eq!(improvement(MetricName::Rmse, 1.0, f64::INFINITY), None);
    }

    #[test]
    fn improvements_and_differences() {
        let a = Metrics::Regression(Regression {
            rows: 10,
            rmse: 2.0,
            mae: 1.0,
            r2: 0.5,
        });
        let b = Metrics::Regression(Regression {
            rows: 10,
            rmse: 1.0,
            mae: 1.5,
            r2: 0.75,
        });
        let imp = improvements(&a, &b);
        assert!(close(imp["rmse"], 0.5));
        assert!(close(imp["mae"], -0.5));
        assert!(close(imp["r2"], 0.5));
        let diff = differences(&a, &b);
        assert!(close(diff["rmse"], -1.0));
        assert!(close(diff["r2"], 0.25));
    }

    #[test]
    fn histogram_bins() {
        let h = histogram(
            &[-1.0, 0.0, 0.05, 0.5, 0.99, 1.0, 7.0, f64::NAN],
            10,
            0.0,
            1.0,
        );
        assert_eq!(h.counts, vec![3, 0, 0, 0, 0, 1, 0, 0, 0, 3]);
        assert_eq!(h.total(), 7);
        let (lo, hi) = h.edges(5);
        assert!(close(lo, 0.5) && close(hi, 0.6));
        let degenerate = histogram(&[3.0, 3.0], 4, 3.0, 3.0);
        assert_eq!(degenerate.counts, vec![2, 0, 0, 0]);
        assert!(histogram(&[1.0], 0, 0.0, 1.0).counts.is_empty());
        let infinite = histogram(&[f64::INFINITY, f64::NEG_INFINITY], 2, 0.0, 1.0);
        assert_eq!(infinite.counts, vec![1, 1]);
    }
}
