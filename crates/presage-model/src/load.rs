use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::quoted_list;
use crate::{Model, ModelError};

/// A model file format presage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// ONNX (`.onnx`), including the ONNX-ML operators.
    Onnx,
    /// XGBoost's JSON model (`.json`, from `save_model("model.json")`).
    XgboostJson,
    /// CatBoost's JSON model (`.json`, from `save_model("model.json", format="json")`).
    CatboostJson,
    /// LightGBM's text model (`.txt`, from `save_model("model.txt")`).
    LightgbmText,
}

impl ModelFormat {
    /// Every format, in the order error messages list them.
    const ALL: [ModelFormat; 4] = [
        ModelFormat::Onnx,
        ModelFormat::XgboostJson,
        ModelFormat::CatboostJson,
        ModelFormat::LightgbmText,
    ];

    /// The file extension that selects this format, without the dot. XGBoost and
    /// CatBoost share `json`; the content tells them apart.
    pub fn extension(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::XgboostJson | ModelFormat::CatboostJson => "json",
            ModelFormat::LightgbmText => "txt",
        }
    }

    /// The format a file name implies, from its extension (any case). For `.json`
    /// that is [`XgboostJson`](Self::XgboostJson), and [`load_bytes`] reads either
    /// JSON format whichever of the two it is given.
    pub fn from_path(path: &Path) -> Option<ModelFormat> {
        let extension = path.extension()?.to_str()?;
        ModelFormat::ALL
            .into_iter()
            .find(|f| extension.eq_ignore_ascii_case(f.extension()))
    }

    /// The accepted extensions as error messages list them: `` `.onnx` (ONNX),
    /// `.json` (XGBoost JSON or CatBoost JSON), `.txt` (LightGBM text) ``.
    pub(crate) fn accepted_extensions() -> String {
        let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
        for format in ModelFormat::ALL {
            let extension = format.extension();
            match groups.iter_mut().find(|(e, _)| *e == extension) {
                Some((_, names)) => names.push(format.to_string()),
                None => groups.push((extension, vec![format.to_string()])),
            }
        }
        groups
            .iter()
            .map(|(extension, names)| format!("`.{extension}` ({})", names.join(" or ")))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "ONNX",
            ModelFormat::XgboostJson => "XGBoost JSON",
            ModelFormat::CatboostJson => "CatBoost JSON",
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

/// Loads a model file, choosing the format from its extension (`.onnx`, XGBoost or
/// CatBoost `.json`, LightGBM `.txt`) and, for `.json`, from the top-level keys.
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

/// Loads a model from bytes already in memory; `origin` names it in errors. Either
/// JSON format reads both: the document's top-level keys say which it is (XGBoost
/// has `learner`; CatBoost has `oblivious_trees` or `trees`, and `features_info`).
pub fn load_bytes(
    bytes: &[u8],
    format: ModelFormat,
    origin: &Path,
) -> Result<Box<dyn Model>, ModelError> {
    match format {
        ModelFormat::Onnx => crate::onnx::load(bytes, origin),
        ModelFormat::XgboostJson | ModelFormat::CatboostJson => load_json(bytes, origin),
        ModelFormat::LightgbmText => crate::tree::lightgbm::load(bytes, origin),
    }
}

/// An XGBoost or CatBoost JSON model, told apart by its top-level keys.
fn load_json(bytes: &[u8], origin: &Path) -> Result<Box<dyn Model>, ModelError> {
    use crate::tree::{catboost, xgboost};
    let not_a_model = |reason: String| ModelError::NotAJsonModel {
        path: origin.to_owned(),
        reason,
    };
    let root: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| not_a_model(format!("invalid JSON: {e}")))?;
    if xgboost::looks_like(&root) {
        xgboost::load_json(&root, origin)
    } else if catboost::looks_like(&root) {
        catboost::load_json(&root, origin)
    } else {
        let found = match root.as_object() {
            Some(object) if object.is_empty() => "an empty object".to_owned(),
            Some(object) => format!(
                "top-level keys {}",
                quoted_list(object.keys().map(String::as_str))
            ),
            None => "no object".to_owned(),
        };
        Err(not_a_model(format!(
            "expected top-level `learner` (XGBoost) or `oblivious_trees` / `trees` with \
             `features_info` (CatBoost), found {found}"
        )))
    }
}
