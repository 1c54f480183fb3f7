//! One job's status as clients see it: the version, its age against `max_age`, and
//! the last run. `presage status --json` and the server's `GET /v1/jobs` serialize
//! this one type, so both answer the same shape.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::{
    ExportRecord, Freshness, LastRun, Manifest, RunOutcomeKind, RunStages, Staleness, VersionId,
};

/// Whether a job has a version, and whether it is within `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    /// Computed less than `max_age` ago (or the job has no `max_age`).
    Fresh,
    /// Older than `max_age`.
    Stale,
    /// No version (not published yet, or not loaded yet by a server).
    #[serde(rename = "none")]
    NoVersion,
    /// The current version cannot be served: its pointer cannot be read, or it
    /// failed its checks when opened (see the status's `problem`).
    Failing,
}

impl VersionStatus {
    /// `fresh`, `stale`, `none`, or `FAILING` (it must stand out in a table).
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Fresh => "fresh",
            VersionStatus::Stale => "stale",
            VersionStatus::NoVersion => "none",
            VersionStatus::Failing => "FAILING",
        }
    }
}

impl From<Freshness> for VersionStatus {
    fn from(freshness: Freshness) -> VersionStatus {
        match freshness {
            Freshness::Fresh => VersionStatus::Fresh,
            Freshness::Stale => VersionStatus::Stale,
        }
    }
}

/// What `GET /v1/jobs` and `presage status --json` answer: `{"jobs": [...]}`, one
/// entry per configured job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatuses {
    /// The jobs, by name.
    pub jobs: Vec<JobStatus>,
}

/// A job's version and last run. The fields of the version are `None` (`null`)
/// when the job has none; timestamps are RFC 3339 in UTC with milliseconds, as in
/// answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job: String,
    /// The version: what the store points at (`presage status`) or what a server has
    /// loaded (`GET /v1/jobs`).
    pub version: Option<VersionId>,
    /// Its predictions (keys).
    pub rows: Option<u64>,
    /// When its predictions were computed.
    #[serde(serialize_with = "rfc3339_millis_opt")]
    pub computed_at: Option<DateTime<Utc>>,
    /// The feature data cutoff its run used.
    #[serde(serialize_with = "rfc3339_millis_opt")]
    pub features_as_of: Option<DateTime<Utc>>,
    /// Seconds since it was computed, to the millisecond.
    pub age_seconds: Option<f64>,
    /// The job's `max_age` in whole seconds, `None` without one.
    pub max_age_seconds: Option<u64>,
    /// Fresh, stale, or none.
    pub status: VersionStatus,
    /// The job's last recorded run, `None` when it never ran.
    pub last_run: Option<LastRunStatus>,
    /// Distinct keys of this version read in a lookup log (`presage status
    /// --lookup-log`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_keys: Option<u64>,
    /// Why the current version cannot be served (status `failing`), and what is
    /// served instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What a job's last run did, as a status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRunStatus {
    /// Published, blocked or failed.
    pub outcome: RunOutcomeKind,
    /// When it ended.
    #[serde(serialize_with = "rfc3339_millis")]
    pub finished_at: DateTime<Utc>,
    /// Seconds it took.
    pub seconds: f64,
    /// The version it published.
    pub version: Option<VersionId>,
    /// The names of the checks that failed (blocked runs).
    pub failed_checks: Vec<String>,
    /// The error (failed and blocked runs).
    pub error: Option<String>,
    /// Seconds per stage (features, scoring, writing, checks, publish) and bytes
    /// spilled; absent for runs recorded before stages were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<RunStages>,
    /// The copy of the version's predictions to the job's `export` destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportRecord>,
    /// The run published a backfill, not made current.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
}

impl JobStatus {
    /// The status at `now` of `job` with `version` (`None` when it has none), its
    /// `max_age` and its `last_run`.
    pub fn new(
        job: &str,
        version: Option<&Manifest>,
        max_age: Option<Duration>,
        last_run: Option<&LastRun>,
        now: DateTime<Utc>,
    ) -> JobStatus {
        let staleness = version.map(|m| Staleness::at(m.aged_from(), max_age, now));
        JobStatus {
            job: job.to_owned(),
            version: version.map(|m| m.id),
            rows: version.map(|m| m.rows),
            computed_at: version.map(|m| m.created_at),
            features_as_of: version.map(|m| m.features_as_of),
            // Milliseconds, without the float noise of the division.
            age_seconds: staleness.map(|s| (s.age_seconds * 1000.0).round() / 1000.0),
            max_age_seconds: max_age.map(|d| d.as_secs()),
            status: staleness.map_or(VersionStatus::NoVersion, |s| s.freshness.into()),
            last_run: last_run.map(LastRunStatus::from),
            read_keys: None,
            problem: None,
        }
    }

