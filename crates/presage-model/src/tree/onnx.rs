//! ONNX-ML tree ensembles (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`, and
//! opset 5's `TreeEnsemble`), evaluated natively with onnxruntime's semantics.
//!
//! Exporters wrap the ensemble in trivial nodes (an `Identity`, a `Cast` of the
//! label, a `Mul` of the probabilities by `1.0`); a graph made only of those around
//! one ensemble is taken here, anything else goes to tract.
//!
//! onnxruntime compares `f32` inputs with `f32` thresholds (`f64` for `f64` inputs),
//! sends NaN to the true branch when `nodes_missing_value_tracks_true` is set and
//! otherwise wherever the comparison with NaN sends it, and sums leaf weights in the
//! threshold type. Each `nodes_modes` becomes a [`Test`] with the same answers.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto, type_proto};

use super::forest::{Forest, Node, Split, Test, Tree, above_f32, above_f64};
use super::head::{Head, OnnxAggregate, PostTransform};
use super::kernel::Aggregate;
use super::model::{Spec, TreeModel};
use crate::{ClassLabels, Model, ModelError, ModelFormat, ModelInfo, Scores, Task};

/// ONNX element types used here.
pub(crate) const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// Returns `Ok(Some(model))` when the ONNX graph is a tree ensemble the native
/// evaluator runs, `Ok(None)` when it is some other graph (tract takes it).
pub(crate) fn try_load(
    proto: &ModelProto,
    origin: &Path,
) -> Result<Option<Box<dyn Model>>, ModelError> {
    let Some(graph) = &proto.graph else {
        return Ok(None);
    };
    let Some(plan) = match_graph(graph) else {
        return Ok(None);
    };
    let bad = |reason: String| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::Onnx,
        reason,
    };
    let node = &graph.node[plan.ensemble];
    let (forest, spec) = parse_ensemble(node, plan.input_width, plan.double)
        .map_err(|e| bad(format!("node `{}` ({}): {e}", node.name, node.op_type)))?;
    let model: Box<dyn Model> = if plan.double {
        Box::new(TreeModel::<f64>::new(&forest, spec))
    } else {
        Box::new(TreeModel::<f32>::new(&forest, spec))
    };
    if plan.score_ops.is_empty() {
        Ok(Some(model))
    } else {
        Ok(Some(Box::new(Adjusted {
            inner: model,
            ops: plan.score_ops,
        })))
    }
}

/// The model of one `TreeEnsemble*` node, for the general engine to call where
/// the ensemble sits among other nodes; `input_width` is its input's width there.
pub(crate) fn ensemble_model(
    node: &NodeProto,
    input_width: Option<usize>,
    double: bool,
) -> Result<Box<dyn Model>, String> {
    let (forest, spec) = parse_ensemble(node, input_width, double)?;
    Ok(if double {
        Box::new(TreeModel::<f64>::new(&forest, spec))
    } else {
        Box::new(TreeModel::<f32>::new(&forest, spec))
    })
}

/// What a `TreeEnsemble*` node predicts, checked by parsing it (without compiling
/// its trees); the general engine wires it once its input's width is known.
pub(crate) fn ensemble_task(node: &NodeProto) -> Result<Task, String> {
    Ok(parse_ensemble(node, None, false)?.1.task)
}

/// What [`match_graph`] found.
#[derive(Debug)]
struct Plan {
    /// Index of the ensemble node in the graph.
    ensemble: usize,
    /// The input's second dimension, when the graph fixes it.
    input_width: Option<usize>,
    /// Whether the input is `f64` (onnxruntime then compares and sums in `f64`).
    double: bool,
    /// Scalar operations applied to the probabilities / values output.
    score_ops: Vec<ScalarOp>,
}

/// `x op c` or `c op x` with a constant scalar `c`, as exporters append.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ScalarOp {
    Mul(f32),
    Add(f32),
    /// `x - c`.
    Sub(f32),
    /// `c - x`.
    SubFrom(f32),
    Div(f32),
}

impl ScalarOp {
    fn apply(self, x: f32) -> f32 {
        match self {
            ScalarOp::Mul(c) => x * c,
            ScalarOp::Add(c) => x + c,
            ScalarOp::Sub(c) => x - c,
            ScalarOp::SubFrom(c) => c - x,
            ScalarOp::Div(c) => x / c,
        }
    }

