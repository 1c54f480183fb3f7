//! Writing a version: reserve an id under a lease, stream rows in pipelines,
//! publish with one script.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::{Cmd, RedisError, Value};
use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use tokio::task::JoinHandle;

use super::complete::Sample;
use super::conn::{Batch, Conn};
use super::encode::{Encoder, KeyColumn, key_type};
use super::keys::{JobKeys, jobs_key};
use super::slot::slot;
use super::{RedisStore, RedisStoreError, reader, scripts};
use crate::history::{HistoryEntry, HistoryEvent};
use crate::lookup::KeyType;
use crate::{Manifest, VersionId};

/// Publish attempts when other publishers of the same job keep moving the pointer.
pub(crate) const PUBLISH_ATTEMPTS: usize = 10;

/// Keys per `MSETNX` on a standalone server: large enough that the server's
/// per-command cost is spread thin, small enough that one command holds the server
/// well under a millisecond, so readers of the same server barely notice a publish.
const MSET_KEYS: usize = 512;

type Flight = JoinHandle<Result<(), RedisStoreError>>;

/// Writes one run's predictions under a new version's key prefix. Nothing is visible
/// to readers until [`RedisStagedVersion::publish`].
///
/// Dropping the writer (an error, a cancelled run) deletes what it wrote, in the
/// background; if the process dies instead, the keys are deleted by the first run
/// that starts or publishes after the lease expires.
pub struct RedisVersionWriter {
    claim: Option<Claim>,
    prefix: String,
    key_type: KeyType,
    encoder: Encoder,
    rows: u64,
    cluster: bool,
    /// Commands ready to send: `MSETNX` (standalone) or `SET NX` (cluster).
    pending: Vec<Cmd>,
    /// Rows in `pending` and `mset`.
    pending_rows: usize,
    /// Cluster: the slot of each `SET NX` in `pending`.
    pending_slots: Vec<u16>,
    /// Standalone: the `MSETNX` being filled, and its rows.
    mset: Option<Cmd>,
    mset_rows: usize,
    /// Standalone: (hash of key, row in the pipeline) of the pending rows, to find a
    /// key that comes twice within one pipeline (`MSETNX` would just set it twice).
    hashes: Vec<(u64, u32)>,
    in_flight: VecDeque<Flight>,
    max_in_flight: usize,
    /// Keys the completeness record names, checked whenever the version is opened.
    sample: Sample,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// A complete version: every key written, not yet visible.
pub struct RedisStagedVersion {
    claim: Option<Claim>,
    prefix: String,
    key_type: KeyType,
    rows: u64,
    sample: Sample,
}

/// A reserved version id held under a lease: what publishing or cleaning up needs.
struct Claim {
    store: RedisStore,
    job: String,
    keys: JobKeys,
    id: VersionId,
    lease: Lease,
}

impl RedisStore {
    /// Starts writing a new version of `job` with a key column (string or integer)
    /// and prediction fields (integers, floats, booleans, text, lists of float32).
    ///
    /// Versions abandoned by crashed runs and versions dropped by retention are
    /// deleted first. The version id is reserved now (ids of runs that never publish
    /// are skipped) and claimed in the job's staging hash under a lease.
    pub async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<RedisVersionWriter, RedisStoreError> {
        let keys = self.keys(job)?;
        let key_type = key_type(job, &key)?;
        let encoder = Encoder::new(job, outputs)?;
        self.clean(job).await?;
        let lease = self.options().lease;
        let id: u64 = scripts::BEGIN
            .key(keys.next_id())
            .key(keys.versions())
            .key(keys.current())
            .key(keys.staging())
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await
            .map_err(self.command_error(job, "reserving a version id for"))?;
        let id = VersionId(id);
        let prefix = keys.data_prefix(id);
        let options = self.options();
        let batches_per_flush = self.conn().scan_routes().len();
        Ok(RedisVersionWriter {
            claim: Some(Claim {
                lease: Lease::start(self.conn(), keys.staging(), id, lease),
                store: self.clone(),
                job: job.to_owned(),
                keys,
                id,
            }),
            key_buf: prefix.as_bytes().to_vec(),
            prefix,
            key_type,
            encoder,
            rows: 0,
            cluster: self.is_cluster(),
            pending: Vec::new(),
            pending_rows: 0,
            pending_slots: Vec::new(),
            mset: None,
            mset_rows: 0,
            hashes: Vec::new(),
            in_flight: VecDeque::new(),
            max_in_flight: options.max_in_flight.max(1) * batches_per_flush,
            sample: Sample::default(),
            value_buf: Vec::new(),
        })
    }
}

impl RedisVersionWriter {
    fn claim(&self) -> &Claim {
        self.claim.as_ref().expect("writer is open")
    }

