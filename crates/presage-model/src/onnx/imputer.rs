//! ONNX-ML `Imputer`, which tract-onnx does not ship: every input value equal to
//! `replaced_value_float` is replaced by `imputed_value_floats` (one value for all
//! features, or one per feature on the last axis). scikit-learn's `SimpleImputer`
//! exports to it with NaN as the replaced value, the usual way a pipeline makes
//! room for presage's NaN-means-missing inputs.
//!
//! It expands into a condition (`IsNaN` when the replaced value is NaN, since NaN
//! equals nothing, an equality otherwise) and a select. Only float inputs are
//! implemented; the integer form is refused at load.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_hir::tract_core::ops::logic::{Iff, comp_eq};
use tract_onnx::tract_hir::tract_core::ops::math;

/// The `Imputer` node as parsed, float form.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Imputer {
    imputed: Vec<f32>,
    replaced: f32,
}

/// Builds the operator from the node's float attributes.
pub(super) fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let imputed: Option<Vec<f32>> = node.get_attr_opt_vec("imputed_value_floats")?;
    let Some(imputed) = imputed.filter(|v| !v.is_empty()) else {
        bail!("Imputer without `imputed_value_floats` (integer imputation is not supported)")
    };
    let replaced: f32 = node.get_attr_opt("replaced_value_float")?.unwrap_or(0.0);
    Ok((expand(Imputer { imputed, replaced }), vec![]))
}

impl Expansion for Imputer {
    fn name(&self) -> StaticName {
        "Imputer".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
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
        let fact = model.outlet_fact(x)?.clone();
        ensure!(
            fact.rank() >= 1,
            "Imputer input must have at least one axis"
        );
        let width = fact.shape.last().and_then(|d| d.to_usize().ok());
        if let Some(width) = width {
            let n = self.imputed.len();
            ensure!(
                n == 1 || n == width,
                "Imputer has {n} imputed values for {width} features"
            );
        }
        let missing = if self.replaced.is_nan() {
            model.wire_node(format!("{prefix}.is_nan"), math::is_nan(), &[x])?
        } else {
            let replaced = model.add_const(format!("{prefix}.replaced"), tensor0(self.replaced))?;
            wire_with_rank_broadcast(
                format!("{prefix}.is_replaced"),
                model,
                TypedBinOp(comp_eq(), None),
                &[x, replaced],
            )?
        };
        let imputed = model.add_const(format!("{prefix}.imputed"), tensor1(&self.imputed))?;
        wire_with_rank_broadcast(
            format!("{prefix}.select"),
            model,
            Iff,
            &[missing[0], imputed, x],
        )
    }
}
