//! Multi-layer perceptrons scored natively: a chain of dense layers recognised in
//! the ONNX graph and compiled at load into weight matrices and activations.
//!
//! scikit-learn's `MLPClassifier` / `MLPRegressor` export as `MatMul` + `Add` +
//! activation per layer. tract runs such a graph node by node, paying a per-node
//! cost that dominates for the small layers tabular models have; here a block of
//! rows goes through every layer while it is in cache, with the inner loop over
//! a layer's outputs vectorised (AVX2 + FMA when the CPU has them).

use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

use super::engine::first_arg_max;
use crate::tree::onnx::{FLOAT, tensor_f64};
use crate::{Model, ModelError, ModelInfo, Scores, Task};

/// A layer's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Identity,
    Relu,
    Tanh,
    Sigmoid,
    Softmax,
}

/// `out = activation(input · weights + bias)`.
#[derive(Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    /// `inputs × outputs`, row-major (row `i` holds input `i`'s weight to every output).
    weights: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

/// How the last layer's values become the model's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// One sigmoid output `p`: probabilities `[1 − p, p]`.
    BinarySigmoid,
    /// Softmax over the classes: the probabilities themselves.
    Probabilities,
    /// The values (regression).
    Values,
}

/// A dense network scoring rows without tract.
#[derive(Debug)]
pub(super) struct DenseModel {
    info: ModelInfo,
    layers: Vec<Layer>,
    head: Head,
    widest: usize,
}

/// Rows pushed through all layers together: small enough that the activations of a
/// block stay in L1/L2.
const BLOCK_ROWS: usize = 64;

/// Compiles the chain of dense layers that turns the graph's input into `output`
/// (the probabilities of a classifier, the values of a regressor), or `None` when the
/// graph is anything else (tract scores it then).
pub(super) fn compile(graph: &GraphProto, info: &ModelInfo, output: &str) -> Option<DenseModel> {
    let initializers: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
    for node in &graph.node {
        for input in &node.input {
            consumers.entry(input.as_str()).or_default().push(node);
        }
    }
    let only_consumer = |value: &str| match consumers.get(value).map(Vec::as_slice) {
        Some([node]) => Some(*node),
        _ => None,
    };
    let mut value = graph.input.first()?.name.clone();
    let mut node = only_consumer(&value)?;
    if node.op_type == "Cast" {
        if attribute_int(node, "to") != Some(1) {
            return None;
        }
        value = node.output.first()?.clone();
        node = only_consumer(&value)?;
    }
    let mut layers: Vec<Layer> = Vec::new();
    let mut width = info.n_features;
    loop {
        // MatMul(value, W) then Add(·, b) in either order of operands.
        if node.op_type != "MatMul" || node.input.first() != Some(&value) {
            break;
        }
        let tensor = initializers.get(node.input.get(1)?.as_str())?;
        // `[inputs, outputs]`, the layout MatMul multiplies a row by.
        let [rows, outputs] = tensor.dims.as_slice() else {
            return None;
        };
        let outputs = usize::try_from(*outputs).ok()?;
        if usize::try_from(*rows).ok()? != width || outputs == 0 {
            return None;
        }
        let weights = floats(tensor)?;
        if weights.len() != width * outputs {
            return None;
        }
        let product = node.output.first()?;
        let add = only_consumer(product)?;
        if add.op_type != "Add" {
            return None;
        }
        let bias_name = add.input.iter().find(|i| *i != product)?;
        let bias = floats(initializers.get(bias_name.as_str())?)?;
        if bias.len() != outputs {
            return None;
        }
        value = add.output.first()?.clone();
        let mut activation = Activation::Identity;
        if let Some(next) = only_consumer(&value) {
            activation = match next.op_type.as_str() {
                "Relu" => Activation::Relu,
                "Tanh" => Activation::Tanh,
                "Sigmoid" => Activation::Sigmoid,
                "Softmax" if attribute_int(next, "axis").is_none_or(|a| a == 1 || a == -1) => {
                    Activation::Softmax
                }
                _ => Activation::Identity,
            };
            if activation != Activation::Identity {
                value = next.output.first()?.clone();
            }
        }
        layers.push(Layer {
            inputs: width,
            outputs,
            weights,
            bias,
            activation,
        });
        width = outputs;
        match only_consumer(&value) {
            Some(next) if next.op_type == "MatMul" => node = next,
            _ => break,
        }
    }
    let last = layers.last()?;
    let head = match &info.task {
        Task::Regressor { targets } if value == output && last.outputs == *targets => Head::Values,
        Task::Classifier { classes } if value == output && last.outputs == classes.len() => {
            Head::Probabilities
        }
        Task::Classifier { classes }
            if classes.len() == 2
                && last.outputs == 1
                && last.activation == Activation::Sigmoid
                && is_binary_concat(graph, &value, output, &initializers) =>
        {
            Head::BinarySigmoid
        }
        _ => return None,
    };
    let widest = layers.iter().map(|l| l.outputs).max().unwrap_or(1);
    Some(DenseModel {
        info: ModelInfo {
            engine: "dense",
            ..info.clone()
        },
        layers,
        head,
        widest,
    })
}

