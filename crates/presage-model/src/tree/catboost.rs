//! CatBoost's JSON model (`model.save_model("model.json", format="json")`).
//!
//! CatBoost compares each float feature with the split's border as `x > border`,
//! both `f32` (borders are stored as `float`; the JSON writes them as the exact
//! `double` of that `float`). An oblivious tree (`oblivious_trees`) asks the same
//! question at every node of a level: split `i` sets bit `i` of the leaf index (the
//! first split is the lowest bit), and `leaf_values` holds `dimension` values per
//! leaf, leaf after leaf. Such a tree becomes a full binary tree here. Trees of
//! the `Depthwise` and `Lossguide` grow policies (`trees`) nest `split`, `left`,
//! `right` and `value`; a row goes `right` when `x > border`.
//!
//! Missing values follow the feature's `nan_value_treatment`: `AsTrue` (trained with
//! `nan_mode` `Max`) replaces NaN with `+inf`, `AsFalse` (`Min`) with `-inf`, and
//! `AsIs` (`Forbidden`) compares NaN as is, so only `AsTrue` sends NaN right, and only
//! when the feature `has_nans` (CatBoost's evaluator replaces nothing otherwise).
//!
//! The raw value is `scale * (sum of leaf values in tree order) + bias`, in `f64`,
//! and the loss decides what `predict` reports: a sigmoid (`Logloss`,
//! `CrossEntropy`), a softmax (`MultiClass`), a sigmoid per class
//! (`MultiClassOneVsAll`), `exp` (`Poisson`, `Tweedie`) or the raw value (other
//! regression and ranking losses). Models that need more than float columns
//! (categorical, text or embedding features) are refused at load.

use std::path::Path;

use serde_json::Value as Json;

use super::forest::{Forest, Node, Split, Test, Tree, above_f32};
use super::head::{CatboostLink, Head};
use super::json::{array, f64_array, get};
use super::kernel::Aggregate;
use super::model::{Spec, TreeModel};
use crate::{ClassLabels, Model, ModelError, ModelFormat, Task};

/// Deepest oblivious tree accepted (CatBoost itself stops at 16).
const MAX_DEPTH: usize = 16;

/// Loads a CatBoost JSON model already parsed.
pub(crate) fn load_json(root: &Json, origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let (forest, spec) = parse(root).map_err(|reason| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::CatboostJson,
        reason,
    })?;
    Ok(Box::new(TreeModel::<f64>::new(&forest, spec)))
}

/// Whether a JSON document has CatBoost's top-level shape.
pub(crate) fn looks_like(root: &Json) -> bool {
    (root.get("oblivious_trees").is_some() || root.get("trees").is_some())
        && root.get("features_info").is_some()
}

/// A float feature: its column and where NaN goes.
struct FloatFeature {
    column: u32,
    /// NaN becomes `+inf` (`AsTrue` with `has_nans`); otherwise it goes left.
    nan_as_max: bool,
}

/// Parses and validates the model; errors are reasons for [`ModelError::NotAModel`].
fn parse(root: &Json) -> Result<(Forest, Spec), String> {
    let info = get(root, "features_info", "")?;
    refuse_non_float(root, info)?;
    let features = float_features(info)?;
    let n_features = features
        .iter()
        .map(|f| f.column as usize + 1)
        .max()
        .unwrap_or(0);

    let (scale, bias) = scale_and_bias(root)?;
    let dimension = bias.len();
    let model_info = root.get("model_info").unwrap_or(&Json::Null);
    let (task, link) = task_and_link(model_info, dimension)?;

    let mut forest = Forest {
        n_features,
        n_slots: dimension,
        trees: Vec::new(),
        category_words: Vec::new(),
    };
    match (root.get("oblivious_trees"), root.get("trees")) {
        (Some(trees), None) => {
            for (t, tree) in array(trees, "oblivious_trees")?.iter().enumerate() {
                let parsed = oblivious_tree(tree, &features, dimension)
                    .map_err(|e| format!("tree {t}: {e}"))?;
                forest.trees.push(parsed);
            }
        }
        (None, Some(trees)) => {
            for (t, tree) in array(trees, "trees")?.iter().enumerate() {
                let mut nodes = Vec::new();
                nested_node(tree, &features, dimension, &mut nodes, 0)
                    .map_err(|e| format!("tree {t}: {e}"))?;
                forest.trees.push(Tree { nodes });
            }
        }
        (Some(_), Some(_)) => return Err("has both `oblivious_trees` and `trees`".into()),
        (None, None) => return Err("missing field `oblivious_trees` (or `trees`)".into()),
    }
    forest.validate()?;

    let spec = Spec {
        format: ModelFormat::CatboostJson,
        task,
        aggregate: Aggregate::Sum,
        init: vec![0.0; dimension],
        head: Head::Catboost { link, scale, bias },
    };
    Ok((forest, spec))
}

