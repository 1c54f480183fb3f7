//! The Redis backend: versions published into Redis or Redis Cluster.
//!
//! The lifecycle is the embedded store's: [`RedisStore::begin`] a version, stream
//! Arrow batches into [`RedisVersionWriter::write`], [`RedisVersionWriter::finish`],
//! then [`RedisStagedVersion::publish`]. Readers follow a pointer key; a version is
//! never changed after it is published.
//!
//! Key layout, for job `churn` (namespace `presage`):
//!
//! ```text
//! presage:{churn}:current          the published version id ("3"); flipped by a script
//! presage:{churn}:versions         sorted set of published, kept version ids
//! presage:{churn}:manifest:3       version 3's manifest (JSON)
//! presage:{churn}:staging          hash: id → lease deadline (ms) of versions being
//!                                  written, or 0 for versions whose keys are to go
//! presage:{churn}:next_id          the id counter
//! presage:{churn}:complete         hash: id → row count and sampled keys of each
//!                                  published version, checked when it is opened
//! presage:{churn}:last_run         the last run's outcome (JSON)
//! presage:churn:v3:<key>           version 3's prediction for <key>, a JSON object
//! presage:jobs                     set of jobs that published
//! ```
//!
//! Any Redis client can read a prediction with two `GET`s: the pointer, then
//! `presage:churn:v<id>:<key>`. The keys in braces share a hash tag, so in a cluster
//! they sit in one slot and change together in one Lua script; the data keys have
//! no hash tag and spread over every node.
//!
//! Writing reserves the id first and records it in `staging` with a lease that the
//! writer extends while it lives, then writes the rows in pipelines of 8,192 (four
//! in flight per node), never holding more than those in memory. On a standalone
//! server a pipeline is `MSETNX` commands of 512 keys each (one command per 512 keys
//! is what makes a publish run at about the server's speed rather than its per-command
//! cost); in a cluster, where a version's keys spread over every slot and a
//! multi-key command cannot, it is one `SET key value NX` per row, grouped by the node
//! that owns the key's slot. Both refuse to overwrite, which finds duplicate keys
//! (within one pipeline, key hashes find them before sending). Publishing is one
//! script: it checks the lease, stores the manifest, flips the pointer, and hands the
//! versions beyond `keep_versions` to deletion by marking them in `staging`. Deletion
//! (of those, and of versions whose writer crashed and whose lease expired) `SCAN`s
//! each node for the job's data keys and `UNLINK`s them in batches; it runs at the
//! start of every run and after every publish. A crash at any point leaves the
//! pointer on the previous version and the half-written keys recorded in `staging`.
//! Nothing is ever deleted by per-key TTL. Retention never drops the new version nor
//! the one it replaces (servers read that one until they notice the new pointer).
//!
//! The publish gates need no files: `max_psi` compares this run's scores with the
//! quantile bins the previous version's manifest recorded
//! ([`crate::Distribution`]), and `expected_keys` looks the keys up in the staged
//! prefix with `MGET`s before anything is published. A blocked run is never
//! published: its staging entry is marked for deletion and its keys are deleted at
//! once (the embedded store keeps a blocked run's files for inspection instead;
//! here the check results are in the job's `last_run` record).
//!
//! Readers (`presage serve`) poll the pointer, open a new version by reading its
//! manifest and checking that a sample of its keys is still there (see
//! `complete.rs`: a version that lost keys is refused rather than answered with
//! misses), and answer each lookup with one `GET` (`MGET` for a batch) under the
//! version's prefix.
//!
//! Only `redis://` URLs are accepted; TLS (`rediss://`) is refused when connecting,
//! so at config load, until it is supported.

mod backend;
mod cleanup;
mod complete;
mod conn;
mod encode;
mod error;
mod keys;
mod reader;
mod scripts;
mod slot;
mod topology;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands as _;

pub use cleanup::CleanupReport;
pub use error::RedisStoreError;
pub use reader::RedisVersion;
pub use writer::{RedisStagedVersion, RedisVersionWriter};

use self::conn::{Conn, Timeouts};
use self::keys::JobKeys;
use crate::history::{History, HistoryEntry, HistoryEvent};
use crate::{LastRun, Manifest, StoreError, VersionId};

