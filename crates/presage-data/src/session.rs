use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::Stream;
use tokio::sync::OnceCell;

use crate::source::RemoteReads;
use crate::{DataError, FetchStats, OpenedSource, SourceFingerprint, SourceSpec};

/// What a session's queries may use of the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryLimits {
    /// Bytes the query's operators (aggregations, joins, sorts) may hold at once.
    /// Past it, operators that can spill write to `spill_dir` and the others fail the
    /// query with [`DataError::MemoryLimit`]. `None`: no limit.
    pub memory_limit: Option<u64>,
    /// Where spill files go; `None`: the system's temporary folder.
    pub spill_dir: Option<PathBuf>,
}

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
    memory_limit: Option<u64>,
    remote: Arc<RemoteReads>,
}

impl FeatureSession {
    /// A session over `sources` without a memory limit; nothing is read until a query
    /// names a source.
    pub fn new(sources: &[SourceSpec]) -> Result<Self, DataError> {
        Self::with_limits(sources, &QueryLimits::default())
    }

    /// A session over `sources` whose queries hold at most `limits.memory_limit`
    /// bytes, spilling to `limits.spill_dir`.
    pub fn with_limits(sources: &[SourceSpec], limits: &QueryLimits) -> Result<Self, DataError> {
        let setup_error = |e: DataFusionError| DataError::Sql {
            query: "sources".to_owned(),
            message: e.strip_backtrace(),
        };
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = limits.memory_limit {
            // Fair: the spilling operators of every partition share the pool, so one
            // cannot starve the others. The tracker names the biggest holders in an error.
            runtime = runtime.with_memory_pool(Arc::new(TrackConsumersPool::new(
                FairSpillPool::new(usize::try_from(limit).unwrap_or(usize::MAX)),
                NonZeroUsize::new(3).expect("not zero"),
            )));
        }
        if let Some(dir) = &limits.spill_dir {
            runtime = runtime.with_temp_file_path(dir);
        }
        let runtime = runtime.build_arc().map_err(setup_error)?;
        let remote = Arc::new(RemoteReads::default());
        let config = session_config()
            .map_err(setup_error)?
            .with_extension(remote.clone());
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.add_optimizer_rule(Arc::new(crate::distinct::CompactDistinctCount));
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
            .map_err(setup_error)?;
        Ok(Self {
            ctx,
            sources,
            memory_limit: limits.memory_limit,
            remote,
        })
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
            memory_limit: self.memory_limit,
            remote: self.remote.clone(),
        })
    }

    /// What this session's sources have fetched from object storage so far.
    pub fn fetched(&self) -> FetchStats {
        self.remote.stats()
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

/// Rows per batch in feature queries. Four times DataFusion's 8192: the batch
/// benchmark's 10 M users (178 M events aggregated) ran in 43.1 and 39.7 s against
/// 45.9 s, in the same memory; 1 M users ran no faster (docs/benchmarks.md).
const BATCH_SIZE: usize = 32 * 1024;

/// DataFusion's settings for feature queries. `DATAFUSION_*` environment variables
/// override them, for tuning a deployment (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`);
/// see DataFusion's configuration reference.
fn session_config() -> Result<SessionConfig, DataFusionError> {
    let config = SessionConfig::from_env()?;
    if std::env::var_os("DATAFUSION_EXECUTION_BATCH_SIZE").is_some() {
        return Ok(config);
    }
    Ok(config.with_batch_size(BATCH_SIZE))
}

/// A planned feature query.
pub struct FeatureQuery {
    query: String,
    schema: SchemaRef,
    frame: DataFrame,
    memory_limit: Option<u64>,
    remote: Arc<RemoteReads>,
}

impl FeatureQuery {
    /// The columns the query returns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Runs the query; batches arrive as they are computed, using every core.
    pub async fn stream(self) -> Result<FeatureStream, DataError> {
        let task = Arc::new(self.frame.task_ctx());
        let error = |e: DataFusionError| execution_error(&self.query, &e, self.memory_limit);
        let plan = self.frame.create_physical_plan().await.map_err(error)?;
        let batches = execute_stream(plan.clone(), task).map_err(error)?;
        Ok(FeatureStream {
            query: self.query,
            memory_limit: self.memory_limit,
            plan,
            batches,
            remote: self.remote,
        })
    }

    /// Runs the query and collects every batch (for small results).
    pub async fn collect(self) -> Result<Vec<RecordBatch>, DataError> {
        use futures::TryStreamExt;
        self.stream().await?.try_collect().await
    }
}

/// A running feature query: its batches, and what it has done so far.
pub struct FeatureStream {
    query: String,
    memory_limit: Option<u64>,
    plan: Arc<dyn ExecutionPlan>,
    batches: SendableRecordBatchStream,
    remote: Arc<RemoteReads>,
}

/// What a running query has read and spilled so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryProgress {
    /// Rows read from the sources (after pruning and pushed-down filters).
    pub rows_read: u64,
    /// Bytes read from Parquet files (other formats do not count their bytes).
    pub bytes_read: u64,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Objects fetched from object storage (0 when every source is local).
    pub objects_fetched: u64,
}

impl FeatureStream {
    /// Rows and bytes read, and bytes spilled, so far (live while the query runs).
    pub fn progress(&self) -> QueryProgress {
        let remote = self.remote.stats();
        let mut progress = QueryProgress {
            objects_fetched: remote.objects,
            rows_read: remote.database_rows,
            ..QueryProgress::default()
        };
        add_progress(self.plan.as_ref(), &mut progress);
        progress
    }

