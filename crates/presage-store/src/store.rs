//! One interface over both stores, so the job runner, the server and every command
//! have one way of doing each thing.
//!
//! [`Store`] is an enum rather than a trait object: there are exactly two backends,
//! the Redis one is async and the embedded one is not, and an enum lets each method
//! say in one `match` what the difference is. Embedded calls that read or verify
//! whole files (opening a version, rolling back, listing manifests) run on Tokio's
//! blocking pool so they never stall a server's workers.

use arrow::array::ArrayRef;
use arrow::datatypes::Field;

use crate::lookup::Key;
use crate::redis::{RedisStagedVersion, RedisStore, RedisVersion, RedisVersionWriter};
use crate::{
    EmbeddedStore, LastRun, LoadedVersion, Manifest, StagedVersion, StoreError, VersionId,
    VersionWriter,
};

/// Where versions live: files under a data folder, or a Redis server or cluster.
#[derive(Debug, Clone)]
pub enum Store {
    /// Files on local disk (`data_dir`).
    Embedded(EmbeddedStore),
    /// Redis or Redis Cluster.
    Redis(RedisStore),
}

/// A version being written; nothing is visible until [`StagedRun::publish`].
pub enum StoreWriter {
    /// Into a staging folder.
    Embedded(Box<VersionWriter>),
    /// Under a new key prefix, claimed under a lease.
    Redis(Box<RedisVersionWriter>),
}

/// A complete version, not yet visible: checks run against it, then it is published
/// or blocked.
pub enum StagedRun {
    /// A staging folder.
    Embedded(StagedVersion),
    /// A written key prefix.
    Redis(RedisStagedVersion),
}

/// A published version opened for lookups.
pub enum OpenVersion {
    /// A verified, memory-mapped lookup file.
    Embedded(LoadedVersion),
    /// A key prefix in Redis and its manifest.
    Redis(RedisVersion),
}

/// Runs blocking embedded-store work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
}

impl Store {
    /// The store for messages: `` embedded store `path` `` or `` redis `url` ``.
    pub fn describe(&self) -> String {
        match self {
            Store::Embedded(store) => format!("embedded store `{}`", store.root().display()),
            Store::Redis(store) => format!("redis `{}`", store.url()),
        }
    }

    /// The job's current version, `None` before its first publish.
    pub async fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError> {
        match self {
            Store::Embedded(store) => store.current(job),
            Store::Redis(store) => Ok(store.current(job).await?),
        }
    }

    /// A version's manifest.
    pub async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        match self {
            Store::Embedded(store) => store.manifest(job, id),
            Store::Redis(store) => Ok(store.manifest(job, id).await?),
        }
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
        match self {
            Store::Embedded(store) => {
                let (store, job) = (store.clone(), job.to_owned());
                blocking(move || store.versions(&job)).await
            }
            Store::Redis(store) => Ok(store.versions(job).await?),
        }
    }

    /// Points the job back at `to`, or at the newest version older than the current
    /// one; on any error nothing changes. Returns `(previous, new)` current ids.
    pub async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
    ) -> Result<(VersionId, VersionId), StoreError> {
        match self {
            Store::Embedded(store) => {
                let (store, job) = (store.clone(), job.to_owned());
                blocking(move || store.rollback(&job, to)).await
            }
            Store::Redis(store) => Ok(store.rollback(job, to).await?),
        }
    }

    /// Records the outcome of a run, replacing the previous record.
    pub async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError> {
        match self {
            Store::Embedded(store) => store.record_run(job, run),
            Store::Redis(store) => Ok(store.record_run(job, run).await?),
        }
    }

    /// The last recorded run of a job, if any.
    pub async fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError> {
        match self {
            Store::Embedded(store) => store.last_run(job),
            Store::Redis(store) => Ok(store.last_run(job).await?),
        }
    }

    /// Starts writing a new version of `job`: a key column and prediction fields.
    /// Leftovers of crashed runs are cleaned up first.
    pub async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<StoreWriter, StoreError> {
        match self {
            Store::Embedded(store) => Ok(StoreWriter::Embedded(Box::new(
                store.begin(job, key, outputs)?,
            ))),
            Store::Redis(store) => Ok(StoreWriter::Redis(Box::new(
                store.begin(job, key, outputs).await?,
            ))),
        }
    }

    /// Opens a published version for lookups (an embedded version's lookup file is
    /// verified against its checksum first).
    pub async fn open(&self, job: &str, id: VersionId) -> Result<OpenVersion, StoreError> {
        match self {
            Store::Embedded(store) => {
                let (store, job) = (store.clone(), job.to_owned());
                blocking(move || store.load(&job, id).map(OpenVersion::Embedded)).await
            }
            Store::Redis(store) => Ok(OpenVersion::Redis(store.open(job, id).await?)),
        }
    }
}

