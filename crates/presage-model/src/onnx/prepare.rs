//! Rewrites an exporter's graph into the form presage's engines take: one float
//! matrix in; class probabilities, or values, out.
//!
//! Two things exporters write every day do not fit that form:
//! - a `ZipMap` after the probabilities (skl2onnx by default, CatBoost always)
//!   turns them into one map per row. The probabilities it reads, in the same class
//!   order, are what presage outputs, so the node is dropped.
//! - several named inputs, some of them strings (a scikit-learn `ColumnTransformer`
//!   pipeline). They become column slices of one float matrix: numbers cast back to
//!   the input's own type, strings as codes. A string may only reach category
//!   encoders (`OneHotEncoder`, `LabelEncoder`, `CategoryMapper`) through
//!   shape-only operators, so the encoders are rewritten to read the codes, and the
//!   scorer writes each string's code into the matrix ([`InputKind::Category`]).
//!   Strings never enter the engines, which keeps scoring on numbers only.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

use crate::{Categories, InputKind, ModelError, ModelFormat, ModelInput};

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const STRING: i32 = 8;
const BOOL: i32 = 9;
const DOUBLE: i32 = 11;

/// The core operator set imported for the nodes the rewrite adds, where the model
/// imports none.
const ADDED_OPSET: i64 = 13;

/// The matrix input of a rewritten graph.
const MATRIX_INPUT: &str = "presage.features";

/// Operators that move a string input's values around without reading them.
const SHAPE_ONLY: &[&str] = &[
    "Identity",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Transpose",
    "Expand",
    "Tile",
    "Gather",
    "Slice",
];

/// The graph as the engines take it.
pub(super) struct Prepared {
    /// The rewritten model; `None` when the file needed no change.
    pub(super) proto: Option<ModelProto>,
    /// The named inputs, in matrix-column order; empty for a graph that takes one
    /// float matrix.
    pub(super) inputs: Vec<ModelInput>,
}

fn misfit(origin: &Path, reason: String) -> ModelError {
    ModelError::NotAModel {
        path: origin.to_owned(),
        format: ModelFormat::Onnx,
        reason,
    }
}

/// Drops `ZipMap` outputs and merges several or non-float inputs into one matrix.
pub(super) fn prepare(original: &ModelProto, origin: &Path) -> Result<Prepared, ModelError> {
    let mut proto: Option<ModelProto> = None;
    if original.graph.as_ref().is_some_and(has_zipmap_output) {
        let mut copy = original.clone();
        if let Some(graph) = copy.graph.as_mut() {
            drop_zipmap_outputs(graph);
        }
        proto = Some(copy);
    }
    let Some(graph) = proto.as_ref().unwrap_or(original).graph.as_ref() else {
        return Ok(Prepared {
            proto,
            inputs: Vec::new(),
        });
    };
    let declared = declared_inputs(graph);
    // One float or double matrix: the engines take it as it is.
    if let [only] = declared.as_slice()
        && matches!(only.elem_type, Some(FLOAT | DOUBLE) | None)
    {
        return Ok(Prepared {
            proto,
            inputs: Vec::new(),
        });
    }
    if declared.is_empty() {
        return Ok(Prepared {
            proto,
            inputs: Vec::new(),
        });
    }
    let mut rewritten = proto.unwrap_or_else(|| original.clone());
    let inputs = merge_inputs(&mut rewritten, origin)?;
    Ok(Prepared {
        proto: Some(rewritten),
        inputs,
    })
}

fn is_zipmap(node: &NodeProto) -> bool {
    node.domain == "ai.onnx.ml" && node.op_type == "ZipMap"
}

fn has_zipmap_output(graph: &GraphProto) -> bool {
    graph
        .node
        .iter()
        .any(|n| is_zipmap(n) && graph.output.iter().any(|o| n.output.contains(&o.name)))
}

