//! Point-in-time feature queries: the feature SQL evaluated at many cutoffs, each for
//! only the entities that need it.
//!
//! A backtest asks "what would the features of entity `k` have been at instant `t`?"
//! for tens of thousands of `(k, t)` pairs. Running the whole feature query once per
//! distinct instant would scan every source each time. Instead the sources are read
//! into memory once, rows of the sources that belong to one entity (the configured
//! `entity_columns`) are indexed by it, and each distinct pair of cutoffs runs the
//! unchanged SQL over just the rows of the entities asked about at it: the same answer
//! as a full run restricted to those entities, because a row of such a source only
//! ever contributes to the entity it names. Sources without an entity column (a price
//! list, a calendar) are passed whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{cast, concat_batches, max, min, take_record_batch};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::pit_plan::{CompiledQuery, CompiledSource};
use crate::{
    Cutoffs, DataError, FeatureSession, SourceSpec, column_list, plan_error, quoted_list,
    render_sql, stream_error,
};

/// A feature query prepared for point-in-time evaluation.
pub struct PointInTime {
    shared: Arc<Shared>,
    schema: SchemaRef,
}

struct Shared {
    query: String,
    /// The query's columns, all nullable: requests without a row get nulls.
    output: SchemaRef,
    sql: String,
    key: String,
    /// Where the key is among the query's columns.
    key_index: usize,
    tables: Vec<CachedTable>,
    /// Whether any source is restricted to the entities of a group; without one every
    /// query runs over all the data and is parallelised inside instead of across.
    restricted: bool,
}

/// A source held in memory for the whole backtest.
struct CachedTable {
    name: String,
    batch: RecordBatch,
    /// Rows by entity key, for sources with an entity column.
    rows_by_entity: Option<HashMap<String, Vec<u32>>>,
}

/// One entity at one pair of cutoffs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PitRequest {
    /// The entity key, as text (integer keys in decimal).
    pub key: String,
    /// The instants its features are computed at.
    pub cutoffs: Cutoffs,
}

/// Features for a list of requests, row `i` answering request `i`.
pub struct PitFeatures {
    /// The feature query's columns; a request whose entity had no row at its cutoffs
    /// (not yet signed up, say) gets nulls.
    pub batch: RecordBatch,
    /// Whether request `i`'s entity had a row.
    pub found: Vec<bool>,
    /// Feature queries run: one per distinct pair of cutoffs.
    pub queries: usize,
}

/// What the caller hears while [`PointInTime::compute`] runs.
pub trait PitProgress: Send + Sync {
    /// `done` of `total` feature queries have finished.
    fn queries(&self, done: usize, total: usize);
}

impl PitProgress for () {
    fn queries(&self, _: usize, _: usize) {}
}