impl StoreWriter {
    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        match self {
            StoreWriter::Embedded(writer) => writer.rows(),
            StoreWriter::Redis(writer) => writer.rows(),
        }
    }

    /// Appends scored rows: the key column and one array per prediction field, in the
    /// order given to [`Store::begin`].
    pub async fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError> {
        match self {
            StoreWriter::Embedded(writer) => writer.write(keys, outputs),
            StoreWriter::Redis(writer) => Ok(writer.write(keys, outputs).await?),
        }
    }

    /// Finishes writing; duplicate keys are reported here (or by an earlier `write`).
    pub async fn finish(self) -> Result<StagedRun, StoreError> {
        match self {
            StoreWriter::Embedded(writer) => Ok(StagedRun::Embedded((*writer).finish()?)),
            StoreWriter::Redis(writer) => Ok(StagedRun::Redis((*writer).finish().await?)),
        }
    }
}

impl StagedRun {
    /// Number of predictions.
    pub fn rows(&self) -> u64 {
        match self {
            StagedRun::Embedded(staged) => staged.rows(),
            StagedRun::Redis(staged) => staged.rows(),
        }
    }

    /// Whether each of `keys` (as text) has a prediction in the staged version: the
    /// staged lookup file, or one `MGET` against the staged key prefix.
    pub async fn contains(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        match self {
            StagedRun::Embedded(staged) => {
                let lookup = staged.open_lookup()?;
                Ok(keys
                    .iter()
                    .map(|key| {
                        Key::parse(lookup.key_type(), key).is_some_and(|k| lookup.get(k).is_some())
                    })
                    .collect())
            }
            StagedRun::Redis(staged) => Ok(staged
                .mget_json(keys)
                .await?
                .into_iter()
                .map(|value| value.is_some())
                .collect()),
        }
    }

    /// Publishes: takes the id, stores the manifest, flips the pointer, and drops the
    /// versions beyond `keep_versions`. Returns the manifest as stored.
    pub async fn publish(
        self,
        manifest: Manifest,
        keep_versions: usize,
    ) -> Result<Manifest, StoreError> {
        match self {
            StagedRun::Embedded(staged) => staged.publish(manifest, keep_versions),
            StagedRun::Redis(staged) => Ok(staged.publish(manifest, keep_versions).await?),
        }
    }

    /// A blocked run: the version is never published. The embedded store keeps the
    /// staged files for inspection (`staging/blocked-<time>/`); the Redis store
    /// deletes the staged keys at once (Redis memory is the serving tier's). Returns
    /// what happened to them, for the error message.
    pub async fn block(self) -> Result<String, StoreError> {
        match self {
            StagedRun::Embedded(staged) => {
                let kept = staged.keep()?;
                Ok(format!("staged files kept in `{}`", kept.display()))
            }
            StagedRun::Redis(staged) => {
                let prefix = staged.prefix().to_owned();
                staged.discard().await?;
                Ok(format!("staged keys `{prefix}*` deleted"))
            }
        }
    }
}

impl OpenVersion {
    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        match self {
            OpenVersion::Embedded(version) => version.manifest(),
            OpenVersion::Redis(version) => version.manifest(),
        }
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
    pub async fn predictions<K: AsRef<str>>(
        &self,
        keys: &[K],
        mut each: impl FnMut(usize, Option<&[u8]>),
    ) -> Result<(), StoreError> {
        match self {
            OpenVersion::Embedded(version) => {
                if let [key] = keys {
                    let mut json = Vec::with_capacity(128);
                    let found = version.write_prediction_json(key.as_ref(), &mut json);
                    each(0, found.then_some(json.as_slice()));
                } else {
                    version.write_predictions_json(keys, each);
                }
            }
            OpenVersion::Redis(version) => {
                if let [key] = keys {
                    let value = version.get_json(key.as_ref()).await?;
                    each(0, value.as_deref());
                } else if !keys.is_empty() {
                    for (i, value) in version.mget_json(keys).await?.into_iter().enumerate() {
                        each(i, value.as_deref());
                    }
                }
            }
        }
        Ok(())
    }
}