/// Replaces each graph output a `ZipMap` produces (and nothing else reads) by the
/// probabilities the `ZipMap` reads.
fn drop_zipmap_outputs(graph: &mut GraphProto) {
    let read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    let GraphProto { node, output, .. } = graph;
    node.retain(|n| {
        let ([input], [zipped]) = (n.input.as_slice(), n.output.as_slice()) else {
            return true;
        };
        if !is_zipmap(n) || read.contains(zipped) {
            return true;
        }
        let Some(at) = output.iter().position(|o| &o.name == zipped) else {
            return true;
        };
        if output.iter().any(|o| &o.name == input) {
            output.remove(at);
        } else {
            output[at] = ValueInfoProto {
                name: input.clone(),
                ..ValueInfoProto::default()
            };
        }
        false
    });
}

/// A feature input as the graph declares it.
struct Declared {
    name: String,
    /// ONNX element type, when the input is a tensor that says.
    elem_type: Option<i32>,
    /// Its dimensions: `Some(n)` fixed, `None` symbolic or missing.
    dims: Option<Vec<Option<i64>>>,
}

/// The graph inputs that are not fed by an initializer.
fn declared_inputs(graph: &GraphProto) -> Vec<Declared> {
    graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .map(|i| {
            let tensor = match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => Some(t),
                _ => None,
            };
            Declared {
                name: i.name.clone(),
                elem_type: tensor.map(|t| t.elem_type),
                dims: tensor.and_then(|t| t.shape.as_ref()).map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(dimension::Value::DimValue(v)) => Some(v),
                            _ => None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

fn type_name(elem_type: i32) -> &'static str {
    match elem_type {
        FLOAT => "float32",
        DOUBLE => "float64",
        INT32 => "int32",
        INT64 => "int64",
        STRING => "string",
        BOOL => "bool",
        _ => "an unsupported type",
    }
}

/// The version of the default (`ai.onnx`) operator set the model imports, after
/// importing one where the model imports none (CatBoost's export uses only
/// `ai.onnx.ml`), since the rewrite adds core operators.
fn default_opset(proto: &mut ModelProto) -> i64 {
    if let Some(import) = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        return import.version;
    }
    proto.opset_import.push(OperatorSetIdProto {
        domain: String::new(),
        version: ADDED_OPSET,
    });
    ADDED_OPSET
}

fn ints_attribute(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..AttributeProto::default()
    }
}

fn int_attribute(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i,
        ..AttributeProto::default()
    }
}

fn int64_initializer(name: String, value: i64) -> TensorProto {
    TensorProto {
        name,
        dims: vec![1],
        data_type: INT64,
        int64_data: vec![value],
        ..TensorProto::default()
    }
}

