//! `presage quickstart`: an example project, end to end, in one command.

mod dataset;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use presage_serve::AppState;

use crate::config::Config;

/// The example project's config; users read it as the config walkthrough.
const CONFIG: &str = include_str!("presage.toml");
/// The churn model trained by `examples/churn/train.py` on this dataset.
const MODEL: &[u8] = include_bytes!("../../../../../examples/churn/model.onnx");
/// The add-on recommender trained by `examples/recommend/train.py` on this dataset.
const RECOMMENDER: &[u8] = include_bytes!("../../../../../examples/recommend/addon_affinity.txt");
/// The job the quickstart runs first and points at.
const JOB: &str = "churn";
/// The ranked-list job it runs next: each user's best three add-ons.
const RANKED_JOB: &str = "addon_recs";

/// Writes the project into `dir` (unless it already holds one), runs the job, and
/// serves it on `addr` unless `no_serve`.
pub fn quickstart(dir: &Path, addr: SocketAddr, no_serve: bool, no_run: bool) -> Result<()> {
    let config_path = dir.join("presage.toml");
    if config_path.exists() {
        eprintln!("using the existing project in `{}`", dir.display());
    } else {
        write_project(dir)?;
    }
    if no_run {
        println!(
            "wrote the example project to `{}`; next: cd {} && presage run {JOB}",
            dir.display(),
            dir.display()
        );
        return Ok(());
    }
    let config = Config::load(&config_path)?;
    let started = Instant::now();
    let outcome = super::run::run(&config, JOB, super::run::Options::default())?;
    super::run::run(&config, RANKED_JOB, super::run::Options::default())?;
    eprintln!(
        "quickstart: runs took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let store = config.embedded_store();
    let example_key = store
        .load(JOB, outcome.manifest.id)?
        .lookup()
        .iter()
        .find_map(|entry| entry.ok().map(|(key, _)| key.to_string()))
        .context("the published version is empty")?;
    if no_serve {
        println!(
            "next: cd {} && presage serve, then curl http://{addr}/v1/jobs/{JOB}/predictions/{example_key}\n  and curl http://{addr}/v1/jobs/{RANKED_JOB}/predictions/{example_key}",
            dir.display()
        );
        return Ok(());
    }
    let jobs = config.jobs.values().map(|j| j.serve.clone()).collect();
    let state = AppState::new(
        presage_store::Store::new(std::sync::Arc::new(store)),
        jobs,
        None,
    );
    super::runtime()?.block_on(super::serve::serve_state(
        state,
        addr,
        None,
        config.serve,
        vec![
            (JOB.to_owned(), example_key.clone()),
            (RANKED_JOB.to_owned(), example_key),
        ],
    ))
}

fn write_project(dir: &Path) -> Result<()> {
    if dir.exists() && fs_err::read_dir(dir)?.next().is_some() {
        bail!(
            "`{}` exists and is not empty; pass `--dir` with a new folder",
            dir.display()
        );
    }
    let started = Instant::now();
    fs_err::create_dir_all(dir.join("models"))?;
    // The data ends at today's midnight (UTC), so a run now sees the last 90 days;
    // the same day always gives the same data.
    let end = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let summary = dataset::generate(dir, end, &mut |line| eprintln!("quickstart: {line}"))
        .with_context(|| format!("writing the example data into `{}`", dir.display()))?;
    fs_err::write(dir.join("models/churn.onnx"), MODEL)?;
    fs_err::write(dir.join("models/addon_affinity.txt"), RECOMMENDER)?;
    fs_err::write(dir.join("presage.toml"), CONFIG)?;
    eprintln!(
        "quickstart: wrote {} users, {} events, {} label rows ({} to {}) into `{}` in {:.1}s",
        summary.users,
        summary.events,
        summary.label_rows,
        summary.start.format("%Y-%m-%d"),
        summary.end.format("%Y-%m-%d"),
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
