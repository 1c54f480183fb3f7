//! The store seam: what a backend implements to hold versions.
//!
//! A backend is the unit of extension: the embedded store ([`crate::EmbeddedStore`])
//! and the Redis store ([`crate::RedisStore`]) each implement these four traits, and
//! [`crate::Store`] wraps whichever the config chose. The job runner, the server and
//! the CLI only see `Store` and [`crate::StoreError::kind`], so adding a backend
//! touches this crate and the config parser only.
//!
//! The life of a version, and which trait each step belongs to:
//!
//! 1. [`Backend::begin`] returns a [`BackendWriter`]; the job appends scored rows.
//! 2. [`BackendWriter::finish`] returns a [`BackendStaged`]: complete, not visible.
//!    Checks run against it ([`BackendStaged::contains`]).
//! 3. [`BackendStaged::publish`] makes it current atomically (and applies retention),
//!    or [`BackendStaged::block`] gives it up. Dropping a writer or a staged version
//!    without either must leave nothing visible; leftovers of a crash are cleaned up
//!    by the next `begin`.
//! 4. Servers follow [`Backend::current`] and [`Backend::open`] a
//!    [`BackendVersion`] to answer lookups from.
//!
//! Backends whose calls block (file I/O) must not block an async worker for long:
//! run whole-file work on Tokio's blocking pool, as the embedded store does.

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use async_trait::async_trait;

use crate::{History, LastRun, Manifest, StoreError, VersionId};

/// A job's run lock (see [`Backend::lock_run`]). Release it with
/// [`RunLock::release`]; dropping it releases it too, as soon as the backend can
/// (a lock in another server may then wait for its expiry).
pub struct RunLock {
    held: Box<dyn HeldRunLock>,
}

/// What a backend holds while a run holds its lock.
#[async_trait]
pub trait HeldRunLock: Send + Sync {
    /// Gives the lock up.
    async fn release(self: Box<Self>);
}

impl RunLock {
    /// A lock held as long as `held` is.
    pub fn new(held: impl HeldRunLock + 'static) -> RunLock {
        RunLock {
            held: Box::new(held),
        }
    }

    /// Gives the lock up, waiting until it is free for the next run.
    pub async fn release(self) {
        self.held.release().await
    }
}

/// Where versions live, and everything done to a job's versions as a whole.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The store for messages: `` embedded store `path` `` or `` redis `url` ``.
    fn describe(&self) -> String;

    /// The job's current version, `None` before its first publish.
    async fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError>;

    /// A version's manifest.
    async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError>;

    /// Every kept version's manifest, newest first.
    async fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError>;

    /// Points the job back at `to`, or at the version served before the current one
    /// ([`History::rollback_target`]); a version rolled away from before needs
    /// `force`. On any error nothing changes. Returns `(previous, new)` current ids,
    /// and records the change in the history.
    async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError>;

    /// Ids of the job's published versions, oldest first.
    async fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError>;

    /// A value that changes when the pointer or the version's stored data is
    /// rewritten in place (a copy still arriving, a file restored), so a server retries
    /// a version it refused at once instead of at its next backoff. `None` where
    /// versions cannot change in place.
    async fn fingerprint(&self, _job: &str, _id: VersionId) -> Option<u64> {
        None
    }

    /// The job's publishes, backfills and rollbacks, oldest first.
    async fn history(&self, job: &str) -> Result<History, StoreError>;

    /// Takes the job's run lock: one run of a job at a time. Fails at once with
    /// [`StoreError::RunInProgress`] naming the holder; released when the returned
    /// guard drops, and when its process dies.
    async fn lock_run(&self, job: &str) -> Result<RunLock, StoreError>;

    /// Records the outcome of a run, replacing the previous record.
    async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError>;

    /// The last recorded run of a job, if any.
    async fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError>;

    /// Starts writing a new version of `job`: a key column and prediction fields.
    /// Leftovers of crashed runs are cleaned up first.
    async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<Box<dyn BackendWriter>, StoreError>;

    /// Opens a published version for lookups, refusing one that fails its checks.
    async fn open(&self, job: &str, id: VersionId) -> Result<Box<dyn BackendVersion>, StoreError>;

    /// One prediction field of a published version, as the arrays it was written
    /// in, for a backend that keeps a columnar copy (the embedded store's
    /// `predictions.parquet`); `None` when it keeps none or the version has no such
    /// field. Checks use it for versions whose manifest lacks what they compare.
    async fn prediction_column(
        &self,
        job: &str,
        id: VersionId,
        field: &str,
    ) -> Result<Option<Vec<ArrayRef>>, StoreError>;
}

/// A version being written; nothing is visible until it is published.
#[async_trait]
pub trait BackendWriter: Send {
    /// Rows written so far.
    fn rows(&self) -> u64;

    /// Appends scored rows: the key column and one array per prediction field, in the
    /// order given to [`Backend::begin`]. A repeated key may be reported here or by
    /// [`BackendWriter::finish`] ([`StoreError::duplicate_key`] names it).
    async fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError>;

    /// Finishes writing: the version is complete and durable, not yet visible.
    async fn finish(self: Box<Self>) -> Result<Box<dyn BackendStaged>, StoreError>;
}

/// A complete version, not yet visible: checks run against it, then it is published
/// or blocked.
#[async_trait]
pub trait BackendStaged: Send + Sync {
    /// Number of predictions.
    fn rows(&self) -> u64;

    /// Whether each of `keys` (as text) has a prediction in the staged version.
    async fn contains(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError>;

    /// Publishes: takes the next id, stores the manifest (its `id`, `parent`, `rows`
    /// and `files` are filled in here), makes the version current atomically when
    /// `promote` (a backfill is published beside the current version), records it in
    /// the history, and drops the versions beyond `keep_versions`; a failure to drop
    /// them is a warning, not an error. Returns the manifest as stored.
    async fn publish(
        self: Box<Self>,
        manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, StoreError>;

    /// Gives the version up (a blocked run); it is never published. A backend that
    /// keeps blocked runs for inspection keeps the newest `keep_blocked`. Returns
    /// what happened to what was staged, for the run's error message.
    async fn block(self: Box<Self>, keep_blocked: usize) -> Result<String, StoreError>;
}

/// A published version opened for lookups.
#[async_trait]
pub trait BackendVersion: Send + Sync {
    /// The version's manifest.
    fn manifest(&self) -> &Manifest;

    /// Looks up `keys` (as text, the way HTTP and RESP receive them) and calls `each`
    /// with every key's index and its prediction JSON object, `None` when absent.
    async fn predictions(
        &self,
        keys: &[&str],
        each: &mut (dyn for<'v> FnMut(usize, Option<&'v [u8]>) + Send),
    ) -> Result<(), StoreError>;
}
