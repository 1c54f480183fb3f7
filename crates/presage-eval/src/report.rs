//! The two reports — staleness (how much would fresher predictions help?) and backtest
//! (one model, optionally against a challenger) — as data, a plain-language verdict,
//! and one self-contained HTML file each (inline CSS and SVG, no script, no URLs).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::{Histogram, MetricName, Metrics, Task, improvement};
use crate::svg::{
    self, CalibrationChart, HistogramChart, HistogramSeries, LineChart, Marker, ReferenceLine,
    Series, XySeries,
};

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
    /// Plain-language summary, filled by [`verdict`].
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

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const WEEK: i64 = 604_800;
/// Relative differences below this are reported as "no meaningful difference".
const TINY: f64 = 0.001;
const NOW: &str = "{{now}}";

/// The cell improvements are measured against: the daily batch cell, else the slowest
/// batch cadence. `None` when there is no batch cell.
pub fn baseline(report: &StalenessReport) -> Option<&StalenessCell> {
    let batch = || report.cells.iter().filter(|c| c.stage == Stage::Batch);
    batch()
        .find(|c| c.cadence_seconds == DAY)
        .or_else(|| batch().max_by_key(|c| c.cadence_seconds))
}

/// "hourly", "every 6 hours", "daily", "weekly", … or "every 90s" as a last resort.
fn cadence_words(cell: &StalenessCell) -> String {
    let s = cell.cadence_seconds;
    match s {
        0 => "online".to_owned(),
        HOUR => "hourly".to_owned(),
        DAY => "daily".to_owned(),
        WEEK => "weekly".to_owned(),
        s if s > 0 && s % WEEK == 0 => format!("every {} weeks", s / WEEK),
        s if s > 0 && s % DAY == 0 => format!("every {} days", s / DAY),
        s if s > 0 && s % HOUR == 0 => format!("every {} hours", s / HOUR),
        s if s > 0 && s % 60 == 0 => format!("every {} minutes", s / 60),
        _ => format!("every {}", cell.cadence),
    }
}

/// "hourly", "daily", "weekly", else the cadence as written ("6h").
fn cadence_adjective(cell: &StalenessCell) -> String {
    match cell.cadence_seconds {
        HOUR => "hourly".to_owned(),
        DAY => "daily".to_owned(),
        WEEK => "weekly".to_owned(),
        _ => cell.cadence.clone(),
    }
}

/// Short name of a cell for prose and legends: "daily batch", "online features", …
fn cell_name(cell: &StalenessCell) -> String {
    match cell.stage {
        Stage::Batch => format!("{} batch", cadence_adjective(cell)),
        Stage::OnlinePrediction => {
            format!("online prediction on {} features", cadence_adjective(cell))
        }
        Stage::OnlineFeatures => "online features".to_owned(),
    }
}

fn axis_label(cell: &StalenessCell) -> String {
    if cell.cadence_seconds == 0 {
        "online".to_owned()
    } else {
        cell.cadence.clone()
    }
}

/// A comparison of two metric values, from the reader's point of view.
enum Change {
    /// Better by this many percent.
    Better(f64),
    /// Worse by this many percent.
    Worse(f64),
    /// Within [`TINY`].
    Same,
    /// No relative change can be computed (zero or non-finite reference).
    Unknown,
}

fn change(metric: MetricName, reference: f64, value: f64) -> Change {
    match improvement(metric, reference, value) {
        Some(r) if r.abs() < TINY => Change::Same,
        Some(r) if r > 0.0 => Change::Better(r * 100.0),
        Some(r) => Change::Worse(-r * 100.0),
        None if reference == value => Change::Same,
        None => Change::Unknown,
    }
}

/// Verb phrase, third person singular: "improves log loss by 4.1% (0.1287 vs 0.1342)".
fn changes_clause(c: &Change, label: &str, value: f64, reference: f64) -> String {
    let (v, r) = (fmt_number(value), fmt_number(reference));
    match c {
        Change::Better(p) => format!("improves {label} by {p:.1}% ({v} vs {r})"),
        Change::Worse(p) => format!("worsens {label} by {p:.1}% ({v} vs {r})"),
        Change::Same => {
            format!("makes no meaningful difference to {label} (under 0.1%: {v} vs {r})")
        }
        Change::Unknown => format!("changes {label} from {r} to {v}"),
    }
}