    /// True when the operation changes nothing (`* 1`, `+ 0`, ...).
    fn is_identity(self) -> bool {
        matches!(
            self,
            ScalarOp::Mul(1.0) | ScalarOp::Div(1.0) | ScalarOp::Add(0.0) | ScalarOp::Sub(0.0)
        )
    }
}

/// Recognises "one tree ensemble plus trivial nodes"; `None` for any other graph.
fn match_graph(graph: &GraphProto) -> Option<Plan> {
    let is_ensemble = |n: &NodeProto| {
        n.domain == "ai.onnx.ml"
            && matches!(
                n.op_type.as_str(),
                "TreeEnsembleClassifier" | "TreeEnsembleRegressor" | "TreeEnsemble"
            )
    };
    let mut ensembles = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| is_ensemble(n));
    let (ensemble, te) = ensembles.next()?;
    if ensembles.next().is_some() {
        return None;
    }

    let initializers: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains_key(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return None;
    };
    let Some(type_proto::Value::TensorType(tensor)) = input.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let double = match tensor.elem_type {
        FLOAT => false,
        DOUBLE => true,
        _ => return None,
    };
    let input_width = tensor.shape.as_ref().and_then(|s| match s.dim.as_slice() {
        [_, d] => match d.value {
            Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                usize::try_from(v).ok()
            }
            _ => None,
        },
        _ => None,
    });

    let producers: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut used: HashSet<usize> = HashSet::from([ensemble]);
    let scalar = |name: &str, used: &mut HashSet<usize>| -> Option<f32> {
        if let Some(t) = initializers.get(name) {
            return tensor_f64(t).ok().and_then(|v| single(&v));
        }
        let &p = producers.get(name)?;
        let n = &graph.node[p];
        if n.op_type != "Constant" || !n.domain.is_empty() {
            return None;
        }
        let value = n.attribute.iter().find_map(|a| match a.name.as_str() {
            "value" => {
                a.t.as_ref()
                    .and_then(|t| tensor_f64(t).ok())
                    .and_then(|v| single(&v))
            }
            "value_float" => Some(a.f),
            _ => None,
        })?;
        used.insert(p);
        Some(value)
    };

    // The ensemble's input: the graph input, possibly through Identity / Cast.
    let mut name = te.input.first()?.as_str();
    while name != input.name {
        let &p = producers.get(name)?;
        let n = &graph.node[p];
        if !n.domain.is_empty() || !matches!(n.op_type.as_str(), "Identity" | "Cast") {
            return None;
        }
        used.insert(p);
        name = n.input.first()?.as_str();
    }

    // Each graph output: back through trivial nodes to an output of the ensemble.
    let mut score_ops: Option<Vec<ScalarOp>> = None;
    for output in &graph.output {
        let mut ops = Vec::new();
        let mut casts_to_int = false;
        let mut name = output.name.as_str();
        let slot = loop {
            if let Some(k) = te.output.iter().position(|o| o == name) {
                break k;
            }
            let &p = producers.get(name)?;
            let n = &graph.node[p];
            if !n.domain.is_empty() {
                return None;
            }
            used.insert(p);
            let first = n.input.first()?.as_str();
            name = match n.op_type.as_str() {
                "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => first,
                "Cast" => {
                    let to = i32::try_from(n.attribute.iter().find(|a| a.name == "to")?.i).ok()?;
                    match to {
                        FLOAT | DOUBLE => {}
                        INT64 | INT32 => casts_to_int = true,
                        _ => return None,
                    }
                    first
                }
                "Mul" | "Add" | "Sub" | "Div" => {
                    let second = n.input.get(1)?.as_str();
                    let (c, x, constant_first) = if let Some(c) = scalar(second, &mut used) {
                        (c, first, false)
                    } else {
                        (scalar(first, &mut used)?, second, true)
                    };
                    ops.push(match (n.op_type.as_str(), constant_first) {
                        ("Mul", _) => ScalarOp::Mul(c),
                        ("Add", _) => ScalarOp::Add(c),
                        ("Sub", false) => ScalarOp::Sub(c),
                        ("Sub", true) => ScalarOp::SubFrom(c),
                        ("Div", false) => ScalarOp::Div(c),
                        _ => return None,
                    });
                    x
                }
                _ => return None,
            };
        };
        let is_label = te.op_type == "TreeEnsembleClassifier" && slot == 0;
        if is_label {
            // Labels pass through unchanged; a cast of the scores to int is not trivial.
            if !ops.is_empty() {
                return None;
            }
        } else {
            if casts_to_int {
                return None;
            }
            // Operations were collected from the output backwards.
            ops.reverse();
            ops.retain(|op| !op.is_identity());
            match &score_ops {
                Some(existing) if *existing != ops => return None,
                _ => score_ops = Some(ops),
            }
        }
    }
    if used.len() != graph.node.len() {
        // Some node does something else: not ours.
        return None;
    }
    Some(Plan {
        ensemble,
        input_width,
        double,
        score_ops: score_ops.unwrap_or_default(),
    })
}

