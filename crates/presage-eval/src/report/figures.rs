//! The figures of each report: which cells and models are drawn, in which colour and
//! marker (the same stage looks the same in every figure), and the caption under each.

use maud::Markup;

use super::content::{
    BacktestReport, ChallengerResult, Stage, StalenessCell, StalenessReport, baseline,
};
use super::format::capitalise;
use super::verdict::{cell_name, direction};
use crate::metrics::{Histogram, MetricName, Metrics, Task};
use crate::svg::{
    self, CalibrationChart, HistogramChart, HistogramSeries, LineChart, Marker, ReferenceLine,
    Series, XySeries,
};

/// One chart and the sentence under it.
pub(super) struct Figure {
    /// The chart, an inline `<svg>`.
    pub(super) svg: Markup,
    /// How to read it.
    pub(super) caption: String,
}

/// The primary and secondary metric by cadence, calibration (classifiers) and the
/// score or prediction distribution.
pub(super) fn staleness_figures(report: &StalenessReport) -> Vec<Figure> {
    let primary = report.primary_metric;
    let secondary = secondary_metric(report.task);
    let mut figures = vec![
        Figure {
            svg: metric_by_cadence(report, primary, 640, 380),
            caption: format!(
                "{} for each stage, from online (left) to the slowest refresh (right); {}. \
                 Hover a point for its value.",
                capitalise(primary.label()),
                direction(primary)
            ),
        },
        Figure {
            svg: metric_by_cadence(report, secondary, 480, 380),
            caption: format!(
                "{} for each stage; {}.",
                capitalise(secondary.label()),
                direction(secondary)
            ),
        },
    ];
    let highlighted = highlighted_cells(report);
    if report.task == Task::Classification {
        let series = highlighted
            .iter()
            .filter_map(|&(cell, colour, marker, dashed)| {
                calibration_series(cell_name(cell), colour, marker, dashed, &cell.metrics)
            })
            .collect();
        let chart = CalibrationChart {
            title: "Calibration".to_owned(),
            series,
            width: 440,
            height: 440,
        };
        figures.push(Figure {
            svg: chart.to_svg(),
            caption: "Observed frequency of label 1 against the mean score, in ten bins; \
                      points on the diagonal are perfectly calibrated. Empty bins are skipped."
                .to_owned(),
        });
    }
    let histograms = HistogramChart {
        title: distribution_title(report.task).to_owned(),
        x_label: score_axis_label(report.task).to_owned(),
        y_label: "share of rows (%)".to_owned(),
        series: highlighted
            .iter()
            .map(|&(cell, colour, _, dashed)| {
                histogram_series(cell_name(cell), colour, dashed, &cell.histogram)
            })
            .collect(),
        width: 640,
        height: 340,
    };
    figures.push(Figure {
        svg: histograms.to_svg(),
        caption: "Share of rows per bin. Stale predictions drift from the distribution of \
                  fresh ones."
            .to_owned(),
    });
    figures
}

/// Calibration (classifiers) and the score or prediction distribution, champion and
/// challenger overlaid.
pub(super) fn backtest_figures(report: &BacktestReport) -> Vec<Figure> {
    let task = report.metrics.task();
    let champion_name = format!("champion {}", report.model);
    let challenger_name = |c: &ChallengerResult| format!("challenger {}", c.model);
    let mut figures = Vec::new();
    if task == Task::Classification {
        let mut series: Vec<XySeries> = calibration_series(
            champion_name.clone(),
            svg::BLUE,
            Marker::Circle,
            false,
            &report.metrics,
        )
        .into_iter()
        .collect();
        if let Some(ch) = &report.challenger {
            series.extend(calibration_series(
                challenger_name(ch),
                svg::ORANGE,
                Marker::Square,
                true,
                &ch.metrics,
            ));
        }
        let chart = CalibrationChart {
            title: "Calibration".to_owned(),
            series,
            width: 440,
            height: 440,
        };
        figures.push(Figure {
            svg: chart.to_svg(),
            caption: "Observed frequency of label 1 against the mean score, in ten bins; \
                      points on the diagonal are perfectly calibrated."
                .to_owned(),
        });
    }
    let mut series = vec![histogram_series(
        champion_name,
        svg::BLUE,
        false,
        &report.histogram,
    )];
    if let Some(ch) = &report.challenger {
        series.push(histogram_series(
            challenger_name(ch),
            svg::ORANGE,
            true,
            &ch.histogram,
        ));
    }
    let chart = HistogramChart {
        title: distribution_title(task).to_owned(),
        x_label: score_axis_label(task).to_owned(),
        y_label: "share of rows (%)".to_owned(),
        series,
        width: 640,
        height: 340,
    };
    figures.push(Figure {
        svg: chart.to_svg(),
        caption: "Share of rows per bin.".to_owned(),
    });
    figures
}

/// Histogram bins as percentages of the rows, so cells with different row counts compare.
fn histogram_series(
    name: String,
    colour: &'static str,
    dashed: bool,
    histogram: &Histogram,
) -> HistogramSeries {
    let total = histogram.total();
    let values = histogram
        .counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 * 100.0 / total as f64
            }
        })
        .collect();
    HistogramSeries {
        name,
        colour,
        dashed,
        lower: histogram.lower,
        upper: histogram.upper,
        values,
    }
}

