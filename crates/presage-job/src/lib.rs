//! One run of a job: features → model → checks → publish.
//!
//! [`run`] plans the feature SQL, checks that the key and every model input exist
//! with usable types before a row is scored, streams feature batches through the
//! model on all cores into a staged version of a [`presage_store::Store`] (whatever
//! its backend: the runner never names one), evaluates the gates, and publishes. Any
//! error before the final pointer swap leaves the previous version served and
//! removes what was staged; a blocked publish leaves what the store keeps of it
//! (see [`presage_store::StagedRun::block`]).
//!
//! Loading the model and scoring batches is `presage-model`'s
//! [`presage_model::ModelSpec`] and [`presage_model::BatchScorer`], the path
//! `presage score` and the backtests take too; this crate owns what a run adds
//! around it: keys, ranked lists, the gates and the store.
//!
//! The gates read no rows back: `max_psi` compares this run's score sample with the
//! quantile bins the previous version's manifest recorded, and `expected_keys`
//! looks keys up in the staged version.

mod checks;
mod error;
mod export;
mod imported;
mod progress;
mod psi;
mod ranked;
mod run;
mod spec;

pub use checks::evaluate as evaluate_checks;
pub use error::JobError;
pub use progress::{Reporter, Stage};
pub use run::RANKED_OUTPUT;
pub use run::{RunOptions, RunOutcome, run};
pub use spec::{Checks, ExportSpec, ImportedPredictions, JobSpec, Predictor, RankedSpec};