fn single(v: &[f64]) -> Option<f32> {
    match v {
        [x] => Some(*x as f32),
        _ => None,
    }
}

/// The values of a float, double or integer tensor as `f64`.
pub(crate) fn tensor_f64(t: &TensorProto) -> Result<Vec<f64>, String> {
    if t.data_location == Some(1) {
        return Err(format!("tensor `{}` uses external data", t.name));
    }
    let raw = &t.raw_data;
    let from_raw = |width: usize, read: &dyn Fn(&[u8]) -> f64| -> Vec<f64> {
        raw.chunks_exact(width).map(read).collect()
    };
    Ok(match t.data_type {
        FLOAT if !raw.is_empty() => from_raw(4, &|b| {
            f64::from(f32::from_le_bytes(b.try_into().unwrap_or_default()))
        }),
        FLOAT => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        DOUBLE if !raw.is_empty() => {
            from_raw(8, &|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
        }
        DOUBLE => t.double_data.clone(),
        INT64 if !raw.is_empty() => from_raw(8, &|b| {
            i64::from_le_bytes(b.try_into().unwrap_or_default()) as f64
        }),
        INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        // uint8 / int32 (opset 5 `nodes_modes`): raw bytes or int32_data.
        2 if !raw.is_empty() => raw.iter().map(|&b| f64::from(b)).collect(),
        2 | INT32 if raw.is_empty() => t.int32_data.iter().map(|&v| f64::from(v)).collect(),
        INT32 => from_raw(4, &|b| {
            f64::from(i32::from_le_bytes(b.try_into().unwrap_or_default()))
        }),
        other => {
            return Err(format!(
                "tensor `{}` has unsupported element type `{other}`",
                t.name
            ));
        }
    })
}

/// Attribute access for one node.
struct Attrs<'a>(&'a NodeProto);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&tract_onnx::pb::AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }

    fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    fn required_ints(&self, name: &str) -> Result<Vec<i64>, String> {
        self.get(name)
            .map(|a| a.ints.clone())
            .ok_or_else(|| format!("missing attribute `{name}`"))
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A float list attribute, or its `_as_tensor` double form.
    fn reals(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        if let Some(a) = self.get(name) {
            return Ok(Some(a.floats.iter().map(|&v| f64::from(v)).collect()));
        }
        match self
            .get(&format!("{name}_as_tensor"))
            .and_then(|a| a.t.as_ref())
        {
            Some(t) => tensor_f64(t).map(Some),
            None => Ok(None),
        }
    }

    fn tensor(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => tensor_f64(t).map(Some),
            None => Ok(None),
        }
    }
}

/// A split mode of `nodes_modes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leaf,
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Member,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "LEAF" => Mode::Leaf,
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            other => return Err(format!("unknown node mode `{other}`")),
        })
    }
}

/// A node before layout: the split (or leaf) and its children in attribute order.
#[derive(Debug, Clone)]
struct RawNode {
    mode: Mode,
    feature: i64,
    value: f64,
    tracks_true: bool,
    /// True / false child: attribute index of a node.
    true_child: usize,
    false_child: usize,
    outputs: Vec<(u32, f64)>,
    /// The set of a `BRANCH_MEMBER` node.
    members: Vec<f32>,
}

