use std::io::Write;

use anyhow::{Context, Result};
use chrono::Utc;
use presage_serve::write_answer;

use crate::config::Config;

/// `presage lookup JOB KEY...`: one JSON answer per line, as the HTTP API gives it.
pub fn lookup(config: &Config, job: &str, keys: &[String]) -> Result<()> {
    let job = config.job(job)?;
    let name = &job.spec.name;
    let (id, answers) = super::runtime()?.block_on(async {
        let store = config.store().await?;
        let id = store.current(name).await?.with_context(|| {
            format!("job `{name}` has no published version; run `presage run {name}`")
        })?;
        let version = store.open(name, id).await?;
        let now = Utc::now();
        let mut answers = Vec::with_capacity(keys.len());
        version
            .predictions(keys, |i, prediction| {
                let mut out = Vec::new();
                let status = write_answer(
                    &job.serve,
                    version.manifest(),
                    &keys[i],
                    prediction,
                    now,
                    &mut out,
                );
                answers.push(status.map(|_| out));
            })
            .await?;
        anyhow::Ok((id, answers))
    })?;
    let mut stdout = std::io::stdout().lock();
    let mut missing = Vec::new();
    for (key, answer) in keys.iter().zip(answers) {
        match answer {
            Some(out) => {
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
