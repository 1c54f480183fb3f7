use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;

use crate::{DataError, SourceFormat, SourceSpec};

/// A DataFusion session with every configured source registered as a table.
///
/// Each source's file list is taken once, here: files added later are seen by the next
/// session (the next run), never half-way through a query.
pub struct FeatureSession {
    ctx: SessionContext,
}

impl FeatureSession {
    /// Lists and registers `sources`; reads each file's schema (Parquet footers, the first
    /// rows of CSV and JSON), so an unreadable file is reported here, by name.
    pub async fn new(sources: &[SourceSpec]) -> Result<Self, DataError> {
        let ctx = SessionContext::new();
        let mut seen = std::collections::HashSet::new();
        for source in sources {
            if !seen.insert(source.name.to_lowercase()) {
                return Err(DataError::DuplicateSource {
                    name: source.name.clone(),
                });
            }
            let table = listing_table(&ctx, source).await?;
            ctx.register_table(source.name.as_str(), Arc::new(table))
                .map_err(|e| DataError::Sql {
                    query: format!("source {}", source.name),
                    message: e.strip_backtrace(),
                })?;
        }
        Ok(Self { ctx })
    }

    /// The DataFusion session, for registering more tables (labels in a backtest).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Parses and plans `sql` (the SQL of feature set or check `query`): syntax errors,
    /// unknown tables and columns, and type errors are reported here, before any work.
    pub async fn plan(&self, query: &str, sql: &str) -> Result<FeatureQuery, DataError> {
        let frame = self.ctx.sql(sql).await.map_err(|e| DataError::Sql {
            query: query.to_owned(),
            message: e.strip_backtrace(),
        })?;
        Ok(FeatureQuery {
            query: query.to_owned(),
            schema: Arc::new(frame.schema().as_arrow().clone()),
            frame,
        })
    }
}

/// A planned feature query.
pub struct FeatureQuery {
    query: String,
    schema: SchemaRef,
    frame: DataFrame,
}

impl FeatureQuery {
    /// The columns the query returns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs the query; batches arrive as they are computed, using every core.
    pub async fn stream(self) -> Result<SendableRecordBatchStream, DataError> {
        self.frame
            .execute_stream()
            .await
            .map_err(|e| stream_error(&self.query, &e))
    }

    /// Runs the query and collects every batch (for small results).
    pub async fn collect(self) -> Result<Vec<arrow::array::RecordBatch>, DataError> {
        let query = self.query;
        self.frame
            .collect()
            .await
            .map_err(|e| stream_error(&query, &e))
    }
}

/// The error for a batch of `query`'s stream that failed.
pub fn stream_error(query: &str, error: &DataFusionError) -> DataError {
    DataError::Execution {
        query: query.to_owned(),
        message: error.strip_backtrace(),
    }
}

fn file_format(format: SourceFormat) -> Arc<dyn FileFormat> {
    match format {
        SourceFormat::Parquet => Arc::new(ParquetFormat::default()),
        SourceFormat::Csv => Arc::new(CsvFormat::default().with_has_header(true)),
        SourceFormat::Json => Arc::new(JsonFormat::default()),
    }
}