/// Replaces the graph's inputs by one float matrix `[N, Σ widths]`, each former
/// input a slice of its columns; returns the inputs in column order.
fn merge_inputs(proto: &mut ModelProto, origin: &Path) -> Result<Vec<ModelInput>, ModelError> {
    let opset = default_opset(proto);
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(Vec::new());
    };
    let declared = declared_inputs(graph);
    let mut widths = Vec::with_capacity(declared.len());
    for input in &declared {
        let name = &input.name;
        let elem_type = input
            .elem_type
            .ok_or_else(|| misfit(origin, format!("input `{name}` is not a tensor")))?;
        if !matches!(elem_type, FLOAT | DOUBLE | INT32 | INT64 | BOOL | STRING) {
            return Err(misfit(
                origin,
                format!(
                    "input `{name}` is {} (element type {elem_type}); presage feeds numbers and strings",
                    type_name(elem_type)
                ),
            ));
        }
        let width = match input.dims.as_deref() {
            Some([_, Some(width)]) if *width >= 1 => *width as usize,
            Some([_, _]) | None => {
                return Err(misfit(
                    origin,
                    format!(
                        "input `{name}` does not declare its number of columns (second dimension)"
                    ),
                ));
            }
            Some(dims) => {
                return Err(misfit(
                    origin,
                    format!(
                        "input `{name}` has {} dimensions; presage feeds each input as [rows, columns]",
                        dims.len()
                    ),
                ));
            }
        };
        widths.push((elem_type, width));
    }

    let string_inputs: Vec<&str> = declared
        .iter()
        .zip(&widths)
        .filter(|(_, (t, _))| *t == STRING)
        .map(|(d, _)| d.name.as_str())
        .collect();
    let (mut categories, coded) = encode_strings(graph, &string_inputs, origin)?;

    let mut front = Vec::new();
    let mut inputs = Vec::with_capacity(declared.len());
    let mut offset = 0i64;
    for (input, &(elem_type, width)) in declared.iter().zip(&widths) {
        let name = &input.name;
        let sliced = if matches!(elem_type, FLOAT | STRING) {
            name.clone()
        } else {
            format!("{name}.presage_f32")
        };
        let end = offset + width as i64;
        let mut slice = NodeProto {
            name: format!("{name}.presage_slice"),
            op_type: "Slice".to_owned(),
            input: vec![MATRIX_INPUT.to_owned()],
            output: vec![sliced.clone()],
            ..NodeProto::default()
        };
        if opset >= 10 {
            for (part, value) in [("starts", offset), ("ends", end), ("axes", 1)] {
                let tensor = format!("{name}.presage_{part}");
                slice.input.push(tensor.clone());
                graph.initializer.push(int64_initializer(tensor, value));
            }
        } else {
            slice.attribute = vec![
                ints_attribute("starts", vec![offset]),
                ints_attribute("ends", vec![end]),
                ints_attribute("axes", vec![1]),
            ];
        }
        front.push(slice);
        if sliced != *name {
            front.push(NodeProto {
                name: format!("{name}.presage_cast"),
                op_type: "Cast".to_owned(),
                input: vec![sliced],
                output: vec![name.clone()],
                attribute: vec![int_attribute("to", i64::from(elem_type))],
                ..NodeProto::default()
            });
        }
        let kind = match categories.remove(name.as_str()) {
            Some(categories) => InputKind::Category(categories),
            None => InputKind::Number,
        };
        inputs.push(ModelInput {
            name: name.clone(),
            width,
            kind,
        });
        offset = end;
    }

    let declared_names: HashSet<&str> = declared.iter().map(|d| d.name.as_str()).collect();
    graph
        .input
        .retain(|i| !declared_names.contains(i.name.as_str()));
    graph.input.insert(
        0,
        ValueInfoProto {
            name: MATRIX_INPUT.to_owned(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: FLOAT,
                    shape: Some(TensorShapeProto {
                        dim: vec![
                            Dimension {
                                value: Some(dimension::Value::DimParam("N".to_owned())),
                                ..Dimension::default()
                            },
                            Dimension {
                                value: Some(dimension::Value::DimValue(offset)),
                                ..Dimension::default()
                            },
                        ],
                    }),
                })),
                ..TypeProto::default()
            }),
            ..ValueInfoProto::default()
        },
    );
    // Types declared for values that now carry codes would contradict them.
    graph
        .value_info
        .retain(|v| !coded.contains(&v.name) && !declared_names.contains(v.name.as_str()));
    front.append(&mut graph.node);
    graph.node = front;
    Ok(inputs)
}

