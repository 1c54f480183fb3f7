//! The reports as self-contained HTML pages (inline CSS and SVG, no script, no URLs),
//! written with `maud`: every interpolated value — job, model and label names, the
//! verdict, numbers — is escaped by the template; only the constant style sheet is
//! inserted as it is.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::content::{BacktestReport, DAY, StalenessCell, StalenessReport, baseline};
use super::figures::{Figure, backtest_figures, staleness_figures};
use super::format::{
    fmt_count, fmt_duration, fmt_option, fmt_signed_number, fmt_signed_percent, fmt_time,
};
use super::verdict::{NOW, TINY, backtest_summary, cadence_words, cell_name, direction, verdict};
use crate::metrics::{MetricName, improvement};

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

/// The staleness report as one self-contained HTML page.
pub fn staleness_html(report: &StalenessReport) -> String {
    // The verdict is recomputed if the caller has not filled it, so the box is never empty.
    let verdict_text = if report.verdict.trim().is_empty() {
        verdict(report)
    } else {
        report.verdict.clone()
    };
    let base = baseline(report);
    let body = html! {
        header {
            h1 { "Staleness report: " code { (report.job) } }
            p.meta {
                "model " code { (report.model) } " · labels " code { (report.labels) } " · "
                (fmt_count(report.rows)) " label rows from " (fmt_time(&report.from))
                " to " (fmt_time(&report.to))
            }
        }
        section.verdict aria-label="verdict" { p { (verdict_text) } }
        @if let Some(base) = base.filter(|b| b.cadence_seconds != DAY) {
            p.note {
                "No daily batch cadence was evaluated; improvements are measured against "
                (cell_name(base)) "."
            }
        }
        @if !report.uses_now {
            p.note {
                "The feature SQL does not use " code { (NOW) } ", so online prediction on batch \
                 features equals batch; the figures leave it out."
            }
        }
        (figures_section(&staleness_figures(report)))
        (staleness_table(report, base))
        footer {
            (fmt_count(report.rows)) " label rows" (excluded_note(report.excluded_rows))
            " · window " (fmt_time(&report.from)) " – " (fmt_time(&report.to))
            " · pipeline lag " (fmt_duration(report.lag_seconds as f64))
            " · " (fmt_count(report.entities_per_run)) " rows per batch run"
            " · backtest took " (fmt_duration(report.seconds))
            " · generated " (fmt_time(&report.generated_at))
        }
    };
    page(&format!("Staleness report: {}", report.job), body)
}

/// The backtest report as one self-contained HTML page.
pub fn backtest_html(report: &BacktestReport) -> String {
    let body = html! {
        header {
            h1 { "Backtest: " code { (report.job) } }
            p.meta {
                "model " code { (report.model) }
                @if let Some(challenger) = &report.challenger {
                    " vs challenger " code { (challenger.model) }
                }
                " · labels " code { (report.labels) } " · "
                (fmt_count(report.rows)) " label rows from " (fmt_time(&report.from))
                " to " (fmt_time(&report.to))
            }
        }
        section.verdict aria-label="summary" { p { (backtest_summary(report)) } }
        (figures_section(&backtest_figures(report)))
        (backtest_table(report))
        footer {
            (fmt_count(report.rows)) " label rows" (excluded_note(report.excluded_rows))
            " · window " (fmt_time(&report.from)) " – " (fmt_time(&report.to))
            " · backtest took " (fmt_duration(report.seconds))
            " · generated " (fmt_time(&report.generated_at))
        }
    };
    page(&format!("Backtest: {}", report.job), body)
}

