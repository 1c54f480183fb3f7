//! One run of a job: features → model → checks → publish.
//!
//! [`run`] plans the feature SQL, checks that the key and every model input exist
//! with usable types before a row is scored, streams feature batches through the
//! model on all cores into a staged version, evaluates the gates, and publishes. Any
//! error before the final `CURRENT` swap leaves the previous version served and
//! removes the staging folder; a blocked publish keeps it for inspection.

mod checks;
mod error;
mod matrix;
mod progress;
mod psi;
mod ranked;
mod run;
mod scorer;
mod spec;

pub use checks::evaluate as evaluate_checks;
pub use error::JobError;
pub use progress::{Reporter, Stage};
pub use run::RANKED_OUTPUT;
pub use run::{RunOptions, RunOutcome, error_chain, load_model, run};
pub use scorer::{BatchScorer, column_index};
pub use spec::{Checks, FeatureSpec, JobSpec, ModelSpec, RankedSpec};
