//! [`TreeModel`]: a compiled ensemble plus its output rules, behind [`Model`].

use super::forest::Forest;
use super::head::{Head, Sink};
use super::kernel::{Aggregate, LANES};
use super::layout::Layout;
use super::value::Value;
use crate::{Model, ModelError, ModelFormat, ModelInfo, Scores, Task};

/// Bytes of feature rows per block: with one tree's nodes this stays in a 32-48 KiB L1.
const BLOCK_BYTES: usize = 24 * 1024;
/// Most rows per block; more buys nothing once a tree's nodes are amortised.
const MAX_BLOCK_ROWS: usize = 256;

/// A tree ensemble ready to score, accumulating in `V`.
#[derive(Debug)]
pub(crate) struct TreeModel<V> {
    info: ModelInfo,
    layout: Layout<V>,
    aggregate: Aggregate,
    /// Starting value of each accumulator (XGBoost's base margin, else zero).
    init: Vec<V>,
    head: Head,
    block_rows: usize,
}

/// Everything a parser determined about a model besides its trees.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// The file format.
    pub format: ModelFormat,
    /// Classifier or regressor.
    pub task: Task,
    /// How leaf values combine.
    pub aggregate: Aggregate,
    /// Starting value of each accumulator.
    pub init: Vec<f64>,
    /// Output rules.
    pub head: Head,
}

impl<V: Value> TreeModel<V> {
    /// Compiles a validated forest.
    pub fn new(forest: &Forest, spec: Spec) -> TreeModel<V> {
        let layout = Layout::compile(forest);
        let row_bytes = forest.n_features.max(1) * size_of::<f32>();
        let block_rows = (BLOCK_BYTES / row_bytes).clamp(LANES, MAX_BLOCK_ROWS) / LANES * LANES;
        TreeModel {
            info: ModelInfo {
                engine: "tree",
                format: spec.format,
                n_features: forest.n_features,
                inputs: Vec::new(),
                task: spec.task,
            },
            layout,
            aggregate: spec.aggregate,
            init: spec.init.iter().map(|&v| V::from_f64(v)).collect(),
            head: spec.head,
            block_rows,
        }
    }
}

impl<V: Value> Model for TreeModel<V> {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn score(&self, features: &[f32], rows: usize) -> Result<Scores, ModelError> {
        let nf = self.info.n_features;
        ModelError::check_shape(features, rows, nf)?;
        let slots = self.layout.n_slots;
        let mut sink = Sink::default();
        match &self.info.task {
            Task::Classifier { classes } => {
                sink.label_index.reserve(rows);
                sink.probabilities.reserve(rows * classes.len());
            }
            Task::Regressor { targets } => sink.values.reserve(rows * targets),
        }
        let mut acc = vec![V::ZERO; self.block_rows * slots];
        let mut has = vec![false; self.block_rows * slots];
        let mut first = 0;
        while first < rows {
            let n = self.block_rows.min(rows - first);
            let block = &features[first * nf..(first + n) * nf];
            for row in acc[..n * slots].chunks_exact_mut(slots.max(1)) {
                row.copy_from_slice(&self.init);
            }
            has[..n * slots].fill(false);
            self.layout.accumulate(
                block,
                n,
                self.aggregate,
                &mut acc[..n * slots],
                &mut has[..n * slots],
            );
            for r in 0..n {
                let range = r * slots..(r + 1) * slots;
                self.head
                    .finish(&acc[range.clone()], &has[range], &mut sink);
            }
            first += n;
        }
        Ok(Scores {
            rows,
            label_index: sink.label_index,
            probabilities: sink.probabilities,
            values: sink.values,
        })
    }
}