/// Refuses models that read anything but float columns, naming the first such feature.
fn refuse_non_float(root: &Json, info: &Json) -> Result<(), String> {
    for (key, kind) in [
        ("categorical_features", "categorical"),
        ("text_features", "text"),
        ("embedding_features", "embedding"),
    ] {
        let Some(list) = info.get(key) else { continue };
        if let Some(feature) = array(list, &format!("features_info.{key}"))?.first() {
            return Err(format!(
                "{kind} feature {} is not supported: presage scores CatBoost models over \
                 float features only",
                feature_name(feature)
            ));
        }
    }
    if root.get("ctr_data").is_some_and(|c| !c.is_null()) {
        return Err(
            "CTR data (categorical features) is not supported: presage scores \
                    CatBoost models over float features only"
                .into(),
        );
    }
    Ok(())
}

/// `` `name` (column 3) ``, or `column 3` when the model has no feature names.
fn feature_name(feature: &Json) -> String {
    let column = feature
        .get("flat_feature_index")
        .and_then(Json::as_u64)
        .map_or_else(|| "?".to_owned(), |c| c.to_string());
    match feature.get("feature_id").and_then(Json::as_str) {
        Some(id) if !id.is_empty() => format!("`{id}` (column {column})"),
        _ => format!("in column {column}"),
    }
}

fn float_features(info: &Json) -> Result<Vec<FloatFeature>, String> {
    let Some(list) = info.get("float_features") else {
        return Ok(Vec::new());
    };
    let list = array(list, "features_info.float_features")?;
    list.iter()
        .enumerate()
        .map(|(i, f)| {
            let at = format!("features_info.float_features[{i}]");
            // Older models have no flat index: float features are then the only columns.
            let column = match f.get("flat_feature_index") {
                Some(c) => c
                    .as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or_else(|| format!("`{at}.flat_feature_index` is not an index"))?,
                None => i as u32,
            };
            let has_nans = f.get("has_nans").and_then(Json::as_bool).unwrap_or(false);
            // CatBoost's default treatment is `AsIs`.
            let treatment = f
                .get("nan_value_treatment")
                .map_or(Some("AsIs"), Json::as_str);
            let as_true = match treatment {
                Some("AsIs" | "AsFalse") => false,
                Some("AsTrue") => true,
                _ => {
                    return Err(format!(
                        "`{at}.nan_value_treatment` is `{}`; expected `AsIs`, `AsFalse` or `AsTrue`",
                        f["nan_value_treatment"]
                    ));
                }
            };
            Ok(FloatFeature {
                column,
                nan_as_max: as_true && has_nans,
            })
        })
        .collect()
}

/// `scale_and_bias`: `[scale, [bias per dimension]]`; absent means `1` and `[0]`.
fn scale_and_bias(root: &Json) -> Result<(f64, Vec<f64>), String> {
    let Some(v) = root.get("scale_and_bias") else {
        return Ok((1.0, vec![0.0]));
    };
    let bad = || "`scale_and_bias` is not `[scale, [bias, ...]]`".to_owned();
    let pair = v.as_array().filter(|p| p.len() == 2).ok_or_else(bad)?;
    let scale = pair[0].as_f64().ok_or_else(bad)?;
    let bias = match &pair[1] {
        Json::Array(b) => b.iter().map(Json::as_f64).collect::<Option<Vec<_>>>(),
        // Older versions wrote a single number.
        b => b.as_f64().map(|b| vec![b]),
    }
    .ok_or_else(bad)?;
    if bias.is_empty() {
        return Err("`scale_and_bias` has no bias".into());
    }
    Ok((scale, bias))
}