    /// The physical plan with each operator's metrics (rows, time, memory, spills), as
    /// `EXPLAIN ANALYZE` shows it; complete once the stream has ended.
    pub fn explain(&self) -> String {
        DisplayableExecutionPlan::with_metrics(self.plan.as_ref())
            .indent(true)
            .to_string()
    }
}

fn add_progress(plan: &dyn ExecutionPlan, progress: &mut QueryProgress) {
    let children = plan.children();
    if let Some(metrics) = plan.metrics() {
        if children.is_empty() {
            progress.rows_read += metrics.output_rows().unwrap_or(0) as u64;
            progress.bytes_read += metrics
                .sum_by_name("bytes_scanned")
                .map_or(0, |v| v.as_usize() as u64);
        }
        progress.spilled_bytes += metrics.spilled_bytes().unwrap_or(0) as u64;
    }
    for child in children {
        add_progress(child.as_ref(), progress);
    }
}

impl Stream for FeatureStream {
    type Item = Result<RecordBatch, DataError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.batches.as_mut().poll_next(cx).map(|item| {
            item.map(|batch| batch.map_err(|e| execution_error(&this.query, &e, this.memory_limit)))
        })
    }
}

/// The error for a batch of `query`'s stream that failed.
pub fn stream_error(query: &str, error: &DataFusionError) -> DataError {
    execution_error(query, error, None)
}

/// The error for a query that failed while running; running out of the memory limit
/// names the operator that could not grow.
fn execution_error(query: &str, error: &DataFusionError, memory_limit: Option<u64>) -> DataError {
    if let (DataFusionError::ResourcesExhausted(message), Some(limit)) =
        (error.find_root(), memory_limit)
    {
        return DataError::MemoryLimit {
            query: query.to_owned(),
            operator: exhausted_operator(message)
                .unwrap_or("an operator")
                .to_owned(),
            limit,
        };
    }
    DataError::Execution {
        query: query.to_owned(),
        message: error.strip_backtrace(),
    }
}

/// The consumer DataFusion's memory pool refused, from its message ("Failed to
/// allocate additional 1.0 MB for GroupedHashAggregateStream[0] with …").
fn exhausted_operator(message: &str) -> Option<&str> {
    let start = message.find(" for ")? + " for ".len();
    let rest = &message[start..];
    let end = rest.find(" with ").unwrap_or(rest.len());
    Some(rest[..end].trim()).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array, StringArray, TimestampMicrosecondArray};
    use futures::StreamExt;
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

    /// A Parquet table `t` of `rows` rows: `k` (distinct per row), `g` (`k % 1000`)
    /// and a padding string, enough for the tiny limits below to matter.
    fn wide_table(rows: i64) -> (tempfile::TempDir, Vec<SourceSpec>) {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("g", DataType::Int64, false),
            Field::new("pad", DataType::Utf8, false),
        ]));
        let path = dir.path().join("t.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        for start in (0..rows).step_by(50_000) {
            let keys: Vec<i64> = (start..(start + 50_000).min(rows)).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(keys.clone())),
                    Arc::new(Int64Array::from(
                        keys.iter().map(|k| k % 1000).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        keys.iter()
                            .map(|k| format!("padding-{k:032}"))
                            .collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            writer.write(&batch).unwrap();
        }
        writer.close().unwrap();
        let sources = vec![SourceSpec::new("t", FileSource::new(path, None))];
        (dir, sources)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_aggregation_over_the_limit_spills_and_still_answers() {
        let (dir, sources) = wide_table(400_000);
        let limits = QueryLimits {
            memory_limit: Some(24 << 20),
            spill_dir: Some(dir.path().to_path_buf()),
        };
        let session = FeatureSession::with_limits(&sources, &limits).unwrap();
        let plan = session
            .plan("f", "SELECT k, max(pad) AS p FROM t GROUP BY k")
            .await
            .unwrap();
        let mut stream = plan.stream().await.unwrap();
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch.unwrap().num_rows();
        }
        assert_eq!(rows, 400_000);
        let progress = stream.progress();
        assert_eq!(progress.rows_read, 400_000);
        assert!(progress.bytes_read > 0, "{progress:?}");
        assert!(progress.spilled_bytes > 0, "{progress:?}");
        let explain = stream.explain();
        assert!(
            explain.contains("AggregateExec") && explain.contains("spill_count="),
            "{explain}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_that_cannot_fit_names_the_operator_and_the_limit() {
        let (_dir, sources) = wide_table(400_000);
        let limits = QueryLimits {
            memory_limit: Some(8 << 20),
            spill_dir: None,
        };
        let session = FeatureSession::with_limits(&sources, &limits).unwrap();
        // A hash join's build side cannot spill.
        let plan = session
            .plan("f", "SELECT a.k, b.pad FROM t a JOIN t b ON a.pad = b.pad")
            .await
            .unwrap();
        let error = plan.collect().await.err().unwrap();
        let text = error.to_string();
        assert!(matches!(error, DataError::MemoryLimit { .. }), "{text}");
        assert!(
            text.starts_with("feature SQL of `f` needs more memory than the run's limit of 8.0 MiB: HashJoinInput"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn the_refused_operator_is_read_from_datafusions_message() {
        assert_eq!(
            exhausted_operator(
                "Failed to allocate additional 1.0 MB for GroupedHashAggregateStream[1] with 2.0 MB already allocated"
            ),
            Some("GroupedHashAggregateStream[1]")
        );
        assert_eq!(
            exhausted_operator(
                "Additional allocation failed for HashJoinInput with top memory consumers"
            ),
            Some("HashJoinInput")
        );
        assert_eq!(exhausted_operator("out of memory"), None);
    }
}
