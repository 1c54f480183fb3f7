//! LightGBM's text model (`Booster.save_model("model.txt")`).
//!
//! LightGBM predicts in `f64`: a row goes left when `x <= threshold`; each node's
//! `decision_type` says whether the split is categorical, where missing values go
//! (`default_left`) and what counts as missing (`None`: NaN is read as 0; `Zero`:
//! NaN and values in `[-1e-35, 1e-35]`; `NaN`: NaN only). Its Python and C APIs also
//! read every value in `[-1e-35, 1e-35]` as exactly 0. Leaf values are summed in
//! `f64` per class, averaged for random forests, then go through the objective's
//! link (sigmoid, softmax, exp, ...).
//!
//! Every numeric rule above is turned at load into an `f32` threshold that gives the
//! same side for every `f32` input (see [`numerical_test`]); the few combinations that
//! are not a single threshold keep LightGBM's exact rule.

use std::collections::HashMap;
use std::path::Path;

use super::forest::{
    CategoryFlavor, CategoryTest, Forest, LIGHTGBM_ZERO, Node, Split, Test, Tree, above_f32,
    above_f64,
};
use super::head::{Head, LightgbmLink};
use super::kernel::Aggregate;
use super::model::{Spec, TreeModel};
use crate::{ClassLabels, Model, ModelError, ModelFormat, Task};

/// Loads a LightGBM text model.
pub(crate) fn load(bytes: &[u8], origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let (forest, spec) = parse(bytes).map_err(|reason| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::LightgbmText,
        reason,
    })?;
    Ok(Box::new(TreeModel::<f64>::new(&forest, spec)))
}

/// Parses and validates the model; errors are reasons for [`ModelError::NotAModel`].
pub(crate) fn parse(bytes: &[u8]) -> Result<(Forest, Spec), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())?;
    let mut lines = text.lines().map(str::trim).enumerate().peekable();

    // Header: `key=value` lines (and bare flags such as `average_output`) up to the first tree.
    let mut header: HashMap<&str, &str> = HashMap::new();
    while let Some(&(_, line)) = lines.peek() {
        if line.starts_with("Tree=") || line == "end of trees" {
            break;
        }
        lines.next();
        match line.split_once('=') {
            Some((k, v)) => header.insert(k, v),
            None => header.insert(line, ""),
        };
    }
    if !header.contains_key("tree") && !header.contains_key("version") {
        return Err("missing the `tree` / `version=` header of a LightGBM model".into());
    }
    let max_feature: i64 = header_number(&header, "max_feature_idx")?;
    let n_features = usize::try_from(max_feature + 1)
        .map_err(|_| format!("invalid `max_feature_idx` `{max_feature}`"))?;
    let num_class: usize = header_number(&header, "num_class").unwrap_or(1);
    let per_iteration: usize =
        header_number(&header, "num_tree_per_iteration").unwrap_or(num_class);
    if per_iteration == 0 {
        return Err("`num_tree_per_iteration` is 0".into());
    }
    let link = objective_link(header.get("objective").copied().unwrap_or(""))?;

    // Trees: `Tree=i` followed by `key=value` lines.
    let mut trees: Vec<HashMap<&str, &str>> = Vec::new();
    let mut ended = false;
    for (number, line) in lines {
        if line == "end of trees" {
            ended = true;
            break;
        }
        if line.starts_with("Tree=") {
            trees.push(HashMap::new());
        } else if let (Some(tree), Some((k, v))) = (trees.last_mut(), line.split_once('=')) {
            tree.insert(k, v);
        } else if !line.is_empty() {
            return Err(format!(
                "line {}: unexpected `{line}` between trees",
                number + 1
            ));
        }
    }
    if !ended {
        return Err("missing `end of trees` (truncated file?)".into());
    }
    if trees.is_empty() {
        return Err("the model has no trees".into());
    }

    let mut forest = Forest {
        n_features,
        n_slots: per_iteration,
        trees: Vec::with_capacity(trees.len()),
        category_words: Vec::new(),
    };
    for (t, fields) in trees.iter().enumerate() {
        let slot = (t % per_iteration) as u32;
        let tree = parse_tree(fields, slot, &mut forest.category_words)
            .map_err(|e| format!("tree {t}: {e}"))?;
        forest.trees.push(tree);
    }
    forest.validate()?;

    let iterations = (trees.len() / per_iteration) as f64;
    let average_over = header.contains_key("average_output").then_some(iterations);
    let task = match link {
        LightgbmLink::Binary { .. } => Task::Classifier {
            classes: ClassLabels::Int(vec![0, 1]),
        },
        LightgbmLink::Softmax | LightgbmLink::OneVsAll { .. } => {
            if per_iteration < 2 {
                return Err(format!(
                    "multiclass objective with `num_tree_per_iteration` = `{per_iteration}`"
                ));
            }
            Task::Classifier {
                classes: ClassLabels::Int((0..per_iteration as i64).collect()),
            }
        }
        _ => Task::Regressor {
            targets: per_iteration,
        },
    };
    let spec = Spec {
        format: ModelFormat::LightgbmText,
        task,
        aggregate: Aggregate::Sum,
        init: vec![0.0; per_iteration],
        head: Head::Lightgbm { link, average_over },
    };
    Ok((forest, spec))
}

