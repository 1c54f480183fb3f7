use anyhow::Result;
use chrono::Utc;
use presage_store::Staleness;
use serde_json::json;

use crate::config::Config;

/// `presage status`: each job's version, rows, age and whether it is stale.
pub fn status(config: &Config, as_json: bool) -> Result<()> {
    let store = config.store();
    let now = Utc::now();
    let mut rows = Vec::new();
    for (name, job) in &config.jobs {
        let current = store.current(name)?;
        let manifest = current.map(|id| store.manifest(name, id)).transpose()?;
        let last_run = store.last_run(name)?;
        let last = last_run.as_ref().map(|r| {
            json!({
                "outcome": r.outcome,
                "finished_at": r.finished_at,
                "seconds": r.seconds,
                "version": r.version,
                "failed_checks": r.failed_checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "error": r.error,
            })
        });
        let mut entry = match &manifest {
            Some(m) => {
                let s = Staleness::at(m.created_at, job.serve.max_age, now);
                json!({
                    "job": name,
                    "version": m.id,
                    "rows": m.rows,
                    "computed_at": m.created_at,
                    "features_as_of": m.features_as_of,
                    "age_seconds": (s.age_seconds * 1000.0).round() / 1000.0,
                    "max_age_seconds": job.serve.max_age.map(|d| d.as_secs()),
                    "status": s.freshness.as_str(),
                })
            }
            None => json!({ "job": name, "version": null, "status": "no version" }),
        };
        entry["last_run"] = last.unwrap_or(serde_json::Value::Null);
        rows.push(entry);
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "jobs": rows }))?
        );
        return Ok(());
    }
    println!(
        "{:<16} {:>7} {:>10}  {:<20} {:>10} {:>8}  {:<7}  last run",
        "job", "version", "rows", "computed_at", "age", "max_age", "status"
    );
    for r in &rows {
        let last = describe_last_run(&r["last_run"]);
        let max_age = r["max_age_seconds"]
            .as_u64()
            .map_or("-".to_owned(), |s| super::human_age(s as f64));
        if r["version"].is_null() {
            println!(
                "{:<16} {:>7} {:>10}  {:<20} {:>10} {:>8}  {:<7}  {last}",
                r["job"].as_str().unwrap_or(""),
                "-",
                "-",
                "-",
                "-",
                max_age,
                "none"
            );
            continue;
        }
        let computed = r["computed_at"].as_str().unwrap_or("");
        println!(
            "{:<16} {:>7} {:>10}  {:<20} {:>10} {:>8}  {:<7}  {last}",
            r["job"].as_str().unwrap_or(""),
            // `Value`'s Display ignores widths.
            r["version"].to_string(),
            r["rows"].to_string(),
            computed.get(..19).unwrap_or(computed),
            super::human_age(r["age_seconds"].as_f64().unwrap_or(0.0)),
            max_age,
            r["status"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

fn describe_last_run(run: &serde_json::Value) -> String {
    if run.is_null() {
        return "never ran".to_owned();
    }
    let at = run["finished_at"]
        .as_str()
        .map(|t| t.get(..19).unwrap_or(t))
        .unwrap_or("");
    match run["outcome"].as_str() {
        Some("published") => format!("published version {} at {at}", run["version"]),
        Some("blocked") => format!(
            "blocked by {} at {at}",
            run["failed_checks"]
                .as_array()
                .map(|c| c
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        _ => format!("failed at {at}: {}", run["error"].as_str().unwrap_or("")),
    }
}