/// "24×", "4×", "0.9×"; `None` when the reference costs nothing.
fn evaluations_ratio(cell: &StalenessCell, reference: &StalenessCell) -> Option<String> {
    if reference.model_evaluations == 0 {
        return None;
    }
    let r = cell.model_evaluations as f64 / reference.model_evaluations as f64;
    Some(if r >= 10.0 || (r >= 1.0 && (r - r.round()).abs() < 0.05) {
        format!("{r:.0}×")
    } else if r >= 0.1 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    })
}

/// A short plain-language paragraph summarising the staleness report, read first.
pub fn verdict(report: &StalenessReport) -> String {
    let metric = report.primary_metric;
    let label = metric.label();
    let value = |c: &StalenessCell| c.metrics.get(metric).filter(|v| v.is_finite());
    let online = report
        .cells
        .iter()
        .find(|c| c.stage == Stage::OnlineFeatures && value(c).is_some());

    let Some(base) = baseline(report) else {
        return match online.and_then(value) {
            Some(v) => format!(
                "No batch cadence was evaluated, so there is nothing to compare against; \
                 online features reach {label} {}.",
                fmt_number(v)
            ),
            None => {
                "No batch cadence was evaluated, so there is nothing to compare against.".to_owned()
            }
        };
    };
    let base_words = cadence_words(base);
    let base_name = cell_name(base);
    let mut sentences = Vec::new();
    if base.cadence_seconds != DAY {
        sentences.push(format!(
            "There is no daily batch cadence in this backtest, so the baseline is the slowest \
             one ({base_name})."
        ));
    }
    let Some(base_value) = value(base) else {
        sentences.push(format!(
            "{} is undefined for {base_name}, so no comparison is possible.",
            capitalise(label)
        ));
        return sentences.join(" ");
    };

    let mut batch: Vec<&StalenessCell> = report
        .cells
        .iter()
        .filter(|c| c.stage == Stage::Batch && value(c).is_some())
        .collect();
    batch.sort_by_key(|c| c.cadence_seconds);

    // The fastest batch cadence against the baseline.
    let mut reference = (base, base_value, false);
    if let Some(&fast) = batch.first()
        && fast.cadence_seconds < base.cadence_seconds
        && let Some(v) = value(fast)
    {
        let c = change(metric, base_value, v);
        let mut s = format!(
            "Refreshing {} instead of {base_words} {}",
            cadence_words(fast),
            changes_clause(&c, label, v, base_value)
        );
        if let Some(ratio) = evaluations_ratio(fast, base) {
            let _ = write!(s, " for {ratio} the model evaluations");
        }
        s.push('.');
        sentences.push(s);
        reference = (fast, v, matches!(c, Change::Better(_)));
    }

    // Online features against the fastest batch cadence.
    if let Some(cell) = online
        && let Some(v) = value(cell)
    {
        let (ref_cell, ref_value, ref_improved) = reference;
        let ref_name = cell_name(ref_cell);
        let (vs, rs) = (fmt_number(v), fmt_number(ref_value));
        let further = if ref_improved { "a further " } else { "" };
        let mut s = match change(metric, ref_value, v) {
            Change::Better(p) => format!(
                "Online features improve {label} by {further}{p:.1}% over {ref_name} ({vs} vs {rs})"
            ),
            Change::Worse(p) => {
                format!(
                    "Online features are {p:.1}% worse than {ref_name} on {label} ({vs} vs {rs})"
                )
            }
            Change::Same => format!(
                "Online features make no meaningful difference over {ref_name} \
                 (under 0.1%: {label} {vs} vs {rs})"
            ),
            Change::Unknown => {
                format!("Online features reach {label} {vs}, against {rs} for {ref_name}")
            }
        };
        if let Some(ratio) = evaluations_ratio(cell, base) {
            let _ = write!(s, " and need {ratio} the model evaluations of {base_name}");
        }
        s.push('.');
        sentences.push(s);
    }

    // The slowest batch cadence against the baseline.
    if let Some(&slow) = batch.last()
        && slow.cadence_seconds > base.cadence_seconds
        && let Some(v) = value(slow)
    {
        let words = cadence_words(slow);
        let (vs, bs) = (fmt_number(v), fmt_number(base_value));
        sentences.push(match change(metric, base_value, v) {
            Change::Worse(p) => {
                format!("Refreshing {words} would cost {p:.1}% in {label} ({vs} vs {bs}).")
            }
            Change::Better(p) => {
                format!("Refreshing {words} would improve {label} by {p:.1}% ({vs} vs {bs}).")
            }
            Change::Same => {
                format!("Refreshing {words} would change {label} by less than 0.1% ({vs} vs {bs}).")
            }
            Change::Unknown => format!("Refreshing {words} gives {label} {vs}, against {bs}."),
        });
    }

    // Online prediction: only meaningful when features move with the request time.
    if report.uses_now {
        let op = report.cells.iter().find(|c| {
            c.stage == Stage::OnlinePrediction && c.cadence_seconds == base.cadence_seconds
        });
        if let Some(cell) = op
            && let Some(v) = value(cell)
        {
            let c = change(metric, base_value, v);
            let mut s = format!(
                "Compared with {base_name}, scoring at request time on the same {} features {}",
                cadence_adjective(base),
                changes_clause(&c, label, v, base_value)
            );
            if let Some(ratio) = evaluations_ratio(cell, base) {
                let _ = write!(s, " for {ratio} the model evaluations");
            }
            s.push('.');
            sentences.push(s);
        }
    } else {
        sentences.push(format!(
            "The feature SQL does not use {NOW}, so online prediction on batch features gives \
             the same answers as batch."
        ));
    }

    if batch.len() <= 1 && online.is_none() {
        sentences.push(format!(
            "Only {base_name} was evaluated ({label} {}).",
            fmt_number(base_value)
        ));
    }
    sentences.join(" ")
}