/// How the Redis store writes and connects.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prefix of every key (`presage`).
    pub namespace: String,
    /// Rows per pipeline (8192); in a cluster, per batch before splitting by node.
    pub pipeline_rows: usize,
    /// Pipelines in flight at once, per node (4).
    pub max_in_flight: usize,
    /// How long a version being written stays claimed without a sign of life from
    /// its writer (60 s); the writer renews it every quarter of that. After a crash,
    /// its keys are deleted by the first run that starts or publishes after this.
    pub lease: Duration,
    /// Timeout for connecting (5 s).
    pub connect_timeout: Duration,
    /// Timeout for an answer, including a whole pipeline's (60 s).
    pub response_timeout: Duration,
    /// `COUNT` hint for each `SCAN` step when deleting versions (10,000).
    pub scan_count: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            namespace: "presage".to_owned(),
            pipeline_rows: 8192,
            max_in_flight: 4,
            lease: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            scan_count: 10_000,
        }
    }
}

/// Versions of every job in one Redis server or cluster. Cheap to clone; clones
/// share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    url: String,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url)
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Checks that `url` is one the store can connect with (`redis://`; TLS is not
    /// supported yet), without connecting: for config validation. [`RedisStore::connect`]
    /// checks the same first.
    pub fn check_url(url: &str) -> Result<(), RedisStoreError> {
        conn::check_url(url)
    }

    /// Connects with default options. One URL is a standalone server, or a cluster
    /// when that node has cluster mode on; several URLs are nodes of one cluster.
    pub async fn connect(urls: &[String]) -> Result<RedisStore, RedisStoreError> {
        RedisStore::connect_with(urls, RedisOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(
        urls: &[String],
        options: RedisOptions,
    ) -> Result<RedisStore, RedisStoreError> {
        keys::check_namespace(&options.namespace)?;
        let timeouts = Timeouts {
            connect: options.connect_timeout,
            response: options.response_timeout,
        };
        let conn = conn::connect(urls, timeouts).await?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                url: conn::redact(urls),
                options,
            }),
        })
    }

    /// The server or cluster nodes, as given (passwords hidden).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.conn, Conn::Cluster(..))
    }

    /// The options in use.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The key prefix of a version's data keys (`presage:churn:v3:`); a prediction
    /// is at this prefix followed by the key.
    pub fn data_prefix(&self, job: &str, id: VersionId) -> Result<String, RedisStoreError> {
        Ok(self.keys(job)?.data_prefix(id))
    }

    /// The key holding a job's current version id (`presage:{churn}:current`).
    pub fn pointer_key(&self, job: &str) -> Result<String, RedisStoreError> {
        Ok(self.keys(job)?.current())
    }

    pub(crate) fn keys(&self, job: &str) -> Result<JobKeys, RedisStoreError> {
        JobKeys::new(&self.inner.options.namespace, job)
    }

    pub(crate) fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    pub(crate) fn command_error(
        &self,
        job: &str,
        action: &'static str,
    ) -> impl Fn(::redis::RedisError) -> RedisStoreError {
        let url = self.inner.url.clone();
        let job = job.to_owned();
        move |error| RedisStoreError::Command {
            url: url.clone(),
            job: job.clone(),
            action,
            error: Box::new(error),
        }
    }

    /// The job's current version, `None` before its first publish.
    pub async fn current(&self, job: &str) -> Result<Option<VersionId>, RedisStoreError> {
        let key = self.keys(job)?.current();
        let content: Option<String> = self
            .conn()
            .get(&key)
            .await
            .map_err(self.command_error(job, "reading the current version of"))?;
        content
            .map(|content| {
                content.parse().map_err(|_| RedisStoreError::BadPointer {
                    key,
                    content: content.trim().to_owned(),
                })
            })
            .transpose()
    }

    /// Ids of the job's published (and not yet deleted) versions, oldest first.
    pub async fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, RedisStoreError> {
        let keys = self.keys(job)?;
        let ids: Vec<u64> = self
            .conn()
            .zrange(keys.versions(), 0, -1)
            .await
            .map_err(self.command_error(job, "listing the versions of"))?;
        Ok(ids.into_iter().map(VersionId).collect())
    }

    /// A version's manifest.
    pub async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, RedisStoreError> {
        let (key, json) = self.manifest_json(job, id).await?;
        parse_json(&key, &json)
    }

    /// A version's manifest as stored, and its key.
    pub(crate) async fn manifest_json(
        &self,
        job: &str,
        id: VersionId,
    ) -> Result<(String, Vec<u8>), RedisStoreError> {
        let key = self.keys(job)?.manifest(id);
        let json: Option<Vec<u8>> = self
            .conn()
            .get(&key)
            .await
            .map_err(self.command_error(job, "reading a manifest of"))?;
        let json = json.ok_or_else(|| RedisStoreError::UnknownVersion {
            job: job.to_owned(),
            id,
        })?;
        Ok((key, json))
    }

    /// Every version's manifest, newest first.
    pub async fn versions(&self, job: &str) -> Result<Vec<Manifest>, RedisStoreError> {
        let keys = self.keys(job)?;
        let mut ids = self.version_ids(job).await?;
        ids.reverse();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = ids.iter().map(|&id| keys.manifest(id)).collect();
        // One MGET: the manifests share the job's hash tag, so one slot.
        let jsons: Vec<Option<Vec<u8>>> = ::redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut self.conn())
            .await
            .map_err(self.command_error(job, "reading the manifests of"))?;
        // A version deleted between the two reads is skipped.
        names
            .iter()
            .zip(jsons)
            .filter_map(|(key, json)| json.map(|json| parse_json(key, &json)))
            .collect()
    }

    /// Names of the jobs that have a published version.
    pub async fn jobs(&self) -> Result<Vec<String>, RedisStoreError> {
        let mut conn = self.conn();
        let mut jobs: Vec<String> = conn
            .smembers(keys::jobs_key(&self.inner.options.namespace))
            .await
            .map_err(self.command_error("*", "listing"))?;
        let mut published = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            if self.current(&job).await?.is_some() {
                published.push(job);
            }
        }
        published.sort();
        Ok(published)
    }

    /// Points the job back at `to`, or at the version served before the current one
    /// (skipping versions rolled away from); `to` a version rolled away from needs
    /// `force`. The target must be a kept, published version; otherwise nothing
    /// changes. Returns `(previous, new)` current ids.
    pub async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError> {
        let keys = self.keys(job)?;
        // The choice is made from a snapshot; the script refuses it if the pointer
        // moved meanwhile, and the choice is made again.
        for _ in 0..writer::PUBLISH_ATTEMPTS {
            let current = self
                .current(job)
                .await?
                .ok_or_else(|| StoreError::NoVersion {
                    job: job.to_owned(),
                })?;
            let history = self.history(job).await?;
            let kept = self.version_ids(job).await?;
            let target = history
                .resolve_rollback(current, to, force, &kept)
                .map_err(|refusal| refusal.into_error(job, current))?;
            let entry = HistoryEntry {
                version: target,
                at: chrono::Utc::now(),
                event: HistoryEvent::RolledBack { from: current },
            };
            let reply: Vec<String> = scripts::ROLLBACK
                .key(keys.current())
                .key(keys.versions())
                .key(keys.history())
                .arg(target.0)
                .arg(current.0)
                .arg(serde_json::to_vec(&entry).expect("history entry serialises"))
                .invoke_async(&mut self.conn())
                .await
                .map_err(self.command_error(job, "rolling back"))?;
            match reply.first().map(String::as_str) {
                Some("ok") => return Ok((current, target)),
                Some("unknown") => {
                    return Err(StoreError::UnknownVersion {
                        job: job.to_owned(),
                        id: target,
                    });
                }
                _ => continue,
            }
        }
        Err(RedisStoreError::Contended {
            job: job.to_owned(),
            id: to.unwrap_or(VersionId(0)),
        }
        .into())
    }

    /// The job's publishes, backfills and rollbacks (the newest 1,000), oldest first.
    /// An entry that does not parse is skipped.
    pub async fn history(&self, job: &str) -> Result<History, RedisStoreError> {
        let entries: Vec<Vec<u8>> = self
            .conn()
            .lrange(self.keys(job)?.history(), 0, -1)
            .await
            .map_err(self.command_error(job, "reading the history of"))?;
        Ok(History::new(
            entries
                .iter()
                .filter_map(|entry| serde_json::from_slice(entry).ok())
                .collect(),
        ))
    }

    /// Takes the job's run lock: a key holding `pid N on HOST since T`, set only if
    /// absent, with an expiry (the store's `lease`) a background task keeps
    /// extending. A crashed run's lock expires within one lease, as its staged keys do.
    pub async fn lock_run(&self, job: &str) -> Result<crate::RunLock, StoreError> {
        let key = self.keys(job)?.run_lock();
        let expiry = self.inner.options.lease;
        let holder = format!(
            "pid {} on {} since {}",
            std::process::id(),
            hostname(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        let taken: Option<String> = ::redis::cmd("SET")
            .arg(&key)
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(expiry.as_millis() as u64)
            .query_async(&mut self.conn())
            .await
            .map_err(self.command_error(job, "locking the run of"))?;
        if taken.is_none() {
            let holder: Option<String> = self
                .conn()
                .get(&key)
                .await
                .map_err(self.command_error(job, "locking the run of"))?;
            return Err(StoreError::RunInProgress {
                job: job.to_owned(),
                holder: holder.unwrap_or_else(|| "holder unknown".to_owned()),
            });
        }
        let conn = self.conn();
        let refresh = tokio::spawn({
            let (key, holder, mut conn) = (key.clone(), holder.clone(), conn.clone());
            async move {
                loop {
                    tokio::time::sleep(expiry / 3).await;
                    let _: Result<i64, _> = scripts::EXTEND_RUN_LOCK
                        .key(&key)
                        .arg(&holder)
                        .arg(expiry.as_millis() as u64)
                        .invoke_async(&mut conn)
                        .await;
                }
            }
        });
        Ok(crate::RunLock::new(RedisRunLock {
            key,
            holder,
            conn,
            refresh,
            released: false,
        }))
    }

    /// Records the outcome of a run (replacing the previous record).
    pub async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), RedisStoreError> {
        let key = self.keys(job)?.last_run();
        let json = serde_json::to_vec(run).expect("run record serialises");
        self.conn()
            .set::<_, _, ()>(key, json)
            .await
            .map_err(self.command_error(job, "recording the last run of"))
    }

    /// The last recorded run of a job, if any.
    pub async fn last_run(&self, job: &str) -> Result<Option<LastRun>, RedisStoreError> {
        let key = self.keys(job)?.last_run();
        let json: Option<Vec<u8>> = self
            .conn()
            .get(&key)
            .await
            .map_err(self.command_error(job, "reading the last run of"))?;
        json.map(|json| parse_json(&key, &json)).transpose()
    }

    /// Deletes the keys of versions dropped by retention and of versions whose
    /// writer crashed (lease expired). Runs at the start of every run and after
    /// every publish; call it to clean up without a run.
    pub async fn clean(&self, job: &str) -> Result<CleanupReport, RedisStoreError> {
        cleanup::clean(self, job).await
    }
}