/// Follows each string input to the encoders that read it and rewrites them to
/// read codes. Returns each string input's categories and the values that carry
/// codes.
fn encode_strings(
    graph: &mut GraphProto,
    string_inputs: &[&str],
    origin: &Path,
) -> Result<(HashMap<String, Categories>, HashSet<String>), ModelError> {
    // Which string inputs (by index) each value carries.
    let mut carried: HashMap<String, Vec<usize>> = string_inputs
        .iter()
        .enumerate()
        .map(|(i, name)| ((*name).to_owned(), vec![i]))
        .collect();
    let mut categories = vec![Categories::default(); string_inputs.len()];
    let mut codes: HashMap<String, u32> = HashMap::new();
    // Each encoder's strings with their codes; a string keeps its code across encoders.
    let mut intern = |strings: &[Vec<u8>]| -> Vec<(String, u32)> {
        strings
            .iter()
            .map(|s| {
                let text = String::from_utf8_lossy(s).into_owned();
                let next = codes.len() as u32;
                let code = *codes.entry(text.clone()).or_insert(next);
                (text, code)
            })
            .collect()
    };
    let code_list = |coded: &[(String, u32)]| -> Vec<i64> {
        coded.iter().map(|&(_, c)| i64::from(c)).collect()
    };
    for node in &mut graph.node {
        let reads: Vec<usize> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, name)| carried.contains_key(name.as_str()))
            .map(|(position, _)| position)
            .collect();
        if reads.is_empty() {
            continue;
        }
        let mut from: Vec<usize> = reads
            .iter()
            .flat_map(|&p| carried[node.input[p].as_str()].clone())
            .collect();
        from.sort_unstable();
        from.dedup();
        let input_names = from
            .iter()
            .map(|&i| format!("`{}`", string_inputs[i]))
            .collect::<Vec<_>>()
            .join(", ");
        let (node_name, op, domain) =
            (node.name.clone(), node.op_type.clone(), node.domain.clone());
        let refuse = |why: &str| {
            misfit(
                origin,
                format!(
                    "string input {input_names} reaches node `{node_name}` ({op}){why}; presage feeds strings only to category encoders (OneHotEncoder, LabelEncoder, CategoryMapper)"
                ),
            )
        };
        let all_inputs_carried = reads.len() == node.input.iter().filter(|i| !i.is_empty()).count();
        let mut encoder: Option<Vec<(String, u32)>> = None;
        match (domain.as_str(), op.as_str()) {
            ("" | "ai.onnx", "Concat") if all_inputs_carried => {}
            ("" | "ai.onnx", op) if SHAPE_ONLY.contains(&op) && reads == [0] => {}
            ("" | "ai.onnx", "Concat") => return Err(refuse(" beside numbers")),
            ("ai.onnx.ml", "OneHotEncoder") => {
                let cats = take_strings(node, "cats_strings")
                    .ok_or_else(|| refuse(" without `cats_strings`"))?;
                let coded = intern(&cats);
                node.attribute
                    .push(ints_attribute("cats_int64s", code_list(&coded)));
                let zeros = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "zeros")
                    .map_or(1, |a| a.i);
                for &i in &from {
                    categories[i].strict |= zeros == 0;
                }
                encoder = Some(coded);
            }
            ("ai.onnx.ml", "LabelEncoder") => {
                if node.attribute.iter().any(|a| a.name == "values_strings") {
                    return Err(refuse(" and maps them to strings"));
                }
                let keys = take_strings(node, "keys_strings")
                    .ok_or_else(|| refuse(" without `keys_strings`"))?;
                let coded = intern(&keys);
                node.attribute
                    .push(ints_attribute("keys_int64s", code_list(&coded)));
                encoder = Some(coded);
            }
            ("ai.onnx.ml", "CategoryMapper") => {
                // Strings to integers: the same lookup as a LabelEncoder of codes.
                let cats = take_strings(node, "cats_strings")
                    .ok_or_else(|| refuse(" without `cats_strings`"))?;
                let values = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "cats_int64s")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default();
                let default = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "default_int64")
                    .map_or(-1, |a| a.i);
                let coded = intern(&cats);
                node.op_type = "LabelEncoder".to_owned();
                node.attribute = vec![
                    ints_attribute("keys_int64s", code_list(&coded)),
                    ints_attribute("values_int64s", values),
                    int_attribute("default_int64", default),
                ];
                encoder = Some(coded);
            }
            _ => return Err(refuse("")),
        }
        match encoder {
            Some(coded) => {
                for &i in &from {
                    let known = &mut categories[i];
                    known.codes.extend(coded.iter().cloned());
                    if !known.encoders.contains(&op) {
                        known.encoders.push(op.clone());
                    }
                }
            }
            None => {
                for output in node.output.iter().filter(|o| !o.is_empty()) {
                    carried.insert(output.clone(), from.clone());
                }
            }
        }
    }
    let coded = carried.into_keys().collect();
    let by_name = string_inputs
        .iter()
        .map(|s| (*s).to_owned())
        .zip(categories)
        .collect();
    Ok((by_name, coded))
}

/// Removes the string-list attribute `name` from the node, returning its values;
/// `None` when it is missing or empty.
fn take_strings(node: &mut NodeProto, name: &str) -> Option<Vec<Vec<u8>>> {
    let at = node
        .attribute
        .iter()
        .position(|a| a.name == name && !a.strings.is_empty())?;
    Some(node.attribute.remove(at).strings)
}
