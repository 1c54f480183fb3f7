//! Command-line interface definitions.

use std::net::SocketAddr;
use std::path::PathBuf;

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
        after_help = "Example:\n  presage run churn\n  presage run churn --as-of 2026-11-01T00:00:00Z"
    )]
    Run {
        /// The job (a `[jobs.NAME]` table in the config).
        job: String,
        /// Feature cutoff, `{{as_of}}` in the SQL: RFC 3339 or `YYYY-MM-DD` (UTC). Default: now.
        #[arg(long)]
        as_of: Option<String>,
        /// Publish even if checks fail; the override is recorded in the manifest.
        #[arg(long)]
        force: bool,
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
        /// The version to serve; default: the one before the current.
        #[arg(long)]
        to: Option<u64>,
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
    /// Score a Parquet or CSV file with a model, straight to Parquet.
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
        /// Model inputs in order, comma separated. Default: every other column.
        #[arg(long, value_delimiter = ',')]
        inputs: Vec<String>,
    },
}