// ---------------------------------------------------------------------------
// Formatting

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Metric values: 4 decimals; tiny values in scientific notation; "—" when missing.
fn fmt_number(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.to_owned()
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn fmt_option(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), fmt_number)
}

/// "12,345,678".
fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "45 s", "3.2 min", "3.2 h", "1.5 d".
fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "—".to_owned();
    }
    let a = seconds.abs();
    if a < 60.0 {
        if a == a.round() {
            format!("{seconds:.0} s")
        } else {
            format!("{seconds:.1} s")
        }
    } else if a < 3_600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if a < 86_400.0 {
        format!("{:.1} h", seconds / 3_600.0)
    } else {
        format!("{:.1} d", seconds / 86_400.0)
    }
}

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Signed relative change as a table cell, coloured and signed (colour is never the only cue).
fn relative_cell(rel: Option<f64>) -> String {
    match rel.filter(|r| r.is_finite()) {
        None => "<td>—</td>".to_owned(),
        Some(r) => {
            let pct = r * 100.0;
            let class = if r.abs() < TINY {
                "same"
            } else if r > 0.0 {
                "better"
            } else {
                "worse"
            };
            let sign = if pct < 0.0 { "−" } else { "+" };
            format!("<td class=\"{class}\">{sign}{:.1}%</td>", pct.abs())
        }
    }
}

fn metric_header(name: MetricName) -> String {
    let (arrow, hint) = if name.higher_is_better() {
        ("↑", "higher is better")
    } else {
        ("↓", "lower is better")
    };
    format!(
        "<th title=\"{hint}\">{} <span class=\"hint\">{arrow}</span></th>",
        escape(name.label())
    )
}

fn direction(name: MetricName) -> &'static str {
    if name.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    }
}

const CSS: &str = "\
:root{color-scheme:light}\
body{margin:0;background:#f6f6f4;color:#1a1a1a;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:1180px;margin:0 auto;padding:24px 20px 40px}\
h1{font-size:24px;margin:0 0 4px}\
h2{font-size:18px;margin:28px 0 10px}\
.meta{color:#555;margin:0}\
code{font:0.92em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#ececea;padding:0 4px;border-radius:3px;overflow-wrap:anywhere}\
.verdict{margin:18px 0 8px;padding:14px 20px;background:#e6f0f7;border-left:6px solid #0072B2;border-radius:4px;font-size:18px;line-height:1.55}\
.verdict p{margin:0}\
.note{color:#555;font-size:14px;margin:6px 0}\
.figures{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}\
figure{margin:0;padding:8px;background:#fff;border:1px solid #ddd;border-radius:4px;max-width:100%}\
figcaption{color:#555;font-size:13px;margin:4px 4px 0;max-width:640px}\
svg.figure{display:block;max-width:100%;height:auto}\
.table-wrap{overflow-x:auto}\
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums;font-size:14px}\
th,td{padding:5px 10px;border-bottom:1px solid #e2e2e2;text-align:right;white-space:nowrap}\
th{background:#f0f0ee;font-weight:600}\
th.l,td.l{text-align:left}\
tr.baseline td{background:#fff4dc}\
.hint{color:#888;font-weight:400}\
.better{color:#0072B2}.worse{color:#D55E00}.same{color:#555}\
footer{margin-top:28px;color:#666;font-size:13px}";

