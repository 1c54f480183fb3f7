//! Versions of predictions: written once, checked, published atomically, served by key.
//!
//! A version is immutable once published. Every backend sits behind one seam,
//! [`Backend`] (its four traits follow a version from writer to lookups), and callers use
//! [`Store`], which wraps the backend the config chose:
//!
//! - The embedded store keeps each job's versions under `data_dir/<job>/versions/<id>/`
//!   with a `manifest.json`, a lookup file (see [`lookup`]) and `predictions.parquet`
//!   holding the same rows. A run writes into `staging/`, fsyncs, renames the folder
//!   into `versions/` and only then swaps the `CURRENT` pointer by atomic rename, so a
//!   crash at any point leaves the previous version served. Readers open a version,
//!   check its lookup file against the manifest's sha256, and answer lookups.
//! - The Redis store ([`redis`]) writes a version's keys under their own prefix with
//!   pipelining, then flips a pointer key in one Lua script; readers follow the
//!   pointer. It works with a standalone server and with Redis Cluster.
//!
//! The job runner, the server and the CLI use [`Store`] and [`StoreError::kind`] and
//! never name a backend; adding one touches this crate and the config parser only.

mod backend;
mod durable;
mod embedded;
mod error;
pub mod failpoint;
mod history;
mod job_status;
mod last_run;
pub mod lookup;
mod manifest;
pub mod redis;
mod staleness;
mod store;

pub use crate::redis::{RedisOptions, RedisStore};
pub use backend::{Backend, BackendStaged, BackendVersion, BackendWriter, HeldRunLock, RunLock};
pub use embedded::{EmbeddedStore, LoadedVersion, StagedVersion, VersionWriter};
pub use error::{StoreError, StoreErrorKind};
pub use history::{History, HistoryEntry, HistoryEvent, RollbackRefusal, VersionState};
pub use job_status::{JobStatus, JobStatuses, LastRunStatus, VersionStatus};
pub use last_run::{ExportRecord, LastRun, RunOutcomeKind};
pub use manifest::{
    CheckResult, Distribution, FileEntry, KeyInfo, MANIFEST_FORMAT, Manifest, ModelInfo,
    OutputColumn, RankedInfo, RunStages, SourceInfo, VersionId,
};
pub use staleness::{Freshness, Staleness};
pub use store::{
    ListedVersion, OpenVersion, StagedRun, Store, StoreWriter, VersionList, job_name_problem,
};
