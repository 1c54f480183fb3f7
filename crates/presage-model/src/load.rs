use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Model, ModelError};

/// A model file format presage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// ONNX (`.onnx`), including the ONNX-ML operators.
    Onnx,
    /// XGBoost's JSON model (`.json`, from `save_model("model.json")`).
    XgboostJson,
    /// LightGBM's text model (`.txt`, from `save_model("model.txt")`).
    LightgbmText,
}

impl ModelFormat {
    /// Every format, in the order error messages list them.
    const ALL: [ModelFormat; 3] = [
        ModelFormat::Onnx,
        ModelFormat::XgboostJson,
        ModelFormat::LightgbmText,
    ];

    /// The file extension that selects this format, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::XgboostJson => "json",
            ModelFormat::LightgbmText => "txt",
        }
    }

    /// The format a file name implies, from its extension (any case).
    pub fn from_path(path: &Path) -> Option<ModelFormat> {
        let extension = path.extension()?.to_str()?;
        ModelFormat::ALL
            .into_iter()
            .find(|f| extension.eq_ignore_ascii_case(f.extension()))
    }

    /// The accepted extensions as error messages list them:
    /// `` `.onnx` (ONNX), `.json` (XGBoost JSON), `.txt` (LightGBM text) ``.
    pub(crate) fn accepted_extensions() -> String {
        ModelFormat::ALL
            .iter()
            .map(|f| format!("`.{}` ({f})", f.extension()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "ONNX",
            ModelFormat::XgboostJson => "XGBoost JSON",
            ModelFormat::LightgbmText => "LightGBM text",
        })
    }
}

/// A loaded model file: the model, and the digest of the bytes it was loaded from
/// (manifests record it, so a version names exactly the model that scored it).
pub struct ModelFile {
    /// The model, ready to score.
    pub model: Box<dyn Model>,
    /// `sha256:<hex>` of the file's bytes.
    pub sha256: String,
}

/// Loads a model file, choosing the format from its extension
/// (`.onnx`, XGBoost `.json`, LightGBM `.txt`).
pub fn load(path: &Path) -> Result<ModelFile, ModelError> {
    let format = ModelFormat::from_path(path).ok_or_else(|| ModelError::UnknownExtension {
        path: path.to_owned(),
        extension: path.extension().map(|e| e.to_string_lossy().into_owned()),
    })?;
    let bytes = fs_err::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(ModelFile {
        model: load_bytes(&bytes, format, path)?,
        sha256: format!("sha256:{:x}", Sha256::digest(&bytes)),
    })
}

/// Loads a model from bytes already in memory; `origin` names it in errors.
pub fn load_bytes(
    bytes: &[u8],
    format: ModelFormat,
    origin: &Path,
) -> Result<Box<dyn Model>, ModelError> {
    match format {
        ModelFormat::Onnx => crate::onnx::load(bytes, origin),
        ModelFormat::XgboostJson => crate::tree::xgboost::load(bytes, origin),
        ModelFormat::LightgbmText => crate::tree::lightgbm::load(bytes, origin),
    }
}
