//! The answer document: a prediction with its version and age.

use chrono::{DateTime, SecondsFormat, Utc};
use presage_store::{Freshness, LoadedVersion, Staleness};

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

/// Writes the answer document for `key` into `out`: the prediction with `version`,
/// `computed_at`, `features_as_of`, `age_seconds` and `status`. `None` (nothing
/// written) when the key is unknown and the job has no default.
pub fn write_answer(
    job: &ServeJob,
    version: &LoadedVersion,
    key: &str,
    now: DateTime<Utc>,
    out: &mut Vec<u8>,
) -> Option<Status> {
    let manifest = version.manifest();
    let start = out.len();
    out.extend_from_slice(b"{\"key\":");
    write_json_str(out, key);
    out.extend_from_slice(b",\"prediction\":");
    let status = if version.write_prediction_json(key, out) {
        match Staleness::at(manifest.created_at, job.max_age, now).freshness {
            Freshness::Fresh => Status::Fresh,
            Freshness::Stale => Status::Stale,
        }
    } else if let Some(default) = &job.default {
        serde_json::to_writer(&mut *out, default).expect("writing to a Vec");
        Status::Default
    } else {
        out.truncate(start);
        return None;
    };
    let staleness = Staleness::at(manifest.created_at, job.max_age, now);
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
