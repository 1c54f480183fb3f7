//! A feature query planned once and executed again for each group of a backtest.
//!
//! Planning the feature SQL (parse, optimise, physical plan) costs milliseconds,
//! far more than running it over one entity's rows. So each worker plans it once,
//! with the cutoffs as two functions (`presage_as_of()`, `presage_now()`) that read
//! the current group's instants, and the entity sources as tables that read the
//! current group's rows; a group then only swaps those and executes the plan again.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::render::render_with;
use crate::{Cutoffs, DataError, stream_error};

/// The instants of the group being run, read by the cutoff functions.
#[derive(Debug, Default)]
struct CutoffSlot {
    as_of: AtomicI64,
    now: AtomicI64,
}

/// `presage_as_of()` / `presage_now()`: the current group's cutoff, as the timestamp
/// literal `{{as_of}}` renders to in a normal run (nanoseconds, no time zone).
#[derive(Debug)]
struct CutoffFn {
    name: &'static str,
    now: bool,
    slot: Arc<CutoffSlot>,
    signature: Signature,
}

impl PartialEq for CutoffFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl Eq for CutoffFn {}

impl Hash for CutoffFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CutoffFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let micros = if self.now {
            self.slot.now.load(Ordering::Relaxed)
        } else {
            self.slot.as_of.load(Ordering::Relaxed)
        };
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
            Some(micros * 1_000),
            None,
        )))
    }
}

/// A table whose rows are whatever the current group put in its slot.
#[derive(Debug)]
struct SlotPartition {
    schema: SchemaRef,
    rows: Arc<Mutex<RecordBatch>>,
}

impl PartitionStream for SlotPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batch = self.rows.lock().expect("slot lock").clone();
        Box::pin(
            MemoryStream::try_new(vec![batch], self.schema.clone(), None)
                .expect("the slot holds batches of its schema"),
        )
    }
}

/// One worker's compiled feature query.
pub(crate) struct CompiledQuery {
    query: String,
    cutoffs: Arc<CutoffSlot>,
    /// Per source (in the order given to [`CompiledQuery::new`]): the slot of an
    /// entity source, `None` for a source passed whole.
    slots: Vec<Option<Arc<Mutex<RecordBatch>>>>,
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
}

/// A source as the compiled query sees it.
pub(crate) struct CompiledSource<'a> {
    /// Its table name.
    pub name: &'a str,
    /// All its rows.
    pub batch: &'a RecordBatch,
    /// Whether each group brings its own rows (an entity source).
    pub per_group: bool,
}

impl CompiledQuery {
    /// Plans `sql` over `sources` once, single-partitioned (parallelism comes from
    /// running several workers side by side).
    pub async fn new(
        query: &str,
        sql: &str,
        sources: &[CompiledSource<'_>],
    ) -> Result<CompiledQuery, DataError> {
        // Groups are a few hundred rows: small batches keep per-run buffers small.
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(1024);
        // Dynamic filters live in the plan between executions; a re-executed plan
        // must not carry one group's filter into the next.
        let options = config.options_mut();
        options.optimizer.enable_dynamic_filter_pushdown = false;
        options.optimizer.enable_join_dynamic_filter_pushdown = false;
        options.optimizer.enable_topk_dynamic_filter_pushdown = false;
        options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        let ctx = SessionContext::new_with_config(config);
        let cutoffs = Arc::new(CutoffSlot::default());
        for (name, now) in [("presage_as_of", false), ("presage_now", true)] {
            ctx.register_udf(ScalarUDF::new_from_impl(CutoffFn {
                name,
                now,
                slot: cutoffs.clone(),
                signature: Signature::exact(vec![], Volatility::Volatile),
            }));
        }
        let error = |e: datafusion::error::DataFusionError| stream_error(query, &e);
        let mut slots = Vec::with_capacity(sources.len());
        for source in sources {
            let schema = source.batch.schema();
            if source.per_group {
                let rows = Arc::new(Mutex::new(RecordBatch::new_empty(schema.clone())));
                let partition = Arc::new(SlotPartition {
                    schema: schema.clone(),
                    rows: rows.clone(),
                });
                let table = StreamingTable::try_new(schema, vec![partition]).map_err(error)?;
                ctx.register_table(source.name, Arc::new(table))
                    .map_err(error)?;
                slots.push(Some(rows));
            } else {
                let table =
                    MemTable::try_new(schema, vec![vec![source.batch.clone()]]).map_err(error)?;
                ctx.register_table(source.name, Arc::new(table))
                    .map_err(error)?;
                slots.push(None);
            }
        }
        let rendered = render_with(query, sql, &|name| match name {
            "as_of" => Some("presage_as_of()".to_owned()),
            "now" => Some("presage_now()".to_owned()),
            _ => None,
        })?;
        let frame = ctx.sql(&rendered).await.map_err(|e| DataError::Sql {
            query: query.to_owned(),
            message: e.strip_backtrace(),
        })?;
        let plan = frame.create_physical_plan().await.map_err(error)?;
        Ok(CompiledQuery {
            query: query.to_owned(),
            cutoffs,
            slots,
            plan,
            task: ctx.task_ctx(),
        })
    }

    /// Runs the query at `cutoffs` over `rows` (one batch per source, in the order
    /// given to [`CompiledQuery::new`]; ignored for sources passed whole).
    pub async fn run(
        &self,
        cutoffs: Cutoffs,
        rows: Vec<Option<RecordBatch>>,
    ) -> Result<RecordBatch, DataError> {
        for (slot, batch) in self.slots.iter().zip(rows) {
            if let (Some(slot), Some(batch)) = (slot, batch) {
                *slot.lock().expect("slot lock") = batch;
            }
        }
        self.cutoffs
            .as_of
            .store(cutoffs.as_of.timestamp_micros(), Ordering::Relaxed);
        self.cutoffs
            .now
            .store(cutoffs.now.timestamp_micros(), Ordering::Relaxed);
        let error = |e: datafusion::error::DataFusionError| stream_error(&self.query, &e);
        let plan = reset_plan_states(self.plan.clone()).map_err(error)?;
        let schema = plan.schema();
        let batches = collect(plan, self.task.clone()).await.map_err(error)?;
        concat_batches(&schema, &batches).map_err(|e| DataError::Execution {
            query: self.query.clone(),
            message: e.to_string(),
        })
    }
}