/// The calibration curve of `metrics`; `None` for a regressor.
fn calibration_series(
    name: String,
    colour: &'static str,
    marker: Marker,
    dashed: bool,
    metrics: &Metrics,
) -> Option<XySeries> {
    let bins = metrics.calibration()?;
    Some(XySeries {
        name,
        colour,
        marker,
        dashed,
        points: bins
            .iter()
            .filter_map(|b| Some((b.mean_predicted?, b.observed?)))
            .collect(),
    })
}

/// Caption of the histogram's x axis.
fn score_axis_label(task: Task) -> &'static str {
    match task {
        Task::Classification => "score (predicted probability)",
        Task::Regression => "prediction",
    }
}

/// The metric shown next to the primary one: ROC AUC or R².
fn secondary_metric(task: Task) -> MetricName {
    match task {
        Task::Classification => MetricName::RocAuc,
        Task::Regression => MetricName::R2,
    }
}

/// Title of the histogram figure.
fn distribution_title(task: Task) -> &'static str {
    match task {
        Task::Classification => "Score distribution",
        Task::Regression => "Prediction distribution",
    }
}

/// A cell's place on the cadence axis: "online", "1h", "1d", …
fn axis_label(cell: &StalenessCell) -> String {
    if cell.cadence_seconds == 0 {
        "online".to_owned()
    } else {
        cell.cadence.clone()
    }
}

/// Cells shown in the figures: online prediction is left out when it equals batch.
fn plotted_cells(report: &StalenessReport) -> Vec<&StalenessCell> {
    report
        .cells
        .iter()
        .filter(|c| report.uses_now || c.stage != Stage::OnlinePrediction)
        .collect()
}

/// Colour, marker and dashing of a stage, the same in every figure.
fn stage_style(stage: Stage) -> (&'static str, Marker, bool) {
    match stage {
        Stage::Batch => (svg::BLUE, Marker::Circle, false),
        Stage::OnlinePrediction => (svg::ORANGE, Marker::Square, true),
        Stage::OnlineFeatures => (svg::GREEN, Marker::Diamond, false),
    }
}

/// One line per plotted stage across the cadences, with online features as a
/// reference line.
fn metric_by_cadence(
    report: &StalenessReport,
    metric: MetricName,
    width: u32,
    height: u32,
) -> Markup {
    let cells = plotted_cells(report);
    let mut cadences: Vec<(i64, String)> = cells
        .iter()
        .map(|c| (c.cadence_seconds, axis_label(c)))
        .collect();
    cadences.sort_by_key(|c| c.0);
    cadences.dedup_by_key(|c| c.0);

    let mut stages: Vec<Stage> = cells.iter().map(|c| c.stage).collect();
    stages.sort();
    stages.dedup();
    let series = stages
        .into_iter()
        .map(|stage| {
            let (colour, marker, dashed) = stage_style(stage);
            let points = cadences
                .iter()
                .map(|(seconds, _)| {
                    cells
                        .iter()
                        .find(|c| c.stage == stage && c.cadence_seconds == *seconds)
                        .and_then(|c| c.metrics.get(metric))
                })
                .collect();
            Series {
                name: stage.label().to_owned(),
                colour,
                marker,
                dashed,
                points,
            }
        })
        .collect();
    // Online features is a single point; a reference line lets every cadence be read against it.
    let references = cells
        .iter()
        .filter(|c| c.stage == Stage::OnlineFeatures)
        .filter_map(|c| c.metrics.get(metric))
        .take(1)
        .map(|y| ReferenceLine {
            label: "online features".to_owned(),
            colour: svg::GREEN,
            y,
        })
        .collect();
    LineChart {
        title: format!("{} by refresh cadence", capitalise(metric.label())),
        x_label: "refresh cadence (online = features as of request time)".to_owned(),
        y_label: format!("{} ({})", metric.label(), direction(metric)),
        categories: cadences.into_iter().map(|c| c.1).collect(),
        series,
        references,
        width,
        height,
    }
    .to_svg()
}

/// Online features, the baseline and the slowest batch cadence, without repeats.
fn highlighted_cells(
    report: &StalenessReport,
) -> Vec<(&StalenessCell, &'static str, Marker, bool)> {
    let online = report
        .cells
        .iter()
        .find(|c| c.stage == Stage::OnlineFeatures);
    let slowest = report
        .cells
        .iter()
        .filter(|c| c.stage == Stage::Batch)
        .max_by_key(|c| c.cadence_seconds);
    let candidates = [
        (online, svg::GREEN, Marker::Diamond, false),
        (baseline(report), svg::BLUE, Marker::Circle, false),
        (slowest, svg::GREY, Marker::Triangle, true),
    ];
    let mut picked: Vec<(&StalenessCell, &'static str, Marker, bool)> = Vec::new();
    for (cell, colour, marker, dashed) in candidates {
        if let Some(cell) = cell
            && !picked.iter().any(|p| std::ptr::eq(p.0, cell))
        {
            picked.push((cell, colour, marker, dashed));
        }
    }
    picked
}
