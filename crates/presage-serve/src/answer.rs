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
    let staleness = Staleness::at(manifest.aged_from(), job.max_age, now);
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
    let staleness = Staleness::at(manifest.aged_from(), job.max_age, now);
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
    write_version_stamp(manifest, out);
    write_age(staleness.age_seconds, out);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b"\"}");
    Some(status)
}

/// The part of an answer that only depends on the version, rendered once per version
/// and thread: `,"version":N,"computed_at":"…","features_as_of":"…","age_seconds":`.
/// Formatting two timestamps per answer was a few percent of a server's CPU.
struct VersionStamp {
    id: u64,
    created_at: DateTime<Utc>,
    features_as_of: DateTime<Utc>,
    text: Vec<u8>,
}

thread_local! {
    static STAMP: std::cell::RefCell<Option<VersionStamp>> = const { std::cell::RefCell::new(None) };
}

fn write_version_stamp(manifest: &Manifest, out: &mut Vec<u8>) {
    STAMP.with_borrow_mut(|stamp| {
        let current = stamp.as_ref().is_some_and(|s| {
            s.id == manifest.id.0
                && s.created_at == manifest.created_at
                && s.features_as_of == manifest.features_as_of
        });
        if !current {
            let text = format!(
                ",\"version\":{},\"computed_at\":\"{}\",\"features_as_of\":\"{}\",\"age_seconds\":",
                manifest.id,
                manifest
                    .created_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                manifest
                    .features_as_of
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            );
            *stamp = Some(VersionStamp {
                id: manifest.id.0,
                created_at: manifest.created_at,
                features_as_of: manifest.features_as_of,
                text: text.into_bytes(),
            });
        }
        if let Some(stamp) = stamp {
            out.extend_from_slice(&stamp.text);
        }
    });
}

/// Writes `seconds` with three decimals (`412.500`), as `{:.3}` would, without
/// allocating.
fn write_age(seconds: f64, out: &mut Vec<u8>) {
    if !seconds.is_finite() || seconds.abs() >= 1e15 {
        out.extend_from_slice(format!("{seconds:.3}").as_bytes());
        return;
    }
    let millis = (seconds * 1000.0).round() as i64;
    if millis < 0 {
        out.push(b'-');
    }
    let millis = millis.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(millis / 1000).as_bytes());
    let frac = millis % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_written_as_format_would() {
        for age in [
            0.0,
            0.0004,
            0.0005,
            1.5,
            412.5,
            86_399.999_6,
            12.3456,
            -0.25,
            -3.0,
        ] {
            let mut out = Vec::new();
            write_age(age, &mut out);
            let expected = format!("{age:.3}");
            // `{:.3}` rounds half to even on the binary value; both agree away from ties.
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{age}");
        }
    }
}