/// The task and output rule of the model's loss function, for `dimension` raw values.
fn task_and_link(model_info: &Json, dimension: usize) -> Result<(Task, CatboostLink), String> {
    let loss = model_info
        .get("params")
        .and_then(|p| p.get("loss_function"))
        .and_then(|l| l.get("type"))
        .and_then(Json::as_str)
        .ok_or("missing field `model_info.params.loss_function.type`")?;
    let expect_dimension = |want: usize| {
        if dimension == want {
            Ok(())
        } else {
            Err(format!(
                "loss `{loss}` expects {want} value(s) per row, the model has {dimension}"
            ))
        }
    };
    Ok(match loss {
        "Logloss" | "CrossEntropy" => {
            expect_dimension(1)?;
            let border = logit_threshold(model_info)?;
            (
                Task::Classifier {
                    classes: class_labels(model_info, 2)?,
                },
                CatboostLink::Binary { border },
            )
        }
        "MultiClass" | "MultiClassOneVsAll" => {
            if dimension < 2 {
                return Err(format!(
                    "loss `{loss}` needs at least 2 classes, the model has {dimension}"
                ));
            }
            let link = if loss == "MultiClass" {
                CatboostLink::Softmax
            } else {
                CatboostLink::OneVsAll
            };
            (
                Task::Classifier {
                    classes: class_labels(model_info, dimension)?,
                },
                link,
            )
        }
        // `CatBoostRegressor.predict` reports `Exponent` for these.
        "Poisson" | "Tweedie" => {
            expect_dimension(1)?;
            (Task::Regressor { targets: 1 }, CatboostLink::Exp)
        }
        "MultiRMSE" => (
            Task::Regressor { targets: dimension },
            CatboostLink::Identity,
        ),
        "RMSE" | "MAE" | "Quantile" | "Expectile" | "LogLinQuantile" | "MAPE" | "Lq" | "RMSPE"
        | "Huber" | "LogCosh" | "FairLoss" | "NumErrors" | "SurvivalAft" | "Cox" | "YetiRank"
        | "YetiRankPairwise" | "PairLogit" | "PairLogitPairwise" | "QueryRMSE" | "QuerySoftMax"
        | "QueryCrossEntropy" | "LambdaMart" | "StochasticFilter" | "StochasticRank"
        | "GroupQuantile" => {
            expect_dimension(1)?;
            (Task::Regressor { targets: 1 }, CatboostLink::Identity)
        }
        other => {
            return Err(format!(
                "loss `{other}` is not supported; supported are binary (`Logloss`, \
                 `CrossEntropy`), multiclass (`MultiClass`, `MultiClassOneVsAll`), \
                 regression and ranking losses"
            ));
        }
    })
}

/// `logit(binclass_probability_threshold)`: the raw value above which a row is class 1.
fn logit_threshold(model_info: &Json) -> Result<f64, String> {
    let Some(v) = model_info.get("binclass_probability_threshold") else {
        return Ok(0.0);
    };
    let p: f64 = match v {
        Json::String(s) => s.trim().parse().ok(),
        other => other.as_f64(),
    }
    .filter(|p| (0.0..=1.0).contains(p))
    .ok_or_else(|| {
        format!("`model_info.binclass_probability_threshold` is `{v}`, not a probability")
    })?;
    Ok((p / (1.0 - p)).ln())
}

