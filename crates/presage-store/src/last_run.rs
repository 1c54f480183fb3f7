//! The outcome of a job's last run, for `presage status` and metrics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::durable::write_atomic;
use crate::{CheckResult, EmbeddedStore, RunStages, StoreError, VersionId};

const LAST_RUN: &str = "last_run.json";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcomeKind {
    /// A new version was published.
    Published,
    /// A check failed; nothing was published.
    Blocked,
    /// An error stopped the run; nothing was published.
    Failed,
}

/// What the last run of a job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// Published, blocked or failed.
    pub outcome: RunOutcomeKind,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Seconds it took.
    pub seconds: f64,
    /// Rows scored (published rows for a published run).
    pub rows: u64,
    /// The version it published.
    pub version: Option<VersionId>,
    /// The checks that failed (blocked runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_checks: Vec<CheckResult>,
    /// The error (failed and blocked runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where its time went, as far as it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<RunStages>,
    /// The copy of the published version's predictions to the job's `export`
    /// destination, for jobs that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
    /// The run published a backfill: its version was not made current.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

/// Where a run copied its version's predictions, and whether that worked. A failed
/// export never unpublishes the version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The folder or object-storage prefix written (`…/version=7/`).
    pub destination: String,
    /// Why the copy failed; `None` when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EmbeddedStore {
    /// Records the outcome of a run (replacing the previous record atomically).
    pub fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError> {
        let dir = self.job_dir(job);
        fs_err::create_dir_all(&dir)?;
        let json = serde_json::to_vec_pretty(run).expect("run record serialises");
        write_atomic(&dir.join(LAST_RUN), &json)?;
        Ok(())
    }

    /// The last recorded run of a job, if any.
    pub fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError> {
        let path = self.job_dir(job).join(LAST_RUN);
        match fs_err::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::BadManifest {
                        path,
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