impl PointInTime {
    /// Reads every source into memory, indexes the ones named in `entity_columns`
    /// (source name → column holding the entity key), and plans `sql` once at
    /// `check_at` so that SQL errors are reported before any work.
    pub async fn load(
        sources: &[SourceSpec],
        query: &str,
        key: &str,
        sql: &str,
        entity_columns: &BTreeMap<String, String>,
        check_at: DateTime<Utc>,
    ) -> Result<PointInTime, DataError> {
        for source in entity_columns.keys() {
            if !sources.iter().any(|s| &s.name == source) {
                return Err(DataError::UnknownEntitySource {
                    query: query.to_owned(),
                    source_name: source.clone(),
                    available: quoted_list(sources.iter().map(|s| s.name.as_str())),
                });
            }
        }
        let session = FeatureSession::new(sources)?;
        // Planning first: a typo in the SQL should not wait for gigabytes to load.
        let rendered = render_sql(query, sql, &Cutoffs::batch(check_at))?;
        let frame = session
            .context()
            .sql(&rendered)
            .await
            .map_err(|e| plan_error(query, e))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        // Only the sources the SQL reads are held in memory (not the labels, say).
        let mut scanned = HashSet::new();
        frame
            .logical_plan()
            .apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node {
                    scanned.insert(scan.table_name.table().to_lowercase());
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(|e| DataError::Sql {
                query: query.to_owned(),
                message: e.strip_backtrace(),
            })?;
        let key_index = schema.index_of(key).map_err(|_| DataError::MissingKey {
            query: query.to_owned(),
            column: key.to_owned(),
            available: column_list(&schema),
        })?;

        let mut tables = Vec::with_capacity(sources.len());
        for source in sources {
            if !scanned.contains(&source.name.to_lowercase()) {
                continue;
            }
            let label = format!("source {}", source.name);
            let frame = session
                .context()
                .table(source.name.as_str())
                .await
                .map_err(|e| stream_error(&label, &e))?;
            let arrow_schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame
                .collect()
                .await
                .map_err(|e| stream_error(&label, &e))?;
            let batch = concat_batches(&arrow_schema, &batches)
                .and_then(|b| without_views(&b))
                .map_err(|e| DataError::Execution {
                    query: label.clone(),
                    message: e.to_string(),
                })?;
            let rows_by_entity = match entity_columns.get(&source.name) {
                Some(column) => Some(index_rows(&batch, &source.name, column)?),
                None => None,
            };
            tables.push(CachedTable {
                name: source.name.clone(),
                batch,
                rows_by_entity,
            });
        }
        let output = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| {
                    f.as_ref()
                        .clone()
                        .with_data_type(plain_type(f.data_type()))
                        .with_nullable(true)
                })
                .collect::<Vec<_>>(),
        ));
        Ok(PointInTime {
            shared: Arc::new(Shared {
                output: output.clone(),
                query: query.to_owned(),
                sql: sql.to_owned(),
                key: key.to_owned(),
                key_index,
                restricted: tables.iter().any(|t| t.rows_by_entity.is_some()),
                tables,
            }),
            schema: output,
        })
    }

    /// The feature query's columns (nullable: requests without a row get nulls).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows held in memory, over every source.
    pub fn cached_rows(&self) -> usize {
        self.shared.tables.iter().map(|t| t.batch.num_rows()).sum()
    }

    /// The earliest and latest instant in any timestamp column of any source (µs),
    /// the span backtest requests must fall in.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for table in &self.shared.tables {
            for column in table.batch.columns() {
                let DataType::Timestamp(_, tz) = column.data_type() else {
                    continue;
                };
                let Ok(micros) = cast(
                    column,
                    &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                ) else {
                    continue;
                };
                let values = micros.as_primitive::<TimestampMicrosecondType>();
                if let (Some(lo), Some(hi)) = (min(values), max(values)) {
                    range = Some(match range {
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                        None => (lo, hi),
                    });
                }
            }
        }
        range
    }

    /// Rows a full batch run at `cutoffs` would score: the whole feature query over
    /// every entity, once.
    pub async fn count_entities(&self, cutoffs: Cutoffs) -> Result<usize, DataError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(cores));
        for table in &self.shared.tables {
            let provider = MemTable::try_new(table.batch.schema(), vec![vec![table.batch.clone()]])
                .map_err(|e| stream_error(&self.shared.query, &e))?;
            ctx.register_table(table.name.as_str(), Arc::new(provider))
                .map_err(|e| stream_error(&self.shared.query, &e))?;
        }
        let sql = render_sql(&self.shared.query, &self.shared.sql, &cutoffs)?;
        let frame = ctx.sql(&sql).await.map_err(|e| DataError::Sql {
            query: self.shared.query.clone(),
            message: e.strip_backtrace(),
        })?;
        let batches = frame
            .collect()
            .await
            .map_err(|e| stream_error(&self.shared.query, &e))?;
        Ok(batches.iter().map(RecordBatch::num_rows).sum())
    }

    /// Whether the SQL uses `{{now}}` (so the moment of prediction changes features
    /// even when the data cutoff does not).
    pub fn uses_now(&self) -> bool {
        let cutoffs = |now| Cutoffs {
            as_of: DateTime::<Utc>::UNIX_EPOCH,
            now,
        };
        let a = render_sql(
            &self.shared.query,
            &self.shared.sql,
            &cutoffs(DateTime::<Utc>::UNIX_EPOCH),
        );
        let b = render_sql(
            &self.shared.query,
            &self.shared.sql,
            &cutoffs(DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1)),
        );
        a.ok() != b.ok()
    }

    /// Runs the feature SQL once per distinct pair of cutoffs among `requests`, over
    /// the rows of the entities asked about at it, using every core.
    pub async fn compute(
        &self,
        requests: &[PitRequest],
        progress: Arc<dyn PitProgress>,
    ) -> Result<PitFeatures, DataError> {
        let mut by_cutoffs: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
        for (i, request) in requests.iter().enumerate() {
            let at = (
                request.cutoffs.as_of.timestamp_micros(),
                request.cutoffs.now.timestamp_micros(),
            );
            by_cutoffs.entry(at).or_default().push(i);
        }
        let groups: Arc<Vec<Group>> = Arc::new(
            by_cutoffs
                .into_values()
                .map(|members| {
                    let cutoffs = requests[members[0]].cutoffs;
                    let mut keys: Vec<String> =
                        members.iter().map(|&i| requests[i].key.clone()).collect();
                    keys.sort_unstable();
                    keys.dedup();
                    Group { cutoffs, keys }
                })
                .collect(),
        );
        let total = groups.len();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = if self.shared.restricted { cores } else { 1 };
        let next = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let shared = self.shared.clone();
            let groups = groups.clone();
            let next = next.clone();
            let done = done.clone();
            let progress = progress.clone();
            handles.push(tokio::spawn(async move {
                // Entity sources: one single-partition plan per worker, re-run per group
                // (the workers run side by side). Otherwise each group is a whole query,
                // split over every core.
                let runner = if shared.restricted {
                    Runner::Compiled(shared.compile().await?)
                } else {
                    Runner::Whole(SessionContext::new_with_config(
                        SessionConfig::new().with_target_partitions(cores),
                    ))
                };
                let mut answers = Vec::new();
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    let Some(group) = groups.get(g) else { break };
                    let batch = match &runner {
                        Runner::Compiled(compiled) => shared.run_compiled(compiled, group).await?,
                        Runner::Whole(ctx) => shared.run_group(ctx, group).await?,
                    };
                    let batch =
                        conform(&batch, &shared.output).map_err(|e| DataError::Execution {
                            query: shared.query.clone(),
                            message: format!(
                                "a group's rows do not match the query's columns: {e}"
                            ),
                        })?;
                    answers.push((g, batch));
                    progress.queries(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
                Ok::<_, DataError>(answers)
            }));
        }
        let mut per_group: Vec<Option<RecordBatch>> = vec![None; total];
        for handle in handles {
            let answers = handle.await.map_err(|e| DataError::Execution {
                query: self.shared.query.clone(),
                message: format!("a feature worker stopped: {e}"),
            })??;
            for (g, batch) in answers {
                per_group[g] = Some(batch);
            }
        }

        // Where each group's rows start in the concatenation, and each key's row.
        let mut batches = Vec::with_capacity(total);
        let mut row_of: HashMap<(usize, &str), u64> = HashMap::new();
        let mut offset = 0u64;
        for (g, batch) in per_group.iter().enumerate() {
            let batch = batch.as_ref().expect("every group ran");
            let keys = key_strings(
                batch.column(self.shared.key_index),
                &self.shared.query,
                &self.shared.key,
            )?;
            for (row, key) in keys.iter().enumerate() {
                if let Some(key) = key {
                    let wanted = groups[g].keys.binary_search(key).ok();
                    if let Some(k) = wanted {
                        row_of.insert((g, groups[g].keys[k].as_str()), offset + row as u64);
                    }
                }
            }
            offset += batch.num_rows() as u64;
            batches.push(batch.clone());
        }
        let all = concat_batches(&self.schema, &batches).map_err(|e| DataError::Execution {
            query: self.shared.query.clone(),
            message: e.to_string(),
        })?;
        // Request → group, in the same order the groups were made.
        let mut group_of = HashMap::with_capacity(total);
        for (g, group) in groups.iter().enumerate() {
            group_of.insert(
                (
                    group.cutoffs.as_of.timestamp_micros(),
                    group.cutoffs.now.timestamp_micros(),
                ),
                g,
            );
        }
        let indices: UInt64Array = requests
            .iter()
            .map(|r| {
                let g = group_of[&(
                    r.cutoffs.as_of.timestamp_micros(),
                    r.cutoffs.now.timestamp_micros(),
                )];
                row_of.get(&(g, r.key.as_str())).copied()
            })
            .collect();
        let found = (0..indices.len()).map(|i| indices.is_valid(i)).collect();
        let batch = take_record_batch(&all, &indices).map_err(|e| DataError::Execution {
            query: self.shared.query.clone(),
            message: e.to_string(),
        })?;
        Ok(PitFeatures {
            batch,
            found,
            queries: total,
        })
    }
}

