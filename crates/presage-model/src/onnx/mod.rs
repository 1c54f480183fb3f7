//! ONNX files: pure tree-ensemble graphs go to the native tree evaluator, everything
//! else to tract, with the native evaluator scoring any tree ensemble inside it
//! ([`trees`]).
//!
//! First [`prepare`] rewrites what exporters add around the model (a `ZipMap`,
//! several named or string inputs) into one float matrix in and plain outputs.
//! Loading a general graph then happens in four steps, all at load so a run never
//! starts with a model it cannot finish:
//! 1. every node's operator is checked against what tract (plus the ONNX-ML
//!    operators added here: [`scaler`], [`imputer`], [`encoders`], [`trees`])
//!    implements ([`support`]);
//! 2. the single float input `[N, F]` is read from the graph ([`signature`]);
//! 3. tract analyses and optimises the graph with `N` left symbolic;
//! 4. the optimised outputs decide classifier or regressor ([`signature`]).
//!
//! A graph that is a chain of dense layers (an MLP) is then scored by [`dense`]
//! instead of tract.

mod dense;
mod encoders;
mod engine;
mod imputer;
mod prepare;
mod scaler;
mod signature;
mod support;
mod trees;

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{ModelProto, NodeProto};
use tract_onnx::prelude::*;

use crate::{Model, ModelError, ModelFormat, ModelInfo};

/// The name of the batch dimension in the optimised graph.
const BATCH_SYMBOL: &str = "N";

/// Loads an ONNX model from bytes; `origin` names it in errors and locates
/// external tensor data (stored beside the model file).
pub(crate) fn load(bytes: &[u8], origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let not_a_model = |reason: String| ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::Onnx,
        reason,
    };
    let decoded = ModelProto::decode(bytes)
        .map_err(|e| not_a_model(format!("not an ONNX protobuf ({e})")))?;
    if decoded.graph.is_none() {
        return Err(not_a_model("the file holds no graph".into()));
    }
    let prepared = prepare::prepare(&decoded, origin)?;
    let proto = prepared.proto.as_ref().unwrap_or(&decoded);
    let Some(graph) = &proto.graph else {
        return Err(not_a_model("the file holds no graph".into()));
    };
    if let Some(model) = crate::tree::onnx::try_load(proto, origin)? {
        return Ok(model);
    }

    let framework = framework();
    support::check_operators(graph, &proto.opset_import, &framework.op_register, origin)?;
    let input = signature::find_input(graph, origin)?;

    let model_dir = origin.parent().and_then(Path::to_str);
    let indexed = index_string_labels(proto);
    let parsed = framework
        .parse(indexed.as_ref().unwrap_or(proto), model_dir)
        .map_err(|e| not_a_model(format!("{e:#}")))?;
    if let Some(name) = parsed.unresolved_inputs.first() {
        return Err(not_a_model(format!(
            "value `{name}` is used but never produced"
        )));
    }
    let model = parsed.model;
    let optimize = |mut model: InferenceModel| {
        let batch = model.sym(BATCH_SYMBOL);
        let fact = f32::fact(&[batch.to_dim(), input.n_features.to_dim()]);
        model
            .set_input_fact(0, fact.into())
            .and_then(|()| model.into_optimized())
            .map_err(|e| not_a_model(format!("input `{}`: {e:#}", input.name)))
    };
    let mut optimized = optimize(model.clone())?;
    let (task, mut outputs) = signature::find_outputs(graph, &optimized, origin)?;
    let info = ModelInfo {
        engine: if graph.node.iter().any(trees::is_ensemble) {
            "tract+tree"
        } else {
            "tract"
        },
        format: ModelFormat::Onnx,
        n_features: input.n_features,
        inputs: prepared.inputs,
        task,
    };
    let name = |ix: usize| graph.output.get(ix).map_or("", |o| o.name.as_str());
    // A chain of dense layers (an MLP) is scored natively, when the label is the arg
    // max of the probabilities the chain computes.
    let dense_output = match outputs {
        signature::Outputs::Classifier {
            label: Some(label),
            probabilities,
        } if signature::label_is_argmax(graph, name(label), name(probabilities)) => {
            Some(name(probabilities))
        }
        signature::Outputs::Regressor { values } => Some(name(values)),
        signature::Outputs::Classifier { .. } => None,
    };
    if let Some(model) = dense_output.and_then(|output| dense::compile(graph, &info, output)) {
        return Ok(Box::new(model));
    }
    // A label that is the arg max of the probabilities is cheaper to compute here
    // than through tract's integer ops: cut the graph to the probabilities output.
    if let signature::Outputs::Classifier {
        label: Some(label),
        probabilities,
    } = outputs
        && signature::label_is_argmax(graph, name(label), name(probabilities))
    {
        let mut pruned = model;
        let outlet = pruned.outputs[probabilities];
        pruned
            .select_output_outlets(&[outlet])
            .map_err(|e| not_a_model(format!("{e:#}")))?;
        optimized = optimize(pruned)?;
        outputs = signature::Outputs::Classifier {
            label: None,
            probabilities: 0,
        };
    }
    let plan = optimized
        .into_runnable()
        .map_err(|e| not_a_model(format!("{e:#}")))?;
    Ok(Box::new(engine::TractModel::new(info, plan, outputs)))
}

