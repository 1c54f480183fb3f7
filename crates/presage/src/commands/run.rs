use anyhow::Result;
use chrono::{DateTime, Utc};
use presage_job::{JobError, RunOptions, RunOutcome};

use crate::config::Config;
use crate::reporter::RunReporter;

/// `presage run JOB`: one run, ending with a one-line summary.
pub fn run(
    config: &Config,
    job: &str,
    as_of: Option<DateTime<Utc>>,
    force: bool,
) -> Result<RunOutcome> {
    let job = config.job(job)?;
    let runtime = super::runtime()?;
    let store = runtime.block_on(config.store())?;
    let options = RunOptions {
        as_of: as_of.unwrap_or_else(Utc::now),
        force,
    };
    let reporter = RunReporter::new(&job.spec.name);
    let result = runtime.block_on(presage_job::run(&job.spec, &store, options, &reporter));
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
            Ok(outcome)
        }
        Err(JobError::Blocked { checks, kept }) => {
            eprintln!("{}", super::versions::checks_table(&checks));
            Err(JobError::Blocked { checks, kept }.into())
        }
        Err(e) => Err(e.into()),
    }
}
