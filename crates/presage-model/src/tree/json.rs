//! Field access for the JSON model formats (XGBoost, CatBoost): each failure says
//! which field, by its path in the document.

use serde_json::Value as Json;

pub(super) fn get<'a>(v: &'a Json, key: &str, at: &str) -> Result<&'a Json, String> {
    v.get(key).ok_or_else(|| {
        if at.is_empty() {
            format!("missing field `{key}`")
        } else {
            format!("missing field `{at}.{key}`")
        }
    })
}

/// A number written as a JSON number or a string (XGBoost writes parameters as strings).
pub(super) fn number<T: std::str::FromStr>(v: &Json, at: &str) -> Result<T, String> {
    let text = match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return Err(format!("`{at}` is not a number")),
    };
    text.parse()
        .map_err(|_| format!("`{at}` is not a valid number: `{text}`"))
}

pub(super) fn number_field<T: std::str::FromStr>(
    v: &Json,
    key: &str,
    at: &str,
) -> Result<T, String> {
    number(get(v, key, at)?, &format!("{at}.{key}"))
}

pub(super) fn array<'a>(v: &'a Json, at: &str) -> Result<&'a Vec<Json>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{at}` is not an array"))
}

/// Integers; booleans count as 0/1 (older versions wrote `default_left` as booleans).
pub(super) fn i64_array(v: &Json, at: &str) -> Result<Vec<i64>, String> {
    array(v, at)?
        .iter()
        .map(|x| match x {
            Json::Bool(b) => Some(i64::from(*b)),
            _ => x.as_i64(),
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{at}` is not an array of integers"))
}

pub(super) fn f64_array(v: &Json, at: &str) -> Result<Vec<f64>, String> {
    array(v, at)?
        .iter()
        .map(Json::as_f64)
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{at}` is not an array of numbers"))
}

pub(super) fn f32_array(v: &Json, at: &str) -> Result<Vec<f32>, String> {
    Ok(f64_array(v, at)?.into_iter().map(|x| x as f32).collect())
}