/// Whether `output` is `Concat(1 − p, p)` along the class axis: skl2onnx's binary head.
fn is_binary_concat(
    graph: &GraphProto,
    p: &str,
    output: &str,
    initializers: &HashMap<&str, &TensorProto>,
) -> bool {
    let Some(concat) = graph
        .node
        .iter()
        .find(|n| n.op_type == "Concat" && n.output.first().is_some_and(|o| o == output))
    else {
        return false;
    };
    let [negative, positive] = concat.input.as_slice() else {
        return false;
    };
    if positive != p || attribute_int(concat, "axis").is_some_and(|a| a != 1 && a != -1) {
        return false;
    }
    graph.node.iter().any(|n| {
        n.op_type == "Sub"
            && n.output.first() == Some(negative)
            && n.input.get(1).is_some_and(|i| i == p)
            && n.input
                .first()
                .and_then(|one| initializers.get(one.as_str()))
                .and_then(|t| floats(t))
                .is_some_and(|v| v == [1.0])
    })
}

fn attribute_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// A float tensor's values.
fn floats(tensor: &TensorProto) -> Option<Vec<f32>> {
    if tensor.data_type != FLOAT {
        return None;
    }
    let values = tensor_f64(tensor).ok()?;
    Some(values.into_iter().map(|v| v as f32).collect())
}

impl Layer {
    /// `rows` rows of `input` (`rows × self.inputs`) into `out` (`rows × self.outputs`).
    fn forward(&self, input: &[f32], rows: usize, out: &mut [f32]) {
        let input = &input[..rows * self.inputs];
        let out = &mut out[..rows * self.outputs];
        kernel::dense_rows(input, &self.weights, &self.bias, out);
        if self.activation == Activation::Softmax {
            for o in out.chunks_exact_mut(self.outputs) {
                activate(Activation::Softmax, o);
            }
        } else {
            // Element-wise: the whole block at once.
            activate(self.activation, out);
        }
    }
}

fn activate(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Identity => {}
        Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Tanh => values.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Sigmoid => values
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        Activation::Softmax => {
            let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in values.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            values.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

impl Model for DenseModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn score(&self, features: &[f32], rows: usize) -> Result<Scores, ModelError> {
        ModelError::check_shape(features, rows, self.info.n_features)?;
        let last = self
            .layers
            .last()
            .expect("a dense model has layers")
            .outputs;
        let width = match self.head {
            Head::BinarySigmoid => 2,
            Head::Probabilities | Head::Values => last,
        };
        let mut result = vec![0.0f32; rows * width];
        let buffer = BLOCK_ROWS * self.widest.max(self.info.n_features);
        let mut a = vec![0.0f32; buffer];
        let mut b = vec![0.0f32; buffer];
        let n = self.info.n_features;
        for (block, done) in features
            .chunks(BLOCK_ROWS * n)
            .zip((0..rows).step_by(BLOCK_ROWS))
        {
            let count = block.len() / n;
            a[..block.len()].copy_from_slice(block);
            for layer in &self.layers {
                layer.forward(&a, count, &mut b);
                std::mem::swap(&mut a, &mut b);
            }
            let out = &mut result[done * width..(done + count) * width];
            match self.head {
                Head::BinarySigmoid => {
                    for (pair, &p) in out.chunks_exact_mut(2).zip(&a[..count]) {
                        pair[0] = 1.0 - p;
                        pair[1] = p;
                    }
                }
                Head::Probabilities | Head::Values => out.copy_from_slice(&a[..count * width]),
            }
        }
        let mut scores = Scores::with_rows(rows);
        match &self.info.task {
            Task::Classifier { .. } => {
                scores.label_index = first_arg_max(&result, width);
                scores.probabilities = result;
            }
            Task::Regressor { .. } => scores.values = result,
        }
        Ok(scores)
    }
}

/// The one hot loop, compiled twice: for the baseline x86-64 instruction set and
/// for AVX2 with fused multiply-add, chosen once per process by what the CPU has.
#[allow(
    unsafe_code,
    reason = "calling an AVX2 function after checking the CPU has AVX2"
)]
mod kernel {
    use std::sync::OnceLock;

