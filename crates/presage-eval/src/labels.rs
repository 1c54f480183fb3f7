//! The outcomes a backtest is scored against.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use presage_data::{FeatureSession, SourceSpec, column_list, key_strings};

use crate::EvalError;

/// Where the labels are and which columns hold what.
#[derive(Debug, Clone)]
pub struct LabelSource {
    /// A configured source, or a file given on the command line.
    pub source: SourceSpec,
    /// How the source is named in messages (its name, or the file's path).
    pub description: String,
    /// The entity key column (the feature set's key column by default).
    pub key: String,
    /// When the application would have asked for the prediction.
    pub time: String,
    /// The outcome observed after `time`: 0/1 for a classifier, a number for a regressor.
    pub label: String,
}

/// Label rows in a window, sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// The entity of each row.
    pub keys: Vec<String>,
    /// When the prediction was asked for, µs since the epoch.
    pub times: Vec<i64>,
    /// The outcome.
    pub values: Vec<f64>,
}

impl Labels {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Reads the label rows with `time` in `[from, to)` (either bound optional).
pub async fn load_labels(
    source: &LabelSource,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Labels, EvalError> {
    let labels = &source.description;
    let session = FeatureSession::new(std::slice::from_ref(&source.source))?;
    let frame = session
        .context()
        .table(source.source.name.as_str())
        .await
        .map_err(|e| presage_data::plan_error(labels, e))?;
    let schema = frame.schema().as_arrow().clone();
    let mut columns = Vec::with_capacity(3);
    for (column, role) in [
        (&source.key, "key"),
        (&source.time, "time"),
        (&source.label, "label"),
    ] {
        let index = schema
            .index_of(column)
            .map_err(|_| EvalError::LabelColumn {
                labels: labels.clone(),
                column: column.clone(),
                role,
                available: column_list(&schema),
            })?;
        columns.push(index);
    }
    let type_error = |column: &String, found: &DataType, expected| EvalError::LabelType {
        labels: labels.clone(),
        column: column.clone(),
        found: found.to_string(),
        expected,
    };
    let time_type = schema.field(columns[1]).data_type();
    if !matches!(
        time_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) {
        return Err(type_error(&source.time, time_type, "a timestamp or a date"));
    }
    let label_type = schema.field(columns[2]).data_type();
    if !(label_type.is_numeric() || *label_type == DataType::Boolean) {
        return Err(type_error(
            &source.label,
            label_type,
            "a number or a boolean",
        ));
    }

    let batches = frame
        .collect()
        .await
        .map_err(|e| presage_data::stream_error(labels, &e))?;
    let arrow_schema = std::sync::Arc::new(schema.clone());
    let batch: RecordBatch =
        concat_batches(&arrow_schema, &batches).map_err(|e| EvalError::LabelType {
            labels: labels.clone(),
            column: source.time.clone(),
            found: e.to_string(),
            expected: "readable columns",
        })?;

    let keys = key_strings(batch.column(columns[0]), labels, &source.key)?;
    // Zoned or not, the stored value is µs since the epoch in UTC once the unit is µs.
    let tz = match time_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let times = cast(
        batch.column(columns[1]),
        &DataType::Timestamp(TimeUnit::Microsecond, tz),
    )
    .map_err(|e| type_error(&source.time, time_type, "a timestamp").with_found(e.to_string()))?;
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let values = cast(batch.column(columns[2]), &DataType::Float64)
        .map_err(|e| type_error(&source.label, label_type, "a number").with_found(e.to_string()))?;
    let values = values.as_primitive::<Float64Type>();

    let from_us = from.map(|t| t.timestamp_micros());
    let to_us = to.map(|t| t.timestamp_micros());
    let mut rows: Vec<(i64, String, f64)> = Vec::with_capacity(batch.num_rows());
    for (row, key) in keys.into_iter().enumerate() {
        let null = |column: &String| EvalError::LabelNull {
            labels: labels.clone(),
            row,
            column: column.clone(),
        };
        if times.is_null(row) {
            return Err(null(&source.time));
        }
        let time = times.value(row);
        if from_us.is_some_and(|f| time < f) || to_us.is_some_and(|t| time >= t) {
            continue;
        }
        let key = key.ok_or_else(|| null(&source.key))?;
        if values.is_null(row) || values.value(row).is_nan() {
            return Err(null(&source.label));
        }
        rows.push((time, key, values.value(row)));
    }
    if rows.is_empty() {
        let show = |t: Option<DateTime<Utc>>| t.map_or("…".to_owned(), |t| t.to_rfc3339());
        return Err(EvalError::NoLabels {
            labels: labels.clone(),
            column: source.time.clone(),
            window: format!("[{}, {})", show(from), show(to)),
        });
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = Labels::default();
    for (time, key, value) in rows {
        out.times.push(time);
        out.keys.push(key);
        out.values.push(value);
    }
    Ok(out)
}

impl EvalError {
    fn with_found(self, message: String) -> EvalError {
        match self {
            EvalError::LabelType {
                labels,
                column,
                found,
                expected,
            } => EvalError::LabelType {
                labels,
                column,
                found: format!("{found} ({message})"),
                expected,
            },
            other => other,
        }
    }
}
