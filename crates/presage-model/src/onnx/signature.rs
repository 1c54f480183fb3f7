//! What an ONNX graph takes and gives, in presage's terms: one float matrix in,
//! and either a label plus class probabilities or a block of values out.
//!
//! The input is read from the graph's declaration, because presage must fix the
//! feature count before tract can analyse the graph. The outputs are read from
//! tract's analysed model, which knows the types and widths even where the
//! exporter left them undeclared; the graph's own declarations only give names.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::data_resolver::FopenDataResolver;
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto, tensor_shape_proto, type_proto};
use tract_onnx::prelude::*;

use crate::{ClassLabels, ModelError, ModelFormat, Task};

/// ONNX `TensorProto.DataType` codes used in messages.
const ONNX_TYPE_NAMES: &[(i32, &str)] = &[
    (1, "float32"),
    (2, "uint8"),
    (3, "int8"),
    (5, "int16"),
    (6, "int32"),
    (7, "int64"),
    (8, "string"),
    (9, "bool"),
    (10, "float16"),
    (11, "float64"),
];
const ONNX_FLOAT: i32 = 1;

/// The graph's single feature input.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Input {
    /// Its name in the graph, for messages.
    pub(super) name: String,
    /// Its fixed second dimension.
    pub(super) n_features: usize,
}

/// Where each prediction comes from among tract's outputs (by position).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outputs {
    /// A label output and a `[N, C]` probabilities output.
    Classifier {
        /// Position of the label output; `None` when the plan was cut to the
        /// probabilities and the label is their arg max ([`label_is_argmax`]).
        label: Option<usize>,
        /// Position of the probabilities output.
        probabilities: usize,
    },
    /// A single `[N, T]` (or `[N]`) float output.
    Regressor {
        /// Position of the values output.
        values: usize,
    },
}

/// The reason the graph does not fit presage, as a load error on `origin`.
fn misfit(origin: &Path, reason: String) -> ModelError {
    ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::Onnx,
        reason,
    }
}

fn onnx_type_name(code: i32) -> String {
    ONNX_TYPE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("type {code}"), |(_, name)| (*name).to_owned())
}