/// Turns one onnxruntime comparison into a [`Test`], where NaN goes, and which child
/// (true or false branch) sits on the right.
fn onnx_test(mode: Mode, value: f64, tracks_true: bool, double: bool) -> (Test, bool, bool) {
    // The smallest f32 >= v (compare in f64) or v rounded as onnxruntime stores it.
    let at_least = |v: f64| -> f32 {
        if double {
            let r = v as f32;
            if f64::from(r) < v { r.next_up() } else { r }
        } else {
            v as f32
        }
    };
    let above = |v: f64| -> f32 {
        if double {
            above_f64(v)
        } else {
            above_f32(v as f32)
        }
    };
    let t = value;
    // (test, nan goes to the true branch, true branch is the right child)
    let (test, nan_true, true_right) = match mode {
        // True when x < t: the false branch (x >= t) is on the right.
        Mode::Lt if t.is_nan() => (Test::AtLeast(f32::NEG_INFINITY), tracks_true, false),
        Mode::Lt => (Test::AtLeast(at_least(t)), tracks_true, false),
        // True when x <= t: right when x > t.
        Mode::Leq if t.is_nan() => (Test::AtLeast(f32::NEG_INFINITY), tracks_true, false),
        Mode::Leq => (Test::AtLeast(above(t)), tracks_true, false),
        // True when x >= t: the true branch is on the right.
        Mode::Gte => (Test::AtLeast(at_least(t)), tracks_true, true),
        // True when x > t.
        Mode::Gt => (Test::AtLeast(above(t)), tracks_true, true),
        Mode::Eq => (Test::Equal(t as f32), tracks_true, true),
        // `NaN != t` holds: NaN always takes the true branch.
        Mode::Neq => (Test::Equal(t as f32), true, false),
        Mode::Member => (Test::OneOf(Vec::new()), tracks_true, true),
        Mode::Leaf => unreachable!("a leaf is not a comparison"),
    };
    let nan_right = nan_true == true_right;
    (test, nan_right, true_right)
}