    /// `out[r] = bias + input[r] · weights` for every row `r` (`input` is
    /// `rows × inputs`, `out` is `rows × bias.len()`).
    pub(super) fn dense_rows(input: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            static AVX2_FMA: OnceLock<bool> = OnceLock::new();
            if *AVX2_FMA.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }) {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above), the only
                // requirement of calling a function compiled for them.
                unsafe { dense_rows_avx2(input, weights, bias, out) };
                return;
            }
        }
        portable(input, weights, bias, out);
    }

    /// The baseline version, also the reference the AVX2 one is tested against.
    pub(super) fn portable(input: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
        rows(input, weights, bias, out, |a, b, c| a * b + c);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dense_rows_avx2(input: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
        rows(input, weights, bias, out, f32::mul_add);
    }

    /// Outputs are computed 32 (then 8) at a time with their sums in local arrays,
    /// which the compiler keeps in vector registers across the whole dot product;
    /// four independent sums hide the latency of each multiply-add.
    #[inline(always)]
    fn rows(
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
        fma: impl Fn(f32, f32, f32) -> f32 + Copy,
    ) {
        let width = bias.len();
        let inputs = weights.len() / width;
        for (x, o) in input.chunks_exact(inputs).zip(out.chunks_exact_mut(width)) {
            let mut c = 0;
            while c + 4 * LANES <= width {
                block::<4>(x, weights, bias, o, c, fma);
                c += 4 * LANES;
            }
            while c + LANES <= width {
                block::<1>(x, weights, bias, o, c, fma);
                c += LANES;
            }
            for j in c..width {
                // One output: eight partial sums over the inputs, added at the end.
                let mut acc = [0.0f32; LANES];
                let mut i = 0;
                while i + LANES <= inputs {
                    for k in 0..LANES {
                        acc[k] = fma(x[i + k], weights[(i + k) * width + j], acc[k]);
                    }
                    i += LANES;
                }
                let mut sum = bias[j] + acc.iter().sum::<f32>();
                for (k, &xk) in x.iter().enumerate().skip(i) {
                    sum = fma(xk, weights[k * width + j], sum);
                }
                o[j] = sum;
            }
        }
    }

    const LANES: usize = 8;

    /// Outputs `c .. c + N × 8` of one row.
    #[inline(always)]
    fn block<const N: usize>(
        x: &[f32],
        weights: &[f32],
        bias: &[f32],
        o: &mut [f32],
        c: usize,
        fma: impl Fn(f32, f32, f32) -> f32,
    ) {
        let width = bias.len();
        let mut acc = [[0.0f32; LANES]; N];
        for (n, lanes) in acc.iter_mut().enumerate() {
            lanes.copy_from_slice(&bias[c + n * LANES..c + (n + 1) * LANES]);
        }
        for (i, &xi) in x.iter().enumerate() {
            let row = &weights[i * width + c..i * width + c + N * LANES];
            for (n, lanes) in acc.iter_mut().enumerate() {
                let w: &[f32; LANES] = row[n * LANES..(n + 1) * LANES].try_into().expect("eight");
                for k in 0..LANES {
                    lanes[k] = fma(xi, w[k], lanes[k]);
                }
            }
        }
        for (n, lanes) in acc.iter().enumerate() {
            o[c + n * LANES..c + (n + 1) * LANES].copy_from_slice(lanes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path (when this CPU has it) and the portable one agree to rounding.
    #[test]
    fn kernels_agree() {
        let (inputs, outputs) = (13, 37);
        let x: Vec<f32> = (0..inputs).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..inputs * outputs)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.01).collect();
        let mut fast = vec![0.0; outputs];
        let mut portable = vec![0.0; outputs];
        kernel::dense_rows(&x, &w, &b, &mut fast);
        kernel::portable(&x, &w, &b, &mut portable);
        for (f, p) in fast.iter().zip(&portable) {
            assert!((f - p).abs() <= 1e-5 * p.abs().max(1.0), "{f} vs {p}");
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = vec![1.0, 2.0, 3.0];
        activate(Activation::Softmax, &mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
    }
}