/// How a worker runs its groups.
enum Runner {
    /// The query planned once over the entity sources' slots.
    Compiled(CompiledQuery),
    /// A session running the whole query per group.
    Whole(SessionContext),
}

struct Group {
    cutoffs: Cutoffs,
    keys: Vec<String>,
}

impl Shared {
    /// This worker's copy of the query, planned once.
    async fn compile(&self) -> Result<CompiledQuery, DataError> {
        let sources: Vec<CompiledSource<'_>> = self
            .tables
            .iter()
            .map(|t| CompiledSource {
                name: &t.name,
                batch: &t.batch,
                per_group: t.rows_by_entity.is_some(),
            })
            .collect();
        CompiledQuery::new(&self.query, &self.sql, &sources).await
    }

    /// The compiled query at one group's cutoffs, over its entities' rows.
    async fn run_compiled(
        &self,
        compiled: &CompiledQuery,
        group: &Group,
    ) -> Result<RecordBatch, DataError> {
        let rows = self
            .tables
            .iter()
            .map(|t| t.group_rows(&group.keys).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        compiled.run(group.cutoffs, rows).await
    }

    /// The feature SQL at one group's cutoffs, over all rows (no entity sources).
    async fn run_group(
        &self,
        ctx: &SessionContext,
        group: &Group,
    ) -> Result<RecordBatch, DataError> {
        for table in &self.tables {
            let batch = match table.group_rows(&group.keys) {
                Some(rows) => rows?,
                None => table.batch.clone(),
            };
            let provider = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| {
                DataError::Execution {
                    query: format!("source {}", table.name),
                    message: e.strip_backtrace(),
                }
            })?;
            // Each group replaces the previous group's tables in this worker's session.
            ctx.deregister_table(table.name.as_str())
                .map_err(|e| stream_error(&self.query, &e))?;
            ctx.register_table(table.name.as_str(), Arc::new(provider))
                .map_err(|e| stream_error(&self.query, &e))?;
        }
        let sql = render_sql(&self.query, &self.sql, &group.cutoffs)?;
        let frame = ctx.sql(&sql).await.map_err(|e| DataError::Sql {
            query: self.query.clone(),
            message: e.strip_backtrace(),
        })?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame
            .collect()
            .await
            .map_err(|e| stream_error(&self.query, &e))?;
        let mut batch = concat_batches(&schema, &batches).map_err(|e| DataError::Execution {
            query: self.query.clone(),
            message: e.to_string(),
        })?;
        if !self.restricted {
            batch = keep_keys(batch, self.key_index, &self.key, &group.keys, &self.query)?;
        }
        Ok(batch)
    }
}