/// Builds the forest and output rules of a `TreeEnsemble*` node.
fn parse_ensemble(
    node: &NodeProto,
    input_width: Option<usize>,
    double: bool,
) -> Result<(Forest, Spec), String> {
    let attrs = Attrs(node);
    if node.op_type == "TreeEnsemble" {
        return parse_tree_ensemble_v5(&attrs, input_width, double);
    }
    let classifier = node.op_type == "TreeEnsembleClassifier";
    let tree_ids = attrs.required_ints("nodes_treeids")?;
    let node_ids = attrs.required_ints("nodes_nodeids")?;
    let features = attrs.required_ints("nodes_featureids")?;
    let modes = attrs
        .strings("nodes_modes")
        .iter()
        .map(|m| Mode::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let values = attrs
        .reals("nodes_values")?
        .ok_or("missing attribute `nodes_values`")?;
    let trues = attrs.required_ints("nodes_truenodeids")?;
    let falses = attrs.required_ints("nodes_falsenodeids")?;
    let tracks = attrs.ints("nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
    ] {
        if len != n {
            return Err(format!(
                "`{name}` has {len} entries, `nodes_treeids` has {n}"
            ));
        }
    }
    if !tracks.is_empty() && tracks.len() != n {
        return Err(format!(
            "`nodes_missing_value_tracks_true` has {} entries, `nodes_treeids` has {n}",
            tracks.len()
        ));
    }
    let prefix = if classifier { "class" } else { "target" };
    let w_trees = attrs.required_ints(&format!("{prefix}_treeids"))?;
    let w_nodes = attrs.required_ints(&format!("{prefix}_nodeids"))?;
    let w_ids = attrs.required_ints(&format!("{prefix}_ids"))?;
    let w_values = attrs
        .reals(&format!("{prefix}_weights"))?
        .ok_or_else(|| format!("missing attribute `{prefix}_weights`"))?;
    if [w_nodes.len(), w_ids.len(), w_values.len()] != [w_trees.len(); 3] {
        return Err(format!("the `{prefix}_*` attributes differ in length"));
    }
    let base = attrs.reals("base_values")?.unwrap_or_default();
    let post = post_transform(
        &attrs
            .string("post_transform")
            .unwrap_or_else(|| "NONE".into()),
    )?;

    let (n_slots, labels) = if classifier {
        let ints = attrs.ints("classlabels_int64s");
        let strings = attrs.strings("classlabels_strings");
        let labels = if strings.is_empty() {
            ClassLabels::Int(ints)
        } else {
            ClassLabels::Str(strings)
        };
        if labels.len() < 2 {
            return Err(format!(
                "a classifier needs at least 2 class labels, found {}",
                labels.len()
            ));
        }
        (labels.len(), Some(labels))
    } else {
        let targets = attrs.int("n_targets").unwrap_or(0);
        let targets = usize::try_from(targets)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("`n_targets` must be positive, found `{targets}`"))?;
        (targets, None)
    };

    // Nodes by (tree, node id); a tree's root is its first node in attribute order.
    let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    let mut roots: Vec<(i64, usize)> = Vec::new();
    for i in 0..n {
        if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
            return Err(format!(
                "node `{}` of tree `{}` is defined twice",
                node_ids[i], tree_ids[i]
            ));
        }
        if !roots.iter().any(|&(t, _)| t == tree_ids[i]) {
            roots.push((tree_ids[i], i));
        }
    }
    let mut raw = Vec::with_capacity(n);
    for i in 0..n {
        let child = |id: i64, which: &str| -> Result<usize, String> {
            index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                format!(
                    "tree `{}` node `{}`: {which} node `{id}` does not exist",
                    tree_ids[i], node_ids[i]
                )
            })
        };
        let leaf = modes[i] == Mode::Leaf;
        raw.push(RawNode {
            mode: modes[i],
            feature: features[i],
            value: values[i],
            tracks_true: tracks.get(i) == Some(&1),
            true_child: if leaf { 0 } else { child(trues[i], "true")? },
            false_child: if leaf { 0 } else { child(falses[i], "false")? },
            outputs: Vec::new(),
            members: Vec::new(),
        });
    }
    let mut all_positive = true;
    let mut weight_classes = HashSet::new();
    for k in 0..w_trees.len() {
        let at = index
            .get(&(w_trees[k], w_nodes[k]))
            .copied()
            .ok_or_else(|| {
                format!(
                    "`{prefix}_nodeids` refers to node `{}` of tree `{}`, which does not exist",
                    w_nodes[k], w_trees[k]
                )
            })?;
        let slot = u32::try_from(w_ids[k])
            .ok()
            .filter(|&s| (s as usize) < n_slots)
            .ok_or_else(|| {
                format!(
                    "`{prefix}_ids` has `{}`, out of range for {n_slots} outputs",
                    w_ids[k]
                )
            })?;
        weight_classes.insert(slot);
        all_positive &= w_values[k].is_nan() || w_values[k] >= 0.0;
        // onnxruntime ignores weights on internal nodes.
        if raw[at].mode == Mode::Leaf {
            let v = if double {
                w_values[k]
            } else {
                f64::from(w_values[k] as f32)
            };
            raw[at].outputs.push((slot, v));
        }
    }

    let n_features = input_width.unwrap_or_else(|| {
        features
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::try_from(m + 1).unwrap_or(0))
    });
    let mut forest = Forest {
        n_features,
        n_slots,
        trees: Vec::with_capacity(roots.len()),
        category_words: Vec::new(),
    };
    for &(tree_id, root) in &roots {
        let tree = build_tree(&raw, root, double).map_err(|e| format!("tree `{tree_id}`: {e}"))?;
        forest.trees.push(tree);
    }
    forest.validate()?;

    let base = if double {
        base
    } else {
        base.iter().map(|&b| f64::from(b as f32)).collect()
    };
    let (task, head, aggregate) = if let Some(classes) = labels {
        let head = Head::OnnxClassifier {
            post,
            base,
            binary_case: n_slots == 2 && weight_classes.len() == 1,
            all_positive,
        };
        (Task::Classifier { classes }, head, Aggregate::Sum)
    } else {
        let onnx_aggregate = aggregate_function(
            &attrs
                .string("aggregate_function")
                .unwrap_or_else(|| "SUM".into()),
        )?;
        regressor_parts(n_slots, post, onnx_aggregate, base, forest.trees.len())
    };
    let spec = Spec {
        format: ModelFormat::Onnx,
        task,
        aggregate,
        init: vec![0.0; n_slots],
        head,
    };
    Ok((forest, spec))
}

