use std::fmt::Write;

use anyhow::Result;
use presage_store::CheckResult;

use crate::config::Config;

/// `presage versions JOB`.
pub fn versions(config: &Config, job: &str, json: bool) -> Result<()> {
    let job = config.job(job)?;
    let (current, versions) = super::runtime()?.block_on(async {
        let store = config.store().await?;
        let current = store.current(&job.spec.name).await?;
        let versions = store.versions(&job.spec.name).await?;
        anyhow::Ok((current, versions))
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "current": current, "versions": versions })
            )?
        );
        return Ok(());
    }
    if versions.is_empty() {
        println!(
            "{}: no versions yet; run `presage run {}`",
            job.spec.name, job.spec.name
        );
        return Ok(());
    }
    println!(
        "{:>2} {:>7}  {:<20}  {:<20}  {:>10}  {:>8}  checks",
        "", "version", "computed_at", "features_as_of", "rows", "run"
    );
    for m in &versions {
        let passed = m.checks.iter().filter(|c| c.passed).count();
        let checks = if m.checks.is_empty() {
            "none".to_owned()
        } else if m.forced {
            format!("{passed}/{} passed, forced", m.checks.len())
        } else {
            format!("{passed}/{} passed", m.checks.len())
        };
        println!(
            "{:>2} {:>7}  {:<20}  {:<20}  {:>10}  {:>7.1}s  {checks}",
            if Some(m.id) == current { "*" } else { "" },
            m.id,
            m.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
            m.features_as_of.format("%Y-%m-%dT%H:%M:%SZ"),
            m.rows,
            m.run_seconds,
        );
        for c in m.checks.iter().filter(|c| !c.passed) {
            println!(
                "{:>12}failed {} = {} (threshold {}) {}",
                "", c.name, c.value, c.threshold, c.detail
            );
        }
    }
    Ok(())
}

/// A table of check results, failed ones marked.
pub fn checks_table(checks: &[CheckResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>14} {:>12}  result",
        "check", "value", "threshold"
    );
    for c in checks {
        let _ = writeln!(
            out,
            "{:<20} {:>14} {:>12}  {}{}",
            c.name,
            format!("{:.6}", c.value)
                .trim_end_matches('0')
                .trim_end_matches('.'),
            c.threshold,
            if c.passed { "ok" } else { "FAILED" },
            if c.detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.detail)
            }
        );
    }
    out
}
