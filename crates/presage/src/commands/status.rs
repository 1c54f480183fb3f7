use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use chrono::Utc;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use presage_store::Staleness;
use serde_json::json;

use crate::config::Config;

/// `presage status`: each job's version, rows, age and whether it is stale; with a
/// lookup log, how many of the current version's keys were ever read.
pub fn status(config: &Config, as_json: bool, lookup_log: Option<&Path>) -> Result<()> {
    let runtime = super::runtime()?;
    let store = runtime.block_on(config.store())?;
    let now = Utc::now();
    let read = lookup_log.map(read_keys).transpose()?;
    let mut rows = Vec::new();
    for (name, job) in &config.jobs {
        let (manifest, last_run) = runtime.block_on(async {
            anyhow::Ok((
                store.current_manifest(name).await?,
                store.last_run(name).await?,
            ))
        })?;
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
        if let (Some(read), Some(m)) = (&read, &manifest) {
            let keys = read.get(&(name.clone(), m.id.0)).map_or(0, HashSet::len);
            entry["read_keys"] = json!(keys);
        }
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
        if let (Some(read), Some(total)) = (r["read_keys"].as_u64(), r["rows"].as_u64()) {
            println!(
                "{:<16} read: {read} of its {total} predictions ({:.1}%) in the lookup log",
                "",
                100.0 * read as f64 / total.max(1) as f64
            );
        }
    }
    Ok(())
}

/// Distinct keys read per (job, version), from every file of a lookup log.
fn read_keys(dir: &Path) -> Result<HashMap<(String, u64), HashSet<String>>> {
    let mut read: HashMap<(String, u64), HashSet<String>> = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No answer logged yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(read),
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || !name.ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .with_context(|| format!("reading lookup log `{}`", path.display()))?;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading `{}`", path.display()))?;
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .with_context(|| format!("`{}` has no column `{name}`", path.display()))
            };
            let (jobs, keys, versions) = (column("job")?, column("key")?, column("version")?);
            let (jobs, keys) = (jobs.as_string::<i32>(), keys.as_string::<i32>());
            let versions = versions.as_primitive::<UInt64Type>();
            for i in 0..batch.num_rows() {
                read.entry((jobs.value(i).to_owned(), versions.value(i)))
                    .or_default()
                    .insert(keys.value(i).to_owned());
            }
        }
    }
    Ok(read)
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
