//! `presage backtest JOB --labels SOURCE [--challenger MODEL]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use presage_eval::BacktestOptions;
use presage_eval::metrics::MetricName;
use presage_eval::report::{BacktestReport, backtest_html};
use presage_model::ModelSpec;

use super::eval_args::{EvalReporter, eval_job, label_source, window, write_outputs};
use crate::cli::LabelArgs;
use crate::config::Config;

/// Scores the job's model (and a challenger) on the labels; prints the metrics and
/// writes the JSON and HTML report when asked.
pub fn backtest(
    config: &Config,
    job: &str,
    labels: &LabelArgs,
    challenger: Option<&str>,
    json: Option<&Path>,
    report_path: Option<&Path>,
) -> Result<()> {
    let eval = eval_job(config, job)?;
    let (from, to) = window(labels)?;
    let challenger = challenger
        .map(|c| resolve_challenger(config, &eval, c))
        .transpose()?;
    let options = BacktestOptions {
        labels: label_source(config, &eval, labels)?,
        from,
        to,
        challenger,
    };
    let reporter = Arc::new(EvalReporter::new(format!("backtest {job}")));
    let result =
        super::runtime()?.block_on(presage_eval::backtest(&eval, &options, reporter.clone()));
    reporter.finish();
    let report = result?;
    print_table(&report);
    write_outputs(&report, json, report_path, backtest_html)
}

/// A `[models.NAME]` of the config (its own inputs), or a model file taking the job's.
fn resolve_challenger(
    config: &Config,
    job: &presage_eval::EvalJob,
    text: &str,
) -> Result<ModelSpec> {
    if !config.models.contains_key(text) && !Path::new(text).is_file() {
        anyhow::bail!(
            "--challenger `{text}`: neither a model in `{}` ({}) nor a model file",
            config.path.display(),
            presage_data::quoted_list(config.models.keys().map(String::as_str))
        );
    }
    Ok(match config.models.get(text) {
        Some(model) => model.clone(),
        None => ModelSpec {
            name: text.to_owned(),
            path: PathBuf::from(text),
            inputs: job.model.inputs.clone(),
            outputs: job.model.outputs.clone(),
        },
    })
}

fn print_table(report: &BacktestReport) {
    println!(
        "{} on {} requests from {} to {}, features as of each request:",
        report.job,
        report.rows,
        report.from.format("%Y-%m-%d %H:%M"),
        report.to.format("%Y-%m-%d %H:%M"),
    );
    let task = report.metrics.task();
    match &report.challenger {
        None => {
            println!("{:<14} {:>10}", "metric", report.model);
            for &m in MetricName::for_task(task) {
                println!("{:<14} {:>10}", m.label(), fmt(report.metrics.get(m)));
            }
        }
        Some(c) => {
            println!(
                "{:<14} {:>12} {:>12} {:>12}",
                "metric", report.model, c.model, "difference"
            );
            for &m in MetricName::for_task(task) {
                println!(
                    "{:<14} {:>12} {:>12} {:>12}",
                    m.label(),
                    fmt(report.metrics.get(m)),
                    fmt(c.metrics.get(m)),
                    c.difference
                        .get(m.key())
                        .map_or("-".to_owned(), |d| format!("{d:+.4}"))
                );
            }
        }
    }
    if report.excluded_rows > 0 {
        println!(
            "{} requests left out: their entity had no features at that time (set the job's `default` to score them)",
            report.excluded_rows
        );
    }
    println!("({:.1}s)", report.seconds);
}

fn fmt(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.4}"))
}
