//! ONNX files: pure tree-ensemble graphs go to the native tree evaluator, everything
//! else to tract. (Being written: see the tract engine brief.)

use std::path::Path;

use crate::{Model, ModelError};

/// Loads an ONNX model from bytes.
pub(crate) fn load(bytes: &[u8], origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    let _ = bytes;
    Err(ModelError::Scoring(format!("{}: ONNX engine not written yet", origin.display())))
}
