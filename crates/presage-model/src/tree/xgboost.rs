//! XGBoost's JSON model (`Booster.save_model("model.json")`).
//!
//! XGBoost sends a row left when `x < split_condition` (both `f32`) and missing
//! values (NaN) to the node's `default_left` side; categorical splits send the
//! categories listed for the node right. The prediction is the base margin plus the
//! sum of leaf values in `f32`, through the objective's link. The base margin is
//! `base_score` mapped into margin space by the objective (`logit` for logistic
//! objectives, `ln` for count and survival objectives, as is otherwise).

use std::path::Path;

use serde_json::Value as Json;

use super::forest::{CategoryFlavor, CategoryTest, Forest, Node, Split, Test, Tree};
use super::head::{Head, XgboostLink};
use super::json::{f32_array, f64_array, get, i64_array, number, number_field};
use super::kernel::Aggregate;
use super::model::{Spec, TreeModel};
use crate::{ClassLabels, Model, ModelError, ModelFormat, Task};

/// Loads an XGBoost JSON model from its bytes.
#[cfg(test)]
pub(crate) fn load(bytes: &[u8], origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let root: Json = serde_json::from_slice(bytes).map_err(|e| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::XgboostJson,
        reason: format!("invalid JSON: {e}"),
    })?;
    load_json(&root, origin)
}

/// Loads an XGBoost JSON model already parsed.
pub(crate) fn load_json(root: &Json, origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let (forest, spec) = parse(root).map_err(|reason| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::XgboostJson,
        reason,
    })?;
    Ok(Box::new(TreeModel::<f32>::new(&forest, spec)))
}

/// Whether a JSON document has XGBoost's top-level shape.
pub(crate) fn looks_like(root: &Json) -> bool {
    root.get("learner").is_some()
}