/// One table over the source's listed files, with their schemas merged.
async fn listing_table(
    ctx: &SessionContext,
    source: &SourceSpec,
) -> Result<ListingTable, DataError> {
    let (files, format) = source.files_with_format()?;
    // The extension filter would drop a `.txt` file configured as CSV; the files are
    // already chosen.
    let options = ListingOptions::new(file_format(format)).with_file_extension("");
    let state = ctx.state();
    let unreadable = |path: &Path, message: String| DataError::Unreadable {
        source_name: source.name.clone(),
        path: path.to_path_buf(),
        format: format.name(),
        message,
    };
    let mut urls = Vec::with_capacity(files.len());
    let mut schemas = Vec::with_capacity(files.len());
    // Per file, so that a bad file among many is named.
    for file in &files {
        let absolute = std::path::absolute(file).map_err(|e| DataError::Io {
            source_name: source.name.clone(),
            path: file.clone(),
            source: e,
        })?;
        let url = ListingTableUrl::parse(absolute.to_string_lossy())
            .map_err(|e| unreadable(file, e.strip_backtrace()))?;
        let schema = options
            .infer_schema(&state, &url)
            .await
            .map_err(|e| unreadable(file, e.strip_backtrace()))?;
        urls.push(url);
        schemas.push(schema.as_ref().clone());
    }
    let merged = Schema::try_merge(schemas).map_err(|e| DataError::Unreadable {
        source_name: source.name.clone(),
        path: source.path.clone(),
        format: format.name(),
        message: format!("the files' schemas do not agree: {e}"),
    })?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(Arc::new(merged));
    ListingTable::try_new(config).map_err(|e| unreadable(&source.path, e.strip_backtrace()))
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Int64Type, TimeUnit};
    use chrono::TimeZone;

    use super::*;
    use crate::{Cutoffs, render_sql};

    fn write_events(path: &Path, users: &[&str], seconds: &[i64]) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(users.to_vec())),
                Arc::new(TimestampMicrosecondArray::from(
                    seconds.iter().map(|s| s * 1_000_000).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn sources(dir: &Path) -> Vec<SourceSpec> {
        vec![
            SourceSpec {
                name: "events".into(),
                path: dir.join("events/*.parquet"),
                format: None,
            },
            SourceSpec {
                name: "users".into(),
                path: dir.join("users.csv"),
                format: None,
            },
            SourceSpec {
                name: "plans".into(),
                path: dir.join("plans.ndjson"),
                format: None,
            },
        ]
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("events")).unwrap();
        // 2026-01-01T00:00:00Z is 1767225600.
        let t0 = 1_767_225_600;
        write_events(
            &dir.path().join("events/part-0.parquet"),
            &["a", "b"],
            &[t0, t0 + 10],
        );
        write_events(
            &dir.path().join("events/part-1.parquet"),
            &["a", "a"],
            &[t0 + 20, t0 + 30],
        );
        std::fs::write(
            dir.path().join("users.csv"),
            "user_id,plan\na,pro\nb,free\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("plans.ndjson"),
            "{\"plan\":\"pro\",\"price\":20}\n{\"plan\":\"free\",\"price\":0}\n",
        )
        .unwrap();
        dir
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn joins_parquet_csv_and_json_before_the_cutoff() {
        let dir = project();
        let session = FeatureSession::new(&sources(dir.path())).await.unwrap();
        let as_of = chrono::Utc.timestamp_opt(1_767_225_600 + 30, 0).unwrap();
        let sql = render_sql(
            "f",
            "SELECT u.user_id, count(e.ts) AS n, max(p.price) AS price
             FROM users u JOIN plans p ON p.plan = u.plan
             LEFT JOIN events e ON e.user_id = u.user_id AND e.ts < {{as_of}}
             GROUP BY u.user_id ORDER BY u.user_id",
            &Cutoffs::batch(as_of),
        )
        .unwrap();
        let batches = session
            .plan("f", &sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        // The event exactly at the cutoff is excluded: data strictly before it.
        assert_eq!(counts, &Int64Array::from(vec![2, 1]));
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "b");
        assert_eq!(batch.column(2).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_bad_file_among_many_is_named() {
        let dir = project();
        std::fs::write(dir.path().join("events/part-2.parquet"), b"not parquet").unwrap();
        let err = FeatureSession::new(&sources(dir.path()))
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.contains("source `events`"), "{text}");
        assert!(text.contains("part-2.parquet"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sql_errors_name_the_query() {
        let dir = project();
        let session = FeatureSession::new(&sources(dir.path())).await.unwrap();
        let err = session
            .plan("f", "SELECT nope FROM users")
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with("feature SQL of `f`") && text.contains("nope"),
            "{text}"
        );
        let err = session.plan("f", "SELEC 1").await.err().unwrap();
        assert!(err.to_string().contains("SELEC"), "{err}");
    }
}
