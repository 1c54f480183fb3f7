//! Backtests and staleness reports: how much better would fresher predictions be?
//!
//! A backtest replays history: for each label row (an entity, the time an application
//! asked for a prediction, the outcome seen after) it computes the features the
//! prediction would have had, point-in-time correct, scores them, and measures the
//! scores against the outcomes. The staleness ladder replays the same requests as
//! each refresh cadence and each stage between batch and online would have answered
//! them, so the cost of staleness is a number on the user's own data. Features are
//! computed once per distinct cutoff, for only the entities asked about at it
//! ([`presage_data::PointInTime`]), and shared between the cells that need them.
//!
//! Models are loaded and scored through `presage-model`'s [`presage_model::ModelSpec`]
//! and [`presage_model::BatchScorer`], the path `presage run` takes, so a backtest
//! scores rows exactly as a run would, with the same checks of inputs and output
//! renames. The crate depends on `presage-data` and `presage-model` only.

mod backtest;
mod cadence;
mod error;
mod labels;
pub mod metrics;
mod replay;
pub mod report;
mod scoring;
mod staleness;
mod svg;

pub use backtest::{BacktestOptions, backtest};
pub use cadence::{Cadence, parse_cadences, parse_lag};
pub use error::EvalError;
pub use labels::{LabelSource, Labels, load_labels};
pub use scoring::EvalJob;
pub use staleness::{StalenessOptions, staleness};

/// What a backtest tells its caller while it works. Libraries report; the CLI draws.
pub trait EvalProgress: Send + Sync {
    /// A step started (`loading sources`, `computing features`, ...).
    fn step(&self, step: &str);
    /// `done` of `total` point-in-time feature queries have run.
    fn queries(&self, done: usize, total: usize);
}

impl EvalProgress for () {
    fn step(&self, _: &str) {}
    fn queries(&self, _: usize, _: usize) {}
}
