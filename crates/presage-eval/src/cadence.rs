//! Refresh cadences and when a scheduled run's answer is what a request sees.

use crate::EvalError;

const MICROS: i64 = 1_000_000;

/// How often a batch job runs; `0` means features computed at the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    /// As the user wrote it (`1h`).
    pub text: String,
    /// Seconds between runs; 0 for online.
    pub seconds: i64,
}

impl Cadence {
    /// Daily: the baseline every change is measured against.
    pub fn daily() -> Cadence {
        Cadence {
            text: "1d".to_owned(),
            seconds: 86_400,
        }
    }

    /// Whether this is the online end of the ladder (no batch runs).
    pub fn is_online(&self) -> bool {
        self.seconds == 0
    }

    /// The instant of the last run whose answer is served at `time` (µs): runs start at
    /// multiples of the cadence since the Unix epoch (midnight UTC for daily) and their
    /// answers become visible `lag` µs later.
    pub fn last_run(&self, time: i64, lag: i64) -> i64 {
        let every = self.seconds * MICROS;
        (time - lag).div_euclid(every) * every
    }

    /// Runs started in `[from, to)` (µs): what a batch job costs over that window.
    pub fn runs_in(&self, from: i64, to: i64) -> u64 {
        let every = self.seconds * MICROS;
        let first = from.div_euclid(every) + i64::from(from.rem_euclid(every) != 0);
        let last = (to - 1).div_euclid(every);
        (last - first + 1).max(0) as u64
    }
}

/// Parses a comma-separated list like `0,1h,6h,1d,7d`, sorted from freshest to
/// stalest; `0` (or `online`) is the online end.
pub fn parse_cadences(text: &str) -> Result<Vec<Cadence>, EvalError> {
    let mut out: Vec<Cadence> = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let seconds = if item == "0" || item == "online" {
            0
        } else {
            let duration = parse_duration(item)?;
            if duration.subsec_nanos() != 0 || duration.as_secs() == 0 {
                return Err(EvalError::Cadence {
                    text: item.to_owned(),
                    message: "must be a whole number of seconds, at least 1s (or `0` for online)"
                        .to_owned(),
                });
            }
            i64::try_from(duration.as_secs()).map_err(|_| EvalError::Cadence {
                text: item.to_owned(),
                message: "too long".to_owned(),
            })?
        };
        if !out.iter().any(|c| c.seconds == seconds) {
            out.push(Cadence {
                text: item.to_owned(),
                seconds,
            });
        }
    }
    if out.is_empty() {
        return Err(EvalError::Cadence {
            text: text.to_owned(),
            message: "no cadence given".to_owned(),
        });
    }
    out.sort_by_key(|c| c.seconds);
    Ok(out)
}

/// Parses the pipeline lag: how long after a run starts its answers are served.
pub fn parse_lag(text: &str) -> Result<std::time::Duration, EvalError> {
    humantime::parse_duration(text.trim()).map_err(|e| EvalError::Lag {
        text: text.to_owned(),
        message: e.to_string(),
    })
}

/// Parses one cadence (`30m`, `1h`, `7d`).
fn parse_duration(text: &str) -> Result<std::time::Duration, EvalError> {
    humantime::parse_duration(text).map_err(|e| EvalError::Cadence {
        text: text.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * MICROS;

    #[test]
    fn parses_sorts_and_dedups() {
        let c = parse_cadences("7d, 0,1h,6h,1d,60m").unwrap();
        let seconds: Vec<i64> = c.iter().map(|c| c.seconds).collect();
        assert_eq!(seconds, vec![0, 3600, 21_600, 86_400, 604_800]);
        assert_eq!(c[1].text, "1h");
    }

    #[test]
    fn bad_items_are_named() {
        let err = parse_cadences("1h,2x").unwrap_err().to_string();
        assert!(err.starts_with("cadence `2x`"), "{err}");
        let err = parse_cadences("500ms").unwrap_err().to_string();
        assert!(err.contains("whole number of seconds"), "{err}");
        assert!(parse_cadences(" , ").is_err());
    }

    #[test]
    fn last_run_respects_the_lag() {
        let hourly = Cadence {
            text: "1h".into(),
            seconds: 3600,
        };
        // At 10:20 with a 30-minute lag the 10:00 run is not visible yet: 09:00 answers.
        let t = 10 * HOUR + 20 * 60 * MICROS;
        assert_eq!(hourly.last_run(t, 30 * 60 * MICROS), 9 * HOUR);
        // At 10:40 it is.
        assert_eq!(
            hourly.last_run(t + 20 * 60 * MICROS, 30 * 60 * MICROS),
            10 * HOUR
        );
        // Exactly at the run instant with no lag: that run answers.
        assert_eq!(hourly.last_run(10 * HOUR, 0), 10 * HOUR);
        // Before the epoch floors down, not towards zero.
        assert_eq!(hourly.last_run(-1, 0), -HOUR);
    }

    #[test]
    fn counts_runs_in_a_window() {
        let daily = Cadence::daily();
        let day = 24 * HOUR;
        assert_eq!(daily.runs_in(0, 30 * day), 30);
        assert_eq!(daily.runs_in(1, 30 * day), 29);
        assert_eq!(daily.runs_in(1, 30 * day + 1), 30);
    }
}
