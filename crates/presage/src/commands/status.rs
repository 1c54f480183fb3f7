use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::AsArray;
use arrow::datatypes::UInt64Type;
use chrono::Utc;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use presage_store::{JobStatus, JobStatuses, LastRunStatus, RunOutcomeKind};

use crate::config::Config;

/// `presage status`: each job's version, rows, age and whether it is stale; with a
/// lookup log, how many of the current version's keys were ever read. `--json`
/// prints the [`JobStatuses`] that `GET /v1/jobs` answers too; the table is
/// printed from the same values.
pub fn status(config: &Config, as_json: bool, lookup_log: Option<&Path>) -> Result<()> {
    let runtime = super::runtime()?;
    let store = runtime.block_on(config.store())?;
    let now = Utc::now();
    let read = lookup_log.map(read_keys).transpose()?;
    let mut statuses = Vec::new();
    for (name, job) in &config.jobs {
        // Each job on its own: one job's bad pointer or manifest is its own row.
        let (status, last_run) = runtime.block_on(async {
            let last_run = store.last_run(name).await;
            let current = match store.current_manifest(name).await {
                // Opened as a server would (checksums), so a version a server
                // refuses is not called fresh here.
                Ok(Some(manifest)) => match store.open(name, manifest.id).await {
                    Ok(_) => Ok(Some(manifest)),
                    Err(e) => Err(format!("version {} is refused: {e}", manifest.id)),
                },
                Ok(None) => Ok(None),
                Err(e) => Err(format!("the current version cannot be read: {e}")),
            };
            (current, last_run)
        });
        let last_run = last_run.unwrap_or_else(|e| {
            eprintln!("job `{name}`: reading its last run: {e}");
            None
        });
        let mut status = match status {
            Ok(manifest) => JobStatus::new(
                name,
                manifest.as_ref(),
                job.serve.max_age,
                last_run.as_ref(),
                now,
            ),
            Err(problem) => JobStatus::new(name, None, job.serve.max_age, last_run.as_ref(), now)
                .failing(problem),
        };
        if let (Some(read), Some(version)) = (&read, status.version) {
            let keys = read.get(&(name.clone(), version.0)).map_or(0, HashSet::len);
            status.read_keys = Some(keys as u64);
        }
        statuses.push(status);
    }
    if as_json {
        let statuses = JobStatuses { jobs: statuses };
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(());
    }
    println!(
        "{:<16} {:>7} {:>10}  {:<20} {:>10} {:>8}  {:<7}  last run",
        "job", "version", "rows", "computed_at", "age", "max_age", "status"
    );
    let dash = || "-".to_owned();
    for s in &statuses {
        let last = s
            .last_run
            .as_ref()
            .map_or("never ran".to_owned(), describe_last_run);
        println!(
            "{:<16} {:>7} {:>10}  {:<20} {:>10} {:>8}  {:<7}  {last}",
            s.job,
            s.version.map_or_else(dash, |v| v.to_string()),
            s.rows.map_or_else(dash, |r| r.to_string()),
            s.computed_at
                .map_or_else(dash, |t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            s.age_seconds.map_or_else(dash, super::human_age),
            s.max_age_seconds
                .map_or_else(dash, |secs| super::human_age(secs as f64)),
            s.status.as_str(),
        );
        if let Some(problem) = &s.problem {
            println!("{:<16} {problem}", "");
        }
        if let (Some(read), Some(total)) = (s.read_keys, s.rows) {
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

fn describe_last_run(run: &LastRunStatus) -> String {
    let at = run.finished_at.format("%Y-%m-%dT%H:%M:%S");
    match run.outcome {
        RunOutcomeKind::Published => {
            let what = if run.backfill {
                "published backfill"
            } else {
                "published"
            };
            let published = match run.version {
                Some(version) => format!("{what} version {version} at {at}"),
                None => format!("{what} at {at}"),
            };
            match &run.export {
                Some(export) => match &export.error {
                    None => format!("{published}, exported to {}", export.destination),
                    Some(error) => format!(
                        "{published}; EXPORT FAILED to {}: {error}",
                        export.destination
                    ),
                },
                None => published,
            }
        }
        RunOutcomeKind::Blocked => {
            format!("blocked by {} at {at}", run.failed_checks.join(", "))
        }
        RunOutcomeKind::Failed => {
            format!("failed at {at}: {}", run.error.as_deref().unwrap_or(""))
        }
    }
}
