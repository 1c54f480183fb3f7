//! Which ONNX operators the tract engine runs, checked node by node before tract
//! sees the graph.
//!
//! tract parses an operator it does not know into a placeholder and only fails
//! when the graph is analysed, with an error that names neither the operator nor
//! the node in a way a user can act on. Walking the graph first turns that into
//! [`ModelError::UnsupportedOperator`] at load, naming both, including nodes
//! nested in the subgraphs of `If`, `Loop` and `Scan`.

use std::path::Path;

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::{GraphProto, NodeProto, OperatorSetIdProto};

use crate::{ModelError, UnsupportedOperator};

/// The ONNX-ML (`ai.onnx.ml`) operators with a tract implementation: tract-onnx's
/// own and the ones added in this module. tract keys its register by operator
/// name alone, so without this list an `ai.onnx.ml` node would be accepted under
/// the name of an unrelated core operator.
const ML_OPERATORS: &[&str] = &[
    "ArrayFeatureExtractor",
    "CategoryMapper",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "Scaler",
    "TreeEnsemble",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
];

/// Returns the first node, in graph order and depth first, whose operator the
/// register (with the ONNX-ML list above) does not implement.
pub(super) fn check_operators(
    graph: &GraphProto,
    opsets: &[OperatorSetIdProto],
    register: &OnnxOpRegister,
    origin: &Path,
) -> Result<(), ModelError> {
    for node in &graph.node {
        if !is_supported(node, register) {
            let domain = match node.domain.as_str() {
                "" => "ai.onnx",
                domain => domain,
            };
            let opset = opsets
                .iter()
                .find(|o| o.domain == node.domain || (domain == "ai.onnx" && o.domain.is_empty()))
                .map_or_else(|| "?".to_owned(), |o| o.version.to_string());
            return Err(ModelError::UnsupportedOperator(Box::new(
                UnsupportedOperator {
                    path: origin.to_owned(),
                    op: qualified_name(node),
                    domain: domain.to_owned(),
                    opset,
                    node: node_name(node),
                },
            )));
        }
        for attribute in &node.attribute {
            for subgraph in attribute.g.iter().chain(&attribute.graphs) {
                check_operators(subgraph, opsets, register, origin)?;
            }
        }
    }
    Ok(())
}

fn is_supported(node: &NodeProto, register: &OnnxOpRegister) -> bool {
    let op = node.op_type.as_str();
    let known = register.0.contains_key(op);
    match node.domain.as_str() {
        "" | "ai.onnx" => known && !ML_OPERATORS.contains(&op),
        "ai.onnx.ml" => known && ML_OPERATORS.contains(&op),
        // tract implements a few of onnxruntime's contrib operators under their own name.
        "com.microsoft" => known,
        _ => false,
    }
}

/// The operator as users see it in tools like Netron: `SVMClassifier`, or
/// `com.example.Frobnicate` outside the standard domains.
fn qualified_name(node: &NodeProto) -> String {
    match node.domain.as_str() {
        "" | "ai.onnx" | "ai.onnx.ml" => node.op_type.clone(),
        domain => format!("{domain}.{}", node.op_type),
    }
}

/// The node's name, or its first output where the exporter left the name empty
/// (as tract itself names such nodes).
fn node_name(node: &NodeProto) -> String {
    if !node.name.is_empty() {
        node.name.clone()
    } else if let Some(output) = node.output.iter().find(|o| !o.is_empty()) {
        output.clone()
    } else {
        format!("<unnamed {}>", node.op_type)
    }
}
