//! `presage backtest`: the job's model (and a challenger) on historical outcomes,
//! with features computed as of each request.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use presage_data::error_chain;
use presage_model::ModelSpec;

use crate::labels::LabelSource;
use crate::metrics;
use crate::replay::{answered_by_all, cell_scores, kept_scores, replay, select};
use crate::report::{BacktestReport, ChallengerResult};
use crate::scoring::{EvalJob, EvalModel};
use crate::staleness::{evaluate, histogram_range, prepare};
use crate::{EvalError, EvalProgress};

/// What `presage backtest` was asked.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The label rows.
    pub labels: LabelSource,
    /// Only label rows at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only label rows before this.
    pub to: Option<DateTime<Utc>>,
    /// A second model to score on exactly the same rows; its inputs are columns of
    /// the job's feature query, and its name is how the report names it.
    pub challenger: Option<ModelSpec>,
}

/// Scores the job's model on the labels, with features as of each request time.
pub async fn backtest(
    job: &EvalJob,
    options: &BacktestOptions,
    progress: Arc<dyn EvalProgress>,
) -> Result<BacktestReport, EvalError> {
    let started = Instant::now();
    let prepared = prepare(job, &options.labels, options.from, options.to, &*progress).await?;
    let labels = prepared.labels;
    let pit = prepared.pit;
    let mut champion = prepared.model;
    let mut challenger = match &options.challenger {
        Some(c) => {
            let model = EvalModel::load(c, &pit.schema(), &job.features.name, job.default.as_ref())
                .map_err(|e| EvalError::Challenger {
                    challenger: c.name.clone(),
                    reason: error_chain(&e),
                })?;
            if model.task != champion.task {
                return Err(EvalError::Challenger {
                    challenger: c.name.clone(),
                    reason: format!(
                        "it is a {:?} model but the job's `{}` is a {:?} model",
                        model.task, champion.name, champion.task
                    )
                    .to_lowercase(),
                });
            }
            Some(model)
        }
        None => None,
    };

    let cutoffs = vec![labels.times.iter().map(|&t| (t, t)).collect()];
    let replay = replay(&pit, &labels, &cutoffs, progress.clone()).await?;
    progress.step("scoring");
    let champion_scores = tokio::task::block_in_place(|| champion.score(&replay.features.batch))?;
    let champion_cell = cell_scores(&replay, 0, &champion_scores, champion.default_score);
    let challenger_cell = match challenger.as_mut() {
        Some(model) => {
            let scores = tokio::task::block_in_place(|| model.score(&replay.features.batch))?;
            Some(cell_scores(&replay, 0, &scores, model.default_score))
        }
        None => None,
    };
    let mut cells: Vec<&[Option<f64>]> = vec![&champion_cell];
    cells.extend(challenger_cell.as_deref());
    let keep = answered_by_all(&cells, labels.len());
    let kept = keep.iter().filter(|&&k| k).count();
    if kept == 0 {
        return Err(EvalError::NoLabels {
            labels: options.labels.description.clone(),
            column: options.labels.time.clone(),
            window: "the window: no request's entity had features at its time (set the job's `default` to score unknown entities)".to_owned(),
        });
    }
    let targets = select(&labels.values, &keep);
    let task = champion.task;
    let (lo, hi) = histogram_range(task, &targets);
    let champion_scores = kept_scores(&champion_cell, &keep);
    let metrics = evaluate(task, &champion_scores, &targets)?;
    let challenger = match (challenger, challenger_cell) {
        (Some(model), Some(cell)) => {
            let scores = kept_scores(&cell, &keep);
            let theirs = evaluate(task, &scores, &targets)?;
            let difference = metrics::differences(&metrics, &theirs);
            Some(ChallengerResult {
                model: model.name,
                metrics: theirs,
                histogram: metrics::histogram(&scores, 20, lo, hi),
                difference,
            })
        }
        _ => None,
    };
    Ok(BacktestReport {
        job: job.name.clone(),
        model: champion.name.clone(),
        labels: options.labels.description.clone(),
        from: DateTime::from_timestamp_micros(labels.times[0]).expect("valid label time"),
        to: DateTime::from_timestamp_micros(*labels.times.last().expect("not empty"))
            .expect("valid label time"),
        rows: kept as u64,
        excluded_rows: (labels.len() - kept) as u64,
        metrics,
        histogram: metrics::histogram(&champion_scores, 20, lo, hi),
        challenger,
        seconds: started.elapsed().as_secs_f64(),
        generated_at: Utc::now(),
    })
}
