//! How the reports write numbers: metric values, counts, durations, times and signed
//! changes. Missing or non-finite values read "—", never `NaN`.

use chrono::{DateTime, Utc};

/// Written where a value is missing or undefined.
const MISSING: &str = "—";

/// "Log loss" from "log loss".
pub(super) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Metric values: 4 decimals; tiny values in scientific notation; "—" when missing.
pub(super) fn fmt_number(v: f64) -> String {
    if v.is_nan() {
        MISSING.to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.to_owned()
    } else if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// [`fmt_number`], or "—" for no value.
pub(super) fn fmt_option(v: Option<f64>) -> String {
    v.map_or_else(|| MISSING.to_owned(), fmt_number)
}

/// A difference with its sign always shown ("+0.0123", "−0.0045"), the minus a real
/// minus sign like the percentages'.
pub(super) fn fmt_signed_number(v: Option<f64>) -> String {
    match v.filter(|d| d.is_finite()) {
        Some(d) if d > 0.0 => format!("+{}", fmt_number(d)),
        Some(d) => fmt_number(d).replacen('-', "−", 1),
        None => MISSING.to_owned(),
    }
}

/// A percentage with its sign always shown and one decimal: "+4.1%", "−3.1%".
pub(super) fn fmt_signed_percent(percent: f64) -> String {
    let sign = if percent < 0.0 { "−" } else { "+" };
    format!("{sign}{:.1}%", percent.abs())
}

/// "12,345,678".
pub(super) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "45 s", "3.2 min", "3.2 h", "1.5 d".
pub(super) fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return MISSING.to_owned();
    }
    let a = seconds.abs();
    if a < 60.0 {
        if a == a.round() {
            format!("{seconds:.0} s")
        } else {
            format!("{seconds:.1} s")
        }
    } else if a < 3_600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if a < 86_400.0 {
        format!("{:.1} h", seconds / 3_600.0)
    } else {
        format!("{:.1} d", seconds / 86_400.0)
    }
}

/// "2025-10-30 09:15 UTC".
pub(super) fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(capitalise("log loss"), "Log loss");
        assert_eq!(capitalise(""), "");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_duration(11_520.0), "3.2 h");
        assert_eq!(fmt_duration(1.5), "1.5 s");
        assert_eq!(fmt_duration(0.0), "0 s");
        assert_eq!(fmt_duration(f64::NAN), "—");
        assert_eq!(fmt_number(0.123_456), "0.1235");
        assert_eq!(fmt_number(f64::NAN), "—");
        assert_eq!(fmt_option(None), "—");
        assert_eq!(
            fmt_time(&Utc.with_ymd_and_hms(2025, 10, 30, 9, 15, 0).unwrap()),
            "2025-10-30 09:15 UTC"
        );
    }

    #[test]
    fn signed_values() {
        assert_eq!(fmt_signed_percent(-3.12), "−3.1%");
        assert_eq!(fmt_signed_percent(4.06), "+4.1%");
        assert_eq!(fmt_signed_percent(0.0), "+0.0%");
        assert_eq!(fmt_signed_number(Some(0.012_34)), "+0.0123");
        assert_eq!(fmt_signed_number(Some(-0.0045)), "−0.0045");
        assert_eq!(fmt_signed_number(Some(f64::INFINITY)), "—");
        assert_eq!(fmt_signed_number(None), "—");
    }
}
