//! The staleness ladder: the same requests answered by every refresh cadence and
//! every stage between batch and online.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use chrono::{DateTime, Utc};
use presage_data::{Cutoffs, PointInTime};

use crate::cadence::Cadence;
use crate::labels::{LabelSource, Labels, load_labels};
use crate::metrics::{self, MetricName, Metrics, Task};
use crate::replay::{CellCutoffs, answered_by_all, cell_scores, kept_scores, replay, select};
use crate::report::{Stage, StalenessCell, StalenessReport, verdict};
use crate::scoring::{EvalJob, EvalModel, job_model};
use crate::{EvalError, EvalProgress};

/// What `presage staleness` was asked.
#[derive(Debug, Clone)]
pub struct StalenessOptions {
    /// The label rows (requests and their outcomes).
    pub labels: LabelSource,
    /// Only label rows at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only label rows before this.
    pub to: Option<DateTime<Utc>>,
    /// Refresh cadences to compare; daily is added as the baseline if missing.
    pub cadences: Vec<Cadence>,
    /// Time from a run's start until its answers are served.
    pub lag: std::time::Duration,
    /// `presage serve`'s lookup log: when it holds answers of the job in the window,
    /// online setups are costed by those requests instead of the label rows.
    pub lookup_log: Option<std::path::PathBuf>,
}