/// The link of an `objective=` line such as `binary sigmoid:1` or `multiclass num_class:3`.
fn objective_link(line: &str) -> Result<LightgbmLink, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for word in words {
        if let Some(v) = word.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse()
                .map_err(|_| format!("objective `{line}`: invalid `sigmoid` `{v}`"))?;
        } else if word == "sqrt" {
            sqrt = true;
        }
    }
    Ok(match name {
        "binary" => LightgbmLink::Binary { sigmoid },
        "multiclass" | "softmax" => LightgbmLink::Softmax,
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => LightgbmLink::OneVsAll { sigmoid },
        "poisson" | "gamma" | "tweedie" => LightgbmLink::Exp,
        "cross_entropy" | "xentropy" => LightgbmLink::Sigmoid,
        "cross_entropy_lambda" | "xentlambda" => LightgbmLink::Softplus,
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error"
            if sqrt =>
        {
            LightgbmLink::Square
        }
        "regression"
        | "regression_l2"
        | "l2"
        | "mean_squared_error"
        | "mse"
        | "regression_l1"
        | "l1"
        | "mean_absolute_error"
        | "mae"
        | "huber"
        | "fair"
        | "quantile"
        | "mape"
        | "mean_absolute_percentage_error"
        | "lambdarank"
        | "rank_xendcg"
        | "xendcg"
        | "custom"
        | "" => LightgbmLink::Identity,
        other => return Err(format!("unknown objective `{other}`")),
    })
}

fn header_number<T: std::str::FromStr>(
    header: &HashMap<&str, &str>,
    key: &str,
) -> Result<T, String> {
    let v = header
        .get(key)
        .ok_or_else(|| format!("missing header field `{key}`"))?;
    v.trim()
        .parse()
        .map_err(|_| format!("header field `{key}` is not a number: `{v}`"))
}

/// A whitespace-separated list field of a tree.
fn list<T: std::str::FromStr>(
    fields: &HashMap<&str, &str>,
    key: &str,
    expected: usize,
) -> Result<Vec<T>, String> {
    let v = fields
        .get(key)
        .ok_or_else(|| format!("missing field `{key}`"))?;
    let values = v
        .split_whitespace()
        .map(|s| {
            s.parse::<T>()
                .map_err(|_| format!("field `{key}`: `{s}` is not a valid number"))
        })
        .collect::<Result<Vec<T>, String>>()?;
    if values.len() != expected {
        return Err(format!(
            "field `{key}` has {} values, expected {expected}",
            values.len()
        ));
    }
    Ok(values)
}

