//! The format-neutral form every parser produces: trees of nodes whose tests are
//! already normalised to one question, "does the row go right?".
//!
//! Each format words its splits differently (XGBoost `x < t` with a default
//! direction, LightGBM `x <= t` in `f64` with missing types, ONNX six comparison
//! modes). The parsers translate every split into a [`Test`] on an `f32` value that
//! gives the same answer as the reference runtime for every possible `f32`, plus
//! where NaN goes. Everything after parsing (layout, kernels) knows only this form.

/// A parsed ensemble: trees whose leaves add values into `n_slots` accumulators
/// (one per class or target).
#[derive(Debug, Clone, Default)]
pub(crate) struct Forest {
    /// Number of input features (columns).
    pub n_features: usize,
    /// Number of accumulators per row.
    pub n_slots: usize,
    /// The trees, in the order their outputs are added.
    pub trees: Vec<Tree>,
    /// Bitset words of all categorical splits ([`Test::Category`] points into it).
    pub category_words: Vec<u32>,
}

/// One tree; `nodes[0]` is the root.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    /// Nodes, children referenced by index into this vector.
    pub nodes: Vec<Node>,
}

/// A node of a [`Tree`].
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// An internal node.
    Split(Split),
    /// A leaf: the values it adds, as `(slot, value)` pairs (possibly none).
    Leaf(Vec<(u32, f64)>),
}

/// An internal node: a test on one feature and two children.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    /// The feature (column) tested.
    pub feature: u32,
    /// Whether a non-NaN value goes to `right`.
    pub test: Test,
    /// Whether NaN goes to `right` (NaN never reaches `test`).
    pub nan_right: bool,
    /// Child for rows the test sends left.
    pub left: u32,
    /// Child for rows the test sends right.
    pub right: u32,
}

/// The question a split asks of a non-NaN `f32` value `x`: does it go right?
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    /// Right when `x >= threshold`. A NaN threshold sends every value left, `-inf`
    /// every value right. Every numeric split of every format reduces to this.
    AtLeast(f32),
    /// Right when `x == value` (ONNX `BRANCH_EQ`, and `BRANCH_NEQ` with swapped children).
    Equal(f32),
    /// Right when `x` is one of the values (ONNX `BRANCH_MEMBER`).
    OneOf(Vec<f32>),
    /// Categorical split: the category is `x` truncated to an integer.
    Category(CategoryTest),
    /// LightGBM's zero-as-missing rule when it is not a plain threshold: values
    /// with `|x| <= 1e-35` take the default direction, others go right when `x > threshold`
    /// (compared in `f64`).
    ZeroMissing {
        /// LightGBM's `f64` threshold.
        threshold: f64,
        /// Where values in the zero band go.
        zero_right: bool,
    },
}

/// A categorical split over a bitset of categories.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CategoryTest {
    /// First word of the bitset in [`Forest::category_words`].
    pub start: u32,
    /// Number of words; categories past the end are not in the set.
    pub len: u32,
    /// Which values are categories at all, per format.
    pub flavor: CategoryFlavor,
    /// Whether categories in the set go right (else they go left).
    pub in_set_right: bool,
    /// Where values that are not a valid category go.
    pub invalid_right: bool,
}

/// How a format turns a float into a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CategoryFlavor {
    /// XGBoost: valid when `0 <= x < 2^24`.
    Xgboost,
    /// LightGBM: valid when `x` truncated to `i32` is non-negative (so `-0.5` is category 0,
    /// and values at or past `2^31` are invalid, as the `int` cast gives `INT_MIN` on x86).
    Lightgbm,
}

impl CategoryTest {
    /// The category of `x` (not NaN), if it is one for this format.
    fn category(&self, x: f32) -> Option<u32> {
        match self.flavor {
            CategoryFlavor::Xgboost => (0.0..16_777_216.0).contains(&x).then_some(x as u32),
            CategoryFlavor::Lightgbm => (x > -1.0 && x < 2_147_483_648.0).then_some(x as u32),
        }
    }

    /// Whether `x` (not NaN) goes right.
    pub fn goes_right(&self, x: f32, words: &[u32]) -> bool {
        let Some(cat) = self.category(x) else {
            return self.invalid_right;
        };
        let word = (cat / 32) as usize;
        let in_set =
            word < self.len as usize && (words[self.start as usize + word] >> (cat % 32)) & 1 == 1;
        in_set == self.in_set_right
    }
}

/// LightGBM's zero band: `|x| <= kZeroThreshold`, with the constant written as the
/// `float` literal `1e-35f`.
pub(crate) const LIGHTGBM_ZERO: f32 = 1e-35;

impl Test {
    /// Whether `x` (not NaN) goes right.
    #[inline]
    pub fn goes_right(&self, x: f32, words: &[u32]) -> bool {
        match self {
            Test::AtLeast(t) => x >= *t,
            Test::Equal(v) => x == *v,
            Test::OneOf(set) => set.contains(&x),
            Test::Category(c) => c.goes_right(x, words),
            Test::ZeroMissing {
                threshold,
                zero_right,
            } => {
                if (-LIGHTGBM_ZERO..=LIGHTGBM_ZERO).contains(&x) {
                    *zero_right
                } else {
                    f64::from(x) > *threshold
                }
            }
        }
    }

