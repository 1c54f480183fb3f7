//! presage-model's integration tests, one binary for the crate: conformance with
//! the shared model fixtures and the tract engine's own cases.

mod fixtures;
mod onnx;