    /// The version id this run will publish as.
    pub fn id(&self) -> VersionId {
        self.claim().id
    }

    /// The prefix of the version's keys (`presage:churn:v3:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends scored rows: the key column and one array per prediction field, in
    /// the order given to [`RedisStore::begin`].
    ///
    /// Rows are sent in pipelines as they fill; an error of an earlier pipeline (a
    /// duplicate key, a lost connection) is returned by a later call or by
    /// [`RedisVersionWriter::finish`].
    pub async fn write(
        &mut self,
        keys: &ArrayRef,
        outputs: &[ArrayRef],
    ) -> Result<(), RedisStoreError> {
        self.claim().check_lease()?;
        let job = self.claim().job.clone();
        let key_column = KeyColumn::new(&job, self.key_type, keys)?;
        let columns = self.encoder.columns(&job, keys.len(), outputs)?;
        let pipeline_rows = self.claim().store.options().pipeline_rows.max(1);
        let prefix_len = self.prefix.len();
        for row in 0..keys.len() {
            if key_column.is_null(row) {
                return Err(RedisStoreError::NullKey {
                    job,
                    row: self.rows + row as u64,
                });
            }
            self.key_buf.truncate(prefix_len);
            key_column.write(row, &mut self.key_buf);
            self.value_buf.clear();
            self.encoder.write_json(&columns, row, &mut self.value_buf);
            let hash = twox_hash::XxHash3_64::oneshot(&self.key_buf);
            self.sample.offer(hash, &self.key_buf[prefix_len..]);
            if self.cluster {
                // Keys spread over every slot: one `SET NX` each, grouped by node.
                let mut cmd = Cmd::with_capacity(4, self.key_buf.len() + self.value_buf.len() + 5);
                cmd.arg("SET")
                    .arg(&self.key_buf[..])
                    .arg(&self.value_buf[..])
                    .arg("NX");
                self.pending.push(cmd);
                self.pending_slots.push(slot(&self.key_buf));
            } else {
                let cmd = self.mset.get_or_insert_with(|| {
                    let mut cmd = Cmd::with_capacity(1 + 2 * MSET_KEYS, MSET_KEYS * 96);
                    cmd.arg("MSETNX");
                    cmd
                });
                cmd.arg(&self.key_buf[..]).arg(&self.value_buf[..]);
                self.hashes.push((hash, self.pending_rows as u32));
                self.mset_rows += 1;
                if self.mset_rows == MSET_KEYS {
                    self.pending.push(self.mset.take().expect("filled"));
                    self.mset_rows = 0;
                }
            }
            self.pending_rows += 1;
            if self.pending_rows >= pipeline_rows {
                self.flush().await?;
            }
        }
        self.rows += keys.len() as u64;
        Ok(())
    }