/// The document around a report's `body`: head, inline style sheet, `<main>`.
fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // `<style>` holds raw text that HTML does not unescape; the sheet is a
                // constant of ours, so it goes in as written.
                style { (PreEscaped(CSS)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

/// The "Figures" section: each chart with its caption, side by side where they fit.
fn figures_section(figures: &[Figure]) -> Markup {
    html! {
        h2 { "Figures" }
        div.figures {
            @for figure in figures {
                figure { (figure.svg) figcaption { (figure.caption) } }
            }
        }
    }
}

/// Every stage × cadence with every metric, the change against the baseline and the cost.
fn staleness_table(report: &StalenessReport, base: Option<&StalenessCell>) -> Markup {
    let primary = report.primary_metric;
    let metrics = MetricName::for_task(report.task);
    let base_name = base.map_or_else(|| "baseline".to_owned(), cell_name);
    let mut cells: Vec<&StalenessCell> = report.cells.iter().collect();
    cells.sort_by_key(|c| (c.stage, c.cadence_seconds));
    html! {
        h2 { "Every number" }
        div.table-wrap {
            table {
                thead {
                    tr {
                        th.l { "Stage" }
                        th.l { "Cadence" }
                        th { "Mean feature age" }
                        th { "Rows" }
                        @for &metric in metrics {
                            (metric_header(metric))
                        }
                        th { (primary.label()) " vs " (base_name) }
                        th { "Model evaluations" }
                        th { "Feature queries" }
                    }
                }
                tbody {
                    @for cell in cells {
                        @let is_base = base.is_some_and(|b| std::ptr::eq(b, cell));
                        tr class=[is_base.then_some("baseline")] {
                            td.l { (cell.stage.label()) }
                            td.l {
                                @if cell.cadence_seconds == 0 {
                                    "online"
                                } @else {
                                    (cell.cadence) " (" (cadence_words(cell)) ")"
                                }
                            }
                            td { (fmt_duration(cell.mean_feature_age_seconds)) }
                            td { (fmt_count(cell.metrics.rows())) }
                            @for &metric in metrics {
                                td { (fmt_option(cell.metrics.get(metric))) }
                            }
                            @if is_base {
                                td.same { "baseline" }
                            } @else {
                                (relative_cell(improvement_over(cell, base, primary)))
                            }
                            td { (fmt_count(cell.model_evaluations)) }
                            td { (fmt_count(cell.feature_queries)) }
                        }
                    }
                }
            }
        }
        p.note {
            "Improvement is relative to " (base_name) ": positive is better. Model evaluations \
             are what each setup would cost over the window: a batch run scores every entity, \
             online setups score one row per request (counted from the "
            (report.online_requests_from)
            "); feature queries are what this backtest ran (0 when reused from another cell)."
        }
    }
}

/// The relative change of `cell` over the baseline on `metric`: the number the backtest
/// stored, else recomputed from the two cells.
fn improvement_over(
    cell: &StalenessCell,
    base: Option<&StalenessCell>,
    metric: MetricName,
) -> Option<f64> {
    cell.improvement_vs_daily_batch
        .get(metric.key())
        .copied()
        .or_else(|| {
            improvement(
                metric,
                base?.metrics.get(metric)?,
                cell.metrics.get(metric)?,
            )
        })
}

/// Every metric of the champion and, when there is one, the challenger with the
/// difference and the relative change.
fn backtest_table(report: &BacktestReport) -> Markup {
    let challenger = report.challenger.as_ref();
    html! {
        h2 { "Every number" }
        div.table-wrap {
            table {
                thead {
                    tr {
                        th.l { "Metric" }
                        th { "champion " code { (report.model) } }
                        @if let Some(ch) = challenger {
                            th { "challenger " code { (ch.model) } }
                            th { "difference (challenger − champion)" }
                            th { "relative (positive = challenger better)" }
                        }
                    }
                }
                tbody {
                    @for &metric in MetricName::for_task(report.metrics.task()) {
                        @let champion = report.metrics.get(metric);
                        tr {
                            td.l { (metric.label()) " " span.hint { (direction(metric)) } }
                            td { (fmt_option(champion)) }
                            @if let Some(ch) = challenger {
                                @let value = ch.metrics.get(metric);
                                @let difference = ch
                                    .difference
                                    .get(metric.key())
                                    .copied()
                                    .or_else(|| Some(value? - champion?));
                                @let relative = champion
                                    .zip(value)
                                    .and_then(|(a, b)| improvement(metric, a, b));
                                td { (fmt_option(value)) }
                                td { (fmt_signed_number(difference)) }
                                (relative_cell(relative))
                            }
                        }
                    }
                    tr {
                        td.l { "rows" }
                        td { (fmt_count(report.metrics.rows())) }
                        @if let Some(ch) = challenger {
                            td { (fmt_count(ch.metrics.rows())) }
                            td {}
                            td {}
                        }
                    }
                }
            }
        }
    }
}

/// A metric's column header, with an arrow and a tooltip saying which way is better.
fn metric_header(metric: MetricName) -> Markup {
    let arrow = if metric.higher_is_better() {
        "↑"
    } else {
        "↓"
    };
    html! {
        th title=(direction(metric)) { (metric.label()) " " span.hint { (arrow) } }
    }
}

/// A relative change as a table cell, coloured and signed (colour is never the only cue).
fn relative_cell(relative: Option<f64>) -> Markup {
    match relative.filter(|r| r.is_finite()) {
        None => html! { td { "—" } },
        Some(r) => {
            let class = if r.abs() < TINY {
                "same"
            } else if r > 0.0 {
                "better"
            } else {
                "worse"
            };
            html! { td class=(class) { (fmt_signed_percent(r * 100.0)) } }
        }
    }
}

/// " (12 left out: …)" after the row count when rows were left out.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Task;
    use crate::report::content::Stage;
    use crate::report::sample::{CADENCES, sample_backtest, sample_report};

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
            assert!(html.contains(&html! { (m.label()) }.into_string()));
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
    fn relative_cells_are_signed_and_classed() {
        assert_eq!(
            relative_cell(Some(-0.031)).into_string(),
            "<td class=\"worse\">−3.1%</td>"
        );
        assert_eq!(
            relative_cell(Some(0.041)).into_string(),
            "<td class=\"better\">+4.1%</td>"
        );
        assert_eq!(
            relative_cell(Some(0.0004)).into_string(),
            "<td class=\"same\">+0.0%</td>"
        );
        assert_eq!(relative_cell(Some(f64::NAN)).into_string(), "<td>—</td>");
    }

    /// Names come from the user's config and files; none of them may become markup,
    /// wherever it lands: header, title, verdict, legends, tooltips, table, notes.
    #[test]
    fn names_with_markup_are_escaped() {
        const EVIL: &str = "<script>alert(1)</script> & co";
        const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co";
        let mut staleness = sample_report(Task::Classification, true, &CADENCES);
        staleness.job = format!("job {EVIL}");
        staleness.model = format!("model {EVIL}");
        staleness.labels = format!("labels {EVIL}");
        staleness.online_requests_from = format!("requests {EVIL}");
        staleness.verdict = format!("verdict {EVIL}");
        let html = staleness_html(&staleness);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("& co"), "{html}");
        for name in ["job", "model", "labels", "requests", "verdict"] {
            assert!(
                html.contains(&format!("{name} {ESCAPED}")),
                "{name}: {html}"
            );
        }
        assert!(html.contains(&format!("<title>Staleness report: job {ESCAPED}</title>")));

        let mut backtest = sample_backtest(Task::Classification, true);
        backtest.job = format!("job {EVIL}");
        backtest.model = format!("champion {EVIL}");
        backtest.challenger.as_mut().unwrap().model = format!("challenger {EVIL}");
        let html = backtest_html(&backtest);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("& co"), "{html}");
        // Legends and calibration tooltips of both models are inside the figures.
        for svg in figures(&html) {
            assert!(svg.contains(&format!("champion {ESCAPED}")), "{svg}");
            assert!(svg.contains(&format!("challenger {ESCAPED}")), "{svg}");
        }
        assert!(html.contains(&format!("<code>job {ESCAPED}</code>")));
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
