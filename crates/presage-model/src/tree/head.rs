//! Turning a row's accumulated tree outputs into predictions, the way each reference
//! runtime does: base values, averaging, the link function (sigmoid, softmax, ...)
//! and the predicted label.

use super::value::Value;

/// The ONNX-ML `post_transform` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    /// Identity.
    None,
    /// `1 / (1 + e^-x)` per value.
    Logistic,
    /// Softmax over the values.
    Softmax,
    /// Softmax that leaves values of exactly zero at zero.
    SoftmaxZero,
    /// `sqrt(2) * erfinv(2x - 1)` per value.
    Probit,
}

/// The ONNX-ML `aggregate_function` attribute of a regressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnnxAggregate {
    /// Sum of tree outputs.
    Sum,
    /// Sum divided by the number of trees.
    Average,
    /// Smallest tree output.
    Min,
    /// Largest tree output.
    Max,
}

/// What an XGBoost objective does to the margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XgboostLink {
    /// Regressor: the margin as is.
    Identity,
    /// Regressor: `e^margin` (count:poisson, reg:gamma, reg:tweedie, survival:*).
    Exp,
    /// Regressor: sigmoid (reg:logistic).
    Sigmoid,
    /// Binary classifier: sigmoid gives the probability of class 1 (binary:logistic).
    BinarySigmoid,
    /// Binary classifier: class 1 when the margin is positive (binary:hinge).
    BinaryHinge,
    /// Multiclass classifier: softmax over one margin per class (multi:softprob, multi:softmax).
    Softmax,
}

/// What a LightGBM objective does to the raw score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LightgbmLink {
    /// Regressor: raw score (regression, huber, quantile, lambdarank, ...).
    Identity,
    /// Regressor: `sign(x) * x^2` (regression with `sqrt`).
    Square,
    /// Regressor: `e^x` (poisson, gamma, tweedie).
    Exp,
    /// Regressor: `1 / (1 + e^-x)` (cross_entropy).
    Sigmoid,
    /// Regressor: `ln(1 + e^x)` (cross_entropy_lambda).
    Softplus,
    /// Binary classifier: `1 / (1 + e^(-sigmoid * x))` is the probability of class 1.
    Binary {
        /// The objective's `sigmoid` parameter.
        sigmoid: f64,
    },
    /// Multiclass classifier: softmax over one score per class.
    Softmax,
    /// Multiclass one-vs-all: an independent sigmoid per class.
    OneVsAll {
        /// The objective's `sigmoid` parameter.
        sigmoid: f64,
    },
}

/// What a CatBoost loss does to the raw formula value (`scale * sum + bias`), as
/// CatBoost's `predict` / `predict_proba` report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CatboostLink {
    /// Regressor or ranker: the raw value per dimension (RMSE, MultiRMSE, YetiRank, ...).
    Identity,
    /// Regressor: `e^raw` (Poisson, Tweedie).
    Exp,
    /// Binary classifier: the sigmoid is the probability of class 1 (Logloss,
    /// CrossEntropy); the label is class 1 when the raw value is above `border`.
    Binary {
        /// `logit(binclass_probability_threshold)`, 0 unless the model sets one.
        border: f64,
    },
    /// Multiclass classifier: softmax over one raw value per class (MultiClass).
    Softmax,
    /// Multiclass one-vs-all: an independent sigmoid per class (MultiClassOneVsAll).
    OneVsAll,
}

/// The output rules of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Head {
    /// ONNX `TreeEnsembleRegressor`, as onnxruntime computes it.
    OnnxRegressor {
        /// `post_transform`.
        post: PostTransform,
        /// `aggregate_function`.
        aggregate: OnnxAggregate,
        /// `base_values`.
        base: Vec<f64>,
        /// Number of trees (for `AVERAGE`).
        n_trees: usize,
    },
    /// ONNX `TreeEnsembleClassifier`, as onnxruntime computes it.
    OnnxClassifier {
        /// `post_transform`.
        post: PostTransform,
        /// `base_values`.
        base: Vec<f64>,
        /// Two classes and every weight on the same class id.
        binary_case: bool,
        /// No class weight is negative.
        all_positive: bool,
    },
    /// XGBoost: the margin (base margin already in the accumulators) through the link.
    Xgboost(XgboostLink),
    /// LightGBM: raw scores, averaged over iterations for random forests, through the link.
    Lightgbm {
        /// The objective's link.
        link: LightgbmLink,
        /// `Some(iterations)` for `average_output` models.
        average_over: Option<f64>,
    },
    /// CatBoost: `scale * sum + bias` per dimension, in `f64`, through the link.
    Catboost {
        /// The loss's link.
        link: CatboostLink,
        /// `scale_and_bias[0]`.
        scale: f64,
        /// `scale_and_bias[1]`, one per dimension.
        bias: Vec<f64>,
    },
}