    /// True for the one test the fast kernels evaluate.
    pub fn is_threshold(&self) -> bool {
        matches!(self, Test::AtLeast(_))
    }
}

/// The threshold `u` such that, for every non-NaN `f32` `x`, `x > t` exactly when
/// `x >= u`: the smallest `f32` above `t`, or NaN when no `f32` is above `t`.
pub(crate) fn above_f32(t: f32) -> f32 {
    if t.is_nan() {
        // `x > NaN` never holds; the caller decides what NaN thresholds mean.
        f32::NAN
    } else if t == f32::INFINITY {
        f32::NAN
    } else {
        t.next_up()
    }
}

/// The threshold `u` such that, for every non-NaN `f32` `x`, `(x as f64) > t` exactly
/// when `x >= u`: the smallest `f32` strictly above the `f64` `t`, or NaN if none is.
pub(crate) fn above_f64(t: f64) -> f32 {
    if t.is_nan() {
        return f32::NAN;
    }
    // The largest f32 not above t: round to nearest, then step down if rounding went up.
    let mut down = t as f32;
    if f64::from(down) > t {
        down = down.next_down();
    }
    above_f32(down)
}

impl Forest {
    /// Checks the structure: children exist, every node is reached exactly once from
    /// the root (no cycles, no sharing), features and slots are in range. Returns a
    /// description of the first problem.
    pub fn validate(&self) -> Result<(), String> {
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(format!("tree {t} has no nodes"));
            }
            let mut seen = vec![false; tree.nodes.len()];
            let mut stack = vec![0u32];
            seen[0] = true;
            while let Some(n) = stack.pop() {
                match &tree.nodes[n as usize] {
                    Node::Split(s) => {
                        if s.feature as usize >= self.n_features {
                            return Err(format!(
                                "tree {t} node {n}: feature {} is out of range for {} features",
                                s.feature, self.n_features
                            ));
                        }
                        if let Test::Category(c) = &s.test {
                            let end = c.start as usize + c.len as usize;
                            if end > self.category_words.len() {
                                return Err(format!(
                                    "tree {t} node {n}: category bitset out of range"
                                ));
                            }
                        }
                        for child in [s.left, s.right] {
                            let Some(slot) = seen.get_mut(child as usize) else {
                                return Err(format!(
                                    "tree {t} node {n}: child {child} does not exist (tree has {} nodes)",
                                    tree.nodes.len()
                                ));
                            };
                            if *slot {
                                return Err(format!(
                                    "tree {t} node {n}: child {child} is reached twice (cycle or shared node)"
                                ));
                            }
                            *slot = true;
                            stack.push(child);
                        }
                    }
                    Node::Leaf(outputs) => {
                        if let Some((slot, _)) =
                            outputs.iter().find(|(s, _)| *s as usize >= self.n_slots)
                        {
                            return Err(format!(
                                "tree {t} leaf {n}: output {slot} is out of range for {} outputs",
                                self.n_slots
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Tree {
    /// Number of splits on the longest root-to-leaf path.
    pub fn depth(&self) -> u32 {
        let mut depth = 0;
        let mut stack = vec![(0u32, 0u32)];
        while let Some((n, d)) = stack.pop() {
            match &self.nodes[n as usize] {
                Node::Split(s) => {
                    stack.push((s.left, d + 1));
                    stack.push((s.right, d + 1));
                }
                Node::Leaf(_) => depth = depth.max(d),
            }
        }
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn above_f64_matches_f64_comparison() {
        let thresholds = [
            0.1_f64,
            -0.1,
            4.951_996_564_865_113,
            1.000_000_018_002_509_5e-35,
            0.0,
            -0.0,
            1e300,
            -1e300,
            f64::from(f32::MAX),
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for t in thresholds {
            let u = above_f64(t);
            let around = t as f32;
            for x in [
                around.next_down(),
                around,
                around.next_up(),
                0.0,
                -0.0,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                f32::MIN,
            ] {
                assert_eq!(f64::from(x) > t, x >= u, "t={t} x={x} u={u}");
            }
        }
    }

    #[test]
    fn above_f32_matches_strict_comparison() {
        for t in [
            0.5_f32,
            -3.25,
            0.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let u = above_f32(t);
            for x in [
                t.next_down(),
                t,
                t.next_up(),
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.0,
            ] {
                if x.is_nan() {
                    continue;
                }
                assert_eq!(x > t, x >= u, "t={t} x={x}");
            }
        }
    }

    #[test]
    fn categories_follow_each_format() {
        let words = [0b1010_u32];
        let xgb = CategoryTest {
            start: 0,
            len: 1,
            flavor: CategoryFlavor::Xgboost,
            in_set_right: true,
            invalid_right: false,
        };
        assert!(xgb.goes_right(1.0, &words));
        assert!(xgb.goes_right(3.7, &words));
        assert!(!xgb.goes_right(2.0, &words));
        assert!(!xgb.goes_right(-0.5, &words));
        assert!(!xgb.goes_right(100.0, &words));
        let lgb = CategoryTest {
            flavor: CategoryFlavor::Lightgbm,
            in_set_right: false,
            invalid_right: true,
            ..xgb
        };
        assert!(!lgb.goes_right(1.0, &words));
        assert!(lgb.goes_right(-0.5, &words), "category 0 is not in the set");
        assert!(lgb.goes_right(-1.0, &words));
        assert!(lgb.goes_right(3e9, &words));
    }
}