/// Converts one tree. Internal node `i` becomes node `i`; leaf `j` becomes node
/// `num_leaves - 1 + j` (a one-leaf tree is just its leaf).
fn parse_tree(
    fields: &HashMap<&str, &str>,
    slot: u32,
    words: &mut Vec<u32>,
) -> Result<Tree, String> {
    let num_leaves: usize = fields
        .get("num_leaves")
        .ok_or("missing field `num_leaves`")?
        .parse()
        .map_err(|_| "field `num_leaves` is not a number".to_owned())?;
    if num_leaves == 0 {
        return Err("`num_leaves` is 0".into());
    }
    if fields.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err("linear trees (`is_linear=1`) are not supported".into());
    }
    let leaf_value: Vec<f64> = list(fields, "leaf_value", num_leaves)?;
    let leaf = |j: usize| Node::Leaf(vec![(slot, leaf_value[j])]);
    if num_leaves == 1 {
        return Ok(Tree {
            nodes: vec![leaf(0)],
        });
    }
    let splits = num_leaves - 1;
    let feature: Vec<u32> = list(fields, "split_feature", splits)?;
    let threshold: Vec<f64> = list(fields, "threshold", splits)?;
    let decision: Vec<i8> = list(fields, "decision_type", splits)?;
    let left: Vec<i64> = list(fields, "left_child", splits)?;
    let right: Vec<i64> = list(fields, "right_child", splits)?;
    let num_cat: usize = fields.get("num_cat").map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| "field `num_cat` is not a number".to_owned())
    })?;
    let (boundaries, cat_words): (Vec<usize>, Vec<u32>) = if num_cat > 0 {
        let boundaries: Vec<usize> = list(fields, "cat_boundaries", num_cat + 1)?;
        let total = *boundaries.last().unwrap_or(&0);
        (boundaries, list(fields, "cat_threshold", total)?)
    } else {
        (Vec::new(), Vec::new())
    };

    // LightGBM children: `>= 0` is an internal node, `< 0` is leaf `!c`.
    let child = |c: i64, i: usize| -> Result<u32, String> {
        let index = if c >= 0 {
            usize::try_from(c).ok().filter(|&c| c < splits)
        } else {
            usize::try_from(!c)
                .ok()
                .filter(|&j| j < num_leaves)
                .map(|j| splits + j)
        };
        index
            .map(|k| k as u32)
            .ok_or_else(|| format!("node {i}: child `{c}` does not exist"))
    };
    let mut nodes = Vec::with_capacity(splits + num_leaves);
    for i in 0..splits {
        let d = decision[i];
        let default_left = d & 2 != 0;
        let (test, nan_right) = if d & 1 != 0 {
            let cat = threshold[i] as usize;
            let (start, end) = boundaries
                .get(cat)
                .zip(boundaries.get(cat + 1))
                .map(|(&s, &e)| (s, e))
                .filter(|&(s, e)| s <= e && e <= cat_words.len())
                .ok_or_else(|| format!("node {i}: categorical split `{cat}` out of range"))?;
            let at = words.len() as u32;
            words.extend_from_slice(&cat_words[start..end]);
            // NaN cast to `int` is negative on x86: it always goes right.
            let test = Test::Category(CategoryTest {
                start: at,
                len: (end - start) as u32,
                flavor: CategoryFlavor::Lightgbm,
                in_set_right: false,
                invalid_right: true,
            });
            (test, true)
        } else {
            let missing = (d >> 2) & 3;
            numerical_test(threshold[i], missing, default_left)
                .map_err(|e| format!("node {i}: {e}"))?
        };
        nodes.push(Node::Split(Split {
            feature: feature[i],
            test,
            nan_right,
            left: child(left[i], i)?,
            right: child(right[i], i)?,
        }));
    }
    nodes.extend((0..num_leaves).map(leaf));
    Ok(Tree { nodes })
}

