use anyhow::Result;
use chrono::{DateTime, Utc};
use presage_data::ByteSize;
use presage_job::{JobError, RunOptions, RunOutcome};
use presage_store::{ExportRecord, RunStages};

use crate::config::Config;
use crate::reporter::RunReporter;

/// `presage run`'s flags.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The feature cutoff; now when `None`.
    pub as_of: Option<DateTime<Utc>>,
    /// Make the new version current (false for an unpromoted backfill).
    pub promote: bool,
    /// Publish even if checks fail.
    pub force: bool,
    /// Print the feature query's plan with its metrics after the run.
    pub explain: bool,
}

impl Default for Options {
    /// A run now, published and served.
    fn default() -> Options {
        Options {
            as_of: None,
            promote: true,
            force: false,
            explain: false,
        }
    }
}

/// `presage run JOB`: one run, ending with a summary of where its time went.
pub fn run(config: &Config, job: &str, options: Options) -> Result<RunOutcome> {
    let job = config.job(job)?;
    let runtime = super::runtime()?;
    let store = runtime.block_on(config.store())?;
    let run_options = RunOptions {
        as_of: options.as_of.unwrap_or_else(Utc::now),
        force: options.force,
        limits: config.limits.clone(),
        explain: options.explain,
        promote: options.promote,
    };
    let reporter = RunReporter::new(&job.spec.name);
    let result = runtime.block_on(presage_job::run(&job.spec, &store, run_options, &reporter));
    reporter.finish();
    match result {
        Ok(outcome) => {
            let m = &outcome.manifest;
            if m.forced {
                eprintln!(
                    "warning: checks failed and --force published anyway (recorded in the manifest)"
                );
            }
            // A ranked-list job scores candidates and stores one list per key.
            let (scored, what) = match &m.ranked {
                Some(r) => (r.candidates, "candidates"),
                None => (m.rows, "rows"),
            };
            let lists = match &m.ranked {
                Some(r) => format!(" (top {} of {scored} candidates)", r.top_k),
                None => String::new(),
            };
            println!(
                "published {} version {}: {} rows{lists} in {:.2}s ({:.0} {what}/s), features as of {}",
                m.job,
                m.id,
                m.rows,
                outcome.seconds,
                scored as f64 / outcome.seconds.max(1e-9),
                m.features_as_of.format("%Y-%m-%dT%H:%M:%SZ"),
            );
            if !options.promote {
                println!(
                    "  a backfill: not served; serve it with `presage rollback {} --to {}`",
                    m.job, m.id
                );
            }
            println!("{}", stages_line(&outcome.stages));
            match &outcome.export {
                Some(ExportRecord {
                    destination,
                    error: None,
                }) => println!("  exported to {destination}"),
                Some(ExportRecord {
                    destination,
                    error: Some(error),
                }) => eprintln!(
                    "warning: the version is published, but exporting it to {destination} failed: {error}"
                ),
                None => {}
            }
            if let Some(plan) = &outcome.explain {
                println!(
                    "\nfeature query `{}`, as run:\n{plan}",
                    job.spec.features.name
                );
            }
            Ok(outcome)
        }
        Err(JobError::Blocked { checks, kept }) => {
            eprintln!("{}", super::versions::checks_table(&checks));
            Err(JobError::Blocked { checks, kept }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `  time: features 4.10s, scoring 2.31s, writing 1.92s, checks 0.01s, publish 0.05s`
/// (features, scoring and writing overlap), and what the query spilled.
pub fn stages_line(stages: &RunStages) -> String {
    let mut line = format!(
        "  time: features {:.2}s, scoring {:.2}s, writing {:.2}s (these overlap), checks {:.2}s, publish {:.2}s",
        stages.features, stages.scoring, stages.writing, stages.checks, stages.publish
    );
    if stages.spilled_bytes > 0 {
        line += &format!(
            "; the feature query spilled {}",
            ByteSize(stages.spilled_bytes)
        );
    }
    line
}
