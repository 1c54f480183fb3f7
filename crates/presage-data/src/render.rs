use chrono::{DateTime, Utc};

use crate::DataError;

/// The instants a feature query is evaluated at.
///
/// In a batch run both are the run's instant. A backtest of online prediction keeps
/// `as_of` at the last run (the data the features could see) and moves `now` to the
/// moment of the request (recency such as "days since the last event" depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// The data cutoff: feature SQL uses only data strictly before it (`{{as_of}}`).
    pub as_of: DateTime<Utc>,
    /// The moment the prediction is made (`{{now}}`).
    pub now: DateTime<Utc>,
}

impl Cutoffs {
    /// A batch run at `instant`: features and prediction both as of it.
    pub fn batch(instant: DateTime<Utc>) -> Self {
        Self {
            as_of: instant,
            now: instant,
        }
    }
}

/// `instant` as the SQL literal the placeholders become: a naive UTC timestamp with
/// microseconds, e.g. `TIMESTAMP '2026-11-28T00:00:00.000000'`.
///
/// Naive because Parquet writers (pandas, polars, Spark) mostly write timestamps without
/// a time zone; comparing a zoned literal with them would not type-check.
pub fn timestamp_literal(instant: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", instant.format("%Y-%m-%dT%H:%M:%S%.6f"))
}

/// Replaces `{{as_of}}` and `{{now}}` (spaces inside the braces allowed) in the SQL of
/// `query` with timestamp literals; any other placeholder is an error naming it.
pub fn render_sql(query: &str, sql: &str, cutoffs: &Cutoffs) -> Result<String, DataError> {
    render_with(query, sql, &|name| {
        let instant = match name {
            "as_of" => cutoffs.as_of,
            "now" => cutoffs.now,
            _ => return None,
        };
        Some(timestamp_literal(instant))
    })
}

/// Replaces each `{{name}}` with `value(name)`; `None` means an unknown placeholder.
pub(crate) fn render_with(
    query: &str,
    sql: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> Result<String, DataError> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    let mut consumed = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(DataError::UnclosedPlaceholder {
            query: query.to_owned(),
            offset: consumed + start,
        })?;
        let name = after[..end].trim();
        let text = value(name).ok_or_else(|| DataError::UnknownPlaceholder {
            query: query.to_owned(),
            name: name.to_owned(),
        })?;
        out.push_str(&text);
        let advance = start + 2 + end + 2;
        consumed += advance;
        rest = &rest[advance..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cutoffs() -> Cutoffs {
        Cutoffs {
            as_of: Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap(),
            now: Utc.with_ymd_and_hms(2026, 11, 28, 6, 30, 0).unwrap(),
        }
    }

    #[test]
    fn renders_both_placeholders() {
        let sql = render_sql("f", "ts < {{as_of}} AND x > {{ now }}", &cutoffs()).unwrap();
        assert_eq!(
            sql,
            "ts < TIMESTAMP '2026-11-28T00:00:00.000000' AND x > TIMESTAMP '2026-11-28T06:30:00.000000'"
        );
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = render_sql("f", "SELECT {{asof}}", &cutoffs()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`{{asof}}`") && text.contains("`f`"),
            "{text}"
        );
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        let err = render_sql("f", "SELECT 1 WHERE {{as_of", &cutoffs()).unwrap_err();
        assert!(err.to_string().contains("byte 15"), "{err}");
    }

    #[test]
    fn sql_without_placeholders_is_unchanged() {
        assert_eq!(
            render_sql("f", "SELECT '{' AS a", &cutoffs()).unwrap(),
            "SELECT '{' AS a"
        );
    }
}
