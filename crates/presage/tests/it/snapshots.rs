//! What a person reads, pinned: help texts and error messages of the real binary,
//! as inline `insta` snapshots. A change to a flag's doc comment or to an error's
//! wording shows up here as a diff to review (`cargo insta review`, or edit the
//! snapshot by hand); with `CI=true` a mismatch fails instead of being saved.

use std::path::Path;
use std::process::Output;

use crate::project::{SmallProject, presage, stderr, stdout};

/// Runs `presage` in `dir` the same way on every machine: help wraps at 100 columns
/// whatever the terminal, and no `PRESAGE_*` variable leaks into `[env: ...]` lines
/// or into the config lookup.
fn presage_in(dir: &Path, args: &[&str]) -> Output {
    let mut command = presage();
    command.current_dir(dir).args(args).env("COLUMNS", "100");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PRESAGE_") {
            command.env_remove(name);
        }
    }
    command.output().expect("running presage")
}

/// Stderr of a run that must fail.
fn failure(dir: &Path, args: &[&str]) -> String {
    let out = presage_in(dir, args);
    assert!(!out.status.success(), "presage {args:?} should fail");
    stderr(&out)
}

#[test]
fn help() {
    let out = presage_in(Path::new("."), &["--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(stdout(&out), @r#"
    presage: batch predictions, versioned, served with their age

    Usage: presage <COMMAND>

    Commands:
      quickstart  Write an example project (data, model, config), run it, and serve it
      run         Compute features, score every entity, check, and publish a new version
      serve       Serve every job's current version over HTTP
      lookup      Look up predictions straight from the store
      versions    List a job's versions, newest first
      rollback    Point a job back at an earlier version; running servers follow
      status      Show each job's current version, rows, age and whether it is stale
      backtest    Score the job's model on past outcomes, with features as of each request
      staleness   How much better would fresher predictions be? Replays the labels' requests as each
                  refresh cadence and each stage from batch to online would have answered them
      score       Score a Parquet, CSV or JSON-lines file with a model, straight to Parquet
      help        Print this message or the help of the given subcommand(s)

    Options:
      -h, --help     Print help
      -V, --version  Print version
    "#);
}

#[test]
fn run_help() {
    let out = presage_in(Path::new("."), &["run", "--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(stdout(&out), @r#"
    Compute features, score every entity, check, and publish a new version

    Usage: presage run [OPTIONS] <JOB>

    Arguments:
      <JOB>  The job (a `[jobs.NAME]` table in the config)

    Options:
          --as-of <AS_OF>        Feature cutoff, `{{as_of}}` in the SQL: RFC 3339 or `YYYY-MM-DD` (UTC).
                                 Default: now. A past cutoff is a backfill: its version is published
                                 beside the current one, not served, unless `--promote`. For a job that
                                 imports predictions (`predictions = "SOURCE"`), the version's
                                 `features_as_of` comes from the job's `features_as_of` column when it
                                 names one, else from this flag
          --promote              Serve the version of a backfill (`--as-of` in the past) at once.
                                 Without it, serve it later with `presage rollback JOB --to VERSION`
          --force                Publish even if checks fail; the override is recorded in the manifest
          --memory-limit <SIZE>  Memory the feature query may hold (`6GB`, `1.5GiB`, `50%` of the
                                 machine, or `none`); past it, aggregations, joins and sorts spill to
                                 disk. Overrides `[run] memory_limit`. Default: 50%
          --explain              After the run, print the feature query's physical plan with each
                                 operator's rows, time, memory and spills
      -c, --config <CONFIG>      The project's config file [env: PRESAGE_CONFIG=] [default:
                                 presage.toml]
      -h, --help                 Print help

    Example:
      presage run churn
      presage run churn --as-of 2026-11-01T00:00:00Z            # a backfill, not served
      presage run churn --as-of 2026-11-01T00:00:00Z --promote  # a backfill, served
    "#);
}

#[test]
fn unknown_job() {
    let p = SmallProject::new();
    insta::assert_snapshot!(failure(p.path(), &["run", "nope"]), @"error: unknown job `nope`; `presage.toml` defines: `score`");
}

#[test]
fn unknown_config_field() {
    let p = SmallProject::new();
    // A typo in a source table.
    p.edit_config(&[(
        "path = \"data/rows.parquet\"",
        "pth = \"data/rows.parquet\"",
    )]);
    let config = p.path().join("presage.toml");
    let config = config.to_str().expect("a UTF-8 temp path");
    // The temp project's folder (`/tmp/presage-test-Ab12Cd`, or under `$TMPDIR`).
    insta::with_settings!({filters => vec![(r"[^\s`]*presage-test-[[:alnum:]]+", "[PROJECT]")]}, {
        insta::assert_snapshot!(failure(p.path(), &["run", "score", "--config", config]), @r#"
        error: parsing `[PROJECT]/presage.toml`: TOML parse error at line 5, column 1
          |
        5 | pth = "data/rows.parquet"
          | ^^^
        unknown field `pth`, expected one of `path`, `format`, `partition_columns`, `postgres`, `postgres_env`, `table`, `query`
        "#);
    });
}

#[test]
fn invalid_max_age() {
    let p = SmallProject::new();
    p.edit_config(&[("max_age = \"1h\"", "max_age = \"soon\"")]);
    insta::assert_snapshot!(failure(p.path(), &["run", "score"]), @"error: jobs.score.max_age (in `presage.toml`): invalid duration `soon`; examples: `30m`, `26h`, `7d`: expected number at 0");
}
