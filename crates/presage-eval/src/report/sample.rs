//! Sample reports on made-up but realistic numbers, for the tests of the verdict and
//! the HTML: the same label rows scored with noise that grows with feature age.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::content::{
    BacktestReport, ChallengerResult, DAY, HOUR, Stage, StalenessCell, StalenessReport, WEEK,
    baseline,
};
use super::verdict::verdict;
use crate::metrics::{self, MetricName, Metrics, Task, histogram};

/// Deterministic pseudo-random numbers, so the sample report is stable.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Roughly standard normal (sum of uniforms), good enough for fake data.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

const ROWS: usize = 4_000;
const WINDOW_DAYS: u64 = 28;
const ENTITIES: u64 = 50_000;
const REQUESTS: u64 = 1_260_000;

/// Latent log-odds and labels shared by every cell: the same label rows everywhere.
fn truth() -> (Vec<f64>, Vec<f64>) {
    let mut rng = Lcg(7);
    let latent: Vec<f64> = (0..ROWS).map(|_| rng.normal() * 1.6 - 1.2).collect();
    let labels = latent
        .iter()
        .map(|&z| if rng.uniform() < sigmoid(z) { 1.0 } else { 0.0 })
        .collect();
    (latent, labels)
}

fn cell(
    stage: Stage,
    cadence: &str,
    seconds: i64,
    noise: f64,
    truth: &(Vec<f64>, Vec<f64>),
    task: Task,
) -> StalenessCell {
    let mut rng = Lcg(1_000 + seconds as u64 + stage as u64);
    let (latent, labels) = truth;
    let (metrics, hist) = match task {
        Task::Classification => {
            let scores: Vec<f64> = latent
                .iter()
                .map(|&z| sigmoid(z + noise * rng.normal()))
                .collect();
            let m = metrics::classification(&scores, labels).unwrap();
            (Metrics::Classification(m), histogram(&scores, 20, 0.0, 1.0))
        }
        Task::Regression => {
            let targets: Vec<f64> = latent.iter().map(|z| 50.0 + 10.0 * z).collect();
            let predictions: Vec<f64> = targets
                .iter()
                .map(|t| t + 10.0 * noise * rng.normal())
                .collect();
            let m = metrics::regression(&predictions, &targets).unwrap();
            (
                Metrics::Regression(m),
                histogram(&predictions, 20, 0.0, 100.0),
            )
        }
    };
    let window = WINDOW_DAYS * 86_400;
    let (evaluations, queries) = match stage {
        Stage::Batch => (window / seconds as u64 * ENTITIES, window / seconds as u64),
        Stage::OnlinePrediction => (REQUESTS, 0),
        Stage::OnlineFeatures => (REQUESTS, ROWS as u64),
    };
    StalenessCell {
        stage,
        cadence: cadence.to_owned(),
        cadence_seconds: seconds,
        // Half a cadence on average, plus a two-hour pipeline lag for batch.
        mean_feature_age_seconds: match stage {
            Stage::Batch => seconds as f64 / 2.0 + 7_200.0,
            Stage::OnlinePrediction => seconds as f64 / 2.0,
            Stage::OnlineFeatures => 1.5,
        },
        metrics,
        improvement_vs_daily_batch: BTreeMap::new(),
        model_evaluations: evaluations,
        feature_queries: queries,
        histogram: hist,
    }
}

/// A staleness report with online features and, per cadence, batch and online
/// prediction, improvements and verdict filled in as the backtest would.
pub(super) fn sample_report(
    task: Task,
    uses_now: bool,
    cadences: &[(&str, i64)],
) -> StalenessReport {
    let truth = truth();
    let mut cells = vec![cell(Stage::OnlineFeatures, "0", 0, 0.25, &truth, task)];
    for &(cadence, seconds) in cadences {
        // Noise grows with the age of the features.
        let noise = 0.3 + 0.25 * (seconds as f64 / 3_600.0).ln_1p() / 2.0;
        cells.push(cell(Stage::Batch, cadence, seconds, noise, &truth, task));
        cells.push(cell(
            Stage::OnlinePrediction,
            cadence,
            seconds,
            noise * 0.9,
            &truth,
            task,
        ));
    }
    let mut report = StalenessReport {
        job: "churn <b>& co".to_owned(),
        model: "churn-gbm-v7".to_owned(),
        labels: "s3://labels/churn/*.parquet".to_owned(),
        from: Utc.with_ymd_and_hms(2025, 10, 1, 0, 0, 0).unwrap(),
        to: Utc.with_ymd_and_hms(2025, 10, 29, 0, 0, 0).unwrap(),
        lag_seconds: 7_200,
        rows: ROWS as u64,
        excluded_rows: 0,
        entities_per_run: ENTITIES,
        task,
        primary_metric: MetricName::primary(task),
        uses_now,
        online_requests_from: "labels".to_owned(),
        cells,
        verdict: String::new(),
        seconds: 42.7,
        generated_at: Utc.with_ymd_and_hms(2025, 10, 30, 9, 15, 0).unwrap(),
    };
    let base_metrics = baseline(&report).map(|b| (b.metrics.clone(), b.cadence_seconds));
    if let Some((base, base_seconds)) = base_metrics {
        for c in &mut report.cells {
            if !(c.stage == Stage::Batch && c.cadence_seconds == base_seconds) {
                c.improvement_vs_daily_batch = metrics::improvements(&base, &c.metrics);
            }
        }
    }
    report.verdict = verdict(&report);
    report
}

/// Hourly, every 6 hours, daily, weekly.
pub(super) const CADENCES: [(&str, i64); 4] =
    [("1h", HOUR), ("6h", 6 * HOUR), ("1d", DAY), ("7d", WEEK)];

/// A backtest whose champion is the sample's daily batch cell and whose challenger,
/// when asked for, is its online features cell.
pub(super) fn sample_backtest(task: Task, with_challenger: bool) -> BacktestReport {
    let report = sample_report(task, true, &[("1d", DAY)]);
    let champion = report
        .cells
        .iter()
        .find(|c| c.stage == Stage::Batch)
        .unwrap()
        .clone();
    let challenger = report
        .cells
        .iter()
        .find(|c| c.stage == Stage::OnlineFeatures)
        .unwrap()
        .clone();
    BacktestReport {
        job: report.job,
        model: "gbm-v7".to_owned(),
        labels: "labels/churn.parquet".to_owned(),
        from: report.from,
        to: report.to,
        rows: report.rows,
        excluded_rows: 0,
        challenger: with_challenger.then(|| ChallengerResult {
            model: "gbm-v8 \"fresh\"".to_owned(),
            difference: metrics::differences(&champion.metrics, &challenger.metrics),
            metrics: challenger.metrics,
            histogram: challenger.histogram,
        }),
        metrics: champion.metrics,
        histogram: champion.histogram,
        seconds: 3.2,
        generated_at: report.generated_at,
    }
}