/// Output buffers for a batch, filled row by row.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    /// Predicted class index per row.
    pub label_index: Vec<u32>,
    /// Class probabilities, row-major.
    pub probabilities: Vec<f32>,
    /// Regression values, row-major.
    pub values: Vec<f32>,
}

impl Head {
    /// Appends the prediction for one row, given its accumulators and which of them
    /// received a value.
    pub fn finish<V: Value>(&self, acc: &[V], has: &[bool], out: &mut Sink) {
        match self {
            Head::OnnxRegressor {
                post,
                aggregate,
                base,
                n_trees,
            } => onnx_regressor(*post, *aggregate, base, *n_trees, acc, has, out),
            Head::OnnxClassifier {
                post,
                base,
                binary_case,
                all_positive,
            } => onnx_classifier(*post, base, *binary_case, *all_positive, acc, has, out),
            Head::Xgboost(link) => xgboost(*link, acc, out),
            Head::Lightgbm { link, average_over } => lightgbm(*link, *average_over, acc, out),
            Head::Catboost { link, scale, bias } => catboost(*link, *scale, bias, acc, out),
        }
    }
}

/// onnxruntime's `ComputeLogistic`, in `f32`.
fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// onnxruntime's `ErfInv` approximation (Winitzki), in `f32`.
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

/// onnxruntime's `ComputeProbit`.
fn probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

