//! `presage staleness JOB --labels SOURCE --cadence 0,1h,6h,1d,7d`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use presage_eval::metrics::MetricName;
use presage_eval::report::{StalenessReport, staleness_html};
use presage_eval::{StalenessOptions, parse_cadences};

use super::eval_args::{EvalReporter, eval_job, label_source, window, write_outputs};
use crate::cli::LabelArgs;
use crate::config::Config;

/// Replays the labels' requests under every cadence and stage; prints the table and
/// the verdict, and writes the JSON and HTML report when asked.
pub fn staleness(
    config: &Config,
    job: &str,
    labels: &LabelArgs,
    cadence: &str,
    lag: &str,
    json: Option<&Path>,
    report_path: Option<&Path>,
) -> Result<()> {
    let eval = eval_job(config, job)?;
    let cadences = parse_cadences(cadence).context("--cadence")?;
    let lag = presage_eval::parse_lag(lag).context("--lag")?;
    let (from, to) = window(labels)?;
    let options = StalenessOptions {
        labels: label_source(config, &eval, labels)?,
        from,
        to,
        cadences,
        lag,
        lookup_log: config.lookup_log.clone(),
    };
    let reporter = Arc::new(EvalReporter::new(format!("staleness {job}")));
    let result =
        super::runtime()?.block_on(presage_eval::staleness(&eval, &options, reporter.clone()));
    reporter.finish();
    let report = result?;
    print_table(&report);
    write_outputs(&report, json, report_path, staleness_html)
}

fn print_table(report: &StalenessReport) {
    let primary = report.primary_metric;
    let second = match primary {
        MetricName::LogLoss => MetricName::RocAuc,
        _ => MetricName::R2,
    };
    println!(
        "{} on {} requests from {} to {} (lag {}s), {} entities per batch run:",
        report.job,
        report.rows,
        report.from.format("%Y-%m-%d %H:%M"),
        report.to.format("%Y-%m-%d %H:%M"),
        report.lag_seconds,
        report.entities_per_run
    );
    println!(
        "{:<34} {:>8} {:>12} {:>10} {:>10} {:>12} {:>14}",
        "stage",
        "cadence",
        "feature age",
        primary.label(),
        second.label(),
        "vs daily",
        "evaluations"
    );
    for cell in &report.cells {
        let metric = |m: MetricName| {
            cell.metrics
                .get(m)
                .map_or("-".to_owned(), |v| format!("{v:.4}"))
        };
        let change = cell
            .improvement_vs_daily_batch
            .get(primary.key())
            .map_or("baseline".to_owned(), |c| format!("{:+.1}%", c * 100.0));
        let change =
            if cell.stage == presage_eval::report::Stage::Batch && cell.cadence_seconds == 86_400 {
                "baseline".to_owned()
            } else if change == "baseline" {
                "-".to_owned()
            } else {
                change
            };
        println!(
            "{:<34} {:>8} {:>12} {:>10} {:>10} {:>12} {:>14}",
            cell.stage.label(),
            if cell.cadence_seconds == 0 {
                "online"
            } else {
                &cell.cadence
            },
            super::human_age(cell.mean_feature_age_seconds),
            metric(primary),
            metric(second),
            change,
            cell.model_evaluations
        );
    }
    if report.excluded_rows > 0 {
        println!(
            "{} requests left out: their entity had no features at some cadence's cutoff (set the job's `default` to score them)",
            report.excluded_rows
        );
    }
    println!();
    println!("{}", report.verdict);
    println!("({:.1}s)", report.seconds);
}
