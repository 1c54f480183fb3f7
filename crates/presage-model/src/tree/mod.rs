//! Native tree-ensemble evaluator: ONNX-ML `TreeEnsemble*`, XGBoost JSON, CatBoost
//! JSON and LightGBM text models, scored with each reference runtime's rules and faster.
//!
//! Loading has three stages. A parser ([`xgboost`], [`catboost`], [`lightgbm`],
//! [`onnx`]) reads the file into a [`forest::Forest`], translating that format's split
//! rule (comparison, threshold precision, missing values, categories) into one
//! normalised test per node; CatBoost's oblivious trees become full binary trees.
//! [`layout::Layout`] compiles the forest into a flat breadth-first node array.
//! [`model::TreeModel`] scores blocks of rows with the lockstep kernels of [`kernel`]
//! and applies the format's output rules from [`head`].

mod forest;
mod head;
mod json;
mod kernel;
mod layout;
mod model;
mod value;

pub(crate) mod catboost;
pub(crate) mod lightgbm;
pub(crate) mod onnx;
pub(crate) mod xgboost;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod edge_cases;
