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
    /// Feature columns in the model's input order.
    pub inputs: Vec<String>,
    /// Renames of prediction fields: default name (`probability`) → new name.
    pub outputs: BTreeMap<String, String>,
}

impl ModelSpec {
    /// Loads the file and checks the spec against it: as many `inputs` as the model
    /// takes, and every rename naming one of its outputs.
    pub fn load(&self) -> Result<LoadedModel, ScoreError> {
        let file = load(&self.path).map_err(|source| ScoreError::Model {
            model: self.name.clone(),
            source,
        })?;
        let n_features = file.model.info().n_features;
        if n_features != self.inputs.len() {
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
            spec: self.clone(),
            model: file.model,
            outputs,
            sha256: file.sha256,
        })
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
