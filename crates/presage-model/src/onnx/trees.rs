//! ONNX-ML tree ensembles as operators of the general engine, evaluated by the
//! native tree evaluator.
//!
//! A graph that is only an ensemble goes to the tree evaluator whole
//! (`tree::onnx::try_load`). Where other nodes surround it (a `Scaler` in front,
//! an `Exp` behind, as scikit-learn pipelines and XGBoost's Poisson, Gamma and
//! Tweedie exports write), tract runs the graph and calls the native evaluator for
//! each ensemble node, so the trees score as fast as a bare ensemble and the rest
//! of the graph keeps tract's semantics. The ensemble is compiled when tract wires
//! the node, once the width of its input is known.

use std::fmt;
use std::sync::Arc;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::as_f32;

use crate::{ClassLabels, Model, Task};

/// The ONNX-ML tree-ensemble operators.
pub(super) const OPERATORS: [&str; 3] = [
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "TreeEnsemble",
];

/// Whether the node is an ONNX-ML tree ensemble.
pub(super) fn is_ensemble(node: &NodeProto) -> bool {
    node.domain == "ai.onnx.ml" && OPERATORS.contains(&node.op_type.as_str())
}

/// A `TreeEnsembleClassifier`, `TreeEnsembleRegressor` or `TreeEnsemble` node, as
/// parsed: checked once at parse, compiled at wiring.
#[derive(Debug, Clone)]
pub(super) struct NativeEnsemble {
    node: NodeProto,
    task: Task,
}

/// Parses the node with the native parser (so a malformed ensemble fails here,
/// naming the node) and keeps it for wiring.
pub(super) fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let task = crate::tree::onnx::ensemble_task(node)
        .map_err(|e| format_err!("tree ensemble `{}`: {e}", node.name))?;
    Ok((
        expand(NativeEnsemble {
            node: node.clone(),
            task,
        }),
        vec![],
    ))
}

impl Expansion for NativeEnsemble {
    fn name(&self) -> StaticName {
        "NativeTreeEnsemble".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(match self.task {
            Task::Classifier { .. } => 2,
            Task::Regressor { .. } => 1,
        })
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        match &self.task {
            Task::Classifier { classes } => {
                check_output_arity(outputs, 2)?;
                s.equals(&outputs[0].datum_type, i64::datum_type())?;
                s.equals(&outputs[0].rank, 1)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].datum_type, f32::datum_type())?;
                s.equals(&outputs[1].rank, 2)?;
                s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[1].shape[1], classes.len().to_dim())?;
            }
            Task::Regressor { targets } => {
                check_output_arity(outputs, 1)?;
                s.equals(&outputs[0].datum_type, f32::datum_type())?;
                s.equals(&outputs[0].rank, 2)?;
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
                s.equals(&outputs[0].shape[1], targets.to_dim())?;
            }
        }
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
            fact.rank() == 2,
            "tree ensemble `{}` reads {:?}, expected [rows, features]",
            self.node.name,
            fact.shape
        );
        let width = fact.shape[1].to_usize().map_err(|_| {
            format_err!(
                "tree ensemble `{}` reads {:?}, whose number of features is not fixed",
                self.node.name,
                fact.shape
            )
        })?;
        // onnxruntime compares double inputs in double; the thresholds are rounded the same way.
        let double = fact.datum_type == f64::datum_type();
        let x = as_f32(model, prefix, x)?;
        let ensemble = crate::tree::onnx::ensemble_model(&self.node, Some(width), double)
            .map_err(|e| format_err!("tree ensemble `{}`: {e}", self.node.name))?;
        let labels = match &self.task {
            Task::Classifier {
                classes: ClassLabels::Int(labels),
            } => Some(labels.clone()),
            // String labels leave as their indices; the engine maps them back.
            Task::Classifier {
                classes: ClassLabels::Str(labels),
            } => Some((0..labels.len() as i64).collect()),
            Task::Regressor { .. } => None,
        };
        model.wire_node(
            prefix,
            NativeEnsembleOp {
                model: Arc::from(ensemble),
                labels,
            },
            &[x],
        )
    }
}

/// The compiled ensemble in a tract plan.
#[derive(Clone)]
struct NativeEnsembleOp {
    model: Arc<dyn Model>,
    /// A classifier's label output value per class index.
    labels: Option<Vec<i64>>,
}

impl fmt::Debug for NativeEnsembleOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeEnsembleOp")
            .field("info", self.model.info())
            .finish()
    }
}

impl PartialEq for NativeEnsembleOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.model, &other.model)
    }
}

impl Eq for NativeEnsembleOp {}

impl Op for NativeEnsembleOp {
    fn name(&self) -> StaticName {
        "NativeTreeEnsemble".into()
    }

    op_as_typed_op!();
}

impl EvalOp for NativeEnsembleOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let rows = input.shape()[0];
        let features = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let scores = self
            .model
            .score(features, rows)
            .map_err(|e| format_err!("{e}"))?;
        match (&self.labels, &self.model.info().task) {
            (Some(labels), Task::Classifier { classes }) => {
                let label: Vec<i64> = scores
                    .label_index
                    .iter()
                    .map(|&i| labels[i as usize])
                    .collect();
                Ok(tvec!(
                    Tensor::from_shape(&[rows], &label)?.into_tvalue(),
                    Tensor::from_shape(&[rows, classes.len()], &scores.probabilities)?
                        .into_tvalue()
                ))
            }
            (_, Task::Regressor { targets }) => Ok(tvec!(
                Tensor::from_shape(&[rows, *targets], &scores.values)?.into_tvalue()
            )),
            _ => bail!("a classifier without labels"),
        }
    }
}

impl TypedOp for NativeEnsembleOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(match &self.model.info().task {
            Task::Classifier { classes } => tvec!(
                i64::fact([rows.clone()]),
                f32::fact([rows, classes.len().to_dim()])
            ),
            Task::Regressor { targets } => tvec!(f32::fact([rows, targets.to_dim()])),
        })
    }

    as_op!();
}