fn regressor_parts(
    targets: usize,
    post: PostTransform,
    aggregate: OnnxAggregate,
    base: Vec<f64>,
    n_trees: usize,
) -> (Task, Head, Aggregate) {
    let kernel_aggregate = match aggregate {
        OnnxAggregate::Sum | OnnxAggregate::Average => Aggregate::Sum,
        OnnxAggregate::Min => Aggregate::Min,
        OnnxAggregate::Max => Aggregate::Max,
    };
    let head = Head::OnnxRegressor {
        post,
        aggregate,
        base,
        n_trees,
    };
    (Task::Regressor { targets }, head, kernel_aggregate)
}

/// Most nodes one tree may have once its shared subtrees are copied out: a DAG
/// whose sharing multiplies at every level would otherwise exhaust memory.
const MAX_EXPANDED_NODES: usize = 1 << 22;

/// A node as laid out: a chain of `BRANCH_EQ` nodes that share their true child
/// becomes one membership test.
struct Visit {
    at: usize,
    /// The values of a merged `BRANCH_EQ` chain (or of a `BRANCH_MEMBER` node).
    members: Option<Vec<f32>>,
    true_child: usize,
    false_child: usize,
}

/// The node at `at`, with any `BRANCH_EQ` chain starting there merged.
///
/// onnxmltools writes a categorical split "x in {a, b, c}" as `x == a`, else
/// `x == b`, else `x == c`, each sending its true branch to the same child. Read
/// as one membership test, the tree is a tree again and scores with one lookup.
fn visit(raw: &[RawNode], at: usize) -> Visit {
    let node = &raw[at];
    let mut visit = Visit {
        at,
        members: (node.mode == Mode::Member).then(|| node.members.clone()),
        true_child: node.true_child,
        false_child: node.false_child,
    };
    if node.mode != Mode::Eq {
        return visit;
    }
    let mut members = vec![node.value as f32];
    let mut seen = HashSet::from([at]);
    loop {
        let next = &raw[visit.false_child];
        let continues_chain = next.mode == Mode::Eq
            && next.feature == node.feature
            && next.tracks_true == node.tracks_true
            && next.true_child == node.true_child;
        if !continues_chain || !seen.insert(visit.false_child) {
            break;
        }
        members.push(next.value as f32);
        visit.false_child = next.false_child;
    }
    if members.len() > 1 {
        visit.members = Some(members);
    }
    visit
}

/// Refuses a tree whose nodes lead back to themselves; shared subtrees (a DAG) are fine.
fn check_acyclic(raw: &[RawNode], root: usize) -> Result<(), String> {
    // 0: unseen, 1: on the current path, 2: done.
    let mut state = vec![0u8; raw.len()];
    let mut stack = vec![(root, false)];
    while let Some((at, leaving)) = stack.pop() {
        if leaving {
            state[at] = 2;
            continue;
        }
        match state[at] {
            1 => {
                return Err(format!(
                    "a cycle: the node at attribute index {at} leads back to itself"
                ));
            }
            2 => continue,
            _ => {}
        }
        state[at] = 1;
        stack.push((at, true));
        let node = &raw[at];
        if node.mode != Mode::Leaf {
            for child in [node.true_child, node.false_child] {
                if state[child] == 1 {
                    return Err(format!(
                        "a cycle: the node at attribute index {child} leads back to itself"
                    ));
                }
                if state[child] == 0 {
                    stack.push((child, false));
                }
            }
        }
    }
    Ok(())
}

