//! Publish gates.

use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field};
use futures::StreamExt;
use presage_data::FeatureSession;
use presage_store::{CheckResult, Distribution, StagedRun, Store, VersionId};

use crate::psi::{ScoreSample, distribution, float_values, psi_against};
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

/// `max_psi`: one result per numeric output with a distribution in both versions.
/// The previous version's bins come from its manifest, this run's scores from the
/// sample the run kept.
pub(crate) fn psi_checks(
    max: f64,
    previous: &[Distribution],
    current: &[(String, Option<ScoreSample>)],
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for (output, sample) in current {
        let (Some(sample), Some(expected)) =
            (sample, previous.iter().find(|d| &d.output == output))
        else {
            continue;
        };
        let value = psi_against(&expected.edges, &expected.fractions, &sample.values);
        results.push(CheckResult {
            name: "max_psi".into(),
            value,
            threshold: max,
            passed: value <= max,
            detail: format!("output `{output}` vs the previous version"),
        });
    }
    results
}

/// The score distributions of a published version whose manifest does not record
/// them (written before manifests kept distributions), from the store's columnar
/// copy of its predictions; empty when the store keeps none.
pub(crate) async fn recorded_distributions(
    store: &Store,
    job: &str,
    id: VersionId,
    outputs: &[Field],
) -> Result<Vec<Distribution>, JobError> {
    let mut distributions = Vec::new();
    for output in outputs {
        let arrays = store
            .prediction_column(job, id, output.name())
            .await
            .map_err(|e| JobError::CheckFailed {
                check: "max_psi",
                message: e.to_string(),
            })?;
        let values = arrays.as_deref().and_then(float_values);
        if let Some((edges, fractions)) = values.as_deref().and_then(distribution) {
            distributions.push(Distribution {
                output: output.name().clone(),
                edges,
                fractions,
            });
        }
    }
    Ok(distributions)
}

/// Keys looked up in the staged version at once.
const EXPECTED_KEYS_BATCH: usize = 8192;

/// `expected_keys`: every key the query returns must have a prediction in the staged
/// version, looked up in batches through the store.
pub(crate) async fn expected_keys_check(
    session: &FeatureSession,
    sql: &str,
    staged: &StagedRun,
) -> Result<CheckResult, JobError> {
    const QUERY: &str = "checks.expected_keys";
    let plan = session.plan(QUERY, sql).await?;
    let mut stream = plan.stream().await?;
    let (mut total, mut missing) = (0u64, Vec::new());
    let mut missing_count = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_columns() == 0 {
            continue;
        }
        let keys = cast(batch.column(0), &DataType::Utf8).map_err(|e| JobError::CheckFailed {
            check: "expected_keys",
            message: e.to_string(),
        })?;
        let keys = keys.as_string::<i32>();
        let keys: Vec<&str> = keys.iter().flatten().collect();
        for chunk in keys.chunks(EXPECTED_KEYS_BATCH) {
            let present = staged.contains(chunk).await?;
            total += chunk.len() as u64;
            for (key, present) in chunk.iter().zip(present) {
                if !present {
                    missing_count += 1;
                    if missing.len() < 5 {
                        missing.push(format!("`{key}`"));
                    }
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
