//! One interface over every backend, so the job runner, the server and every command
//! have one way of doing each thing and never name a backend.
//!
//! [`Store`] holds the backend the config chose behind the [`Backend`] seam; the
//! writer, staged run and open version it hands out wrap the backend's own.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;

use crate::backend::{Backend, BackendStaged, BackendVersion, BackendWriter, RunLock};
use crate::redis::{RedisOptions, RedisStore};
use crate::{EmbeddedStore, History, LastRun, Manifest, StoreError, VersionId, VersionState};

/// Why `name` cannot name a job, or `None` when it can. One rule for every backend:
/// a job name is a folder of the embedded store, part of Redis keys, and the part
/// before `:` in a Redis-protocol `GET job:key`.
pub fn job_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 128 {
        Some("it is longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("it starts with `.`")
    } else if name
        .chars()
        .any(|c| matches!(c, '{' | '}' | ':' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some("it contains `:`, `/`, `\\`, `{`, `}`, whitespace or a control character")
    } else {
        None
    }
}

/// Where versions live: files under a data folder, a Redis server or cluster, or any
/// other [`Backend`].
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

/// A job's versions as listed by [`Store::version_list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionList {
    /// The version served now.
    pub current: Option<VersionId>,
    /// Every kept version, newest first.
    pub versions: Vec<ListedVersion>,
}

/// A kept version and how it stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedVersion {
    /// Current, served before, rolled back from, or an unpromoted backfill.
    pub state: VersionState,
    /// Its manifest.
    #[serde(flatten)]
    pub manifest: Manifest,
}

/// A version being written; nothing is visible until [`StagedRun::publish`].
pub struct StoreWriter(Box<dyn BackendWriter>);

/// A complete version, not yet visible: checks run against it, then it is published
/// or blocked.
pub struct StagedRun(Box<dyn BackendStaged>);

/// A published version opened for lookups.
pub struct OpenVersion(Box<dyn BackendVersion>);

impl Store {
    /// A store over any backend.
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// The embedded store: versions as files under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Store {
        Store::new(Arc::new(EmbeddedStore::new(data_dir)))
    }

    /// The Redis store on a server, or on a cluster when several node URLs are given;
    /// an unreachable server is an error naming its URL.
    pub async fn redis(urls: &[String], options: RedisOptions) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(
            RedisStore::connect_with(urls, options).await?,
        )))
    }

    /// The store for messages: `` embedded store `path` `` or `` redis `url` ``.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The job's current version, `None` before its first publish.
    pub async fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError> {
        self.backend.current(job).await
    }

    /// A version's manifest.
    pub async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        self.backend.manifest(job, id).await
    }

    /// The current version's manifest, `None` before the first publish.
    pub async fn current_manifest(&self, job: &str) -> Result<Option<Manifest>, StoreError> {
        match self.current(job).await? {
            Some(id) => Ok(Some(self.manifest(job, id).await?)),
            None => Ok(None),
        }
    }

    /// Every kept version's manifest, newest first.
    pub async fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        self.backend.versions(job).await
    }

    /// Points the job back at `to`, or at the version served before the current one,
    /// skipping versions rolled away from; `to` a version rolled away from needs
    /// `force`. On any error nothing changes. Returns `(previous, new)` current ids.
    pub async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError> {
        self.backend.rollback(job, to, force).await
    }

    /// The current version and every kept version, newest first, each with how it
    /// stands (current, served before, rolled back from, an unpromoted backfill):
    /// what `presage versions` and `GET /v1/jobs/{job}/versions` show.
    pub async fn version_list(&self, job: &str) -> Result<VersionList, StoreError> {
        let current = self.current(job).await?;
        let history = self.history(job).await?;
        let versions = self
            .versions(job)
            .await?
            .into_iter()
            .map(|manifest| ListedVersion {
                state: history.state(manifest.id, current),
                manifest,
            })
            .collect();
        Ok(VersionList { current, versions })
    }

    /// Ids of the job's published versions, oldest first.
    pub async fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError> {
        self.backend.version_ids(job).await
    }

    /// Changes when the pointer or the version's stored data is rewritten in place;
    /// see [`Backend::fingerprint`].
    pub async fn fingerprint(&self, job: &str, id: VersionId) -> Option<u64> {
        self.backend.fingerprint(job, id).await
    }

    /// The job's publishes, backfills and rollbacks, oldest first.
    pub async fn history(&self, job: &str) -> Result<History, StoreError> {
        self.backend.history(job).await
    }

    /// Takes the job's run lock: fails at once, naming the holder, while another run
    /// of the job is in progress. Released when dropped or when the process dies.
    pub async fn lock_run(&self, job: &str) -> Result<RunLock, StoreError> {
        self.backend.lock_run(job).await
    }

    /// Records the outcome of a run, replacing the previous record.
    pub async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError> {
        self.backend.record_run(job, run).await
    }

    /// The last recorded run of a job, if any.
    pub async fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError> {
        self.backend.last_run(job).await
    }

    /// Starts writing a new version of `job`: a key column and prediction fields.
    /// Leftovers of crashed runs are cleaned up first.
    pub async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<StoreWriter, StoreError> {
        Ok(StoreWriter(self.backend.begin(job, key, outputs).await?))
    }

    /// Opens a published version for lookups (an embedded version's lookup file is
    /// verified against its checksum first).
    pub async fn open(&self, job: &str, id: VersionId) -> Result<OpenVersion, StoreError> {
        Ok(OpenVersion(self.backend.open(job, id).await?))
    }

    /// One prediction field of a published version as written, where the backend
    /// keeps a columnar copy; see [`Backend::prediction_column`].
    pub async fn prediction_column(
        &self,
        job: &str,
        id: VersionId,
        field: &str,
    ) -> Result<Option<Vec<ArrayRef>>, StoreError> {
        self.backend.prediction_column(job, id, field).await
    }
}