/// Lays out the tree rooted at attribute index `root` as a [`Tree`]. A node that
/// several parents share (exporters write categorical splits that way) is laid out
/// once per parent; a cycle is an error.
fn build_tree(raw: &[RawNode], root: usize, double: bool) -> Result<Tree, String> {
    check_acyclic(raw, root)?;
    // Breadth-first; every visit of a node gets its own index, so the layout is a tree.
    let mut order = vec![visit(raw, root)];
    let mut children: Vec<(u32, u32)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        if raw[order[i].at].mode == Mode::Leaf {
            children.push((0, 0));
        } else {
            let (t, f) = (order[i].true_child, order[i].false_child);
            let t_index = order.len() as u32;
            order.push(visit(raw, t));
            order.push(visit(raw, f));
            children.push((t_index, t_index + 1));
            if order.len() > MAX_EXPANDED_NODES {
                return Err(format!(
                    "copying out its shared subtrees makes more than {MAX_EXPANDED_NODES} nodes"
                ));
            }
        }
        i += 1;
    }
    let mut nodes = Vec::with_capacity(order.len());
    for (v, &(t, f)) in order.iter().zip(&children) {
        let node = &raw[v.at];
        if node.mode == Mode::Leaf {
            nodes.push(Node::Leaf(node.outputs.clone()));
            continue;
        }
        let feature = u32::try_from(node.feature)
            .map_err(|_| format!("invalid feature id `{}`", node.feature))?;
        let (test, nan_right, true_right) = match &v.members {
            Some(members) => {
                let (_, nan_right, true_right) =
                    onnx_test(Mode::Member, node.value, node.tracks_true, double);
                (Test::OneOf(members.clone()), nan_right, true_right)
            }
            None => onnx_test(node.mode, node.value, node.tracks_true, double),
        };
        let (left, right) = if true_right { (f, t) } else { (t, f) };
        nodes.push(Node::Split(Split {
            feature,
            test,
            nan_right,
            left,
            right,
        }));
    }
    Ok(Tree { nodes })
}

fn post_transform(s: &str) -> Result<PostTransform, String> {
    Ok(match s {
        "NONE" => PostTransform::None,
        "LOGISTIC" => PostTransform::Logistic,
        "SOFTMAX" => PostTransform::Softmax,
        "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
        "PROBIT" => PostTransform::Probit,
        other => return Err(format!("unknown `post_transform` `{other}`")),
    })
}

fn aggregate_function(s: &str) -> Result<OnnxAggregate, String> {
    Ok(match s {
        "SUM" => OnnxAggregate::Sum,
        "AVERAGE" => OnnxAggregate::Average,
        "MIN" => OnnxAggregate::Min,
        "MAX" => OnnxAggregate::Max,
        other => return Err(format!("unknown `aggregate_function` `{other}`")),
    })
}

