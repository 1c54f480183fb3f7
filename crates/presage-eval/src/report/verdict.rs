//! The plain-language summaries read first — the staleness verdict and the backtest's
//! champion-against-challenger sentence — and the names the reports give cadences,
//! cells and metric directions. Numbers in them are written by [`super::format`].

use std::fmt::Write as _;

use super::content::{
    BacktestReport, DAY, HOUR, Stage, StalenessCell, StalenessReport, WEEK, baseline,
};
use super::format::{capitalise, fmt_count, fmt_number, fmt_option};
use crate::metrics::{MetricName, improvement};

/// Relative differences below this are reported as "no meaningful difference".
pub(super) const TINY: f64 = 0.001;
/// The placeholder whose presence makes online prediction differ from batch.
pub(super) const NOW: &str = "{{now}}";

/// "hourly", "every 6 hours", "daily", "weekly", … or "every 90s" as a last resort.
pub(super) fn cadence_words(cell: &StalenessCell) -> String {
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
pub(super) fn cell_name(cell: &StalenessCell) -> String {
    match cell.stage {
        Stage::Batch => format!("{} batch", cadence_adjective(cell)),
        Stage::OnlinePrediction => {
            format!("online prediction on {} features", cadence_adjective(cell))
        }
        Stage::OnlineFeatures => "online features".to_owned(),
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

/// Which way a metric improves, as the tables and axis captions say it.
pub(super) fn direction(name: MetricName) -> &'static str {
    if name.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    }
}

/// One sentence read first in the backtest report: the champion's metrics, or how
/// the challenger compares with it on the primary metric.
pub(super) fn backtest_summary(report: &BacktestReport) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricName, Metrics, Task};
    use crate::report::sample::{CADENCES, sample_report};

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
}
