//! The compiled form of a [`Forest`]: all trees in one flat node array, laid out for
//! the lockstep kernels in [`super::kernel`].
//!
//! Each tree is stored breadth-first with the two children of a split next to each
//! other, so a node needs only its left child's index (`right = left + 1`) and the
//! next node is `left + goes_right` — an add, not a branch. A node is 12 bytes
//! (feature, threshold, left child, NaN direction), five to a cache line, so the
//! first levels of a tree, which every row visits, share a few lines.
//!
//! Leaves loop to themselves (their threshold is NaN, which no value reaches), so a
//! walk can run a fixed number of steps — the tree's depth — for a whole group of
//! rows at once, with no per-row exit test; a row that reached its leaf early just
//! stays there. The node index a walk ends on is also the index of the leaf's value.
//!
//! Trees with a test other than a threshold (categories, equality, LightGBM's
//! zero-as-missing band) keep their nodes in a side table and are walked row by
//! row; they still share the node index space, so their leaves use the same tables.

use super::forest::{Forest, Node, Split, Test};
use super::value::Value;

/// One node of the flat layout.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct FlatNode {
    /// Non-NaN values `>= threshold` go right. NaN for leaves: nothing moves.
    pub threshold: f32,
    /// Index of the left child; the right child follows it. A leaf points to itself.
    pub left: u32,
    /// Feature tested.
    pub feature: u16,
    /// 1 when NaN goes right, 0 when it goes left (always 0 for leaves).
    pub nan_right: u16,
}

/// How a tree is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Threshold tests only: the lockstep kernels.
    Threshold,
    /// Some other test: row by row through [`Layout::general`], starting at this index.
    General(u32),
}

/// What a tree's leaves add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outputs {
    /// Every leaf adds one value ([`Layout::leaf_value`]) to the same slot.
    Single(u32),
    /// Leaves add any number of `(slot, value)` pairs ([`Layout::leaf_outputs`]).
    Many,
}

/// A tree of the flat layout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlatTree {
    /// Index of the root in [`Layout::nodes`].
    pub root: u32,
    /// Splits on the longest path: the number of lockstep steps.
    pub depth: u32,
    /// How to walk it.
    pub walk: Walk,
    /// What its leaves add.
    pub outputs: Outputs,
}

/// A compiled ensemble whose leaves hold values of type `V`.
#[derive(Debug, Clone)]
pub(crate) struct Layout<V> {
    /// Number of features per row.
    pub n_features: usize,
    /// Accumulators per row.
    pub n_slots: usize,
    /// All nodes of all trees.
    pub nodes: Vec<FlatNode>,
    /// Per node: the value of a leaf of a [`Outputs::Single`] tree (zero elsewhere).
    pub leaf_value: Vec<V>,
    /// Per node: the range of [`Layout::outputs`] a leaf of a [`Outputs::Many`] tree adds.
    pub leaf_outputs: Vec<(u32, u32)>,
    /// `(slot, value)` pairs of [`Outputs::Many`] leaves.
    pub outputs: Vec<(u32, V)>,
    /// The trees, in output order.
    pub trees: Vec<FlatTree>,
    /// Nodes of [`Walk::General`] trees, in the same order as their flat nodes;
    /// `None` marks a leaf. Children are flat node indices.
    pub general: Vec<Option<Split>>,
    /// Category bitsets of the general nodes.
    pub category_words: Vec<u32>,
}

impl<V: Value> Layout<V> {
    /// Lays out a validated forest.
    pub fn compile(forest: &Forest) -> Layout<V> {
        let mut layout = Layout {
            n_features: forest.n_features,
            n_slots: forest.n_slots,
            nodes: Vec::new(),
            leaf_value: Vec::new(),
            leaf_outputs: Vec::new(),
            outputs: Vec::new(),
            trees: Vec::with_capacity(forest.trees.len()),
            general: Vec::new(),
            category_words: forest.category_words.clone(),
        };
        // The fast kernels index features with 16 bits; wider inputs take the general path.
        let narrow = forest.n_features <= usize::from(u16::MAX) + 1;
        for tree in &forest.trees {
            let threshold_only = narrow
                && tree.nodes.iter().all(|n| match n {
                    Node::Split(s) => s.test.is_threshold(),
                    Node::Leaf(_) => true,
                });
            let single = single_slot(&tree.nodes);
            let root = layout.nodes.len() as u32;
            let walk = if threshold_only {
                Walk::Threshold
            } else {
                Walk::General(layout.general.len() as u32)
            };
            layout.push_tree(&tree.nodes, walk, single.is_some());
            layout.trees.push(FlatTree {
                root,
                depth: tree.depth(),
                walk,
                outputs: single.map_or(Outputs::Many, Outputs::Single),
            });
        }
        layout
    }

    /// Appends one tree breadth-first, children of a split side by side.
    fn push_tree(&mut self, nodes: &[Node], walk: Walk, single: bool) {
        let root = self.nodes.len() as u32;
        // `order[i]` is the tree-local node placed at flat index `root + i`.
        let mut order = vec![0u32];
        let mut i = 0;
        while i < order.len() {
            if let Node::Split(s) = &nodes[order[i] as usize] {
                order.push(s.left);
                order.push(s.right);
            }
            i += 1;
        }
        // Children of the k-th split are at positions assigned in the same sweep.
        let mut next_child = 1u32;
        for &local in &order {
            let flat = self.nodes.len() as u32;
            match &nodes[local as usize] {
                Node::Split(s) => {
                    let left = root + next_child;
                    next_child += 2;
                    let threshold = match s.test {
                        Test::AtLeast(t) => t,
                        _ => f32::NAN,
                    };
                    self.nodes.push(FlatNode {
                        threshold,
                        left,
                        feature: u16::try_from(s.feature).unwrap_or(0),
                        nan_right: u16::from(s.nan_right),
                    });
                    self.leaf_value.push(V::ZERO);
                    self.leaf_outputs.push((0, 0));
                    if matches!(walk, Walk::General(_)) {
                        self.general.push(Some(Split {
                            left,
                            right: left + 1,
                            ..s.clone()
                        }));
                    }
                }
                Node::Leaf(outputs) => {
                    self.nodes.push(FlatNode {
                        threshold: f32::NAN,
                        left: flat,
                        feature: 0,
                        nan_right: 0,
                    });
                    let start = self.outputs.len() as u32;
                    if single {
                        self.leaf_value.push(V::from_f64(outputs[0].1));
                    } else {
                        self.leaf_value.push(V::ZERO);
                        self.outputs
                            .extend(outputs.iter().map(|&(slot, v)| (slot, V::from_f64(v))));
                    }
                    self.leaf_outputs.push((start, self.outputs.len() as u32));
                    if matches!(walk, Walk::General(_)) {
                        self.general.push(None);
                    }
                }
            }
        }
    }
}

/// The slot every leaf of the tree writes, when each leaf writes exactly one value
/// and all to the same slot.
fn single_slot(nodes: &[Node]) -> Option<u32> {
    let mut slot = None;
    for node in nodes {
        if let Node::Leaf(outputs) = node {
            let [(s, _)] = outputs.as_slice() else {
                return None;
            };
            if *slot.get_or_insert(*s) != *s {
                return None;
            }
        }
    }
    slot
}