impl StoreWriter {
    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.0.rows()
    }

    /// Appends scored rows: the key column and one array per prediction field, in the
    /// order given to [`Store::begin`].
    pub async fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError> {
        self.0.write(keys, outputs).await
    }

    /// Finishes writing; duplicate keys are reported here (or by an earlier `write`).
    pub async fn finish(self) -> Result<StagedRun, StoreError> {
        Ok(StagedRun(self.0.finish().await?))
    }
}

impl StagedRun {
    /// Number of predictions.
    pub fn rows(&self) -> u64 {
        self.0.rows()
    }

    /// Whether each of `keys` (as text) has a prediction in the staged version.
    pub async fn contains(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        self.0.contains(keys).await
    }

    /// Publishes: takes the id, stores the manifest, flips the pointer (unless
    /// `promote` is false: a backfill is kept beside the current version), and drops
    /// the versions beyond `keep_versions`. Returns the manifest as stored.
    pub async fn publish(
        self,
        manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, StoreError> {
        self.0.publish(manifest, keep_versions, promote).await
    }

    /// A blocked run: the version is never published. The embedded store keeps the
    /// staged files for inspection (`staging/blocked-<time>/`); the Redis store
    /// deletes the staged keys at once (Redis memory is the serving tier's). Returns
    /// what happened to them, for the error message. Only the newest `keep_blocked`
    /// blocked runs are kept.
    pub async fn block(self, keep_blocked: usize) -> Result<String, StoreError> {
        self.0.block(keep_blocked).await
    }
}

impl OpenVersion {
    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        self.0.manifest()
    }

    /// The version id.
    pub fn id(&self) -> VersionId {
        self.manifest().id
    }

    /// Looks up `keys` (as text, the way HTTP and RESP receive them) and calls `each`
    /// with every key's index and its prediction JSON object, `None` when absent.
    ///
    /// Embedded lookups are memory reads, several keys overlapping their cache misses
    /// (`LookupFile::get_many`); Redis lookups are one `GET` for one key and one
    /// `MGET` for several (a cluster client splits it by slot).
    pub async fn predictions<K: AsRef<str> + Sync>(
        &self,
        keys: &[K],
        mut each: impl FnMut(usize, Option<&[u8]>) + Send,
    ) -> Result<(), StoreError> {
        // One key (every GET) needs no list of its own.
        if let [key] = keys {
            return self.0.predictions(&[key.as_ref()], &mut each).await;
        }
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.0.predictions(&keys, &mut each).await
    }
}
