use std::time::Duration;

use presage_data::QueryProgress;

/// A step of a run, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Loading and checking the model.
    LoadingModel,
    /// Registering sources and planning the feature SQL.
    Planning,
    /// Running the feature query, before its first rows arrive
    /// ([`Reporter::features`] says what it has read).
    Features,
    /// Scoring feature rows as they arrive; `expected_rows` is the previous version's
    /// row count, when there is one, for an ETA.
    Scoring {
        /// Rows the previous version had.
        expected_rows: Option<u64>,
    },
    /// Closing files, checksums and gates.
    Checking,
    /// Moving the version into place and swapping `CURRENT`.
    Publishing,
    /// Copying the published predictions to the job's `export` destination.
    Exporting,
}

/// Receives progress from a run. Libraries report; only the CLI draws.
pub trait Reporter: Send + Sync {
    /// A new stage started.
    fn stage(&self, stage: Stage);
    /// The feature query has read `progress` in `elapsed` since it started and has not
    /// returned rows yet (called about twice a second).
    fn features(&self, progress: QueryProgress, elapsed: Duration);
    /// `rows` rows have been scored so far.
    fn rows(&self, rows: u64);
    /// Something went wrong that does not stop the run (an unreadable `CURRENT`
    /// the new version replaces). Printed to stderr unless a reporter shows it.
    fn warning(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// A reporter that ignores everything (tests, embedding).
impl Reporter for () {
    fn stage(&self, _: Stage) {}
    fn features(&self, _: QueryProgress, _: Duration) {}
    fn rows(&self, _: u64) {}
}