impl CachedTable {
    /// The rows of `keys`, for an entity source; `None` for a source passed whole.
    fn group_rows(&self, keys: &[String]) -> Option<Result<RecordBatch, DataError>> {
        let index = self.rows_by_entity.as_ref()?;
        let rows: UInt32Array = keys
            .iter()
            .filter_map(|k| index.get(k))
            .flatten()
            .copied()
            .collect();
        Some(
            take_record_batch(&self.batch, &rows).map_err(|e| DataError::Execution {
                query: format!("source {}", self.name),
                message: e.to_string(),
            }),
        )
    }
}

/// Strings as plain (offset) arrays: Parquet reads them as views into its pages, and
/// taking a few rows of a view array drags every page buffer along.
fn without_views(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            let plain = plain_type(c.data_type());
            if &plain == c.data_type() {
                Ok(c.clone())
            } else {
                cast(c, &plain)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Schema::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type())))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns)
}

fn plain_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// A group's rows with the query's output types (casting where string views or
/// literal types made them differ) and nullable columns.
fn conform(
    batch: &RecordBatch,
    output: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(output.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(output.clone(), columns)
}

/// The rows of an unrestricted run that belong to the group's entities.
fn keep_keys(
    batch: RecordBatch,
    key_index: usize,
    key: &str,
    keys: &[String],
    query: &str,
) -> Result<RecordBatch, DataError> {
    let values = key_strings(batch.column(key_index), query, key)?;
    let rows: UInt32Array = values
        .iter()
        .enumerate()
        .filter(|(_, k)| k.as_ref().is_some_and(|k| keys.binary_search(k).is_ok()))
        .map(|(i, _)| i as u32)
        .collect();
    take_record_batch(&batch, &rows).map_err(|e| DataError::Execution {
        query: query.to_owned(),
        message: e.to_string(),
    })
}

/// Row numbers of `batch` by the entity key in `column`.
fn index_rows(
    batch: &RecordBatch,
    source: &str,
    column: &str,
) -> Result<HashMap<String, Vec<u32>>, DataError> {
    let index = batch
        .schema()
        .index_of(column)
        .map_err(|_| DataError::MissingEntityColumn {
            source_name: source.to_owned(),
            column: column.to_owned(),
            available: column_list(&batch.schema()),
        })?;
    let keys = key_strings(batch.column(index), &format!("source {source}"), column)?;
    let mut rows: HashMap<String, Vec<u32>> = HashMap::new();
    for (row, key) in keys.into_iter().enumerate() {
        if let Some(key) = key {
            rows.entry(key).or_default().push(row as u32);
        }
    }
    Ok(rows)
}

/// Key values as text: strings as they are, integers in decimal.
pub fn key_strings(
    column: &ArrayRef,
    query: &str,
    name: &str,
) -> Result<Vec<Option<String>>, DataError> {
    let text = match column.data_type() {
        DataType::Utf8 => column.clone(),
        t if t.is_integer() || matches!(t, DataType::LargeUtf8 | DataType::Utf8View) => {
            cast(column, &DataType::Utf8).map_err(|e| DataError::Execution {
                query: query.to_owned(),
                message: e.to_string(),
            })?
        }
        other => {
            return Err(DataError::KeyType {
                query: query.to_owned(),
                column: name.to_owned(),
                found: other.to_string(),
            });
        }
    };
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|k| k.map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use chrono::TimeZone;

    use super::*;
    use crate::FileSource;

    const SQL: &str = "
        SELECT u.user_id, count(e.ts) AS n, coalesce(sum(e.amount), 0.0) AS spend,
               (SELECT count(*) FROM events) AS everyone,
               date_part('epoch', {{now}}) - date_part('epoch', {{as_of}}) AS waited
        FROM users u
        LEFT JOIN events e ON e.user_id = u.user_id AND e.ts < {{as_of}}
        GROUP BY u.user_id";

    fn write_events(path: &Path) {
        let users: Vec<String> = (0..30).map(|i| format!("u{}", i % 3)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("amount", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(users)),
                Arc::new(TimestampMicrosecondArray::from(
                    (0..30).map(|i| i * 1_000_000).collect::<Vec<i64>>(),
                )),
                Arc::new(Float64Array::from(
                    (0..30).map(f64::from).collect::<Vec<_>>(),
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
        write_events(&dir.join("events.parquet"));
        std::fs::write(dir.join("users.csv"), "user_id\nu0\nu1\nu2\n").unwrap();
        vec![
            SourceSpec::new("events", FileSource::new(dir.join("events.parquet"), None)),
            SourceSpec::new("users", FileSource::new(dir.join("users.csv"), None)),
        ]
    }

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(second, 0).unwrap()
    }

    fn requests() -> Vec<PitRequest> {
        let r = |key: &str, as_of: i64, now: i64| PitRequest {
            key: key.into(),
            cutoffs: Cutoffs {
                as_of: at(as_of),
                now: at(now),
            },
        };
        vec![
            r("u1", 10, 10),
            r("u0", 10, 10),
            r("u2", 4, 9),
            r("nobody", 10, 10),
            r("u0", 30, 30),
        ]
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cutoffs_are_strict_and_keys_are_answered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let entity = BTreeMap::from([
            ("users".to_owned(), "user_id".to_owned()),
            ("events".to_owned(), "user_id".to_owned()),
        ]);
        let pit = PointInTime::load(&sources, "f", "user_id", SQL, &entity, at(10))
            .await
            .unwrap();
        assert!(pit.uses_now());
        assert_eq!(pit.time_range(), Some((0, 29_000_000)));
        assert_eq!(pit.count_entities(Cutoffs::batch(at(10))).await.unwrap(), 3);
        let out = pit.compute(&requests(), Arc::new(())).await.unwrap();
        assert_eq!(out.queries, 3);
        assert_eq!(out.found, vec![true, true, true, false, true]);
        let n = out.batch.column(1).as_primitive::<Int64Type>();
        // u1 has events at 1, 4, 7 s before 10 s (the one at exactly 10 s is not
        // before it); u0 at 0, 3, 6, 9; u2 at 2 before 4 s.
        assert_eq!(n.value(0), 3);
        assert_eq!(n.value(1), 4);
        assert_eq!(n.value(2), 1);
        assert_eq!(n.value(4), 10);
        let waited = out.batch.column(4);
        assert_eq!(
            cast(waited, &DataType::Float64)
                .unwrap()
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(2),
            5.0
        );
    }

    /// Restricting the entity sources changes speed, never answers: the same requests
    /// without `entity_columns` (every query over all rows) give the same features,
    /// except a column that reads other entities' rows on purpose.
    #[tokio::test(flavor = "multi_thread")]
    async fn restricting_to_entities_gives_the_answers_of_full_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let entity = BTreeMap::from([("events".to_owned(), "user_id".to_owned())]);
        let restricted = PointInTime::load(&sources, "f", "user_id", SQL, &entity, at(10))
            .await
            .unwrap()
            .compute(&requests(), Arc::new(()))
            .await
            .unwrap();
        let full = PointInTime::load(&sources, "f", "user_id", SQL, &BTreeMap::new(), at(10))
            .await
            .unwrap()
            .compute(&requests(), Arc::new(()))
            .await
            .unwrap();
        assert_eq!(restricted.found, full.found);
        for column in [0, 1, 2, 4] {
            assert_eq!(
                restricted.batch.column(column),
                full.batch.column(column),
                "column {column}"
            );
        }
        // `everyone` counts all events: only right without the restriction, which is
        // why `entity_columns` is the user's promise and not a guess.
        let everyone = full.batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(everyone.value(0), 30);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn entity_columns_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let sources = sources(dir.path());
        let bad = BTreeMap::from([("events".to_owned(), "customer".to_owned())]);
        let err = PointInTime::load(&sources, "f", "user_id", SQL, &bad, at(10))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("source `events` has no column `customer`"),
            "{err}"
        );
        let unknown = BTreeMap::from([("clicks".to_owned(), "user_id".to_owned())]);
        let err = PointInTime::load(&sources, "f", "user_id", SQL, &unknown, at(10))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("source `clicks`"), "{err}");
        let err = PointInTime::load(&sources, "f", "id", SQL, &BTreeMap::new(), at(10))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no key column `id`"), "{err}");
    }
}
