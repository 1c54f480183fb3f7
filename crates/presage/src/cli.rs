//! Command-line interface definitions.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::env_vars;

/// presage: batch predictions, versioned, served with their age.
#[derive(Debug, Parser)]
#[command(name = "presage", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the config file is.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The project's config file.
    #[arg(long, short = 'c', env = env_vars::PRESAGE_CONFIG, default_value = "presage.toml")]
    pub config: PathBuf,
}

/// Which outcomes a backtest is scored against.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Outcomes: a source in the config, or a file (Parquet, CSV, JSON lines), with
    /// one row per prediction request: key, time, label.
    #[arg(long)]
    pub labels: String,
    /// The labels' key column. Default: the feature set's key column.
    #[arg(long)]
    pub key_column: Option<String>,
    /// The labels' column with the time of the request.
    #[arg(long, default_value = "time")]
    pub time_column: String,
    /// The labels' column with the outcome (0/1 for a classifier, a number for a regressor).
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Only requests at or after this time (RFC 3339 or `YYYY-MM-DD`, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Only requests before this time.
    #[arg(long)]
    pub to: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write an example project (data, model, config), run it, and serve it.
    #[command(
        after_help = "Example:\n  presage quickstart --dir demo\n  presage quickstart --dir demo --no-serve"
    )]
    Quickstart {
        /// Folder for the example project.
        #[arg(long, default_value = "presage-quickstart")]
        dir: PathBuf,
        /// Address to serve on after publishing.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Stop after publishing version 1.
        #[arg(long)]
        no_serve: bool,
        /// Only write the project (data, model, config); do not run or serve.
        #[arg(long)]
        no_run: bool,
    },
    /// Compute features, score every entity, check, and publish a new version.
    #[command(
        after_help = "Example:\n  presage run churn\n  presage run churn --as-of 2026-11-01T00:00:00Z            # a backfill, not served\n  presage run churn --as-of 2026-11-01T00:00:00Z --promote  # a backfill, served"
    )]
    Run {
        /// The job (a `[jobs.NAME]` table in the config).
        job: String,
        /// Feature cutoff, `{{as_of}}` in the SQL: RFC 3339 or `YYYY-MM-DD` (UTC). Default: now.
        /// A past cutoff is a backfill: its version is published beside the current one,
        /// not served, unless `--promote`. For a job that imports predictions
        /// (`predictions = "SOURCE"`), the version's `features_as_of` comes from the
        /// job's `features_as_of` column when it names one, else from this flag.
        #[arg(long)]
        as_of: Option<String>,
        /// Serve the version of a backfill (`--as-of` in the past) at once. Without it,
        /// serve it later with `presage rollback JOB --to VERSION`.
        #[arg(long)]
        promote: bool,
        /// Publish even if checks fail; the override is recorded in the manifest.
        #[arg(long)]
        force: bool,
        /// Memory the feature query may hold (`6GB`, `1.5GiB`, `50%` of the machine, or
        /// `none`); past it, aggregations, joins and sorts spill to disk. Overrides
        /// `[run] memory_limit`. Default: 50%.
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
        /// After the run, print the feature query's physical plan with each operator's
        /// rows, time, memory and spills.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Serve every job's current version over HTTP.
    #[command(
        after_help = "Example:\n  presage serve --addr 127.0.0.1:8080 --resp-addr 127.0.0.1:6380\n  curl 127.0.0.1:8080/v1/jobs\n  redis-cli -p 6380 GET churn:u000042"
    )]
    Serve {
        /// Address for the HTTP API.
        #[arg(long, env = env_vars::PRESAGE_ADDR, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Also answer the Redis protocol here (`GET job:key`, `MGET`), e.g. `127.0.0.1:6380`.
        #[arg(long, env = env_vars::PRESAGE_RESP_ADDR)]
        resp_addr: Option<SocketAddr>,
        /// Keep the Redis-protocol loops polling their sockets this long (e.g. `50us`, at
        /// most 10ms) after the last command instead of sleeping at once: higher
        /// throughput and lower latency for clients that wait for each answer, for a
        /// CPU kept busy while commands keep coming. Default: sleep at once.
        #[arg(long, value_name = "DURATION", requires = "resp_addr", value_parser = parse_busy_poll)]
        busy_poll: Option<Duration>,
        /// Re-run each job whose current version is older than its `refresh_every`
        /// (one run per job at a time; outcomes in `presage status` and /metrics).
        #[arg(long)]
        refresh: bool,
        /// Append a sample of answers (time, job, key, version, status, age) as Parquet
        /// files to this folder. Default: the config's `lookup_log`, if set.
        #[arg(long)]
        lookup_log: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Look up predictions straight from the store.
    #[command(after_help = "Example:\n  presage lookup churn u000042 u000043")]
    Lookup {
        /// The job.
        job: String,
        /// One or more keys.
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List a job's versions, newest first.
    #[command(after_help = "Example:\n  presage versions churn")]
    Versions {
        /// The job.
        job: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Point a job back at an earlier version; running servers follow.
    #[command(after_help = "Example:\n  presage rollback churn\n  presage rollback churn --to 3")]
    Rollback {
        /// The job.
        job: String,
        /// The version to serve; default: the one served before the current one,
        /// skipping versions rolled back from.
        #[arg(long)]
        to: Option<u64>,
        /// Serve `--to` even though it was rolled back from before.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show each job's current version, rows, age and whether it is stale.
    #[command(after_help = "Example:\n  presage status\n  presage status --json")]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Count each current version's keys that were read, from this lookup log.
        /// Default: the config's `lookup_log`, if set.
        #[arg(long)]
        lookup_log: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Score the job's model on past outcomes, with features as of each request.
    #[command(
        after_help = "Each label row (key, time, label) is scored on features computed from data strictly\nbefore its time, as a prediction made then would have been.\n\nExample:\n  presage backtest churn --labels labels --report backtest.html\n  presage backtest churn --labels data/labels.parquet --challenger models/churn_v2.onnx --json backtest.json"
    )]
    Backtest {
        /// The job.
        job: String,
        #[command(flatten)]
        labels: LabelArgs,
        /// A second model scored on exactly the same rows: a `[models.NAME]` in the
        /// config (with its own `inputs`) or a model file (taking the job's inputs).
        #[arg(long)]
        challenger: Option<String>,
        /// Write every number as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a self-contained HTML report here.
        #[arg(long)]
        report: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// How much better would fresher predictions be? Replays the labels' requests as
    /// each refresh cadence and each stage from batch to online would have answered them.
    #[command(
        after_help = "Stages, per cadence:\n  batch              the last scheduled run's answer (runs every CADENCE, served LAG later)\n  online prediction  the model runs at the request, on features as of the last run ({{now}} moves)\n  online features    features as of the request itself (cadence 0)\n\nExample:\n  presage staleness churn --labels labels --cadence 0,1h,6h,1d,7d --lag 30m --report staleness.html"
    )]
    Staleness {
        /// The job.
        job: String,
        #[command(flatten)]
        labels: LabelArgs,
        /// Refresh cadences to compare, comma separated; `0` is online features.
        /// Daily batch, the baseline, is always included.
        #[arg(long, default_value = "0,1h,6h,1d,7d")]
        cadence: String,
        /// Time from a run's start until its answers are served.
        #[arg(long, default_value = "0s")]
        lag: String,
        /// Write every number as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a self-contained HTML report (plots and tables) here.
        #[arg(long)]
        report: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Score a Parquet, CSV or JSON-lines file with a model, straight to Parquet.
    #[command(
        after_help = "Example:\n  presage score --model model.onnx --input rows.parquet --output scored.parquet --key user_id"
    )]
    Score {
        /// The model: `.onnx`, XGBoost `.json` or LightGBM `.txt`.
        #[arg(long)]
        model: PathBuf,
        /// Rows to score (Parquet, CSV or JSON lines).
        #[arg(long)]
        input: PathBuf,
        /// Where to write the scored rows (Parquet). Default: `<input>.scored.parquet`.
        #[arg(long)]
        output: Option<PathBuf>,
        /// A column copied to the output to identify rows; it is not a model input.
        #[arg(long)]
        key: Option<String>,
        /// Model inputs in order, comma separated. Default: the columns named like
        /// the model's inputs when it names them (several inputs, or strings), else
        /// every column but `--key`.
        #[arg(long, value_delimiter = ',')]
        inputs: Vec<String>,
    },
}

/// `--busy-poll`: a duration above zero, at most [`presage_serve::busy_poll::MAX_BUSY_POLL`].
fn parse_busy_poll(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like `50us` or `1ms`: {e}"))?;
    let max = presage_serve::busy_poll::MAX_BUSY_POLL;
    if window.is_zero() {
        return Err(format!(
            "`{text}` is zero; leave `--busy-poll` out to sleep at once"
        ));
    }
    if window > max {
        return Err(format!(
            "`{text}` is over {max:?}; longer spinning only burns CPU"
        ));
    }
    Ok(window)
}