    /// Sends the pending rows, then waits for the oldest pipelines while too many
    /// are in flight.
    async fn flush(&mut self) -> Result<(), RedisStoreError> {
        if let Some(cmd) = self.mset.take() {
            self.pending.push(cmd);
            self.mset_rows = 0;
        }
        self.pending_rows = 0;
        if let Some(key) = self.repeated_key() {
            return Err(RedisStoreError::DuplicateKey {
                job: self.claim().job.clone(),
                key,
            });
        }
        if !self.pending.is_empty() {
            let claim = self.claim.as_ref().expect("writer is open");
            let conn = claim.store.conn();
            let url = claim.store.url().to_owned();
            let job = claim.job.clone();
            let cmds = std::mem::take(&mut self.pending);
            let slots = std::mem::take(&mut self.pending_slots);
            for batch in conn.group(cmds, &slots) {
                let context = WriteContext {
                    url: url.clone(),
                    job: job.clone(),
                    prefix: self.prefix.clone(),
                };
                self.in_flight
                    .push_back(tokio::spawn(send_batch(conn.clone(), batch, context)));
            }
        }
        while self.in_flight.len() > self.max_in_flight {
            let flight = self.in_flight.pop_front().expect("in flight");
            join(flight, self.claim()).await?;
        }
        Ok(())
    }

    /// A key that comes twice among the pending `MSETNX` rows (standalone), found by
    /// sorting their hashes and comparing the keys of equal hashes.
    fn repeated_key(&mut self) -> Option<String> {
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.sort_unstable();
        let key = |row: u32| {
            let row = row as usize;
            self.pending
                .get(row / MSET_KEYS)
                .and_then(|cmd| cmd.args_iter().nth(1 + 2 * (row % MSET_KEYS)))
                .and_then(|arg| match arg {
                    ::redis::Arg::Simple(bytes) => Some(bytes),
                    ::redis::Arg::Cursor => None,
                })
        };
        let repeated = hashes.windows(2).find_map(|pair| {
            let ((h1, r1), (h2, r2)) = (pair[0], pair[1]);
            (h1 == h2 && key(r1).is_some() && key(r1) == key(r2)).then(|| {
                let bytes = key(r1).unwrap_or_default();
                String::from_utf8_lossy(&bytes[self.prefix.len().min(bytes.len())..]).into_owned()
            })
        });
        hashes.clear();
        self.hashes = hashes;
        repeated
    }

    /// Sends the last rows and waits until every row is written.
    pub async fn finish(mut self) -> Result<RedisStagedVersion, RedisStoreError> {
        self.flush().await?;
        while let Some(flight) = self.in_flight.pop_front() {
            join(flight, self.claim()).await?;
        }
        self.claim().check_lease()?;
        Ok(RedisStagedVersion {
            claim: self.claim.take(),
            prefix: std::mem::take(&mut self.prefix),
            key_type: self.key_type,
            rows: self.rows,
            sample: std::mem::take(&mut self.sample),
        })
    }

    /// Gives the version up and deletes what was written, waiting until it is gone.
    pub async fn abort(mut self) -> Result<(), RedisStoreError> {
        let in_flight = std::mem::take(&mut self.in_flight);
        let claim = self.claim.take().expect("writer is open");
        claim.abandon(in_flight).await
    }
}

impl Drop for RedisVersionWriter {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            claim.abandon_in_background(std::mem::take(&mut self.in_flight));
        }
    }
}

/// Where a pipeline writes, for its errors.
struct WriteContext {
    url: String,
    job: String,
    prefix: String,
}