/// Parses and validates the model; errors are reasons for [`ModelError::NotAModel`].
fn parse(root: &Json) -> Result<(Forest, Spec), String> {
    let learner = get(root, "learner", "")?;
    let param = get(learner, "learner_model_param", "learner")?;
    let n_features: usize = number_field(param, "num_feature", "learner.learner_model_param")?;
    let num_class: usize = number_field(param, "num_class", "learner.learner_model_param")?;
    if let Some(targets) = param.get("num_target") {
        let targets: usize = number(targets, "learner.learner_model_param.num_target")?;
        if targets > 1 {
            return Err(format!(
                "multi-target models (`num_target` = `{targets}`) are not supported"
            ));
        }
    }
    let base_score = parse_base_score(get(param, "base_score", "learner.learner_model_param")?)?;
    let objective = get(
        get(learner, "objective", "learner")?,
        "name",
        "learner.objective",
    )?
    .as_str()
    .ok_or("`learner.objective.name` is not a string")?;
    let (link, margin_of) = objective_link(objective)?;

    let booster = get(learner, "gradient_booster", "learner")?;
    let booster_name = get(booster, "name", "learner.gradient_booster")?
        .as_str()
        .unwrap_or_default();
    let (model, weight_drop) = match booster_name {
        "gbtree" => (get(booster, "model", "learner.gradient_booster")?, None),
        "dart" => {
            let gbtree = get(booster, "gbtree", "learner.gradient_booster")?;
            let weights = get(booster, "weight_drop", "learner.gradient_booster")?;
            (
                get(gbtree, "model", "learner.gradient_booster.gbtree")?,
                Some(f64_array(weights, "learner.gradient_booster.weight_drop")?),
            )
        }
        other => {
            return Err(format!(
                "booster `{other}` is not supported; expected `gbtree` or `dart`"
            ));
        }
    };
    let trees_json = get(model, "trees", "gradient_booster.model")?
        .as_array()
        .ok_or("`gradient_booster.model.trees` is not an array")?;
    let tree_info = match model.get("tree_info") {
        Some(v) => i64_array(v, "gradient_booster.model.tree_info")?,
        None => vec![0; trees_json.len()],
    };
    if tree_info.len() != trees_json.len() {
        return Err(format!(
            "`tree_info` has {} entries for {} trees",
            tree_info.len(),
            trees_json.len()
        ));
    }
    if let Some(w) = &weight_drop
        && w.len() != trees_json.len()
    {
        return Err(format!(
            "`weight_drop` has {} entries for {} trees",
            w.len(),
            trees_json.len()
        ));
    }

    let n_slots = if link == XgboostLink::Softmax {
        if num_class < 2 {
            return Err(format!(
                "objective `{objective}` needs `num_class` of at least 2, found `{num_class}`"
            ));
        }
        num_class
    } else {
        1
    };
    let mut forest = Forest {
        n_features,
        n_slots,
        trees: Vec::with_capacity(trees_json.len()),
        category_words: Vec::new(),
    };
    for (t, tree) in trees_json.iter().enumerate() {
        let group = tree_info[t];
        if group < 0 || group as usize >= n_slots {
            return Err(format!(
                "tree {t}: output group `{group}` is out of range for {n_slots} outputs"
            ));
        }
        let scale = weight_drop.as_ref().map_or(1.0, |w| w[t]);
        let parsed = parse_tree(tree, group as u32, scale, &mut forest.category_words)
            .map_err(|e| format!("tree {t}: {e}"))?;
        forest.trees.push(parsed);
    }
    forest.validate()?;

    // One base score per class, or one shared by all.
    let init = (0..n_slots)
        .map(|k| {
            let score = if base_score.len() == 1 {
                base_score[0]
            } else {
                *base_score.get(k).ok_or_else(|| {
                    format!(
                        "`base_score` has {} values for {n_slots} outputs",
                        base_score.len()
                    )
                })?
            };
            margin_of(score).map(f64::from)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let task = match link {
        XgboostLink::BinarySigmoid | XgboostLink::BinaryHinge => Task::Classifier {
            classes: ClassLabels::Int(vec![0, 1]),
        },
        XgboostLink::Softmax => Task::Classifier {
            classes: ClassLabels::Int((0..n_slots as i64).collect()),
        },
        _ => Task::Regressor { targets: 1 },
    };
    let spec = Spec {
        format: ModelFormat::XgboostJson,
        task,
        aggregate: Aggregate::Sum,
        init,
        head: Head::Xgboost(link),
    };
    Ok((forest, spec))
}

/// The link of an objective and how it maps `base_score` into margin space.
#[allow(clippy::type_complexity)]
fn objective_link(name: &str) -> Result<(XgboostLink, fn(f32) -> Result<f32, String>), String> {
    fn identity(b: f32) -> Result<f32, String> {
        Ok(b)
    }
    fn logit(b: f32) -> Result<f32, String> {
        if b > 0.0 && b < 1.0 {
            Ok(-(1.0 / b - 1.0).ln())
        } else {
            Err(format!(
                "`base_score` must be in (0, 1) for a logistic objective, found `{b}`"
            ))
        }
    }
    fn log(b: f32) -> Result<f32, String> {
        if b > 0.0 {
            Ok(b.ln())
        } else {
            Err(format!(
                "`base_score` must be positive for a log-link objective, found `{b}`"
            ))
        }
    }
    Ok(match name {
        "binary:logistic" => (XgboostLink::BinarySigmoid, logit),
        "binary:hinge" => (XgboostLink::BinaryHinge, identity),
        // The raw margin: no probability to report, so it is served as a value.
        "binary:logitraw" => (XgboostLink::Identity, logit),
        "reg:logistic" => (XgboostLink::Sigmoid, logit),
        "multi:softprob" | "multi:softmax" => (XgboostLink::Softmax, identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
            (XgboostLink::Exp, log)
        }
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => (XgboostLink::Identity, identity),
        other => return Err(format!("unknown objective `{other}`")),
    })
}

/// Converts one tree; leaf values are multiplied by `scale` (DART weights).
fn parse_tree(tree: &Json, group: u32, scale: f64, words: &mut Vec<u32>) -> Result<Tree, String> {
    if let Some(param) = tree.get("tree_param")
        && let Some(size) = param.get("size_leaf_vector")
    {
        let size: usize = number(size, "tree_param.size_leaf_vector")?;
        if size > 1 {
            return Err(format!(
                "vector-leaf trees (`size_leaf_vector` = `{size}`) are not supported"
            ));
        }
    }
    let left = i64_array(get(tree, "left_children", "")?, "left_children")?;
    let right = i64_array(get(tree, "right_children", "")?, "right_children")?;
    let features = i64_array(get(tree, "split_indices", "")?, "split_indices")?;
    let conditions = f32_array(get(tree, "split_conditions", "")?, "split_conditions")?;
    let default_left = i64_array(get(tree, "default_left", "")?, "default_left")?;
    let split_type = match tree.get("split_type") {
        Some(v) => i64_array(v, "split_type")?,
        None => vec![0; left.len()],
    };
    let n = left.len();
    for (name, len) in [
        ("right_children", right.len()),
        ("split_indices", features.len()),
        ("split_conditions", conditions.len()),
        ("default_left", default_left.len()),
        ("split_type", split_type.len()),
    ] {
        if len != n {
            return Err(format!(
                "`{name}` has {len} entries, `left_children` has {n}"
            ));
        }
    }
    if n == 0 {
        return Err("no nodes".into());
    }
    let categories = categorical_splits(tree, n)?;

    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        if left[i] == -1 {
            nodes.push(Node::Leaf(vec![(group, f64::from(conditions[i]) * scale)]));
            continue;
        }
        let child = |c: i64, side: &str| {
            u32::try_from(c)
                .ok()
                .filter(|&c| (c as usize) < n)
                .ok_or_else(|| format!("node {i}: {side} child `{c}` does not exist ({n} nodes)"))
        };
        let feature = u32::try_from(features[i])
            .map_err(|_| format!("node {i}: invalid feature index `{}`", features[i]))?;
        let test = if split_type[i] == 1 {
            let cats = categories
                .iter()
                .find(|(node, _)| *node == i)
                .map(|(_, c)| c.as_slice())
                .ok_or_else(|| format!("node {i}: categorical split without categories"))?;
            Test::Category(bitset(cats, words))
        } else {
            Test::AtLeast(conditions[i])
        };
        nodes.push(Node::Split(Split {
            feature,
            test,
            nan_right: default_left[i] == 0,
            left: child(left[i], "left")?,
            right: child(right[i], "right")?,
        }));
    }
    Ok(Tree { nodes })
}

/// The categories of each categorical node: `(node, categories)`.
fn categorical_splits(tree: &Json, n: usize) -> Result<Vec<(usize, Vec<i64>)>, String> {
    let Some(nodes) = tree.get("categories_nodes") else {
        return Ok(Vec::new());
    };
    let nodes = i64_array(nodes, "categories_nodes")?;
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let segments = i64_array(get(tree, "categories_segments", "")?, "categories_segments")?;
    let sizes = i64_array(get(tree, "categories_sizes", "")?, "categories_sizes")?;
    let categories = i64_array(get(tree, "categories", "")?, "categories")?;
    if segments.len() != nodes.len() || sizes.len() != nodes.len() {
        return Err(
            "`categories_nodes`, `categories_segments` and `categories_sizes` differ in length"
                .into(),
        );
    }
    let mut out = Vec::with_capacity(nodes.len());
    for ((&node, &start), &size) in nodes.iter().zip(&segments).zip(&sizes) {
        let range = usize::try_from(start)
            .ok()
            .zip(usize::try_from(size).ok())
            .map(|(s, z)| s..s + z)
            .filter(|r| r.end <= categories.len())
            .ok_or_else(|| format!("node {node}: category segment out of range"))?;
        let node = usize::try_from(node)
            .ok()
            .filter(|&k| k < n)
            .ok_or_else(|| format!("categorical node `{node}` does not exist"))?;
        out.push((node, categories[range].to_vec()));
    }
    Ok(out)
}

/// Appends the bitset of `categories` (which go right) to `words`.
fn bitset(categories: &[i64], words: &mut Vec<u32>) -> CategoryTest {
    let valid: Vec<u32> = categories
        .iter()
        .filter_map(|&c| u32::try_from(c).ok())
        .collect();
    let len = valid.iter().max().map_or(0, |&m| m / 32 + 1);
    let start = words.len() as u32;
    words.resize(words.len() + len as usize, 0);
    for c in valid {
        words[start as usize + (c / 32) as usize] |= 1 << (c % 32);
    }
    CategoryTest {
        start,
        len,
        flavor: CategoryFlavor::Xgboost,
        in_set_right: true,
        invalid_right: false,
    }
}

/// `base_score` as XGBoost writes it: `"5E-1"`, or `"[a,b,...]"` since 3.1.
fn parse_base_score(v: &Json) -> Result<Vec<f32>, String> {
    let text = match v {
        Json::String(s) => s.as_str(),
        Json::Number(n) => return Ok(vec![n.as_f64().unwrap_or(0.0) as f32]),
        _ => return Err("`base_score` is not a string".into()),
    };
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .map_err(|_| format!("`base_score` `{text}` is not a number or list of numbers"))
        })
        .collect()
}