/// A held run lock: extended in the background, released when dropped.
struct RedisRunLock {
    key: String,
    holder: String,
    conn: Conn,
    refresh: tokio::task::JoinHandle<()>,
    released: bool,
}

impl RedisRunLock {
    fn release_script(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (key, holder, mut conn) = (self.key.clone(), self.holder.clone(), self.conn.clone());
        async move {
            let _: Result<i64, _> = scripts::RELEASE_RUN_LOCK
                .key(&key)
                .arg(&holder)
                .invoke_async(&mut conn)
                .await;
        }
    }
}

#[async_trait::async_trait]
impl crate::HeldRunLock for RedisRunLock {
    async fn release(mut self: Box<Self>) {
        self.refresh.abort();
        self.release_script().await;
        self.released = true;
    }
}

impl Drop for RedisRunLock {
    fn drop(&mut self) {
        self.refresh.abort();
        if self.released {
            return;
        }
        // Not released by its run (an error unwound past it): release in the
        // background; if the runtime is gone, the lock expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.release_script());
        }
    }
}

/// This machine's name, for lock holders; `unknown host` where it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".to_owned())
}

fn parse_json<T: serde::de::DeserializeOwned>(
    key: &str,
    json: &[u8],
) -> Result<T, RedisStoreError> {
    serde_json::from_slice(json).map_err(|e| RedisStoreError::BadManifest {
        key: key.to_owned(),
        message: e.to_string(),
    })
}
