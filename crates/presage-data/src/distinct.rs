//! `count(DISTINCT x)` over strings, per group, in memory that grows with the
//! distinct values instead of with the number of groups.
//!
//! DataFusion 55 gives every group of a `count(DISTINCT <string>)` its own hash set,
//! allocated at its warm-up size (512 slots) before it holds anything: a feature query
//! counting, per user, the distinct kinds of events beside other aggregates held
//! about 80 KB per user (8 GB at 100,000 users). DataFusion rewrites the query into
//! two smaller aggregations only when every other aggregate is `sum`, `min` or `max`
//! (`SingleDistinctToGroupBy`). For the rest, [`CompactDistinctCount`] replaces those
//! distinct counts with [`COMPACT_COUNT_DISTINCT`], whose set starts empty and stays
//! a short list while a group has few values, as feature queries' groups do.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, Aggregate, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, LogicalPlan,
    Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::scalar::ScalarValue;

/// The name of the replacement aggregate, as plans show it.
pub const COMPACT_COUNT_DISTINCT: &str = "presage_count_distinct";

/// Values a group keeps in a list, searched one by one, before it moves them into a
/// hash set.
const LIST_LIMIT: usize = 16;

/// The optimizer rule: every `count(DISTINCT x)` over a string or binary column that
/// is still in the plan after DataFusion's own rewrites becomes
/// `presage_count_distinct(x)`, under the same output name.
#[derive(Debug, Default)]
pub struct CompactDistinctCount;

impl OptimizerRule for CompactDistinctCount {
    fn name(&self) -> &str {
        "presage_compact_distinct_count"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        let input_schema = aggregate.input.schema().clone();
        let mut changed = false;
        let mut aggr_expr = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            match compact_replacement(expr, &input_schema)? {
                Some(replacement) => {
                    changed = true;
                    aggr_expr.push(replacement.alias(expr.schema_name().to_string()));
                }
                None => aggr_expr.push(expr.clone()),
            }
        }
        if !changed {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        let rewritten = Aggregate::try_new(
            aggregate.input.clone(),
            aggregate.group_expr.clone(),
            aggr_expr,
        )?;
        Ok(Transformed::yes(LogicalPlan::Aggregate(rewritten)))
    }
}

/// `presage_count_distinct(x)` for a plain `count(DISTINCT x)` over strings or bytes
/// (aliased or not: common subexpression elimination aliases aggregates).
fn compact_replacement(
    expr: &Expr,
    input_schema: &datafusion::common::DFSchema,
) -> Result<Option<Expr>> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction {
        func,
        params:
            AggregateFunctionParams {
                args,
                distinct: true,
                filter: None,
                order_by,
                ..
            },
    }) = expr
    else {
        return Ok(None);
    };
    if func.name() != "count" || args.len() != 1 || !order_by.is_empty() {
        return Ok(None);
    }
    let compact = matches!(
        args[0].get_type(input_schema)?,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    );
    if !compact {
        return Ok(None);
    }
    Ok(Some(Expr::AggregateFunction(AggregateFunction::new_udf(
        Arc::new(AggregateUDF::from(CompactCountDistinct::new())),
        args.clone(),
        false,
        None,
        Vec::new(),
        None,
    ))))
}

/// `presage_count_distinct(x)`: the number of distinct non-null `x` in a group.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CompactCountDistinct {
    signature: Signature,
}

impl CompactCountDistinct {
    /// The aggregate, over one argument of any type.
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl Default for CompactCountDistinct {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for CompactCountDistinct {
    fn name(&self) -> &str {
        COMPACT_COUNT_DISTINCT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let values = args.input_fields[0].data_type().clone();
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "distinct values"),
            Field::new_list_field(values, true),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SmallSet {
            data_type: args.expr_fields[0].data_type().clone(),
            list: Vec::new(),
            set: None,
        }))
    }

    fn default_value(&self, _: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }
}

/// One group's distinct values: a list while short, then a hash set.
#[derive(Debug)]
struct SmallSet {
    data_type: DataType,
    list: Vec<ScalarValue>,
    set: Option<HashSet<ScalarValue>>,
}

impl SmallSet {
    fn len(&self) -> usize {
        self.set.as_ref().map_or(self.list.len(), HashSet::len)
    }

    fn add_array(&mut self, array: &ArrayRef) -> Result<()> {
        for row in 0..array.len() {
            if array.is_null(row) {
                continue;
            }
            let value = ScalarValue::try_from_array(array, row)?;
            match &mut self.set {
                Some(set) => {
                    set.insert(value);
                }
                None if self.list.contains(&value) => {}
                None if self.list.len() < LIST_LIMIT => self.list.push(value),
                None => {
                    let mut set: HashSet<ScalarValue> = self.list.drain(..).collect();
                    set.insert(value);
                    self.list = Vec::new();
                    self.set = Some(set);
                }
            }
        }
        Ok(())
    }
}