/// LightGBM's numerical decision for missing type `missing` (0 None, 1 Zero, 2 NaN)
/// as a [`Test`] on `f32` values, and where NaN goes.
///
/// The rule it reproduces: a value in the zero band `[-1e-35, 1e-35]` reads as 0;
/// NaN reads as 0 unless the missing type is NaN; a missing value (NaN for type
/// NaN; NaN or the zero band for type Zero) goes to the default side; any other
/// value goes left when `x <= threshold` in `f64`.
fn numerical_test(t: f64, missing: i8, default_left: bool) -> Result<(Test, bool), String> {
    let kz = LIGHTGBM_ZERO;
    // The largest f32 not above t: for f32 x, `x <= t` exactly when `x <= down`.
    let down = {
        let r = t as f32;
        if f64::from(r) > t { r.next_down() } else { r }
    };
    // Rows go right when `x > t`, for x outside the zero band.
    let plain = Test::AtLeast(above_f64(t));
    // "Left when x <= kz" and "left when x < -kz" as tests.
    let up_to_band = Test::AtLeast(above_f32(kz));
    let below_band = Test::AtLeast(-kz);
    if t.is_nan() {
        return Err("threshold is NaN".into());
    }
    Ok(match missing {
        0 | 2 => {
            let test = if down >= kz || down < -kz {
                plain
            } else if t >= 0.0 {
                // The whole band reads as 0 <= t: left, with everything below.
                up_to_band
            } else {
                below_band
            };
            let nan_right = if missing == 0 {
                t.is_nan() || t < 0.0
            } else {
                !default_left
            };
            (test, nan_right)
        }
        1 => {
            let test = match (default_left, down) {
                (true, d) if d >= kz => plain,
                (true, d) if d >= -kz => up_to_band,
                (false, d) if d < -kz => plain,
                (false, d) if d < kz => below_band,
                _ => Test::ZeroMissing {
                    threshold: t,
                    zero_right: !default_left,
                },
            };
            (test, !default_left)
        }
        other => return Err(format!("unknown missing type `{other}` in `decision_type`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LightGBM's `NumericalDecision` on a value as its Python API passes it.
    fn reference(x: f32, t: f64, missing: i8, default_left: bool) -> bool {
        let mut v = f64::from(x);
        if v.abs() <= f64::from(LIGHTGBM_ZERO) {
            v = 0.0;
        }
        if v.is_nan() && missing != 2 {
            v = 0.0;
        }
        let is_zero = v >= -f64::from(LIGHTGBM_ZERO) && v <= f64::from(LIGHTGBM_ZERO);
        if (missing == 1 && is_zero) || (missing == 2 && v.is_nan()) {
            return !default_left;
        }
        v.is_nan() || v > t
    }

    #[test]
    fn numerical_tests_match_lightgbm_on_every_edge() {
        let kz = LIGHTGBM_ZERO;
        let thresholds = [
            0.0,
            -0.0,
            1.000_000_018_002_509_5e-35,
            -1.000_000_018_002_509_5e-35,
            5e-36,
            -5e-36,
            0.25,
            -0.25,
            4.951_996_564_865_113,
            -1e30,
            1e300,
        ];
        let xs = [
            0.0,
            -0.0,
            kz,
            -kz,
            kz.next_up(),
            (-kz).next_down(),
            kz.next_down(),
            4e-36,
            -4e-36,
            0.25,
            0.25f32.next_up(),
            -0.25,
            4.951_996_5,
            4.951_997,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for t in thresholds {
            for missing in 0..3 {
                for default_left in [false, true] {
                    let (test, nan_right) = numerical_test(t, missing, default_left).unwrap();
                    for x in xs {
                        let got = if x.is_nan() {
                            nan_right
                        } else {
                            test.goes_right(x, &[])
                        };
                        assert_eq!(
                            got,
                            reference(x, t, missing, default_left),
                            "t={t:e} missing={missing} default_left={default_left} x={x:e} test={test:?}"
                        );
                    }
                }
            }
        }
    }
}
