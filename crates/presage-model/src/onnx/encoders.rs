//! ONNX-ML `OneHotEncoder` and `LabelEncoder`, which tract-onnx does not ship,
//! over numbers: integer categories, and the codes [`super::prepare`] gives the
//! strings of a string input (their `cats_strings` / `keys_strings` rewritten as
//! the same codes). scikit-learn's `OneHotEncoder` and `OrdinalEncoder` export to
//! them, so they front every `ColumnTransformer` pipeline with categorical columns.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::as_f32;
use tract_onnx::tract_hir::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_hir::tract_core::ops::cast;
use tract_onnx::tract_hir::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_hir::tract_core::ops::logic::comp_eq;

/// `OneHotEncoder`: one output column per category, 1 where the value is it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OneHotEncoder {
    categories: Vec<f32>,
}

/// Builds the operator from `cats_int64s` (strings arrive here as codes).
pub(super) fn parse_one_hot(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let Some(categories) = node.get_attr_opt_vec::<i64>("cats_int64s")? else {
        bail!("OneHotEncoder without `cats_int64s` (strings are supported on a string model input)")
    };
    node.expect_attr(
        "cats_int64s",
        !categories.is_empty(),
        "at least one category",
    )?;
    // Categories past 2^24 would not stay distinct as f32.
    node.expect_attr(
        "cats_int64s",
        categories.iter().all(|c| c.unsigned_abs() < 1 << 24),
        "categories below 2^24 in magnitude",
    )?;
    let categories = categories.iter().map(|&c| c as f32).collect();
    Ok((expand(OneHotEncoder { categories }), vec![]))
}

impl Expansion for OneHotEncoder {
    fn name(&self) -> StaticName {
        "OneHotEncoder".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(inputs[0].rank.bex() + 1, &outputs[0].rank)?;
        let width = self.categories.len();
        s.given(&inputs[0].rank, move |s, rank| {
            let rank = rank as usize;
            for axis in 0..rank {
                s.equals(&inputs[0].shape[axis], &outputs[0].shape[axis])?;
            }
            s.equals(&outputs[0].shape[rank], width.to_dim())
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        let x = as_f32(model, prefix, x)?;
        let column =
            model.wire_node(format!("{prefix}.column"), AxisOp::Add(fact.rank()), &[x])?[0];
        let categories =
            model.add_const(format!("{prefix}.categories"), tensor1(&self.categories))?;
        let equal = wire_with_rank_broadcast(
            format!("{prefix}.equal"),
            model,
            TypedBinOp(comp_eq(), None),
            &[column, categories],
        )?;
        model.wire_node(
            format!("{prefix}.to_float"),
            cast::cast(f32::datum_type()),
            &equal,
        )
    }
}

/// What a `LabelEncoder` maps its keys to.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Int { values: Vec<i64>, default: i64 },
    Float { values: Vec<f32>, default: f32 },
}

/// `LabelEncoder`: each key to its value, anything else to the default.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LabelEncoder {
    /// Key (as `f32` bits, `-0` folded into `0`) → index into the values.
    index: HashMap<u32, usize>,
    values: Values,
}

fn key_bits(key: f32) -> u32 {
    // `+ 0.0` turns -0 into 0, which compare equal.
    (key + 0.0).to_bits()
}

/// Builds the operator from the node's numeric keys and values.
pub(super) fn parse_label_encoder(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let keys: Vec<f32> = if let Some(keys) = node.get_attr_opt_vec::<i64>("keys_int64s")? {
        keys.iter().map(|&k| k as f32).collect()
    } else if let Some(keys) = node.get_attr_opt_vec::<f32>("keys_floats")? {
        keys
    } else {
        bail!(
            "LabelEncoder without `keys_int64s` or `keys_floats` (string keys are supported on a string model input)"
        )
    };
    let values = if let Some(values) = node.get_attr_opt_vec::<i64>("values_int64s")? {
        Values::Int {
            values,
            default: node.get_attr_opt("default_int64")?.unwrap_or(-1),
        }
    } else if let Some(values) = node.get_attr_opt_vec::<f32>("values_floats")? {
        Values::Float {
            values,
            default: node.get_attr_opt("default_float")?.unwrap_or(-0.0),
        }
    } else {
        bail!("LabelEncoder without `values_int64s` or `values_floats`")
    };
    let n_values = match &values {
        Values::Int { values, .. } => values.len(),
        Values::Float { values, .. } => values.len(),
    };
    ensure!(
        n_values == keys.len(),
        "LabelEncoder has {} keys and {n_values} values",
        keys.len()
    );
    let index = keys
        .iter()
        .enumerate()
        .map(|(i, &k)| (key_bits(k), i))
        .collect();
    Ok((expand(LabelEncoder { index, values }), vec![]))
}

// tract compares operators to merge identical nodes; values never hold NaN here.
impl Eq for LabelEncoder {}

impl LabelEncoder {
    fn datum_type(&self) -> DatumType {
        match self.values {
            Values::Int { .. } => i64::datum_type(),
            Values::Float { .. } => f32::datum_type(),
        }
    }
}

impl Expansion for LabelEncoder {
    fn name(&self) -> StaticName {
        "LabelEncoder".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, self.datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = inputs[0];
        let x = as_f32(model, prefix, x)?;
        model.wire_node(prefix, self.clone(), &[x])
    }
}

impl Op for LabelEncoder {
    fn name(&self) -> StaticName {
        "LabelEncoder".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LabelEncoder {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let keys = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let at = |k: f32| self.index.get(&key_bits(k)).copied();
        let output = match &self.values {
            Values::Int { values, default } => {
                let mapped: Vec<i64> = keys
                    .iter()
                    .map(|&k| at(k).map_or(*default, |i| values[i]))
                    .collect();
                Tensor::from_shape(input.shape(), &mapped)?
            }
            Values::Float { values, default } => {
                let mapped: Vec<f32> = keys
                    .iter()
                    .map(|&k| at(k).map_or(*default, |i| values[i]))
                    .collect();
                Tensor::from_shape(input.shape(), &mapped)?
            }
        };
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for LabelEncoder {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.datum_type().fact(inputs[0].shape.clone())))
    }

    as_op!();
}