async fn send_batch(
    conn: Conn,
    batch: Batch,
    context: WriteContext,
) -> Result<(), RedisStoreError> {
    let replies = conn
        .send(&batch)
        .await
        .map_err(|error| RedisStoreError::Keys {
            url: context.url.clone(),
            job: context.job.clone(),
            prefix: context.prefix.clone(),
            action: "writing",
            error: Box::new(error),
        })?;
    // `SET NX` answers nil when the key exists, `MSETNX` 0 (and sets none of its
    // keys): a key came twice. After a resend the first attempt may have written it,
    // so nil proves nothing then.
    if replies.retried {
        return Ok(());
    }
    let Some(i) = replies
        .values
        .iter()
        .position(|v| matches!(v, Value::Nil | Value::Int(0)))
    else {
        return Ok(());
    };
    let cmd = batch.pipe.cmd_iter().nth(i).expect("a reply per command");
    let keys: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            ::redis::Arg::Simple(bytes) => Some(bytes),
            ::redis::Arg::Cursor => None,
        })
        .collect();
    let key = if keys.first() == Some(&&b"MSETNX"[..]) {
        // Which of the command's keys exists already: one `EXISTS` each.
        let candidates: Vec<&[u8]> = keys[1..].iter().step_by(2).copied().collect();
        let mut pipe = ::redis::Pipeline::with_capacity(candidates.len());
        for key in &candidates {
            pipe.cmd("EXISTS").arg(*key);
        }
        let exists: Vec<i64> = pipe
            .query_async(&mut conn.clone())
            .await
            .unwrap_or_default();
        exists
            .iter()
            .position(|&n| n > 0)
            .and_then(|j| candidates.get(j).copied())
            .unwrap_or_default()
    } else {
        keys.get(1).copied().unwrap_or_default()
    };
    Err(RedisStoreError::DuplicateKey {
        job: context.job,
        key: String::from_utf8_lossy(&key[context.prefix.len().min(key.len())..]).into_owned(),
    })
}

async fn join(flight: Flight, claim: &Claim) -> Result<(), RedisStoreError> {
    match flight.await {
        Ok(result) => result,
        Err(e) => Err(RedisStoreError::Keys {
            url: claim.store.url().to_owned(),
            job: claim.job.clone(),
            prefix: claim.keys.data_prefix(claim.id),
            action: "writing",
            error: Box::new(RedisError::from(std::io::Error::other(e.to_string()))),
        }),
    }
}

impl RedisStagedVersion {
    fn claim(&self) -> &Claim {
        self.claim.as_ref().expect("staged version is open")
    }

    /// The version id it will be published as.
    pub fn id(&self) -> VersionId {
        self.claim().id
    }

    /// Number of predictions.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The prefix of its keys (`presage:churn:v3:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prediction JSON for a key of the staged version (for checks that look
    /// keys up before publishing).
    pub async fn get_json(&self, key: &str) -> Result<Option<Vec<u8>>, RedisStoreError> {
        reader::get_json(&self.claim().store, &self.prefix, self.key_type, key).await
    }

    /// The prediction JSON for several keys of the staged version, in order.
    pub async fn mget_json<K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, RedisStoreError> {
        reader::mget_json(&self.claim().store, &self.prefix, self.key_type, keys).await
    }

