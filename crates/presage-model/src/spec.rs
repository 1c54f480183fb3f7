//! A model as the config names it: the file, the feature columns it reads, and the
//! renames of its outputs, checked against the file once at load.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::quoted_list;
use crate::{Model, ModelInfo, OutputField, ScoreError, load, output_fields};

/// A model as a job, a backtest or `presage score` uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Its name in the config (`[models.NAME]`), or how the command names it.
    pub name: String,
    /// The model file.
    pub path: PathBuf,
    /// Feature columns in the model's input order. A model with named inputs
    /// (several, or strings) binds the columns of those names: the list may then
    /// be empty, and otherwise must name the same inputs, in any order.
    pub inputs: Vec<String>,
    /// Renames of prediction fields: default name (`probability`) → new name.
    pub outputs: BTreeMap<String, String>,
}

impl ModelSpec {
    /// Loads the file and checks the spec against it: as many `inputs` as the model
    /// takes (or the names of its named inputs), and every rename naming one of its
    /// outputs.
    pub fn load(&self) -> Result<LoadedModel, ScoreError> {
        let file = load(&self.path).map_err(|source| ScoreError::Model {
            model: self.name.clone(),
            source,
        })?;
        let mut spec = self.clone();
        spec.inputs = self.bound_inputs(file.model.info())?;
        let n_features = file.model.info().n_features;
        if n_features != spec.inputs.len() {
            return Err(ScoreError::InputCount {
                model: self.name.clone(),
                expected: n_features,
                configured: self.inputs.len(),
                inputs: self.inputs.join(", "),
            });
        }
        let mut outputs = output_fields(file.model.info());
        for (from, to) in &self.outputs {
            let available = quoted_list(outputs.iter().map(|o| o.name.as_str()));
            let field = outputs
                .iter_mut()
                .find(|o| &o.name == from)
                .ok_or_else(|| ScoreError::UnknownOutput {
                    model: self.name.clone(),
                    output: from.clone(),
                    available,
                })?;
            field.name = to.clone();
        }
        Ok(LoadedModel {
            spec,
            model: file.model,
            outputs,
            sha256: file.sha256,
        })
    }
}

impl ModelSpec {
    /// The feature columns, in matrix order, that feed a model with `info`.
    fn bound_inputs(&self, info: &ModelInfo) -> Result<Vec<String>, ScoreError> {
        if info.inputs.is_empty() {
            if self.inputs.is_empty() {
                return Err(ScoreError::InputsNotListed {
                    model: self.name.clone(),
                    features: info.n_features,
                });
            }
            return Ok(self.inputs.clone());
        }
        let names: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
        let mut columns = Vec::with_capacity(info.n_features);
        for input in &info.inputs {
            if input.width != 1 {
                // A multi-column input has no column name per column: list them.
                if self.inputs.len() == info.n_features {
                    return Ok(self.inputs.clone());
                }
                return Err(ScoreError::InputWidth {
                    model: self.name.clone(),
                    input: input.name.clone(),
                    width: input.width,
                    features: info.n_features,
                });
            }
            columns.push(input.name.clone());
        }
        if !self.inputs.is_empty() {
            let listed: std::collections::BTreeSet<&str> =
                self.inputs.iter().map(String::as_str).collect();
            let model: std::collections::BTreeSet<&str> = names.iter().copied().collect();
            if listed != model || listed.len() != self.inputs.len() {
                return Err(ScoreError::InputNames {
                    model: self.name.clone(),
                    inputs: quoted_list(names.iter().copied()),
                    listed: quoted_list(self.inputs.iter().map(String::as_str)),
                });
            }
        }
        Ok(columns)
    }
}

/// A model loaded for its [`ModelSpec`]: the input count checked and the outputs
/// renamed, ready for [`BatchScorer::new`](crate::BatchScorer::new).
pub struct LoadedModel {
    spec: ModelSpec,
    model: Box<dyn Model>,
    outputs: Vec<OutputField>,
    sha256: String,
}

