//! One module per subcommand.

mod backtest;
mod eval_args;
mod lookup;
mod quickstart;
mod rollback;
mod run;
mod score;
mod serve;
mod staleness;
mod status;
mod versions;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::cli::Command;
use crate::config::Config;

/// Runs one subcommand.
pub fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Quickstart {
            dir,
            addr,
            no_serve,
            no_run,
        } => quickstart::quickstart(&dir, addr, no_serve, no_run),
        Command::Run {
            job,
            as_of,
            promote,
            force,
            memory_limit,
            explain,
            config,
        } => {
            let mut config = Config::load(&config.config)?;
            if let Some(limit) = memory_limit {
                config.limits.memory_limit =
                    crate::config::parse_memory_limit(&limit).context("--memory-limit")?;
            }
            let as_of = as_of.as_deref().map(parse_instant).transpose()?;
            let options = run::Options {
                as_of,
                promote: promote || as_of.is_none_or(|as_of| as_of >= chrono::Utc::now()),
                force,
                explain,
            };
            run::run(&config, &job, options).map(|_| ())
        }
        Command::Serve {
            addr,
            resp_addr,
            busy_poll,
            refresh,
            lookup_log,
            config,
        } => {
            let config = Config::load(&config.config)?;
            let log = lookup_log.or_else(|| config.lookup_log.clone());
            let resp = resp_addr.map(|addr| serve::RespEndpoint { addr, busy_poll });
            serve::serve(&config, addr, resp, refresh, log.as_deref())
        }
        Command::Lookup { job, keys, config } => {
            lookup::lookup(&Config::load(&config.config)?, &job, &keys)
        }
        Command::Versions { job, json, config } => {
            versions::versions(&Config::load(&config.config)?, &job, json)
        }
        Command::Rollback {
            job,
            to,
            force,
            config,
        } => rollback::rollback(&Config::load(&config.config)?, &job, to, force),
        Command::Status {
            json,
            lookup_log,
            config,
        } => {
            let config = Config::load(&config.config)?;
            let log = lookup_log.or_else(|| config.lookup_log.clone());
            status::status(&config, json, log.as_deref())
        }
        Command::Backtest {
            job,
            labels,
            challenger,
            json,
            report,
            config,
        } => backtest::backtest(
            &Config::load(&config.config)?,
            &job,
            &labels,
            challenger.as_deref(),
            json.as_deref(),
            report.as_deref(),
        ),
        Command::Staleness {
            job,
            labels,
            cadence,
            lag,
            json,
            report,
            config,
        } => staleness::staleness(
            &Config::load(&config.config)?,
            &job,
            &labels,
            &cadence,
            &lag,
            json.as_deref(),
            report.as_deref(),
        ),
        Command::Score {
            model,
            input,
            output,
            key,
            inputs,
        } => score::score(&model, &input, output.as_deref(), key.as_deref(), &inputs),
    }
}

/// A multi-threaded Tokio runtime (DataFusion and the server run on it).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Parses an instant: RFC 3339, `YYYY-MM-DDTHH:MM:SS` (UTC) or `YYYY-MM-DD` (UTC midnight).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    anyhow::bail!(
        "invalid time `{text}`; expected e.g. `2026-11-28`, `2026-11-28T06:00:00` or `2026-11-28T06:00:00Z`"
    )
}

/// Formats seconds of age as `3h 12m`, `45s`.
fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}
