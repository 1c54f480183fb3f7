//! Versions of predictions: written once, checked, published atomically, served by key.
//!
//! A version is immutable once published. The embedded store keeps each job's
//! versions under `data_dir/<job>/versions/<id>/` with a `manifest.json`, a lookup
//! file (see [`lookup`]) and `predictions.parquet` holding the same rows. A run writes
//! into `staging/`, fsyncs, renames the folder into `versions/` and only then swaps
//! the `CURRENT` pointer by atomic rename, so a crash at any point leaves the previous
//! version served. Readers open a version, verify its checksums, and answer lookups.

mod durable;
mod embedded;
mod error;
pub mod failpoint;
mod last_run;
pub mod lookup;
mod manifest;
mod staleness;

pub use embedded::{EmbeddedStore, LoadedVersion, StagedVersion, VersionWriter};
pub use error::StoreError;
pub use last_run::{LastRun, RunOutcomeKind};
pub use manifest::{
    CheckResult, FileEntry, KeyInfo, MANIFEST_FORMAT, Manifest, ModelInfo, OutputColumn,
    RankedInfo, SourceInfo, VersionId,
};
pub use staleness::{Freshness, Staleness};