    /// Publishes: writes the manifest and the completeness record (the row count and
    /// a sample of the keys, which opening checks) and flips the pointer in one
    /// script, then deletes the versions beyond `keep_versions` (at least 1; never
    /// the new one, nor the one it replaces, which servers may still be reading).
    ///
    /// `manifest`'s `id`, `job`, `parent`, `rows` and `files` (none: the version is
    /// keys, not files) are filled in here. If another run publishes the same job at
    /// the same moment, the manifest is rebuilt with the new parent and published
    /// again. Deletion errors do not fail the publish: the versions stay marked for
    /// deletion and the next run (or [`RedisStore::clean`]) deletes them.
    pub async fn publish(
        mut self,
        mut manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, RedisStoreError> {
        let claim = self.claim();
        let store = claim.store.clone();
        let job = claim.job.clone();
        let keys = claim.keys.clone();
        let id = claim.id;
        let mut record = self.sample.record(self.rows);
        let mut conn = store.conn();
        // Listed before the flip, so a published job is always listed.
        ::redis::cmd("SADD")
            .arg(jobs_key(&store.options().namespace))
            .arg(&job)
            .exec_async(&mut conn)
            .await
            .map_err(store.command_error(&job, "publishing"))?;
        // Crash tests kill the run here: everything written, the pointer not flipped.
        crate::failpoint::pause("publish");
        for _ in 0..PUBLISH_ATTEMPTS {
            let parent = store.current(&job).await?;
            manifest.id = id;
            manifest.job = job.clone();
            manifest.parent = parent;
            manifest.rows = self.rows;
            manifest.files = Vec::new();
            let json = serde_json::to_vec(&manifest).expect("manifest serialises");
            record.manifest_sha256 = Some(crate::embedded::sha256_bytes(&json));
            let record = serde_json::to_vec(&record).expect("completeness record serialises");
            let entry = HistoryEntry {
                version: id,
                at: chrono::Utc::now(),
                event: if promote {
                    HistoryEvent::Published
                } else {
                    HistoryEvent::Backfilled
                },
            };
            let reply: Vec<String> = scripts::PUBLISH
                .key(keys.current())
                .key(keys.versions())
                .key(keys.manifest(id))
                .key(keys.staging())
                .key(keys.complete())
                .key(keys.history())
                .arg(id.0)
                .arg(json)
                .arg(parent.map(|p| p.to_string()).unwrap_or_default())
                .arg(keep_versions.max(1))
                .arg(keys.manifest_prefix())
                .arg(&record)
                .arg(if promote { "1" } else { "0" })
                .arg(serde_json::to_vec(&entry).expect("history entry serialises"))
                .invoke_async(&mut conn)
                .await
                .map_err(store.command_error(&job, "publishing"))?;
            match reply.first().map(String::as_str) {
                Some("ok") => {
                    // Published: the staging entry is gone, nothing to clean up.
                    drop(self.claim.take());
                    let _ = store.clean(&job).await;
                    return Ok(manifest);
                }
                Some("moved") => continue,
                _ => {
                    return Err(RedisStoreError::StagingLost {
                        job,
                        id,
                        staging: keys.staging(),
                    });
                }
            }
        }
        Err(RedisStoreError::Contended { job, id })
    }

    /// Gives the version up (a blocked run) and deletes its keys, waiting until
    /// they are gone.
    pub async fn discard(mut self) -> Result<(), RedisStoreError> {
        let claim = self.claim.take().expect("staged version is open");
        claim.abandon(VecDeque::new()).await
    }
}

impl Drop for RedisStagedVersion {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            claim.abandon_in_background(VecDeque::new());
        }
    }
}

impl Claim {
    fn check_lease(&self) -> Result<(), RedisStoreError> {
        if self.lease.lost.load(Ordering::Relaxed) {
            return Err(RedisStoreError::StagingLost {
                job: self.job.clone(),
                id: self.id,
                staging: self.keys.staging(),
            });
        }
        Ok(())
    }

    /// Waits for the pipelines still in flight (so none lands after the deletion),
    /// marks the version for deletion and deletes it.
    async fn abandon(self, in_flight: VecDeque<Flight>) -> Result<(), RedisStoreError> {
        for flight in in_flight {
            let _ = flight.await;
        }
        let Claim {
            store,
            job,
            keys,
            id,
            lease,
        } = self;
        drop(lease);
        ::redis::cmd("HSET")
            .arg(keys.staging())
            .arg(id.0)
            .arg("0")
            .exec_async(&mut store.conn())
            .await
            .map_err(store.command_error(&job, "abandoning a version of"))?;
        store.clean(&job).await.map(drop)
    }

    /// [`Claim::abandon`] on the current runtime, if there is one; otherwise the
    /// lease expires and a later run deletes the keys.
    fn abandon_in_background(self, in_flight: VecDeque<Flight>) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = self.abandon(in_flight).await;
            });
        }
    }
}

/// A claim's lease, renewed by a background task while the writer lives.
struct Lease {
    task: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Lease {
    fn start(conn: Conn, staging: String, id: VersionId, lease: Duration) -> Lease {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let every = (lease / 4).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut conn = conn;
            loop {
                tokio::time::sleep(every).await;
                let renewed: Result<u64, _> = scripts::HEARTBEAT
                    .key(&staging)
                    .arg(id.0)
                    .arg(lease.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await;
                // A failed renewal (a network blip) is retried at the next beat; only
                // the entry being gone or claimed for deletion ends the lease.
                if let Ok(0) = renewed {
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        Lease { task, lost }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}