/// Answers "how much better would fresher predictions be?" on the job's history.
pub async fn staleness(
    job: &EvalJob,
    options: &StalenessOptions,
    progress: Arc<dyn EvalProgress>,
) -> Result<StalenessReport, EvalError> {
    let started = Instant::now();
    let prepared = prepare(job, &options.labels, options.from, options.to, &*progress).await?;
    let Prepared {
        labels,
        pit,
        mut model,
    } = prepared;
    let lag = i64::try_from(options.lag.as_micros()).map_err(|_| EvalError::Cadence {
        text: format!("{:?}", options.lag),
        message: "lag too long".to_owned(),
    })?;

    let mut cadences = options.cadences.clone();
    if !cadences.iter().any(|c| c.seconds == 86_400) {
        cadences.push(Cadence::daily());
        cadences.sort_by_key(|c| c.seconds);
    }
    let uses_now = pit.uses_now();
    let mut cells: Vec<(Stage, &Cadence)> = Vec::new();
    let mut cutoffs: Vec<CellCutoffs> = Vec::new();
    for cadence in &cadences {
        if cadence.is_online() {
            cells.push((Stage::OnlineFeatures, cadence));
            cutoffs.push(labels.times.iter().map(|&t| (t, t)).collect());
            continue;
        }
        let runs: Vec<i64> = labels
            .times
            .iter()
            .map(|&t| cadence.last_run(t, lag))
            .collect();
        cells.push((Stage::Batch, cadence));
        cutoffs.push(runs.iter().map(|&r| (r, r)).collect());
        cells.push((Stage::OnlinePrediction, cadence));
        // Without `{{now}}` the moment of prediction changes nothing: the batch
        // cell's features are reused instead of recomputed.
        cutoffs.push(if uses_now {
            runs.iter()
                .zip(&labels.times)
                .map(|(&r, &t)| (r, t))
                .collect()
        } else {
            runs.iter().map(|&r| (r, r)).collect()
        });
    }

    let replay = replay(&pit, &labels, &cutoffs, progress.clone()).await?;
    progress.step("scoring");
    let scores = tokio::task::block_in_place(|| model.score(&replay.features.batch))?;
    let per_cell: Vec<Vec<Option<f64>>> = (0..cells.len())
        .map(|c| cell_scores(&replay, c, &scores, model.default_score))
        .collect();
    // Every cell is measured on the same rows: a row some cell could not answer
    // (entity unknown at a stale cutoff, no default configured) is left out of all.
    let cells_scores: Vec<&[Option<f64>]> = per_cell.iter().map(Vec::as_slice).collect();
    let keep = answered_by_all(&cells_scores, labels.len());
    let kept = keep.iter().filter(|&&k| k).count();
    if kept == 0 {
        return Err(EvalError::NoLabels {
            labels: options.labels.description.clone(),
            column: options.labels.time.clone(),
            window: "the window: no request had features in every cell (set the job's `default` to score unknown entities)".to_owned(),
        });
    }
    let targets: Vec<f64> = select(&labels.values, &keep);

    let from = labels.times[0];
    let to = *labels.times.last().expect("labels are not empty");
    progress.step("counting the entities of a full run");
    let entities_per_run = pit
        .count_entities(Cutoffs::batch(
            DateTime::from_timestamp_micros(to).expect("valid label time"),
        ))
        .await? as u64;
    let logged = match &options.lookup_log {
        Some(dir) => logged_requests(dir, &job.name, from, to).await?,
        None => 0,
    };
    let (online_requests, online_requests_from) = if logged > 0 {
        (logged, "lookup log")
    } else {
        (kept as u64, "labels")
    };
    let task = model.task;
    let (bins_lo, bins_hi) = histogram_range(task, &targets);
    let mut report_cells = Vec::with_capacity(cells.len());
    for (c, (stage, cadence)) in cells.iter().enumerate() {
        let cell = kept_scores(&per_cell[c], &keep);
        let ages: Vec<f64> = cutoffs[c]
            .iter()
            .zip(&labels.times)
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(((as_of, _), t), _)| (t - as_of) as f64 / 1e6)
            .collect();
        let evaluations = match stage {
            // Every run whose answers are served at some point of the window.
            Stage::Batch => {
                entities_per_run
                    * cadence.runs_in(from - lag - cadence.seconds * 1_000_000 + 1, to - lag + 1)
            }
            Stage::OnlinePrediction | Stage::OnlineFeatures => online_requests,
        };
        report_cells.push(StalenessCell {
            stage: *stage,
            cadence: if cadence.is_online() {
                "0".to_owned()
            } else {
                cadence.text.clone()
            },
            cadence_seconds: cadence.seconds,
            mean_feature_age_seconds: ages.iter().sum::<f64>() / ages.len() as f64,
            metrics: evaluate(task, &cell, &targets)?,
            improvement_vs_daily_batch: BTreeMap::new(),
            model_evaluations: evaluations,
            feature_queries: replay.queries[c],
            histogram: metrics::histogram(&cell, 20, bins_lo, bins_hi),
        });
    }
    let baseline = report_cells
        .iter()
        .find(|c| c.stage == Stage::Batch && c.cadence_seconds == 86_400)
        .map(|c| c.metrics.clone())
        .expect("daily batch is always evaluated");
    for cell in &mut report_cells {
        let is_baseline = cell.stage == Stage::Batch && cell.cadence_seconds == 86_400;
        if is_baseline {
            continue;
        }
        cell.improvement_vs_daily_batch = metrics::improvements(&baseline, &cell.metrics);
    }

    let mut report = StalenessReport {
        job: job.name.clone(),
        model: model.name.clone(),
        labels: options.labels.description.clone(),
        from: DateTime::from_timestamp_micros(from).expect("valid label time"),
        to: DateTime::from_timestamp_micros(to).expect("valid label time"),
        lag_seconds: lag / 1_000_000,
        rows: kept as u64,
        excluded_rows: (labels.len() - kept) as u64,
        entities_per_run,
        task,
        primary_metric: match task {
            Task::Classification => MetricName::LogLoss,
            Task::Regression => MetricName::Rmse,
        },
        uses_now,
        online_requests_from: online_requests_from.to_owned(),
        cells: report_cells,
        verdict: String::new(),
        seconds: started.elapsed().as_secs_f64(),
        generated_at: Utc::now(),
    };
    report.verdict = verdict(&report);
    Ok(report)
}

/// Labels, sources in memory and the model, all checked before any feature work.
pub(crate) struct Prepared {
    pub labels: Labels,
    pub pit: PointInTime,
    pub model: EvalModel,
}