fn open_document(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
        escape(title)
    );
}

fn close_document(out: &mut String) {
    out.push_str("</main>\n</body>\n</html>\n");
}

fn figure(out: &mut String, svg: &str, caption: &str) {
    let _ = writeln!(
        out,
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        escape(caption)
    );
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

// ---------------------------------------------------------------------------
// Staleness report

/// Cells shown in the figures: online prediction is left out when it equals batch.
fn plotted_cells(report: &StalenessReport) -> Vec<&StalenessCell> {
    report
        .cells
        .iter()
        .filter(|c| report.uses_now || c.stage != Stage::OnlinePrediction)
        .collect()
}

fn stage_style(stage: Stage) -> (&'static str, Marker, bool) {
    match stage {
        Stage::Batch => (svg::BLUE, Marker::Circle, false),
        Stage::OnlinePrediction => (svg::ORANGE, Marker::Square, true),
        Stage::OnlineFeatures => (svg::GREEN, Marker::Diamond, false),
    }
}

fn metric_by_cadence(
    report: &StalenessReport,
    metric: MetricName,
    width: u32,
    height: u32,
) -> String {
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
    .into_string()
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

/// The staleness report as one self-contained HTML page.
pub fn staleness_html(report: &StalenessReport) -> String {
    let mut out = String::new();
    open_document(&mut out, &format!("Staleness report: {}", report.job));
    let _ = writeln!(
        out,
        "<header>\n<h1>Staleness report: <code>{}</code></h1>\n\
         <p class=\"meta\">model <code>{}</code> · labels <code>{}</code> · {} label rows from {} to {}</p>\n\
         </header>",
        escape(&report.job),
        escape(&report.model),
        escape(&report.labels),
        fmt_count(report.rows),
        fmt_time(&report.from),
        fmt_time(&report.to),
    );
    // The verdict is recomputed if the caller has not filled it, so the box is never empty.
    let verdict_text = if report.verdict.trim().is_empty() {
        verdict(report)
    } else {
        report.verdict.clone()
    };
    let _ = writeln!(
        out,
        "<section class=\"verdict\" aria-label=\"verdict\"><p>{}</p></section>",
        escape(&verdict_text)
    );
    let base = baseline(report);
    if let Some(base) = base
        && base.cadence_seconds != DAY
    {
        let _ = writeln!(
            out,
            "<p class=\"note\">No daily batch cadence was evaluated; improvements are measured \
             against {}.</p>",
            escape(&cell_name(base))
        );
    }
    if !report.uses_now {
        let _ = writeln!(
            out,
            "<p class=\"note\">The feature SQL does not use <code>{}</code>, so online \
             prediction on batch features equals batch; the figures leave it out.</p>",
            escape(NOW)
        );
    }

    out.push_str("<h2>Figures</h2>\n<div class=\"figures\">\n");
    let primary = report.primary_metric;
    figure(
        &mut out,
        &metric_by_cadence(report, primary, 640, 380),
        &format!(
            "{} for each stage, from online (left) to the slowest refresh (right); {}. \
             Hover a point for its value.",
            capitalise(primary.label()),
            direction(primary)
        ),
    );
    let secondary = secondary_metric(report.task);
    figure(
        &mut out,
        &metric_by_cadence(report, secondary, 480, 380),
        &format!(
            "{} for each stage; {}.",
            capitalise(secondary.label()),
            direction(secondary)
        ),
    );
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
        figure(
            &mut out,
            &chart.to_svg().into_string(),
            "Observed frequency of label 1 against the mean score, in ten bins; \
             points on the diagonal are perfectly calibrated. Empty bins are skipped.",
        );
    }
    let histograms = HistogramChart {
        title: match report.task {
            Task::Classification => "Score distribution".to_owned(),
            Task::Regression => "Prediction distribution".to_owned(),
        },
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
    figure(
        &mut out,
        &histograms.to_svg().into_string(),
        "Share of rows per bin. Stale predictions drift from the distribution of fresh ones.",
    );
    out.push_str("</div>\n");

    staleness_table(&mut out, report, base);

    let _ = writeln!(
        out,
        "<footer>{} label rows{} · window {} – {} · pipeline lag {} · {} rows per batch run · \
         backtest took {} · generated {}</footer>",
        fmt_count(report.rows),
        excluded_note(report.excluded_rows),
        fmt_time(&report.from),
        fmt_time(&report.to),
        fmt_duration(report.lag_seconds as f64),
        fmt_count(report.entities_per_run),
        fmt_duration(report.seconds),
        fmt_time(&report.generated_at),
    );
    close_document(&mut out);
    out
}

/// " (12 left out: no features for their entity)" when rows were left out.
fn excluded_note(excluded: u64) -> String {
    if excluded == 0 {
        String::new()
    } else {
        format!(
            " ({} left out: their entity had no features at some cutoff)",
            fmt_count(excluded)
        )
    }
}

fn staleness_table(out: &mut String, report: &StalenessReport, base: Option<&StalenessCell>) {
    let primary = report.primary_metric;
    let metrics = MetricName::for_task(report.task);
    let base_name = base.map_or_else(|| "baseline".to_owned(), cell_name);
    out.push_str(
        "<h2>Every number</h2>\n<div class=\"table-wrap\"><table>\n<thead><tr>\
         <th class=\"l\">Stage</th><th class=\"l\">Cadence</th><th>Mean feature age</th><th>Rows</th>",
    );
    for &m in metrics {
        out.push_str(&metric_header(m));
    }
    let _ = writeln!(
        out,
        "<th>{} vs {}</th><th>Model evaluations</th><th>Feature queries</th></tr></thead>\n<tbody>",
        escape(primary.label()),
        escape(&base_name)
    );
    let mut cells: Vec<&StalenessCell> = report.cells.iter().collect();
    cells.sort_by_key(|c| (c.stage, c.cadence_seconds));
    for cell in cells {
        let is_base = base.is_some_and(|b| std::ptr::eq(b, cell));
        let cadence = if cell.cadence_seconds == 0 {
            "online".to_owned()
        } else {
            format!("{} ({})", cell.cadence, cadence_words(cell))
        };
        let _ = write!(
            out,
            "<tr{}><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
            if is_base { " class=\"baseline\"" } else { "" },
            escape(cell.stage.label()),
            escape(&cadence),
            fmt_duration(cell.mean_feature_age_seconds),
            fmt_count(cell.metrics.rows()),
        );
        for &m in metrics {
            let _ = write!(out, "<td>{}</td>", fmt_option(cell.metrics.get(m)));
        }
        if is_base {
            out.push_str("<td class=\"same\">baseline</td>");
        } else {
            // Prefer the number the backtest stored; recompute only if it is missing.
            let rel = cell
                .improvement_vs_daily_batch
                .get(primary.key())
                .copied()
                .or_else(|| {
                    improvement(
                        primary,
                        base?.metrics.get(primary)?,
                        cell.metrics.get(primary)?,
                    )
                });
            out.push_str(&relative_cell(rel));
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td>{}</td></tr>",
            fmt_count(cell.model_evaluations),
            fmt_count(cell.feature_queries)
        );
    }
    let _ = writeln!(
        out,
        "</tbody>\n</table></div>\n<p class=\"note\">Improvement is relative to {}: positive is \
         better. Model evaluations are what each setup would cost over the window: a batch run \
         scores every entity, online setups score one row per request (counted from the {}); \
         feature queries are what this backtest ran (0 when reused from another cell).</p>",
        escape(&base_name),
        escape(&report.online_requests_from)
    );
}

// ---------------------------------------------------------------------------
// Backtest report

fn backtest_summary(report: &BacktestReport) -> String {
    let task = report.metrics.task();
    let primary = MetricName::primary(task);
    let label = primary.label();
    match &report.challenger {
        None => {
            let values: Vec<String> = MetricName::for_task(task)
                .iter()
                .map(|&m| format!("{} {}", m.label(), fmt_option(report.metrics.get(m))))
                .collect();
            format!(
                "Model {} on {} label rows: {}.",
                report.model,
                fmt_count(report.rows),
                values.join(", ")
            )
        }
        Some(ch) => {
            let (Some(champion), Some(challenger)) = (
                report.metrics.get(primary).filter(|v| v.is_finite()),
                ch.metrics.get(primary).filter(|v| v.is_finite()),
            ) else {
                return format!(
                    "Challenger {} and champion {} cannot be compared on {label}.",
                    ch.model, report.model
                );
            };
            let (c, p) = (fmt_number(challenger), fmt_number(champion));
            match change(primary, champion, challenger) {
                Change::Better(pct) => format!(
                    "Challenger {} beats champion {} on {label} by {pct:.1}% ({c} vs {p}).",
                    ch.model, report.model
                ),
                Change::Worse(pct) => format!(
                    "Challenger {} is {pct:.1}% worse than champion {} on {label} ({c} vs {p}).",
                    ch.model, report.model
                ),
                Change::Same => format!(
                    "Challenger {} and champion {} are within 0.1% on {label} ({c} vs {p}).",
                    ch.model, report.model
                ),
                Change::Unknown => format!(
                    "Challenger {} reaches {label} {c}, against {p} for champion {}.",
                    ch.model, report.model
                ),
            }
        }
    }
}

/// The backtest report as one self-contained HTML page.
pub fn backtest_html(report: &BacktestReport) -> String {
    let task = report.metrics.task();
    let mut out = String::new();
    open_document(&mut out, &format!("Backtest: {}", report.job));
    let _ = writeln!(
        out,
        "<header>\n<h1>Backtest: <code>{}</code></h1>\n\
         <p class=\"meta\">model <code>{}</code>{} · labels <code>{}</code> · {} label rows from {} to {}</p>\n\
         </header>\n<section class=\"verdict\" aria-label=\"summary\"><p>{}</p></section>",
        escape(&report.job),
        escape(&report.model),
        report
            .challenger
            .as_ref()
            .map(|c| format!(" vs challenger <code>{}</code>", escape(&c.model)))
            .unwrap_or_default(),
        escape(&report.labels),
        fmt_count(report.rows),
        fmt_time(&report.from),
        fmt_time(&report.to),
        escape(&backtest_summary(report)),
    );

    out.push_str("<h2>Figures</h2>\n<div class=\"figures\">\n");
    let champion_name = format!("champion {}", report.model);
    let challenger_name = |c: &ChallengerResult| format!("challenger {}", c.model);
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
        figure(
            &mut out,
            &chart.to_svg().into_string(),
            "Observed frequency of label 1 against the mean score, in ten bins; \
             points on the diagonal are perfectly calibrated.",
        );
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
        title: match task {
            Task::Classification => "Score distribution".to_owned(),
            Task::Regression => "Prediction distribution".to_owned(),
        },
        x_label: score_axis_label(task).to_owned(),
        y_label: "share of rows (%)".to_owned(),
        series,
        width: 640,
        height: 340,
    };
    figure(
        &mut out,
        &chart.to_svg().into_string(),
        "Share of rows per bin.",
    );
    out.push_str("</div>\n");

    out.push_str(
        "<h2>Every number</h2>\n<div class=\"table-wrap\"><table>\n<thead><tr><th class=\"l\">Metric</th>",
    );
    let _ = write!(
        out,
        "<th>champion <code>{}</code></th>",
        escape(&report.model)
    );
    if let Some(ch) = &report.challenger {
        let _ = write!(
            out,
            "<th>challenger <code>{}</code></th><th>difference (challenger − champion)</th>\
             <th>relative (positive = challenger better)</th>",
            escape(&ch.model)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for &m in MetricName::for_task(task) {
        let champion = report.metrics.get(m);
        let _ = write!(
            out,
            "<tr><td class=\"l\">{} <span class=\"hint\">{}</span></td><td>{}</td>",
            escape(m.label()),
            direction(m),
            fmt_option(champion)
        );
        if let Some(ch) = &report.challenger {
            let challenger = ch.metrics.get(m);
            let diff = ch
                .difference
                .get(m.key())
                .copied()
                .or_else(|| Some(challenger? - champion?));
            let rel = champion
                .zip(challenger)
                .and_then(|(a, b)| improvement(m, a, b));
            let diff = match diff.filter(|d| d.is_finite()) {
                Some(d) if d > 0.0 => format!("+{}", fmt_number(d)),
                Some(d) => fmt_number(d).replacen('-', "−", 1),
                None => "—".to_owned(),
            };
            let _ = write!(
                out,
                "<td>{}</td><td>{diff}</td>{}",
                fmt_option(challenger),
                relative_cell(rel)
            );
        }
        out.push_str("</tr>\n");
    }
    let _ = write!(
        out,
        "<tr><td class=\"l\">rows</td><td>{}</td>",
        fmt_count(report.metrics.rows())
    );
    if let Some(ch) = &report.challenger {
        let _ = write!(
            out,
            "<td>{}</td><td></td><td></td>",
            fmt_count(ch.metrics.rows())
        );
    }
    out.push_str("</tr>\n</tbody>\n</table></div>\n");
    let _ = writeln!(
        out,
        "<footer>{} label rows{} · window {} – {} · backtest took {} · generated {}</footer>",
        fmt_count(report.rows),
        excluded_note(report.excluded_rows),
        fmt_time(&report.from),
        fmt_time(&report.to),
        fmt_duration(report.seconds),
        fmt_time(&report.generated_at),
    );
    close_document(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{self, histogram};
    use chrono::TimeZone;

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

    fn sample_report(task: Task, uses_now: bool, cadences: &[(&str, i64)]) -> StalenessReport {
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

    const CADENCES: [(&str, i64); 4] = [("1h", HOUR), ("6h", 6 * HOUR), ("1d", DAY), ("7d", WEEK)];

    /// Splits out each `<svg class="figure"…</svg>`.
    fn figures(html: &str) -> Vec<&str> {
        html.split("<svg class=\"figure\"")
            .skip(1)
            .map(|s| s.split("</svg>").next().unwrap())
            .collect()
    }

    fn has_drawn_line(svg: &str) -> bool {
        svg.split("<polyline points=\"")
            .skip(1)
            .any(|rest| rest.split('"').next().is_some_and(|p| p.contains(',')))
    }

    fn assert_self_contained(html: &str) {
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("NaN") && !html.contains("inf\""));
    }

    #[test]
    fn verdict_reads_well() {
        let report = sample_report(Task::Classification, true, &CADENCES);
        let v = &report.verdict;
        assert!(
            v.contains("hourly") && v.contains("daily") && v.contains("weekly"),
            "{v}"
        );
        assert!(v.contains("24×"), "{v}");
        // A percentage with one decimal.
        let has_pct = v.match_indices('%').any(|(i, _)| {
            let b = v.as_bytes();
            i >= 3 && b[i - 1].is_ascii_digit() && b[i - 2] == b'.' && b[i - 3].is_ascii_digit()
        });
        assert!(has_pct, "{v}");
        assert!(
            v.contains("Refreshing hourly instead of daily improves log loss by"),
            "{v}"
        );
        assert!(v.contains("would cost"), "{v}");
        assert!(v.contains("scoring at request time"), "{v}");
        assert!(!v.contains(NOW), "{v}");
    }

    #[test]
    fn verdict_without_now_and_without_daily() {
        let report = sample_report(
            Task::Classification,
            false,
            &[("1h", HOUR), ("6h", 6 * HOUR), ("2d", 2 * DAY)],
        );
        let v = &report.verdict;
        assert!(v.contains("does not use {{now}}"), "{v}");
        assert!(v.contains("baseline is the slowest one (2d batch)"), "{v}");
        assert!(v.contains("instead of every 2 days"), "{v}");
        assert!(!v.contains("scoring at request time"), "{v}");
    }

    #[test]
    fn verdict_never_calls_worse_better() {
        let mut report = sample_report(Task::Classification, true, &CADENCES);
        // Make hourly worse than daily, and online features equal to hourly.
        let daily = baseline(&report)
            .unwrap()
            .metrics
            .get(MetricName::LogLoss)
            .unwrap();
        for c in &mut report.cells {
            if let Metrics::Classification(m) = &mut c.metrics {
                match (c.stage, c.cadence_seconds) {
                    (Stage::Batch, HOUR) => m.log_loss = daily * 1.05,
                    (Stage::OnlineFeatures, _) => m.log_loss = daily * 1.05 * 1.0004,
                    (Stage::Batch, WEEK) => m.log_loss = daily * 0.99995,
                    _ => {}
                }
            }
        }
        let v = verdict(&report);
        assert!(v.contains("worsens log loss by 5.0%"), "{v}");
        assert!(
            v.contains("Online features make no meaningful difference over hourly batch"),
            "{v}"
        );
        assert!(
            v.contains("Refreshing weekly would change log loss by less than 0.1%"),
            "{v}"
        );
        assert!(!v.contains("a further"), "{v}");
    }

    #[test]
    fn verdict_without_batch() {
        let mut report = sample_report(Task::Classification, true, &CADENCES);
        report.cells.retain(|c| c.stage == Stage::OnlineFeatures);
        assert!(verdict(&report).starts_with("No batch cadence was evaluated"));
        let html = staleness_html(&report);
        assert_eq!(figures(&html).len(), 4);
    }

    #[test]
    fn staleness_html_classification() {
        let report = sample_report(Task::Classification, true, &CADENCES);
        let html = staleness_html(&report);
        let figs = figures(&html);
        // Log loss, ROC AUC, calibration, histogram.
        assert_eq!(figs.len(), 4);
        assert_eq!(html.matches("<figure>").count(), figs.len());
        for svg in &figs {
            assert!(svg.contains("<title>"), "{svg}");
            assert!(svg.contains("viewBox=\"0 0 "));
            assert!(has_drawn_line(svg), "{svg}");
        }
        assert_self_contained(&html);
        assert!(html.contains("churn &lt;b&gt;&amp; co"));
        assert!(!html.contains("<b>&"));
        assert!(html.contains("class=\"baseline\""));
        assert!(html.contains("online prediction, batch features"));
        // Every metric of the task is in the table.
        for m in MetricName::for_task(Task::Classification) {
            assert!(html.contains(&escape(m.label())));
        }
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"stage\":\"online_features\""));
        assert!(json.contains("\"task\":\"classification\""));
    }

    #[test]
    fn staleness_html_regression_without_now() {
        let report = sample_report(Task::Regression, false, &CADENCES);
        assert!(report.verdict.contains("RMSE"), "{}", report.verdict);
        let html = staleness_html(&report);
        let figs = figures(&html);
        // RMSE, R², histogram: no calibration for regression.
        assert_eq!(figs.len(), 3);
        assert!(figs.iter().all(|s| has_drawn_line(s)));
        // Online prediction equals batch, so it is not plotted.
        assert!(!figs[0].contains("online prediction, batch features"));
        assert!(html.contains("does not use <code>{{now}}</code>"));
        assert_self_contained(&html);
        serde_json::to_string(&report).unwrap();
    }

    fn sample_backtest(task: Task, with_challenger: bool) -> BacktestReport {
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

    #[test]
    fn backtest_html_with_and_without_challenger() {
        let report = sample_backtest(Task::Classification, true);
        let html = backtest_html(&report);
        assert_eq!(figures(&html).len(), 2);
        assert!(figures(&html).iter().all(|s| has_drawn_line(s)));
        assert!(html.contains("gbm-v8 &quot;fresh&quot;"));
        assert!(
            html.contains("beats champion"),
            "{}",
            backtest_summary(&report)
        );
        assert_self_contained(&html);
        serde_json::to_string(&report).unwrap();

        let alone = backtest_html(&sample_backtest(Task::Classification, false));
        assert_eq!(figures(&alone).len(), 2);
        assert!(!alone.contains("challenger"));

        let regression = backtest_html(&sample_backtest(Task::Regression, true));
        assert_eq!(figures(&regression).len(), 1);
        assert!(regression.contains("RMSE"));
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_duration(11_520.0), "3.2 h");
        assert_eq!(fmt_duration(1.5), "1.5 s");
        assert_eq!(fmt_duration(0.0), "0 s");
        assert_eq!(fmt_duration(f64::NAN), "—");
        assert_eq!(fmt_number(0.123_456), "0.1235");
        assert_eq!(fmt_number(f64::NAN), "—");
        assert_eq!(fmt_option(None), "—");
        assert_eq!(
            relative_cell(Some(-0.031)),
            "<td class=\"worse\">−3.1%</td>"
        );
        assert_eq!(relative_cell(Some(f64::NAN)), "<td>—</td>");
    }

    /// Writes the sample reports when `PRESAGE_SAMPLE_DIR` is set, for looking at them.
    #[test]
    fn write_samples() {
        let Some(dir) = std::env::var_os("PRESAGE_SAMPLE_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let staleness = sample_report(Task::Classification, true, &CADENCES);
        std::fs::write(
            dir.join("sample-staleness.html"),
            staleness_html(&staleness),
        )
        .unwrap();
        let regression = sample_report(Task::Regression, false, &CADENCES);
        std::fs::write(
            dir.join("sample-staleness-regression.html"),
            staleness_html(&regression),
        )
        .unwrap();
        let backtest = sample_backtest(Task::Classification, true);
        std::fs::write(dir.join("sample-backtest.html"), backtest_html(&backtest)).unwrap();
    }
}
