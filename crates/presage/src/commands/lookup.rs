use std::io::Write;

use anyhow::{Context, Result};
use chrono::Utc;
use presage_serve::write_answer;

use crate::config::Config;

/// `presage lookup JOB KEY...`: one JSON answer per line, as the HTTP API gives it.
pub fn lookup(config: &Config, job: &str, keys: &[String]) -> Result<()> {
    let job = config.job(job)?;
    let store = config.store();
    let id = store.current(&job.spec.name)?.with_context(|| {
        format!(
            "job `{}` has no published version; run `presage run {}`",
            job.spec.name, job.spec.name
        )
    })?;
    let version = store.load(&job.spec.name, id)?;
    let now = Utc::now();
    let mut stdout = std::io::stdout().lock();
    let mut missing = Vec::new();
    for key in keys {
        let mut out = Vec::new();
        match write_answer(&job.serve, &version, key, now, &mut out) {
            Some(_) => {
                stdout.write_all(&out)?;
                stdout.write_all(b"\n")?;
            }
            None => missing.push(format!("`{key}`")),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "no prediction in job `{}` version {id} for {}",
            job.spec.name,
            missing.join(", ")
        );
    }
    Ok(())
}
