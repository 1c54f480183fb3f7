use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionContext;
use tokio::sync::OnceCell;

use crate::{DataError, OpenedSource, SourceFingerprint, SourceSpec};

/// A DataFusion session over the configured sources.
///
/// A source is opened (its files listed, their schemas read; a database asked for
/// its columns) the first time a query of this session reads it, and only then: a
/// source that no query reads is never touched, so a missing source used by another
/// job does not fail this one. What a source holds is fixed when it is opened: files
/// added later are seen by the next session (the next run), never half-way through.
pub struct FeatureSession {
    ctx: SessionContext,
    sources: Arc<SourceSchema>,
}

impl FeatureSession {
    /// A session over `sources`; nothing is read until a query names a source.
    pub fn new(sources: &[SourceSpec]) -> Result<Self, DataError> {
        let ctx = SessionContext::new();
        let mut seen = std::collections::HashSet::new();
        for source in sources {
            if !seen.insert(source.name.to_lowercase()) {
                return Err(DataError::DuplicateSource {
                    name: source.name.clone(),
                });
            }
        }
        // Sources open against the session's state as it is before they are
        // registered: the same configuration and object stores, without a reference
        // from the catalog back to itself.
        let sources = Arc::new(SourceSchema {
            state: ctx.state(),
            sources: sources
                .iter()
                .map(|s| (s.clone(), OnceCell::new()))
                .collect(),
            registered: RwLock::default(),
        });
        let catalog = ctx
            .catalog("datafusion")
            .expect("a new session has the default catalog");
        catalog
            .register_schema("public", sources.clone())
            .map_err(|e| DataError::Sql {
                query: "sources".to_owned(),
                message: e.strip_backtrace(),
            })?;
        Ok(Self { ctx, sources })
    }

    /// The DataFusion session, for registering more tables (labels in a backtest).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Parses and plans `sql` (the SQL of feature set or check `query`), opening the
    /// sources it reads: syntax errors, unknown tables and columns, type errors and
    /// unreadable sources are reported here, before any work.
    pub async fn plan(&self, query: &str, sql: &str) -> Result<FeatureQuery, DataError> {
        let frame = self.ctx.sql(sql).await.map_err(|e| plan_error(query, e))?;
        Ok(FeatureQuery {
            query: query.to_owned(),
            schema: Arc::new(frame.schema().as_arrow().clone()),
            frame,
        })
    }

    /// The fingerprints of the sources this session's queries have read so far, in
    /// the order they were configured (for the manifest).
    pub fn fingerprints(&self) -> Vec<SourceFingerprint> {
        self.sources
            .sources
            .iter()
            .filter_map(|(_, opened)| opened.get().map(|o| o.fingerprint.clone()))
            .collect()
    }
}

/// The error for SQL that failed to plan: a source's own error when opening it
/// failed (it names the source and file), the planner's message otherwise.
pub fn plan_error(query: &str, error: DataFusionError) -> DataError {
    match source_error(error) {
        Ok(source) => source,
        Err(error) => DataError::Sql {
            query: query.to_owned(),
            message: error.strip_backtrace(),
        },
    }
}

/// The [`DataError`] a source raised while DataFusion resolved its table, if that is
/// what `error` carries.
fn source_error(error: DataFusionError) -> Result<DataError, DataFusionError> {
    match error {
        DataFusionError::External(inner) => match inner.downcast::<DataError>() {
            Ok(source) => Ok(*source),
            Err(inner) => Err(DataFusionError::External(inner)),
        },
        DataFusionError::Context(context, inner) => {
            source_error(*inner).map_err(|inner| DataFusionError::Context(context, Box::new(inner)))
        }
        other => Err(other),
    }
}

/// The session's default schema: every configured source, opened on first use, and
/// the tables registered by hand (a backtest's labels).
#[derive(Debug)]
struct SourceSchema {
    state: SessionState,
    sources: Vec<(SourceSpec, OnceCell<OpenedSource>)>,
    registered: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl SourceSchema {
    /// The configured source DataFusion's (normalised, lower-case) `name` refers to.
    fn source(&self, name: &str) -> Option<&(SourceSpec, OnceCell<OpenedSource>)> {
        self.sources
            .iter()
            .find(|(spec, _)| spec.name.eq_ignore_ascii_case(name))
    }
}

#[async_trait]
impl SchemaProvider for SourceSchema {
    fn table_names(&self) -> Vec<String> {
        let registered = self.registered.read().expect("not poisoned");
        self.sources
            .iter()
            .map(|(spec, _)| spec.name.to_lowercase())
            .chain(registered.keys().cloned())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(table) = self.registered.read().expect("not poisoned").get(name) {
            return Ok(Some(table.clone()));
        }
        let Some((spec, opened)) = self.source(name) else {
            return Ok(None);
        };
        let session: &dyn Session = &self.state;
        let opened = opened
            .get_or_try_init(|| spec.kind.open(&spec.name, session))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(opened.table.clone()))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if self.source(&name).is_some() {
            return Err(DataFusionError::Plan(format!(
                "`{name}` is already the name of a source"
            )));
        }
        Ok(self
            .registered
            .write()
            .expect("not poisoned")
            .insert(name, table))
    }

    fn deregister_table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.registered.write().expect("not poisoned").remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.source(name).is_some()
            || self
                .registered
                .read()
                .expect("not poisoned")
                .contains_key(name)
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

#[cfg(test)]
mod tests {
    use arrow::array::{
        Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use std::path::Path;

    use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
    use chrono::TimeZone;

    use super::*;
    use crate::{Cutoffs, FileSource, render_sql};

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
            SourceSpec::new(
                "events",
                FileSource::new(dir.join("events/*.parquet"), None),
            ),
            SourceSpec::new("users", FileSource::new(dir.join("users.csv"), None)),
            SourceSpec::new("plans", FileSource::new(dir.join("plans.ndjson"), None)),
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
        let session = FeatureSession::new(&sources(dir.path())).unwrap();
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
        let session = FeatureSession::new(&sources(dir.path())).unwrap();
        let err = session
            .plan("f", "SELECT count(*) FROM events")
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(text.starts_with("source `events`"), "{text}");
        assert!(text.contains("part-2.parquet"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_the_sources_a_query_reads_are_opened() {
        let dir = project();
        let mut sources = sources(dir.path());
        sources.push(SourceSpec::new(
            "gone",
            FileSource::new(dir.path().join("missing/*.parquet"), None),
        ));
        let session = FeatureSession::new(&sources).unwrap();
        let batches = session
            .plan("f", "SELECT count(*) AS n FROM Users")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(batches[0].num_rows(), 1);
        let fingerprints = session.fingerprints();
        assert_eq!(fingerprints.len(), 1);
        assert_eq!(fingerprints[0].name, "users");
        let err = session.plan("g", "SELECT * FROM gone").await.err().unwrap();
        assert!(
            err.to_string().contains("source `gone`: no file matches"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sql_errors_name_the_query() {
        let dir = project();
        let session = FeatureSession::new(&sources(dir.path())).unwrap();
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
