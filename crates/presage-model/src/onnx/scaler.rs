//! ONNX-ML `Scaler`, which tract-onnx does not ship: `Y = (X - offset) * scale`
//! over the last axis, in `f32`. scikit-learn's `StandardScaler` and `MinMaxScaler`
//! export to it, so it fronts most linear and MLP pipelines.
//!
//! It expands into two core broadcasting operations (a subtraction, then a
//! multiplication), in the order the specification and onnxruntime use, so the
//! rounding is the same. `offset` and `scale` each hold either one value for every
//! feature or one value per feature (the last axis).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::as_f32;
use tract_onnx::tract_hir::tract_core::ops::math;

/// The `Scaler` node as parsed: both vectors as written in the node.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

/// Builds the operator from the node's `offset` and `scale` attributes (both
/// optional in the specification: no offset subtracts 0, no scale multiplies by 1).
pub(super) fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    node.expect_attr("offset", !offset.is_empty(), "at least one value")?;
    node.expect_attr("scale", !scale.is_empty(), "at least one value")?;
    Ok((expand(Scaler { offset, scale }), vec![]))
}

impl Scaler {
    /// Checks a per-feature vector against the input's last axis, where it is known.
    fn check_width(&self, what: &str, len: usize, width: Option<usize>) -> TractResult<()> {
        match width {
            Some(width) if len != 1 && len != width => {
                bail!("Scaler `{what}` has {len} values for {width} features")
            }
            _ => Ok(()),
        }
    }
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
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
        ensure!(fact.rank() >= 1, "Scaler input must have at least one axis");
        let width = fact.shape.last().and_then(|d| d.to_usize().ok());
        self.check_width("offset", self.offset.len(), width)?;
        self.check_width("scale", self.scale.len(), width)?;
        let x = as_f32(model, prefix, x)?;
        let offset = model.add_const(format!("{prefix}.offset"), tensor1(&self.offset))?;
        let scale = model.add_const(format!("{prefix}.scale"), tensor1(&self.scale))?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, math::sub(), &[x, offset])?;
        wire_with_rank_broadcast(
            format!("{prefix}.mul"),
            model,
            math::mul(),
            &[centred[0], scale],
        )
    }
}
