//! Publish gates.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use futures::StreamExt;
use presage_data::{FeatureSession, stream_error};
use presage_store::CheckResult;
use presage_store::lookup::{Key, LookupFile};

use crate::psi::{psi, read_float_column};
use crate::{Checks, JobError};

/// What a run measured, for the gates.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Predictions written.
    pub rows: u64,
    /// Per output: (name, null or NaN count).
    pub nulls: Vec<(String, u64)>,
}

/// Evaluates every configured check; `previous_rows` is the current version's row
/// count, if there is one.
pub fn evaluate(checks: &Checks, stats: &RunStats, previous_rows: Option<u64>) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if let Some(min) = checks.min_rows {
        results.push(CheckResult {
            name: "min_rows".into(),
            value: stats.rows as f64,
            threshold: min as f64,
            passed: stats.rows >= min,
            detail: String::new(),
        });
    }
    if let (Some(max), Some(previous)) = (checks.max_row_change, previous_rows) {
        let change = if previous == 0 {
            if stats.rows == 0 { 0.0 } else { f64::INFINITY }
        } else {
            (stats.rows as f64 - previous as f64).abs() / previous as f64
        };
        results.push(CheckResult {
            name: "max_row_change".into(),
            value: change,
            threshold: max,
            passed: change <= max,
            detail: format!("{previous} → {} rows", stats.rows),
        });
    }
    if let Some(max) = checks.max_null_fraction {
        for (name, nulls) in &stats.nulls {
            let fraction = if stats.rows == 0 {
                0.0
            } else {
                *nulls as f64 / stats.rows as f64
            };
            results.push(CheckResult {
                name: "max_null_fraction".into(),
                value: fraction,
                threshold: max,
                passed: fraction <= max,
                detail: format!("output `{name}`"),
            });
        }
    }
    results
}

/// `max_psi`: one result per numeric output present in both versions.
pub(crate) fn psi_checks(
    max: f64,
    previous: &Path,
    staged: &Path,
    outputs: &[Field],
) -> Result<Vec<CheckResult>, JobError> {
    let read = |path: &Path, column: &str| {
        read_float_column(path, column).map_err(|message| JobError::CheckFailed {
            check: "max_psi",
            message,
        })
    };
    let mut results = Vec::new();
    for output in outputs {
        let (Some(expected), Some(actual)) =
            (read(previous, output.name())?, read(staged, output.name())?)
        else {
            continue;
        };
        let value = psi(&expected, &actual);
        results.push(CheckResult {
            name: "max_psi".into(),
            value,
            threshold: max,
            passed: value <= max,
            detail: format!("output `{}` vs the previous version", output.name()),
        });
    }
    Ok(results)
}

/// `expected_keys`: every key the query returns must have a prediction.
pub(crate) async fn expected_keys_check(
    session: &FeatureSession,
    sql: &str,
    lookup: &LookupFile,
) -> Result<CheckResult, JobError> {
    const QUERY: &str = "checks.expected_keys";
    let plan = session.plan(QUERY, sql).await?;
    let mut stream = plan.stream().await?;
    let (mut total, mut missing) = (0u64, Vec::new());
    let mut missing_count = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| stream_error(QUERY, &e))?;
        if batch.num_columns() == 0 {
            continue;
        }
        let keys = cast(batch.column(0), &DataType::Utf8).map_err(|e| JobError::CheckFailed {
            check: "expected_keys",
            message: e.to_string(),
        })?;
        let keys = keys.as_string::<i32>();
        for i in 0..keys.len() {
            if keys.is_null(i) {
                continue;
            }
            total += 1;
            let key = keys.value(i);
            let present =
                Key::parse(lookup.key_type(), key).is_some_and(|k| lookup.get(k).is_some());
            if !present {
                missing_count += 1;
                if missing.len() < 5 {
                    missing.push(format!("`{key}`"));
                }
            }
        }
    }
    Ok(CheckResult {
        name: "expected_keys".into(),
        value: missing_count as f64,
        threshold: 0.0,
        passed: missing_count == 0,
        detail: if missing_count == 0 {
            format!("all {total} present")
        } else {
            format!(
                "{missing_count} of {total} missing, e.g. {}",
                missing.join(", ")
            )
        },
    })
}
