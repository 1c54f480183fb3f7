use std::fmt::Write;

use anyhow::Result;
use presage_store::{CheckResult, VersionState};

use crate::config::Config;

/// `presage versions JOB`.
pub fn versions(config: &Config, job: &str, json: bool) -> Result<()> {
    let job = config.job(job)?;
    let list = super::runtime()?.block_on(async {
        let store = config.store().await?;
        anyhow::Ok(store.version_list(&job.spec.name).await?)
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.versions.is_empty() {
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
    for listed in &list.versions {
        let m = &listed.manifest;
        let passed = m.checks.iter().filter(|c| c.passed).count();
        let checks = if m.checks.is_empty() {
            "none".to_owned()
        } else if m.forced {
            format!("{passed}/{} passed, forced", m.checks.len())
        } else {
            format!("{passed}/{} passed", m.checks.len())
        };
        let state = match listed.state {
            VersionState::Current | VersionState::Served => "",
            VersionState::RolledBack => "  (rolled back from)",
            VersionState::Backfill => "  (backfill, never served)",
        };
        println!(
            "{:>2} {:>7}  {:<20}  {:<20}  {:>10}  {:>7.1}s  {checks}{state}",
            if listed.state == VersionState::Current {
                "*"
            } else {
                ""
            },
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
