use anyhow::Result;
use presage_store::VersionId;

use crate::config::Config;

/// `presage rollback JOB [--to ID] [--force]`.
pub fn rollback(config: &Config, job: &str, to: Option<u64>, force: bool) -> Result<()> {
    let job = config.job(job)?;
    let (from, to) = super::runtime()?.block_on(async {
        let store = config.store().await?;
        anyhow::Ok(
            store
                .rollback(&job.spec.name, to.map(VersionId), force)
                .await?,
        )
    })?;
    println!("{}: now serving version {to} (was {from})", job.spec.name);
    Ok(())
}
