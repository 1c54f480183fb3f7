//! The answer document: a prediction with its version and age.

use chrono::{DateTime, SecondsFormat, Utc};
use presage_store::{Freshness, Manifest, Staleness};

use crate::ServeJob;

/// How an answer was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// From a version younger than `max_age`.
    Fresh,
    /// From a version older than `max_age`.
    Stale,
    /// The job's default, for a key without a prediction.
    Default,
}

impl Status {
    /// `fresh`, `stale` or `default`, as in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fresh => "fresh",
            Status::Stale => "stale",
            Status::Default => "default",
        }
    }
}

/// What a job answers from a version older than its `max_age`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    /// The stale prediction, marked `"status": "stale"`.
    #[default]
    Serve,
    /// The job's `default` prediction (`"status": "default"`), as for an unknown key.
    Default,
    /// No prediction: HTTP 503 (a Redis-protocol error) stating the version's age.
    Error,
}

/// A job with `on_stale = "error"` whose version is older than `max_age`.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleRefusal {
    /// The job.
    pub job: String,
    /// The version it would have answered from.
    pub version: u64,
    /// That version's age.
    pub age_seconds: f64,
    /// The job's `max_age`.
    pub max_age_seconds: f64,
}

impl std::fmt::Display for StaleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job `{}` version {} is {:.0} s old, older than its max_age of {:.0} s (on_stale = \"error\")",
            self.job, self.version, self.age_seconds, self.max_age_seconds
        )
    }
}

/// `Some` when `job` refuses to answer from the version of `manifest` at `now`
/// because it is stale.
pub fn refuse_stale(
    job: &ServeJob,
    manifest: &Manifest,
    now: DateTime<Utc>,
) -> Option<StaleRefusal> {
    if job.on_stale != OnStale::Error {
        return None;
    }
    let staleness = Staleness::at(manifest.created_at, job.max_age, now);
    (staleness.freshness == Freshness::Stale).then(|| StaleRefusal {
        job: job.name.clone(),
        version: manifest.id.0,
        age_seconds: staleness.age_seconds,
        max_age_seconds: job.max_age.map_or(0.0, |d| d.as_secs_f64()),
    })
}

/// Writes the answer document for `key` into `out`: the `prediction` (the JSON
/// object the store holds for the key in the version of `manifest`, `None` when it
/// has none) with `version`, `computed_at`, `features_as_of`, `age_seconds` and
/// `status`. `None` (nothing written) when the key is unknown and the job has no
/// default. A stale version is answered as `on_stale` says; callers check
/// [`refuse_stale`] first. Both stores answer through here, so their documents are
/// the same.
pub fn write_answer(
    job: &ServeJob,
    manifest: &Manifest,
    key: &str,
    prediction: Option<&[u8]>,
    now: DateTime<Utc>,
    out: &mut Vec<u8>,
) -> Option<Status> {
    let start = out.len();
    out.extend_from_slice(b"{\"key\":");
    write_json_str(out, key);
    out.extend_from_slice(b",\"prediction\":");
    let staleness = Staleness::at(manifest.created_at, job.max_age, now);
    let stale = staleness.freshness == Freshness::Stale;
    let default_instead = stale && job.on_stale == OnStale::Default;
    let status = if !default_instead && let Some(prediction) = prediction {
        out.extend_from_slice(prediction);
        if stale { Status::Stale } else { Status::Fresh }
    } else if let Some(default) = &job.default {
        serde_json::to_writer(&mut *out, default).expect("writing to a Vec");
        Status::Default
    } else {
        out.truncate(start);
        return None;
    };
    out.extend_from_slice(b",\"version\":");
    out.extend_from_slice(manifest.id.to_string().as_bytes());
    out.extend_from_slice(b",\"computed_at\":\"");
    out.extend_from_slice(
        manifest
            .created_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"features_as_of\":\"");
    out.extend_from_slice(
        manifest
            .features_as_of
            .to_rfc3339_opts(SecondsFormat::Millis, true)
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"age_seconds\":");
    out.extend_from_slice(format!("{:.3}", staleness.age_seconds).as_bytes());
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Some(status)
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}