pub(crate) async fn prepare(
    job: &EvalJob,
    source: &LabelSource,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    progress: &dyn EvalProgress,
) -> Result<Prepared, EvalError> {
    progress.step("reading labels");
    let labels = load_labels(source, from, to).await?;
    progress.step("reading sources into memory");
    let last = DateTime::from_timestamp_micros(*labels.times.last().expect("not empty"))
        .expect("valid label time");
    let pit = PointInTime::load(
        &job.sources,
        &job.features.name,
        &job.features.key,
        &job.features.sql,
        &job.features.entity_columns,
        last,
    )
    .await?;
    let model = job_model(job, &pit.schema())?;
    check_labels(&labels, source, model.task)?;
    if let Some((lo, hi)) = pit.time_range() {
        let outside: Vec<i64> = labels
            .times
            .iter()
            .copied()
            .filter(|&t| t < lo || t > hi)
            .collect();
        if let Some(&first) = outside.first() {
            let show = |t: i64| {
                DateTime::from_timestamp_micros(t).map_or_else(
                    || t.to_string(),
                    |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                )
            };
            return Err(EvalError::LabelsOutsideData {
                labels: source.description.clone(),
                column: source.time.clone(),
                count: outside.len(),
                first: show(first),
                data_range: format!("{} .. {}", show(lo), show(hi)),
            });
        }
    }
    Ok(Prepared { labels, pit, model })
}

/// A classifier's labels must be 0 or 1.
fn check_labels(labels: &Labels, source: &LabelSource, task: Task) -> Result<(), EvalError> {
    if task != Task::Classification {
        return Ok(());
    }
    if let Some((row, value)) = labels
        .values
        .iter()
        .enumerate()
        .find(|(_, v)| **v != 0.0 && **v != 1.0)
    {
        return Err(EvalError::LabelType {
            labels: source.description.clone(),
            column: source.label.clone(),
            found: format!("`{value}` (in the {}th row of the window)", row + 1),
            expected: "0 or 1: the model is a binary classifier",
        });
    }
    Ok(())
}

pub(crate) fn evaluate(task: Task, scores: &[f64], targets: &[f64]) -> Result<Metrics, EvalError> {
    Ok(match task {
        Task::Classification => Metrics::Classification(metrics::classification(scores, targets)?),
        Task::Regression => Metrics::Regression(metrics::regression(scores, targets)?),
    })
}

pub(crate) fn histogram_range(task: Task, targets: &[f64]) -> (f64, f64) {
    match task {
        Task::Classification => (0.0, 1.0),
        Task::Regression => {
            let lo = targets.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = targets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (lo - 1.0, lo + 1.0)
            }
        }
    }
}

/// Answers of `job` logged by `presage serve` with times in `[from, to]` (µs).
async fn logged_requests(
    dir: &std::path::Path,
    job: &str,
    from: i64,
    to: i64,
) -> Result<u64, EvalError> {
    let has_files = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".parquet")
        })
    });
    if !has_files {
        return Ok(0);
    }
    let source = presage_data::SourceSpec::new(
        "lookup_log",
        presage_data::FileSource::new(dir.join("*.parquet"), None),
    );
    let session = presage_data::FeatureSession::new(std::slice::from_ref(&source))?;
    let batches = session
        .plan("lookup log", "SELECT job, time FROM lookup_log")
        .await?
        .collect()
        .await?;
    let mut count = 0;
    for batch in &batches {
        let jobs = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| presage_data::DataError::Execution {
                query: "lookup log".to_owned(),
                message: e.to_string(),
            })?;
        let times = arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Int64)
            .map_err(|e| presage_data::DataError::Execution {
                query: "lookup log".to_owned(),
                message: e.to_string(),
            })?;
        let jobs = jobs.as_string::<i32>();
        let times = times.as_primitive::<arrow::datatypes::Int64Type>();
        for (j, t) in jobs.iter().zip(times.iter()) {
            if j == Some(job) && t.is_some_and(|t| (from..=to).contains(&t)) {
                count += 1;
            }
        }
    }
    Ok(count)
}