/// `TreeEnsemble` (ai.onnx.ml opset 5): trees as root indices into node arrays whose
/// children are nodes or leaves, one weight per leaf, a regressor.
fn parse_tree_ensemble_v5(
    attrs: &Attrs<'_>,
    input_width: Option<usize>,
    double: bool,
) -> Result<(Forest, Spec), String> {
    let roots = attrs.required_ints("tree_roots")?;
    let features = attrs.required_ints("nodes_featureids")?;
    let modes = attrs
        .tensor("nodes_modes")?
        .ok_or("missing attribute `nodes_modes`")?;
    let splits = attrs
        .tensor("nodes_splits")?
        .ok_or("missing attribute `nodes_splits`")?;
    let trues = attrs.required_ints("nodes_truenodeids")?;
    let falses = attrs.required_ints("nodes_falsenodeids")?;
    let true_leafs = attrs.ints("nodes_trueleafs");
    let false_leafs = attrs.ints("nodes_falseleafs");
    let tracks = attrs.ints("nodes_missing_value_tracks_true");
    let members = attrs.tensor("membership_values")?.unwrap_or_default();
    let leaf_targets = attrs.required_ints("leaf_targetids")?;
    let leaf_weights = attrs
        .tensor("leaf_weights")?
        .ok_or("missing attribute `leaf_weights`")?;
    let n = features.len();
    for (name, len) in [
        ("nodes_modes", modes.len()),
        ("nodes_splits", splits.len()),
        ("nodes_truenodeids", trues.len()),
        ("nodes_falsenodeids", falses.len()),
        ("nodes_trueleafs", true_leafs.len()),
        ("nodes_falseleafs", false_leafs.len()),
    ] {
        if len != n {
            return Err(format!(
                "`{name}` has {len} entries, `nodes_featureids` has {n}"
            ));
        }
    }
    if leaf_weights.len() != leaf_targets.len() {
        return Err("`leaf_weights` and `leaf_targetids` differ in length".into());
    }
    let targets = attrs.int("n_targets").unwrap_or(0);
    let n_slots = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| format!("`n_targets` must be positive, found `{targets}`"))?;
    let post = match attrs.int("post_transform").unwrap_or(0) {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => return Err(format!("unknown `post_transform` `{other}`")),
    };
    let aggregate = match attrs.int("aggregate_function").unwrap_or(1) {
        0 => OnnxAggregate::Average,
        1 => OnnxAggregate::Sum,
        2 => OnnxAggregate::Min,
        3 => OnnxAggregate::Max,
        other => return Err(format!("unknown `aggregate_function` `{other}`")),
    };
    // Membership sets, one per BRANCH_MEMBER node in order, separated by NaN.
    let mut member_sets = members.split(|v| v.is_nan());

    // Flat arrays: nodes first, then leaves at `n + j`.
    let mut raw: Vec<RawNode> = Vec::with_capacity(n + leaf_targets.len());
    for i in 0..n {
        let mode = match modes[i] as i64 {
            0 => Mode::Leq,
            1 => Mode::Lt,
            2 => Mode::Gte,
            3 => Mode::Gt,
            4 => Mode::Eq,
            5 => Mode::Neq,
            6 => Mode::Member,
            other => return Err(format!("node {i}: unknown mode `{other}`")),
        };
        let members = if mode == Mode::Member {
            member_sets
                .next()
                .unwrap_or_default()
                .iter()
                .map(|&v| v as f32)
                .collect()
        } else {
            Vec::new()
        };
        let target = |id: i64, leaf: bool| -> Result<usize, String> {
            let id = usize::try_from(id).map_err(|_| format!("node {i}: invalid child `{id}`"))?;
            let (limit, offset) = if leaf {
                (leaf_targets.len(), n)
            } else {
                (n, 0)
            };
            if id >= limit {
                return Err(format!("node {i}: child `{id}` does not exist"));
            }
            Ok(id + offset)
        };
        raw.push(RawNode {
            mode,
            feature: features[i],
            value: splits[i],
            tracks_true: tracks.get(i) == Some(&1),
            true_child: target(trues[i], true_leafs[i] == 1)?,
            false_child: target(falses[i], false_leafs[i] == 1)?,
            outputs: Vec::new(),
            members,
        });
    }
    for (j, (&t, &w)) in leaf_targets.iter().zip(&leaf_weights).enumerate() {
        let slot = u32::try_from(t)
            .ok()
            .filter(|&s| (s as usize) < n_slots)
            .ok_or_else(|| format!("leaf {j}: target `{t}` out of range for {n_slots} targets"))?;
        let w = if double { w } else { f64::from(w as f32) };
        raw.push(RawNode {
            mode: Mode::Leaf,
            feature: 0,
            value: 0.0,
            tracks_true: false,
            true_child: 0,
            false_child: 0,
            outputs: vec![(slot, w)],
            members: Vec::new(),
        });
    }

    let n_features = input_width.unwrap_or_else(|| {
        features
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::try_from(m + 1).unwrap_or(0))
    });
    let mut forest = Forest {
        n_features,
        n_slots,
        trees: Vec::with_capacity(roots.len()),
        category_words: Vec::new(),
    };
    for (t, &root) in roots.iter().enumerate() {
        let root = usize::try_from(root)
            .ok()
            .filter(|&r| r < n)
            .ok_or_else(|| format!("tree {t}: root `{root}` does not exist"))?;
        forest
            .trees
            .push(build_tree(&raw, root, double).map_err(|e| format!("tree {t}: {e}"))?);
    }
    forest.validate()?;
    let (task, head, aggregate) =
        regressor_parts(n_slots, post, aggregate, Vec::new(), forest.trees.len());
    let spec = Spec {
        format: ModelFormat::Onnx,
        task,
        aggregate,
        init: vec![0.0; n_slots],
        head,
    };
    Ok((forest, spec))
}

/// A native ensemble followed by scalar arithmetic on its scores (exporters'
/// `Mul` / `Add` nodes), applied in `f32` like onnxruntime.
struct Adjusted {
    inner: Box<dyn Model>,
    ops: Vec<ScalarOp>,
}

impl Model for Adjusted {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn score(&self, features: &[f32], rows: usize) -> Result<Scores, ModelError> {
        let mut scores = self.inner.score(features, rows)?;
        for v in scores
            .probabilities
            .iter_mut()
            .chain(scores.values.iter_mut())
        {
            *v = self.ops.iter().fold(*v, |x, op| op.apply(x));
        }
        Ok(scores)
    }
}
