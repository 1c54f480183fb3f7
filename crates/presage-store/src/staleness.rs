use std::time::Duration;

use chrono::{DateTime, Utc};

/// Whether an answer is within the job's `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Computed less than `max_age` ago (or the job has no `max_age`).
    Fresh,
    /// Older than `max_age`.
    Stale,
}

impl Freshness {
    /// `"fresh"` or `"stale"`, as in answers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
        }
    }
}

/// How old a version is and whether that is too old: the one place that decides,
/// shared by serving, `presage status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staleness {
    /// Seconds since the version was computed (never negative).
    pub age_seconds: f64,
    /// Fresh or stale against `max_age`.
    pub freshness: Freshness,
}

impl Staleness {
    /// The staleness at `now` of a version computed at `computed_at`.
    pub fn at(
        computed_at: DateTime<Utc>,
        max_age: Option<Duration>,
        now: DateTime<Utc>,
    ) -> Staleness {
        let age_seconds = ((now - computed_at).num_milliseconds().max(0) as f64) / 1000.0;
        let stale = max_age.is_some_and(|max| age_seconds > max.as_secs_f64());
        Staleness {
            age_seconds,
            freshness: if stale {
                Freshness::Stale
            } else {
                Freshness::Fresh
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_only_past_max_age() {
        let t0: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let max = Some(Duration::from_secs(3600));
        let at = |secs| Staleness::at(t0, max, t0 + chrono::Duration::seconds(secs));
        assert_eq!(at(3600).freshness, Freshness::Fresh);
        assert_eq!(at(3601).freshness, Freshness::Stale);
        assert_eq!(at(-5).age_seconds, 0.0);
        assert_eq!(
            Staleness::at(t0, None, t0 + chrono::Duration::days(400)).freshness,
            Freshness::Fresh
        );
    }
}