impl LoadedModel {
    /// The spec it was loaded for.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Shape, task, format and engine of the model.
    pub fn info(&self) -> &ModelInfo {
        self.model.info()
    }

    /// The prediction fields, renamed as the spec says, in the order scores come.
    pub fn outputs(&self) -> &[OutputField] {
        &self.outputs
    }

    /// `sha256:<hex>` of the model file's bytes, for manifests.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The model itself.
    pub(crate) fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::error::Error;
    use std::path::Path;

    use super::*;

    /// A binary logistic regression over five inputs (SimpleImputer in front), from
    /// `tests/data/make_test_models.py`.
    pub(crate) fn imputer_logreg(inputs: &[&str], renames: &[(&str, &str)]) -> ModelSpec {
        ModelSpec {
            name: "churn".to_owned(),
            path: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/imputer_logreg.onnx"),
            inputs: inputs.iter().map(|&i| i.to_owned()).collect(),
            outputs: renames
                .iter()
                .map(|&(from, to)| (from.to_owned(), to.to_owned()))
                .collect(),
        }
    }

    fn load_error(spec: &ModelSpec) -> ScoreError {
        match spec.load() {
            Ok(_) => panic!("`{}` loaded, expected an error", spec.path.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn loads_with_renamed_outputs_and_the_file_digest() {
        let spec = imputer_logreg(&["a", "b", "c", "d", "e"], &[("probability", "churn_p")]);
        let loaded = spec.load().expect("loading");
        let names: Vec<&str> = loaded.outputs().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["label", "churn_p"]);
        assert_eq!(loaded.spec(), &spec);
        let hex = loaded
            .sha256()
            .strip_prefix("sha256:")
            .expect("sha256: prefix");
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
    }

    #[test]
    fn an_input_count_mismatch_names_the_model_and_the_inputs() {
        let error = load_error(&imputer_logreg(&["a", "b"], &[]));
        assert!(matches!(error, ScoreError::InputCount { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "model `churn` takes 5 input features but `inputs` lists 2: a, b"
        );
    }

    #[test]
    fn an_unknown_output_rename_names_the_model_and_the_outputs() {
        let spec = imputer_logreg(&["a", "b", "c", "d", "e"], &[("score", "churn_p")]);
        let error = load_error(&spec);
        assert!(
            matches!(error, ScoreError::UnknownOutput { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "model `churn` has no output `score` to rename; it has: `label`, `probability`"
        );
    }

    #[test]
    fn an_unknown_extension_names_the_file_and_the_accepted_ones() {
        let mut spec = imputer_logreg(&["a"], &[]);
        spec.path = "models/churn.pkl".into();
        let error = load_error(&spec);
        assert_eq!(error.to_string(), "model `churn`");
        assert_eq!(
            error.source().expect("the model error").to_string(),
            "model file `models/churn.pkl` has unknown extension `.pkl`; accepted: \
             `.onnx` (ONNX), `.json` (XGBoost JSON or CatBoost JSON), `.txt` (LightGBM text)"
        );
        let Err(error) = load(Path::new("models/churn")) else {
            panic!("a file without an extension loaded");
        };
        assert!(
            matches!(
                &error,
                crate::ModelError::UnknownExtension {
                    extension: None,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "model file `models/churn` has no extension; accepted: \
             `.onnx` (ONNX), `.json` (XGBoost JSON or CatBoost JSON), `.txt` (LightGBM text)"
        );
    }

    #[test]
    fn extensions_are_matched_in_any_case() {
        assert_eq!(
            crate::ModelFormat::from_path(Path::new("m.ONNX")),
            Some(crate::ModelFormat::Onnx)
        );
        assert_eq!(
            crate::ModelFormat::from_path(Path::new("m.Txt")),
            Some(crate::ModelFormat::LightgbmText)
        );
        assert_eq!(crate::ModelFormat::from_path(Path::new("m.pkl")), None);
    }
}