/// Replaces the string class labels of `LinearClassifier` nodes with their indices.
///
/// tract's `LinearClassifier` only produces numeric labels; the strings are read from
/// the original graph by [`signature::find_outputs`] and each index is mapped back to
/// its string when scores are read. `None` when no node has string labels.
fn index_string_labels(original: &ModelProto) -> Option<ModelProto> {
    let has_strings = |n: &NodeProto| {
        n.op_type == "LinearClassifier"
            && n.attribute
                .iter()
                .any(|a| a.name == "classlabels_strings" && !a.strings.is_empty())
    };
    if !original.graph.as_ref()?.node.iter().any(has_strings) {
        return None;
    }
    let mut proto = original.clone();
    let graph = proto.graph.as_mut()?;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op_type == "LinearClassifier")
    {
        let Some(at) = node
            .attribute
            .iter()
            .position(|a| a.name == "classlabels_strings" && !a.strings.is_empty())
        else {
            continue;
        };
        let mut attribute = node.attribute.remove(at);
        let classes = attribute.strings.len() as i64;
        attribute.name = "classlabels_ints".to_owned();
        attribute.strings.clear();
        attribute.ints = (0..classes).collect();
        attribute.r#type = tract_onnx::pb::attribute_proto::AttributeType::Ints as i32;
        node.attribute.push(attribute);
    }
    Some(proto)
}

/// `x` as `f32`: itself, or a cast of it named `{prefix}.to_f32`. The operators
/// added here compute in `f32`, as onnxruntime's do.
fn as_f32(
    model: &mut tract_onnx::prelude::TypedModel,
    prefix: &str,
    x: tract_onnx::prelude::OutletId,
) -> TractResult<tract_onnx::prelude::OutletId> {
    if model.outlet_fact(x)?.datum_type == f32::datum_type() {
        return Ok(x);
    }
    let cast = tract_onnx::tract_hir::tract_core::ops::cast::cast(f32::datum_type());
    Ok(model.wire_node(format!("{prefix}.to_f32"), cast, &[x])?[0])
}

/// tract's ONNX front end with presage's additional operators registered.
fn framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("Imputer", imputer::parse);
    onnx.op_register.insert("Scaler", scaler::parse);
    onnx.op_register
        .insert("OneHotEncoder", encoders::parse_one_hot);
    onnx.op_register
        .insert("LabelEncoder", encoders::parse_label_encoder);
    // The native evaluator replaces tract's own classifier: exact, and faster.
    for op in trees::OPERATORS {
        onnx.op_register.insert(op, trees::parse);
    }
    onnx
}