/// Finds the one float input `[N, F]` with a fixed `F`. Graph inputs that an
/// initializer feeds (older exporters list weights as inputs) are not features.
pub(super) fn find_input(graph: &GraphProto, origin: &Path) -> Result<Input, ModelError> {
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect();
    let input = match inputs.as_slice() {
        [input] => input,
        [] => return Err(misfit(origin, "the graph has no input".into())),
        several => {
            let names: Vec<String> = several.iter().map(|i| format!("`{}`", i.name)).collect();
            return Err(misfit(
                origin,
                format!(
                    "the graph has {} inputs ({}); presage feeds one float32 matrix [rows, features]",
                    several.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let name = input.name.clone();
    let Some(type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(misfit(origin, format!("input `{name}` is not a tensor")));
    };
    if tensor.elem_type != ONNX_FLOAT {
        return Err(misfit(
            origin,
            format!(
                "input `{name}` is {}; presage feeds one float32 matrix [rows, features]",
                onnx_type_name(tensor.elem_type)
            ),
        ));
    }
    let dims = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or_default();
    let width = match dims {
        [_, width] => match width.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(w)) if w >= 0 => Some(w as usize),
            _ => None,
        },
        _ => {
            return Err(misfit(
                origin,
                format!(
                    "input `{name}` has {} dimensions; presage feeds a matrix [rows, features]",
                    dims.len()
                ),
            ));
        }
    };
    let Some(n_features) = width else {
        return Err(misfit(
            origin,
            format!("input `{name}` does not declare its number of features (second dimension)"),
        ));
    };
    Ok(Input { name, n_features })
}

/// What an output of the analysed model can be used as.
enum Role {
    Label,
    Float,
    Other,
}

fn role(fact: &TypedFact) -> Role {
    match fact.datum_type {
        // tract types integer tensors it derives from shapes (argmax over a class axis) as TDim.
        DatumType::I64 | DatumType::I32 | DatumType::TDim | DatumType::String => Role::Label,
        DatumType::F32 => Role::Float,
        _ => Role::Other,
    }
}

/// The fixed width (second dimension) of a `[N, W]` output; `[N]` counts as width 1.
fn width(fact: &TypedFact) -> Option<usize> {
    match fact.rank() {
        1 => Some(1),
        2 => fact.shape[1].to_i64().ok().map(|v| v as usize),
        _ => None,
    }
}

/// Decides classifier or regressor from the analysed model's outputs, and finds
/// the class labels of a classifier.
pub(super) fn find_outputs(
    graph: &GraphProto,
    model: &TypedModel,
    origin: &Path,
) -> Result<(Task, Outputs), ModelError> {
    let facts: Vec<&TypedFact> = (0..model.outputs.len())
        .map(|ix| model.output_fact(ix))
        .collect::<TractResult<_>>()
        .map_err(|e| misfit(origin, format!("{e:#}")))?;
    let name = |ix: usize| graph.output.get(ix).map_or("?", |o| o.name.as_str());
    let describe = || {
        let all: Vec<String> = facts
            .iter()
            .enumerate()
            .map(|(ix, f)| format!("`{}` {:?}{:?}", name(ix), f.datum_type, f.shape))
            .collect();
        all.join(", ")
    };
    let labels: Vec<usize> = (0..facts.len())
        .filter(|&i| matches!(role(facts[i]), Role::Label))
        .collect();
    let floats: Vec<usize> = (0..facts.len())
        .filter(|&i| matches!(role(facts[i]), Role::Float))
        .collect();
    if facts.iter().any(|f| matches!(role(f), Role::Other)) {
        return Err(misfit(
            origin,
            format!(
                "unsupported output types ({}); expected a label and float32 probabilities, or float32 values",
                describe()
            ),
        ));
    }
    match (labels.as_slice(), floats.as_slice()) {
        ([label], [probabilities]) => {
            let fact = facts[*probabilities];
            let n_classes = match (fact.rank(), width(fact)) {
                (2, Some(c)) if c > 0 => c,
                _ => {
                    return Err(misfit(
                        origin,
                        format!(
                            "probabilities output `{}` is {:?}, expected [rows, classes]",
                            name(*probabilities),
                            fact.shape
                        ),
                    ));
                }
            };
            let string_labels = facts[*label].datum_type == DatumType::String;
            let classes = match declared_classes(graph, name(*label)) {
                Some(classes) => classes,
                None if string_labels => {
                    return Err(misfit(
                        origin,
                        format!(
                            "cannot find the class names behind string output `{}`",
                            name(*label)
                        ),
                    ));
                }
                None => ClassLabels::Int((0..n_classes as i64).collect()),
            };
            if classes.len() != n_classes {
                return Err(misfit(
                    origin,
                    format!(
                        "{} class labels for {n_classes} probabilities in output `{}`",
                        classes.len(),
                        name(*probabilities)
                    ),
                ));
            }
            // Integer labels with string classes are indices (`onnx::index_string_labels`).
            if string_labels && !matches!(classes, ClassLabels::Str(_)) {
                return Err(misfit(
                    origin,
                    format!(
                        "label output `{}` is {:?} but the class labels are integers",
                        name(*label),
                        facts[*label].datum_type
                    ),
                ));
            }
            let outputs = Outputs::Classifier {
                label: Some(*label),
                probabilities: *probabilities,
            };
            Ok((Task::Classifier { classes }, outputs))
        }
        ([], [values]) => match width(facts[*values]) {
            Some(targets) if targets > 0 => Ok((
                Task::Regressor { targets },
                Outputs::Regressor { values: *values },
            )),
            _ => Err(misfit(
                origin,
                format!(
                    "values output `{}` is {:?}, expected [rows, targets]",
                    name(*values),
                    facts[*values].shape
                ),
            )),
        },
        _ => Err(misfit(
            origin,
            format!(
                "outputs {}: expected a label and float32 probabilities (a classifier) or one float32 output (a regressor)",
                describe()
            ),
        )),
    }
}

/// True when the graph's label output is only the arg max of its probabilities output
/// (first index on ties) mapped through the class list, as scikit-learn's MLP export
/// computes it: `ArgMax(probabilities, axis=1)` → `ArrayFeatureExtractor(classes, ·)`
/// → casts and reshapes. Such a label can be computed from the probabilities, and the
/// graph run without the label's nodes.
pub(super) fn label_is_argmax(graph: &GraphProto, label: &str, probabilities: &str) -> bool {
    let producers: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut value = label;
    let mut through_classes = false;
    for _ in 0..=graph.node.len() {
        let Some(node) = producers.get(value) else {
            return false;
        };
        match node.op_type.as_str() {
            "ArrayFeatureExtractor" if !through_classes => {
                through_classes = true;
                let Some(index) = node.input.get(1) else {
                    return false;
                };
                value = index;
            }
            "ArgMax" => {
                let int_attribute = |name: &str, default: i64| {
                    node.attribute
                        .iter()
                        .find(|a| a.name == name)
                        .map_or(default, |a| a.i)
                };
                return through_classes
                    && node.input.first().is_some_and(|i| i == probabilities)
                    && matches!(int_attribute("axis", 0), 1 | -1)
                    && int_attribute("select_last_index", 0) == 0;
            }
            op if PASS_THROUGH.contains(&op) => match node.input.first() {
                Some(input) => value = input,
                None => return false,
            },
            _ => return false,
        }
    }
    false
}

/// Operators that hand their first input's values through unchanged (up to type
/// and shape), followed back from the label output.
const PASS_THROUGH: &[&str] = &[
    "Cast",
    "Identity",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
];

/// The class labels the graph declares for its label output: the classifier
/// node's `classlabels_*` attribute, or the constant an `ArrayFeatureExtractor`
/// picks labels from (scikit-learn's MLP export). `None` when the label comes from
/// anything else, e.g. a bare `ArgMax`.
fn declared_classes(graph: &GraphProto, label_output: &str) -> Option<ClassLabels> {
    let producers: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut value = label_output;
    for _ in 0..=graph.node.len() {
        let node = producers.get(value)?;
        if let Some(classes) = classlabels_attribute(node) {
            return Some(classes);
        }
        match node.op_type.as_str() {
            "ArrayFeatureExtractor" => {
                return constant_labels(graph, &producers, node.input.first()?);
            }
            op if PASS_THROUGH.contains(&op) => value = node.input.first()?,
            _ => return None,
        }
    }
    None
}

fn classlabels_attribute(node: &NodeProto) -> Option<ClassLabels> {
    node.attribute.iter().find_map(|a| match a.name.as_str() {
        "classlabels_ints" | "classlabels_int64s" if !a.ints.is_empty() => {
            Some(ClassLabels::Int(a.ints.clone()))
        }
        "classlabels_strings" if !a.strings.is_empty() => Some(ClassLabels::Str(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )),
        _ => None,
    })
}

/// The labels held by an initializer or a `Constant` node named `value`.
fn constant_labels(
    graph: &GraphProto,
    producers: &HashMap<&str, &NodeProto>,
    value: &str,
) -> Option<ClassLabels> {
    if let Some(tensor) = graph.initializer.iter().find(|t| t.name == value) {
        return tensor_labels(tensor);
    }
    let node = producers.get(value).filter(|n| n.op_type == "Constant")?;
    let attribute = node.attribute.first()?;
    match attribute.name.as_str() {
        "value" => tensor_labels(attribute.t.as_ref()?),
        "value_ints" => Some(ClassLabels::Int(attribute.ints.clone())),
        "value_strings" => Some(ClassLabels::Str(
            attribute
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )),
        _ => None,
    }
}

fn tensor_labels(proto: &TensorProto) -> Option<ClassLabels> {
    let tensor = tract_onnx::tensor::load_tensor(&FopenDataResolver, proto, None).ok()?;
    if tensor.datum_type() == DatumType::String {
        let view = tensor.try_as_plain_ram().ok()?;
        return Some(ClassLabels::Str(view.as_slice::<String>().ok()?.to_vec()));
    }
    if !tensor.datum_type().is_integer() {
        return None;
    }
    let ints = tensor.cast_to::<i64>().ok()?;
    let view = ints.try_as_plain_ram().ok()?;
    Some(ClassLabels::Int(view.as_slice::<i64>().ok()?.to_vec()))
}