    /// The status of a job whose current version cannot be served, for `problem`.
    pub fn failing(mut self, problem: String) -> JobStatus {
        self.status = VersionStatus::Failing;
        self.problem = Some(problem);
        self
    }
}

impl From<&LastRun> for LastRunStatus {
    fn from(run: &LastRun) -> LastRunStatus {
        LastRunStatus {
            outcome: run.outcome,
            finished_at: run.finished_at,
            seconds: run.seconds,
            version: run.version,
            failed_checks: run.failed_checks.iter().map(|c| c.name.clone()).collect(),
            error: run.error.clone(),
            stages: run.stages,
            export: run.export.clone(),
            backfill: run.backfill,
        }
    }
}

fn rfc3339_millis<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn rfc3339_millis_opt<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => rfc3339_millis(time, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyInfo, MANIFEST_FORMAT, ModelInfo};

    fn manifest(created_at: DateTime<Utc>) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT,
            id: VersionId(3),
            job: "churn".into(),
            created_at,
            features_as_of: created_at - chrono::Duration::seconds(2),
            model: ModelInfo {
                name: "m".into(),
                path: "m.onnx".into(),
                sha256: String::new(),
                format: "ONNX".into(),
                engine: "tree".into(),
                inputs: Vec::new(),
            },
            sources: Vec::new(),
            rows: 42,
            key: KeyInfo {
                column: "id".into(),
                key_type: "string".into(),
            },
            outputs: Vec::new(),
            checks: Vec::new(),
            distributions: Vec::new(),
            forced: false,
            files: Vec::new(),
            parent: None,
            run_seconds: 1.5,
            stages: None,
            ranked: None,
        }
    }

    #[test]
    fn serializes_one_shape_with_millisecond_timestamps() {
        let t0: DateTime<Utc> = "2026-11-28T22:01:07.123456Z".parse().unwrap();
        let now = t0 + chrono::Duration::milliseconds(412_500);
        let run = LastRun {
            outcome: RunOutcomeKind::Blocked,
            finished_at: now,
            seconds: 2.0,
            rows: 10,
            version: None,
            failed_checks: vec![crate::CheckResult {
                name: "min_rows".into(),
                value: 10.0,
                threshold: 100.0,
                passed: false,
                detail: String::new(),
            }],
            error: Some("blocked".into()),
            stages: None,
            export: None,
            backfill: false,
        };
        let status = JobStatus::new(
            "churn",
            Some(&manifest(t0)),
            Some(Duration::from_secs(3600)),
            Some(&run),
            now,
        );
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "job": "churn",
                "version": 3,
                "rows": 42,
                "computed_at": "2026-11-28T22:01:07.123Z",
                "features_as_of": "2026-11-28T22:01:05.123Z",
                "age_seconds": 414.5,
                "max_age_seconds": 3600,
                "status": "fresh",
                "last_run": {
                    "outcome": "blocked",
                    "finished_at": "2026-11-28T22:07:59.623Z",
                    "seconds": 2.0,
                    "version": null,
                    "failed_checks": ["min_rows"],
                    "error": "blocked",
                },
            })
        );
        let back: JobStatus =
            serde_json::from_value(serde_json::to_value(&status).unwrap()).expect("deserializes");
        assert_eq!(back.status, VersionStatus::Fresh);
        assert_eq!(back.last_run.unwrap().failed_checks, ["min_rows"]);
    }

    #[test]
    fn a_job_without_a_version_says_none() {
        let status = JobStatus::new("churn", None, None, None, Utc::now());
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "job": "churn",
                "version": null,
                "rows": null,
                "computed_at": null,
                "features_as_of": null,
                "age_seconds": null,
                "max_age_seconds": null,
                "status": "none",
                "last_run": null,
            })
        );
    }

    #[test]
    fn stale_past_max_age() {
        let t0: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let status = JobStatus::new(
            "churn",
            Some(&manifest(t0)),
            Some(Duration::from_secs(60)),
            None,
            t0 + chrono::Duration::seconds(61),
        );
        assert_eq!(status.status, VersionStatus::Stale);
        // From `features_as_of`, two seconds before `computed_at`.
        assert_eq!(status.age_seconds, Some(63.0));
    }
}
