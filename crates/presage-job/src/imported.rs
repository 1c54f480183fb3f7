//! What turns feature rows into prediction columns: a model, or the rows themselves
//! when another system (Spark, BigQuery, dbt) computed the predictions already.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use presage_data::quoted_list;
use presage_model::{BatchScorer, OutputField, OutputKind, ScoreError, column_index};
use presage_store::lookup::FieldType;

use crate::{ImportedPredictions, JobError};

/// A job's scoring for one run.
pub(crate) enum Scoring {
    /// A model scores each batch.
    Model(Box<BatchScorer>),
    /// Columns of each batch are the predictions.
    Imported(ImportedColumns),
}

impl Scoring {
    /// The prediction fields each batch yields.
    pub(crate) fn outputs(&self) -> &[OutputField] {
        match self {
            Scoring::Model(scorer) => scorer.outputs(),
            Scoring::Imported(imported) => &imported.outputs,
        }
    }

    /// The predictions for `batch`, one array per output.
    pub(crate) fn score(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, JobError> {
        match self {
            Scoring::Model(scorer) => Ok(tokio::task::block_in_place(|| scorer.score(batch))?),
            Scoring::Imported(imported) => imported.take(batch),
        }
    }
}

/// The prediction columns of a source that holds predictions.
pub(crate) struct ImportedColumns {
    query: String,
    columns: Vec<usize>,
    outputs: Vec<OutputField>,
    as_of: Option<(usize, String)>,
    /// The oldest `as_of` value seen, in microseconds.
    oldest: Option<i64>,
}

impl ImportedColumns {
    /// The columns of `schema` that `spec` stores; `key` and `item` are not
    /// predictions. A ranked-list job's score column becomes its one `Float32` output.
    pub(crate) fn new(
        spec: &ImportedPredictions,
        query: &str,
        schema: &Schema,
        key: &str,
        item: Option<&str>,
    ) -> Result<ImportedColumns, JobError> {
        let as_of = match &spec.as_of_column {
            Some(column) => {
                let index = column_index(schema, query, column, "features_as_of")?;
                let data_type = schema.field(index).data_type();
                if !matches!(
                    data_type,
                    DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                ) {
                    return Err(ScoreError::ColumnType {
                        query: query.to_owned(),
                        column: column.clone(),
                        found: data_type.to_string(),
                        expected: "a timestamp or a date (features_as_of)",
                    }
                    .into());
                }
                Some((index, column.clone()))
            }
            None => None,
        };
        if let Some(score) = &spec.score {
            let index = column_index(schema, query, score, "score")?;
            if !schema.field(index).data_type().is_numeric() {
                return Err(ScoreError::ColumnType {
                    query: query.to_owned(),
                    column: score.clone(),
                    found: schema.field(index).data_type().to_string(),
                    expected: "a number (score)",
                }
                .into());
            }
            return Ok(ImportedColumns {
                query: query.to_owned(),
                columns: vec![index],
                outputs: vec![OutputField {
                    name: score.clone(),
                    kind: OutputKind::Value,
                    data_type: DataType::Float32,
                }],
                as_of,
                oldest: None,
            });
        }
        let skipped = [Some(key), item, spec.as_of_column.as_deref()];
        let names: Vec<String> = if spec.columns.is_empty() {
            schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|name| !skipped.contains(&Some(name.as_str())))
                .collect()
        } else {
            spec.columns.clone()
        };
        if names.is_empty() {
            return Err(JobError::NoPredictionColumns {
                source_name: spec.source.clone(),
                available: quoted_list(schema.fields().iter().map(|f| f.name().as_str())),
            });
        }
        let mut columns = Vec::new();
        let mut outputs = Vec::new();
        for name in names {
            let index = column_index(schema, query, &name, "prediction")?;
            let data_type = stored_type(schema.field(index).data_type()).ok_or_else(|| {
                ScoreError::ColumnType {
                    query: query.to_owned(),
                    column: name.clone(),
                    found: schema.field(index).data_type().to_string(),
                    expected: "a number, a boolean or a string (prediction)",
                }
            })?;
            let kind = if data_type.is_numeric() {
                OutputKind::Value
            } else {
                OutputKind::Label
            };
            columns.push(index);
            outputs.push(OutputField {
                name,
                kind,
                data_type,
            });
        }
        Ok(ImportedColumns {
            query: query.to_owned(),
            columns,
            outputs,
            as_of,
            oldest: None,
        })
    }

    fn take(&mut self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, JobError> {
        if let Some((index, column)) = &self.as_of {
            let micros = cast(
                batch.column(*index),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .map_err(|e| self.cast_error(column, e))?;
            let oldest = arrow::compute::min(micros.as_primitive::<TimestampMicrosecondType>());
            self.oldest = match (self.oldest, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.columns
            .iter()
            .zip(&self.outputs)
            .map(|(&index, output)| {
                let array = batch.column(index);
                if array.data_type() == &output.data_type {
                    Ok(array.clone())
                } else {
                    cast(array, &output.data_type).map_err(|e| self.cast_error(&output.name, e))
                }
            })
            .collect()
    }

    fn cast_error(&self, column: &str, error: arrow::error::ArrowError) -> JobError {
        ScoreError::ColumnType {
            query: self.query.clone(),
            column: column.to_owned(),
            found: error.to_string(),
            expected: "values of the column's type",
        }
        .into()
    }

    /// The oldest `features_as_of` of the rows read, when the job names a column;
    /// an error when every value was null.
    pub(crate) fn features_as_of(&self) -> Result<Option<DateTime<Utc>>, JobError> {
        let Some((_, column)) = &self.as_of else {
            return Ok(None);
        };
        match self.oldest.and_then(DateTime::from_timestamp_micros) {
            Some(instant) => Ok(Some(instant)),
            None => Err(JobError::NoAsOf {
                query: self.query.clone(),
                column: column.clone(),
            }),
        }
    }
}

/// The type a prediction column is stored as: as read when the lookup file stores it
/// ([`FieldType::from_arrow`]), else the nearest type it does (decimals and `UInt64`
/// as `Float64`, string views and dictionaries as strings); `None` for other types.
/// Lists are the shapes of model outputs and ranked lists, not of imported columns.
fn stored_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Float16 => Some(DataType::Float32),
        DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::UInt64 => {
            Some(DataType::Float64)
        }
        DataType::Utf8View | DataType::Dictionary(..) => Some(DataType::Utf8),
        DataType::FixedSizeList(..) | DataType::List(..) => None,
        other => FieldType::from_arrow(other).map(|_| other.clone()),
    }
}