impl Accumulator for SmallSet {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_array(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for values in states[0].as_list::<i32>().iter().flatten() {
            self.add_array(&values)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = match &self.set {
            Some(set) => set.iter().cloned().collect(),
            None => self.list.clone(),
        };
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &self.data_type,
        ))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.len() as i64)))
    }

    fn size(&self) -> usize {
        let values: usize = match &self.set {
            Some(set) => {
                set.capacity() * size_of::<ScalarValue>()
                    + set.iter().map(|v| v.size() - size_of_val(v)).sum::<usize>()
            }
            None => {
                self.list.capacity() * size_of::<ScalarValue>()
                    + self
                        .list
                        .iter()
                        .map(|v| v.size() - size_of_val(v))
                        .sum::<usize>()
            }
        };
        size_of_val(self) + values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureSession, FileSource, SourceSpec};
    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Int64Type, Schema};

    /// Events: `user` 0..users, each with `kind`s from a few values (some null).
    fn events(users: i64) -> (tempfile::TempDir, Vec<SourceSpec>) {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("kind", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, false),
        ]));
        let rows: Vec<i64> = (0..users * 6).collect();
        let kinds = ["session", "purchase", "ticket", "view"];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r % users).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|r| {
                            let user = r % users;
                            // User u sees (u % 4) + 1 kinds; every seventh row is null.
                            (r % 7 != 3).then(|| kinds[((r / users) % (user % 4 + 1)) as usize])
                        })
                        .collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(rows.clone())),
            ],
        )
        .unwrap();
        let path = dir.path().join("events.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        (
            dir,
            vec![SourceSpec::new("events", FileSource::new(path, None))],
        )
    }

    async fn counts(sources: &[SourceSpec], sql: &str) -> (Vec<i64>, String) {
        let session = FeatureSession::new(sources).unwrap();
        let explain = session
            .plan("f", &format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let plan = arrow::util::pretty::pretty_format_batches(&explain)
            .unwrap()
            .to_string();
        let batches = session
            .plan("f", sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out = Vec::new();
        for batch in &batches {
            out.extend(batch.column(1).as_primitive::<Int64Type>().values().iter());
        }
        (out, plan)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn distinct_string_counts_beside_other_aggregates_use_the_compact_set() {
        let (_dir, sources) = events(1000);
        // `amount >= 0` twice: DataFusion's common subexpression elimination then
        // aliases the aggregates, as it does in real feature queries.
        let sql = "SELECT user_id,
                          count(DISTINCT CASE WHEN amount >= 0 THEN kind END) AS kinds,
                          count(CASE WHEN amount >= 0 THEN 1 END) AS n, avg(amount) AS a
                   FROM events GROUP BY user_id ORDER BY user_id";
        let (kinds, plan) = counts(&sources, sql).await;
        assert!(plan.contains(COMPACT_COUNT_DISTINCT), "{plan}");
        // The same numbers as DataFusion's own distinct count, computed alone (which
        // it rewrites into two group-bys).
        let (expected, plan) = counts(
            &sources,
            "SELECT user_id, count(DISTINCT kind) AS kinds FROM events GROUP BY user_id ORDER BY user_id",
        )
        .await;
        assert!(!plan.contains(COMPACT_COUNT_DISTINCT), "{plan}");
        assert_eq!(kinds.len(), 1000);
        assert_eq!(kinds, expected);
        assert_eq!(&kinds[..4], &[1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn many_values_per_group_move_into_a_hash_set() {
        let (_dir, sources) = events(3);
        let sql =
            "SELECT user_id % 2 AS g, count(DISTINCT CAST(amount AS VARCHAR)) AS d, count(*) AS n
                   FROM events GROUP BY g ORDER BY g";
        let (distinct, plan) = counts(&sources, sql).await;
        assert!(plan.contains(COMPACT_COUNT_DISTINCT), "{plan}");
        // 18 rows with distinct amounts: users 0 and 2 (12 rows), user 1 (6).
        assert_eq!(distinct, vec![12, 6]);
    }

    #[test]
    fn the_set_counts_nulls_out_and_merges_partial_states() {
        let mut a = SmallSet {
            data_type: DataType::Utf8,
            list: Vec::new(),
            set: None,
        };
        let values: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), None, Some("y")]));
        a.update_batch(&[values]).unwrap();
        let mut b = SmallSet {
            data_type: DataType::Utf8,
            list: Vec::new(),
            set: None,
        };
        let more: Vec<String> = (0..40)
            .map(|i| format!("v{i}"))
            .chain(["x".into()])
            .collect();
        let more: ArrayRef = Arc::new(StringArray::from(more));
        b.update_batch(&[more]).unwrap();
        assert!(b.set.is_some());
        let state = b.state().unwrap()[0].to_array().unwrap();
        a.merge_batch(&[state]).unwrap();
        assert_eq!(a.evaluate().unwrap(), ScalarValue::Int64(Some(42)));
    }
}
