//! What `backtest` and `staleness` share: the job and labels resolved from the
//! config and flags, progress on stderr, and writing the JSON and HTML outputs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use presage_data::{FileSource, SourceSpec, quoted_list};
use presage_eval::{EvalJob, EvalProgress, LabelSource};

use crate::cli::LabelArgs;
use crate::config::Config;

/// The job as the eval crate needs it.
pub fn eval_job(config: &Config, job_name: &str) -> Result<EvalJob> {
    let job = config.job(job_name)?;
    if let Some(ranked) = &job.spec.ranked {
        // Labels here are one outcome per key and time; a ranked list needs per-item
        // relevance (precision@k and the like), which this evaluation does not compute.
        bail!(
            "job `{job_name}` keeps a ranked list of `{}` per key (top_k = {}); backtests and staleness reports evaluate jobs with one prediction per key",
            ranked.item,
            ranked.top_k
        );
    }
    let Some(model) = job.spec.predictor.model() else {
        bail!(
            "job `{job_name}` imports predictions computed elsewhere (`predictions = \"{}\"`); backtests and staleness reports replay a model on past features, and this job has none",
            job.spec.features.name
        );
    };
    Ok(EvalJob {
        name: job.spec.name.clone(),
        sources: job.spec.sources.clone(),
        features: job.spec.features.clone(),
        model: model.clone(),
        default: job.serve.default.clone(),
    })
}

/// The labels: a configured source by name, or a file.
pub fn label_source(config: &Config, job: &EvalJob, args: &LabelArgs) -> Result<LabelSource> {
    let key = args
        .key_column
        .clone()
        .unwrap_or_else(|| job.features.key.clone());
    let (source, description) = match job.sources.iter().find(|s| s.name == args.labels) {
        Some(source) => (source.clone(), args.labels.clone()),
        None => {
            let path = PathBuf::from(&args.labels);
            let has_glob = args.labels.contains(['*', '?', '[']);
            if !has_glob && !path.exists() {
                bail!(
                    "--labels `{}`: neither a source in `{}` ({}) nor an existing file",
                    args.labels,
                    config.path.display(),
                    quoted_list(job.sources.iter().map(|s| s.name.as_str()))
                );
            }
            (
                SourceSpec::new("labels", FileSource::new(path, None)),
                args.labels.clone(),
            )
        }
    };
    Ok(LabelSource {
        source,
        description,
        key,
        time: args.time_column.clone(),
        label: args.label_column.clone(),
    })
}

/// An optional bound of a time window.
type Bound = Option<chrono::DateTime<chrono::Utc>>;

/// The `--from` / `--to` window.
pub fn window(args: &LabelArgs) -> Result<(Bound, Bound)> {
    let from = args
        .from
        .as_deref()
        .map(super::parse_instant)
        .transpose()
        .context("--from")?;
    let to = args
        .to
        .as_deref()
        .map(super::parse_instant)
        .transpose()
        .context("--to")?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        bail!("--from {f} is not before --to {t}");
    }
    Ok((from, to))
}

/// Writes the report as JSON and as HTML where asked, each through a temporary file
/// so a reader never sees half of one.
pub fn write_outputs<R: serde::Serialize>(
    report: &R,
    json: Option<&Path>,
    html: Option<&Path>,
    render: fn(&R) -> String,
) -> Result<()> {
    let outputs = [
        json.map(|p| serde_json::to_string_pretty(report).map(|t| (p, t))),
        html.map(|p| Ok((p, render(report)))),
    ];
    for output in outputs.into_iter().flatten() {
        let (path, text) = output?;
        let tmp = path.with_extension("partial");
        fs_err::write(&tmp, text)?;
        fs_err::rename(&tmp, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Progress of a backtest on stderr: a bar over feature queries on a terminal,
/// a line every few seconds otherwise.
pub struct EvalReporter {
    prefix: String,
    bar: Option<ProgressBar>,
    plain: Mutex<(Instant, Instant)>,
}

impl EvalReporter {
    /// A reporter whose lines start with `prefix` (`staleness churn`).
    pub fn new(prefix: String) -> EvalReporter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_prefix(prefix.clone());
            bar
        });
        let now = Instant::now();
        EvalReporter {
            prefix,
            bar,
            plain: Mutex::new((now, now)),
        }
    }

    /// Removes the bar before results are printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl EvalProgress for EvalReporter {
    fn step(&self, step: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                        .expect("valid template"),
                );
                bar.set_message(step.to_owned());
            }
            None => eprintln!("{}: {step}", self.prefix),
        }
        let mut plain = self.plain.lock().expect("reporter lock");
        *plain = (Instant::now(), Instant::now());
    }

    fn queries(&self, done: usize, total: usize) {
        match &self.bar {
            Some(bar) => {
                if bar.length() != Some(total as u64) {
                    bar.set_length(total as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix}: feature queries [{bar:30}] {human_pos}/{human_len}, {per_sec}, eta {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                }
                bar.set_position(done as u64);
            }
            None => {
                let mut plain = self.plain.lock().expect("reporter lock");
                let (started, last) = &mut *plain;
                if last.elapsed() >= Duration::from_secs(5) || done == total {
                    *last = Instant::now();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let eta = if rate > 0.0 {
                        format!(", eta {:.0}s", (total - done) as f64 / rate)
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "{}: {done}/{total} feature queries ({rate:.0}/s{eta})",
                        self.prefix
                    );
                }
            }
        }
    }
}