/// The class labels of `class_params`, in probability-column order; `0..n` when the
/// model names none (`CrossEntropy`, or a `Logloss` trained on probabilities).
fn class_labels(model_info: &Json, n: usize) -> Result<ClassLabels, String> {
    let default = || ClassLabels::Int((0..n as i64).collect());
    let Some(params) = model_info.get("class_params") else {
        return Ok(default());
    };
    let names = match params.get("class_names") {
        Some(names) => array(names, "model_info.class_params.class_names")?,
        None => return Ok(default()),
    };
    if names.is_empty() {
        return Ok(default());
    }
    if names.len() != n {
        return Err(format!(
            "`model_info.class_params.class_names` has {} classes, the trees {n}",
            names.len()
        ));
    }
    if let Some(ints) = names.iter().map(Json::as_i64).collect::<Option<Vec<_>>>() {
        return Ok(ClassLabels::Int(ints));
    }
    // Strings, or float labels (`class_label_type` `Float`) as CatBoost prints them.
    Ok(ClassLabels::Str(
        names
            .iter()
            .map(|v| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
    ))
}

/// The split of a tree node: the float feature's column, its test and where NaN goes.
fn split(split: &Json, features: &[FloatFeature], left: u32, right: u32) -> Result<Split, String> {
    let kind = split
        .get("split_type")
        .and_then(Json::as_str)
        .unwrap_or("FloatFeature");
    if kind != "FloatFeature" {
        return Err(format!(
            "split type `{kind}` is not supported: presage scores CatBoost models over \
             float features only"
        ));
    }
    let index = split
        .get("float_feature_index")
        .and_then(Json::as_u64)
        .ok_or("a split has no `float_feature_index`")?;
    let feature = features.get(index as usize).ok_or_else(|| {
        format!(
            "split on float feature {index}, the model has {}",
            features.len()
        )
    })?;
    let border = split
        .get("border")
        .and_then(Json::as_f64)
        .ok_or("a split has no numeric `border`")? as f32;
    Ok(Split {
        feature: feature.column,
        // `x > border` in `f32`.
        test: Test::AtLeast(above_f32(border)),
        // NaN becomes `+inf`, which is above every border but `+inf` itself.
        nan_right: feature.nan_as_max && border < f32::INFINITY,
        left,
        right,
    })
}

/// An oblivious tree as a full binary tree: level `i` tests split `i`, and the leaf
/// reached has index `sum(bit_i << i)`.
fn oblivious_tree(
    tree: &Json,
    features: &[FloatFeature],
    dimension: usize,
) -> Result<Tree, String> {
    let splits = match tree.get("splits") {
        Some(s) => array(s, "splits")?.as_slice(),
        None => &[],
    };
    let depth = splits.len();
    if depth > MAX_DEPTH {
        return Err(format!("depth {depth} is above {MAX_DEPTH}"));
    }
    let values = f64_array(get(tree, "leaf_values", "")?, "leaf_values")?;
    let leaves = 1usize << depth;
    if values.len() != leaves * dimension {
        return Err(format!(
            "`leaf_values` has {} values, expected {leaves} leaves × {dimension}",
            values.len()
        ));
    }
    // Breadth-first: node `k` of level `l` is `2^l - 1 + k`, with `k` the leaf-index
    // bits chosen so far (bit `i` set by level `i`), so its children are `k` and
    // `k | 1 << l`.
    let mut nodes = Vec::with_capacity(2 * leaves - 1);
    for (level, s) in splits.iter().enumerate() {
        let width = 1usize << level;
        let next = (2 * width - 1) as u32;
        for k in 0..width {
            let left = next + k as u32;
            let right = next + (k | width) as u32;
            nodes.push(Node::Split(split(s, features, left, right)?));
        }
    }
    for k in 0..leaves {
        let row = &values[k * dimension..(k + 1) * dimension];
        nodes.push(Node::Leaf(
            row.iter()
                .enumerate()
                .map(|(d, &v)| (d as u32, v))
                .collect(),
        ));
    }
    Ok(Tree { nodes })
}

/// Appends a node of a non-symmetric tree and its subtree to `nodes`; returns its index.
fn nested_node(
    node: &Json,
    features: &[FloatFeature],
    dimension: usize,
    nodes: &mut Vec<Node>,
    depth: usize,
) -> Result<u32, String> {
    if depth > 64 {
        return Err("nested deeper than 64 levels".into());
    }
    let index = nodes.len() as u32;
    let Some(s) = node.get("split") else {
        let value = get(node, "value", "")?;
        let values = match value {
            Json::Array(_) => f64_array(value, "value")?,
            v => vec![v.as_f64().ok_or("a leaf `value` is not a number")?],
        };
        if values.len() != dimension {
            return Err(format!(
                "a leaf has {} values, expected {dimension}",
                values.len()
            ));
        }
        nodes.push(Node::Leaf(
            values
                .into_iter()
                .enumerate()
                .map(|(d, v)| (d as u32, v))
                .collect(),
        ));
        return Ok(index);
    };
    // Placeholder until the children's indices are known.
    nodes.push(Node::Leaf(Vec::new()));
    let left = nested_node(
        get(node, "left", "")?,
        features,
        dimension,
        nodes,
        depth + 1,
    )?;
    let right = nested_node(
        get(node, "right", "")?,
        features,
        dimension,
        nodes,
        depth + 1,
    )?;
    nodes[index as usize] = Node::Split(split(s, features, left, right)?);
    Ok(index)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A regressor of one depth-2 oblivious tree whose leaf values are their indices,
    /// over two features with the given NaN treatment.
    fn tree_model(
        treatment: &str,
        has_nans: bool,
        borders: [f64; 2],
        scale: f64,
    ) -> Box<dyn Model> {
        let feature = |i: usize| {
            json!({"borders": [borders[i]], "feature_id": "", "feature_index": i,
                   "flat_feature_index": i, "has_nans": has_nans, "nan_value_treatment": treatment})
        };
        let split = |i: usize| {
            json!({"border": borders[i], "float_feature_index": i, "split_index": i,
                   "split_type": "FloatFeature"})
        };
        let root = json!({
            "features_info": {"float_features": [feature(0), feature(1)]},
            "model_info": {"params": {"loss_function": {"type": "RMSE", "params": {}}}},
            "oblivious_trees": [{"leaf_values": [0.0, 1.0, 2.0, 3.0], "splits": [split(0), split(1)]}],
            "scale_and_bias": [scale, [0.5]],
        });
        load_json(&root, Path::new("m.json")).expect("loading")
    }

    fn values(model: &dyn Model, rows: &[[f32; 2]]) -> Vec<f32> {
        model
            .score(rows.as_flattened(), rows.len())
            .expect("scoring")
            .values
    }

    #[test]
    fn the_first_split_is_the_lowest_bit_and_borders_compare_strictly() {
        let b = 0.1f32;
        let model = tree_model("AsFalse", true, [f64::from(b), -2.5], 1.0);
        let rows = [
            [-1.0, -3.0],
            [1.0, -3.0],
            [-1.0, 0.0],
            [1.0, 0.0],
            [b, -2.5],
            [b.next_up(), (-2.5f32).next_up()],
            [b.next_down(), (-2.5f32).next_down()],
        ];
        assert_eq!(values(&*model, &rows), [0.5, 1.5, 2.5, 3.5, 0.5, 3.5, 0.5]);
    }

    #[test]
    fn nan_goes_right_only_as_true_with_nans() {
        let rows = [[f32::NAN, f32::NAN]];
        for (treatment, has_nans, want) in [
            ("AsTrue", true, 3.5),
            ("AsTrue", false, 0.5),
            ("AsFalse", true, 0.5),
            ("AsIs", true, 0.5),
            ("AsIs", false, 0.5),
        ] {
            let model = tree_model(treatment, has_nans, [0.0, 0.0], 1.0);
            assert_eq!(values(&*model, &rows), [want], "{treatment} {has_nans}");
        }
    }

    #[test]
    fn the_extreme_borders_of_nan_modes_min_and_max() {
        // nan_mode Min adds a border at -FLT_MAX and Max one at FLT_MAX.
        let max = f64::from(f32::MAX);
        let model = tree_model("AsTrue", true, [-max, max], 2.0);
        let rows = [
            [f32::MIN, f32::MAX],
            [f32::NEG_INFINITY, f32::INFINITY],
            [f32::MIN.next_up(), f32::NAN],
            [-0.0, 0.0],
        ];
        assert_eq!(values(&*model, &rows), [0.5, 4.5, 6.5, 2.5]);
    }
}
