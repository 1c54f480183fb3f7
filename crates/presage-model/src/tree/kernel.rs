//! Evaluating a [`Layout`] over a block of rows.
//!
//! The block (a few dozen to a few hundred rows, sized to stay in L1 with one tree)
//! is scored tree by tree: each tree's nodes are loaded once and reused by every row
//! of the block. Within a tree, [`LANES`] rows walk in lockstep. Their walks are
//! independent chains of loads (node, then feature value, then next node), so the
//! core overlaps them instead of waiting on each; and the step has no branch to
//! mispredict, because the next node is `left + (x >= threshold)`.
//!
//! NaN needs one more test per step. Blocks without NaN, the common case, run a
//! copy of the kernel without it; blocks with NaN run the copy that sends NaN where
//! each node says.

use super::layout::{FlatNode, FlatTree, Layout, Outputs, Walk};
use super::value::Value;

/// Rows walked in lockstep: enough independent load chains to hide L1 latency,
/// few enough to keep node indices in registers.
pub(crate) const LANES: usize = 8;

/// How leaf values reaching the same slot combine (ONNX `aggregate_function`;
/// every other format sums).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    /// Sum (also used for ONNX `AVERAGE`, divided at the end).
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
}

/// One [`Aggregate`] as a type, so each kernel copy is specialised for it.
trait Combine {
    /// Folds `v` into the slot `acc`; `has` records that the slot received a value.
    fn combine<V: Value>(acc: &mut V, has: &mut bool, v: V);
}

struct SumOf;
struct MinOf;
struct MaxOf;

impl Combine for SumOf {
    #[inline(always)]
    fn combine<V: Value>(acc: &mut V, has: &mut bool, v: V) {
        *acc = *acc + v;
        *has = true;
    }
}

impl Combine for MinOf {
    #[inline(always)]
    fn combine<V: Value>(acc: &mut V, has: &mut bool, v: V) {
        if !*has || v < *acc {
            *acc = v;
        }
        *has = true;
    }
}

impl Combine for MaxOf {
    #[inline(always)]
    fn combine<V: Value>(acc: &mut V, has: &mut bool, v: V) {
        if !*has || v > *acc {
            *acc = v;
        }
        *has = true;
    }
}

impl<V: Value> Layout<V> {
    /// Adds the output of every tree for the `rows` rows of `block` (row-major,
    /// `n_features` per row) into `acc` and marks `has` (`rows × n_slots` each).
    pub fn accumulate(
        &self,
        block: &[f32],
        rows: usize,
        aggregate: Aggregate,
        acc: &mut [V],
        has: &mut [bool],
    ) {
        match aggregate {
            Aggregate::Sum => self.accumulate_with::<SumOf>(block, rows, acc, has),
            Aggregate::Min => self.accumulate_with::<MinOf>(block, rows, acc, has),
            Aggregate::Max => self.accumulate_with::<MaxOf>(block, rows, acc, has),
        }
    }

    fn accumulate_with<C: Combine>(
        &self,
        block: &[f32],
        rows: usize,
        acc: &mut [V],
        has: &mut [bool],
    ) {
        if rows == 0 {
            return;
        }
        let block = &block[..rows * self.n_features];
        let any_nan = block.iter().any(|x| x.is_nan());
        for tree in &self.trees {
            match tree.walk {
                Walk::Threshold if any_nan => {
                    self.threshold_tree::<C, true>(tree, block, rows, acc, has);
                }
                Walk::Threshold => self.threshold_tree::<C, false>(tree, block, rows, acc, has),
                Walk::General(start) => {
                    for r in 0..rows {
                        let row = &block[r * self.n_features..(r + 1) * self.n_features];
                        let leaf = self.walk_general(tree.root, start, row);
                        self.emit::<C>(tree, leaf, r, acc, has);
                    }
                }
            }
        }
    }

    /// Runs one threshold-only tree over the block, [`LANES`] rows at a time.
    fn threshold_tree<C: Combine, const NAN: bool>(
        &self,
        tree: &FlatTree,
        block: &[f32],
        rows: usize,
        acc: &mut [V],
        has: &mut [bool],
    ) {
        let nf = self.n_features;
        let mut first = 0;
        while first < rows {
            // A short last group repeats its last row; the extra results are dropped.
            let lanes: [&[f32]; LANES] = std::array::from_fn(|i| {
                let r = (first + i).min(rows - 1);
                &block[r * nf..(r + 1) * nf]
            });
            let leaves = walk_lockstep::<NAN>(&self.nodes, tree.root, tree.depth, &lanes);
            for (i, &leaf) in leaves.iter().enumerate().take(rows - first) {
                self.emit::<C>(tree, leaf, first + i, acc, has);
            }
            first += LANES;
        }
    }

    /// Adds the leaf `leaf`'s outputs to row `row`'s slots.
    #[inline(always)]
    fn emit<C: Combine>(
        &self,
        tree: &FlatTree,
        leaf: u32,
        row: usize,
        acc: &mut [V],
        has: &mut [bool],
    ) {
        let base = row * self.n_slots;
        match tree.outputs {
            Outputs::Single(slot) => {
                let at = base + slot as usize;
                C::combine(&mut acc[at], &mut has[at], self.leaf_value[leaf as usize]);
            }
            Outputs::Many => {
                let (start, end) = self.leaf_outputs[leaf as usize];
                for &(slot, v) in &self.outputs[start as usize..end as usize] {
                    let at = base + slot as usize;
                    C::combine(&mut acc[at], &mut has[at], v);
                }
            }
        }
    }

    /// Walks one row down a tree with general tests; returns the leaf's flat index.
    fn walk_general(&self, root: u32, start: u32, row: &[f32]) -> u32 {
        let mut at = root;
        while let Some(split) = &self.general[(start + at - root) as usize] {
            let x = row[split.feature as usize];
            let right = if x.is_nan() {
                split.nan_right
            } else {
                split.test.goes_right(x, &self.category_words)
            };
            at = if right { split.right } else { split.left };
        }
        at
    }
}

/// Walks [`LANES`] rows down a threshold-only tree for `depth` steps; returns the
/// flat index each row ends on. `NAN` selects the copy that checks for NaN.
#[inline(always)]
fn walk_lockstep<const NAN: bool>(
    nodes: &[FlatNode],
    root: u32,
    depth: u32,
    rows: &[&[f32]; LANES],
) -> [u32; LANES] {
    let mut at = [root; LANES];
    for _ in 0..depth {
        for lane in 0..LANES {
            let node = nodes[at[lane] as usize];
            let x = rows[lane][usize::from(node.feature)];
            let right = if NAN {
                (x >= node.threshold) | (x.is_nan() & (node.nan_right != 0))
            } else {
                x >= node.threshold
            };
            at[lane] = node.left + u32::from(right);
        }
    }
    at
}