/// onnxruntime's `ComputeSoftmax`, in place.
fn softmax_f32(values: &mut [f32]) {
    let max = values
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// onnxruntime's `ComputeSoftmaxZero`, in place: exact zeros stay out of the sum.
fn softmax_zero_f32(values: &mut [f32]) {
    let max = values
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

/// onnxruntime's `write_scores` for two or more values.
fn transform_all(post: PostTransform, values: &mut [f32]) {
    match post {
        PostTransform::None => {}
        PostTransform::Logistic => values.iter_mut().for_each(|v| *v = logistic(*v)),
        PostTransform::Probit => values.iter_mut().for_each(|v| *v = probit(*v)),
        PostTransform::Softmax => softmax_f32(values),
        PostTransform::SoftmaxZero => softmax_zero_f32(values),
    }
}

fn onnx_regressor<V: Value>(
    post: PostTransform,
    aggregate: OnnxAggregate,
    base: &[f64],
    n_trees: usize,
    acc: &[V],
    has: &[bool],
    out: &mut Sink,
) {
    let targets = acc.len();
    if targets == 1 {
        // onnxruntime's single-target path: only PROBIT is applied.
        let origin = if base.len() == 1 { base[0] } else { 0.0 };
        let raw = acc[0].to_f64();
        let score = match aggregate {
            OnnxAggregate::Sum => raw + origin,
            OnnxAggregate::Average => raw / n_trees as f64 + origin,
            OnnxAggregate::Min | OnnxAggregate::Max => {
                if has[0] {
                    raw + origin
                } else {
                    origin
                }
            }
        } as f32;
        out.values.push(if post == PostTransform::Probit {
            probit(score)
        } else {
            score
        });
        return;
    }
    let use_base = base.len() == targets;
    let start = out.values.len();
    for k in 0..targets {
        // onnxruntime writes a target no tree reached as 0, base value or not.
        if !has[k] {
            out.values.push(0.0);
            continue;
        }
        let b = if use_base { base[k] } else { 0.0 };
        let v = match aggregate {
            OnnxAggregate::Sum | OnnxAggregate::Min | OnnxAggregate::Max => acc[k].to_f64() + b,
            OnnxAggregate::Average => acc[k].to_f64() / n_trees as f64 + b,
        };
        out.values.push(v as f32);
    }
    transform_all(post, &mut out.values[start..]);
}

fn onnx_classifier<V: Value>(
    post: PostTransform,
    base: &[f64],
    binary_case: bool,
    all_positive: bool,
    acc: &[V],
    has: &[bool],
    out: &mut Sink,
) {
    let classes = acc.len();
    if classes > 2 {
        let mut scores: Vec<f64> = (0..classes).map(|k| acc[k].to_f64()).collect();
        let mut has = has.to_vec();
        for (k, b) in base.iter().enumerate().take(classes) {
            if has[k] {
                scores[k] += b;
            } else {
                scores[k] = *b;
                has[k] = true;
            }
        }
        // The first class with the highest score among those that have one.
        let mut best: Option<usize> = None;
        for k in 0..classes {
            if has[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                best = Some(k);
            }
        }
        out.label_index.push(best.unwrap_or(0) as u32);
        let start = out.probabilities.len();
        out.probabilities
            .extend((0..classes).map(|k| if has[k] { scores[k] as f32 } else { 0.0 }));
        transform_all(post, &mut out.probabilities[start..]);
        return;
    }

    // Two classes: onnxruntime's binary rules, including its quirks.
    let (mut s0, mut s1) = (acc[0].to_f64(), acc[1].to_f64());
    let (has0, mut has1) = (has[0], has[1]);
    let mut two = true;
    let mut add_second: i32 = -1;
    match base.len() {
        2 => {
            if has1 {
                // onnxruntime ignores base_values[0] and the class-1 sum here.
                s1 = base[1] + s0;
                s0 = -s1;
                has1 = true;
            } else {
                s1 += base[1];
                s0 += base[0];
            }
        }
        1 => {
            s0 += base[0];
            two = has1;
        }
        0 => {
            add_second = 3;
            two = has1;
        }
        _ => {}
    }
    let pos = if two && has1 {
        s1
    } else if has0 {
        s0
    } else {
        0.0
    };
    let label = if binary_case {
        let (add, label) = match (all_positive, pos) {
            (true, p) if p > 0.5 => (0, 1),
            (true, _) => (1, 0),
            (false, p) if p > 0.0 => (2, 1),
            (false, _) => (3, 0),
        };
        add_second = add;
        label
    } else {
        u32::from(pos > 0.0)
    };
    out.label_index.push(label);
    let v0 = if has0 { s0 as f32 } else { 0.0 };
    if two {
        let v1 = if has1 { s1 as f32 } else { 0.0 };
        let start = out.probabilities.len();
        out.probabilities.extend([v0, v1]);
        transform_all(post, &mut out.probabilities[start..]);
        return;
    }
    let pair = if post == PostTransform::Probit {
        [probit(v0), 0.0]
    } else {
        match add_second {
            0 | 1 => [1.0 - v0, v0],
            2 | 3 if post == PostTransform::Logistic => [logistic(-v0), logistic(v0)],
            2 | 3 => [-v0, v0],
            _ => [v0, 0.0],
        }
    };
    out.probabilities.extend(pair);
}

/// XGBoost's sigmoid, in `f32`.
fn xgboost_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn xgboost<V: Value>(link: XgboostLink, acc: &[V], out: &mut Sink) {
    let margin = acc[0].to_f32();
    match link {
        XgboostLink::Identity => out.values.push(margin),
        XgboostLink::Exp => out.values.push(margin.exp()),
        XgboostLink::Sigmoid => out.values.push(xgboost_sigmoid(margin)),
        XgboostLink::BinarySigmoid | XgboostLink::BinaryHinge => {
            let p = if link == XgboostLink::BinaryHinge {
                if margin > 0.0 { 1.0 } else { 0.0 }
            } else {
                xgboost_sigmoid(margin)
            };
            out.probabilities.extend([1.0 - p, p]);
            out.label_index.push(u32::from(p > 0.5));
        }
        XgboostLink::Softmax => {
            // XGBoost's softmax: f32 exponentials, summed in f64.
            let start = out.probabilities.len();
            out.probabilities.extend(acc.iter().map(|v| v.to_f32()));
            let probs = &mut out.probabilities[start..];
            let max = probs.iter().fold(probs[0], |m, &v| m.max(v));
            let mut sum = 0.0f64;
            for p in probs.iter_mut() {
                *p = (*p - max).exp();
                sum += f64::from(*p);
            }
            let sum = sum as f32;
            for p in probs.iter_mut() {
                *p /= sum;
            }
            out.label_index
                .push(argmax(probs.iter().map(|&p| f64::from(p))));
        }
    }
}

/// Index of the first largest value (numpy's `argmax`).
fn argmax(values: impl Iterator<Item = f64>) -> u32 {
    let mut best = (0u32, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 || i == 0 {
            best = (i as u32, v);
        }
    }
    best.0
}

fn lightgbm<V: Value>(link: LightgbmLink, average_over: Option<f64>, acc: &[V], out: &mut Sink) {
    let raw = |k: usize| {
        let v = acc[k].to_f64();
        average_over.map_or(v, |n| v / n)
    };
    match link {
        LightgbmLink::Identity => out.values.push(raw(0) as f32),
        LightgbmLink::Square => {
            let x = raw(0);
            out.values.push((x.signum() * x * x) as f32);
        }
        LightgbmLink::Exp => out.values.push(raw(0).exp() as f32),
        LightgbmLink::Sigmoid => out.values.push((1.0 / (1.0 + (-raw(0)).exp())) as f32),
        LightgbmLink::Softplus => out.values.push(raw(0).exp().ln_1p() as f32),
        LightgbmLink::Binary { sigmoid } => {
            let p = 1.0 / (1.0 + (-sigmoid * raw(0)).exp());
            out.probabilities.extend([(1.0 - p) as f32, p as f32]);
            out.label_index.push(argmax([1.0 - p, p].into_iter()));
        }
        LightgbmLink::Softmax => {
            let scores: Vec<f64> = (0..acc.len()).map(raw).collect();
            let max = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let exps: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            out.probabilities
                .extend(exps.iter().map(|e| (e / sum) as f32));
            out.label_index.push(argmax(exps.iter().map(|e| e / sum)));
        }
        LightgbmLink::OneVsAll { sigmoid } => {
            let probs: Vec<f64> = (0..acc.len())
                .map(|k| 1.0 / (1.0 + (-sigmoid * raw(k)).exp()))
                .collect();
            out.probabilities.extend(probs.iter().map(|&p| p as f32));
            out.label_index.push(argmax(probs.into_iter()));
        }
    }
}

fn catboost<V: Value>(link: CatboostLink, scale: f64, bias: &[f64], acc: &[V], out: &mut Sink) {
    let raw = |k: usize| scale * acc[k].to_f64() + bias[k];
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    match link {
        CatboostLink::Identity => out.values.extend((0..acc.len()).map(|k| raw(k) as f32)),
        CatboostLink::Exp => out.values.push(raw(0).exp() as f32),
        CatboostLink::Binary { border } => {
            let x = raw(0);
            let p = sigmoid(x);
            out.probabilities.extend([(1.0 - p) as f32, p as f32]);
            out.label_index.push(u32::from(x > border));
        }
        CatboostLink::Softmax => {
            let scores: Vec<f64> = (0..acc.len()).map(raw).collect();
            let max = scores.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let exps: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            out.probabilities
                .extend(exps.iter().map(|e| (e / sum) as f32));
            out.label_index.push(argmax(scores.into_iter()));
        }
        CatboostLink::OneVsAll => {
            let scores: Vec<f64> = (0..acc.len()).map(raw).collect();
            out.probabilities
                .extend(scores.iter().map(|&x| sigmoid(x) as f32));
            out.label_index.push(argmax(scores.into_iter()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_is_symmetric_and_bounded() {
        assert_eq!(logistic(0.0), 0.5);
        assert!((logistic(2.0) + logistic(-2.0) - 1.0).abs() < 1e-7);
        assert_eq!(logistic(200.0), 1.0);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_roughly() {
        // onnxruntime's approximation is good to about 1e-3.
        assert!((probit(0.975) - 1.959_964).abs() < 5e-3);
        assert!(probit(0.5).abs() < 1e-6);
    }

    #[test]
    fn binary_onnx_with_one_class_column_follows_onnxruntime() {
        // XGBoost-style: weights on class 0 only, mixed signs, logistic.
        let mut out = Sink::default();
        onnx_classifier(
            PostTransform::Logistic,
            &[0.5],
            true,
            false,
            &[1.0f32, 0.0],
            &[true, false],
            &mut out,
        );
        assert_eq!(out.label_index, [1]);
        assert!((out.probabilities[1] - logistic(1.5)).abs() < 1e-7);
        assert!((out.probabilities[0] - logistic(-1.5)).abs() < 1e-7);

        // Random-forest style: positive weights, no transform: [1 - p, p].
        let mut out = Sink::default();
        onnx_classifier(
            PostTransform::None,
            &[],
            true,
            true,
            &[0.3f32, 0.0],
            &[true, false],
            &mut out,
        );
        assert_eq!(out.label_index, [0]);
        assert_eq!(out.probabilities, [0.7, 0.3]);
    }
}
