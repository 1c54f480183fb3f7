//! Checking at open that a published version still has its keys.
//!
//! Redis may lose keys of a published version: evicted under `maxmemory` with an
//! `allkeys-*` policy, deleted by hand, lost with a cluster node. Lookups would then
//! answer misses for keys that have predictions. Counting a version's keys needs a
//! `SCAN` of every node, far too slow for an open (a server opens a version at every
//! swap), so the writer keeps a uniform sample of its keys instead (the
//! [`SAMPLE_KEYS`] keys of smallest hash) and publishing records it, with the row
//! count, in the job's `complete` hash, in the same script that stores the manifest
//! and flips the pointer. Opening reads the record and checks with one `EXISTS` that
//! every sampled key is still there: a version that lost a few percent of its keys
//! is refused almost surely, one that lost a handful of keys may pass.
//!
//! Versions published before records were kept have none and open unchecked. The
//! hash's `since` field (the first version published with a record) tells them from
//! a version whose record was lost, which is refused. If the whole hash is lost,
//! every version opens unchecked until the next publish starts it again.

use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use super::keys::JobKeys;
use super::{RedisStore, RedisStoreError};
use crate::{Manifest, VersionId};

/// Keys sampled per version: one `EXISTS` of this many keys at every open.
pub(crate) const SAMPLE_KEYS: usize = 64;

/// What a version's completeness record holds (JSON, in the job's `complete` hash).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Keys written; must equal the manifest's `rows`.
    pub rows: u64,
    /// Sampled keys (without the version's prefix).
    pub sample: Vec<String>,
    /// The sha256 of the manifest as published, so an edited manifest is refused
    /// (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
}

/// What is stored of a version, as [`check`] reads it.
pub(crate) struct Stored<'a> {
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// The sha256 of the manifest's stored bytes.
    pub manifest_sha256: String,
    /// The prefix of its data keys.
    pub prefix: &'a str,
}

/// The keys of smallest hash seen so far (a bottom-k sample: uniform, and the same
/// for the same keys whatever their order).
#[derive(Debug, Default)]
pub(crate) struct Sample {
    /// Max-heap by hash: the largest kept hash is the one to replace.
    kept: BinaryHeap<(u64, Box<[u8]>)>,
}

impl Sample {
    /// Offers a key (without prefix) with its hash.
    #[inline]
    pub(crate) fn offer(&mut self, hash: u64, key: &[u8]) {
        if self.kept.len() < SAMPLE_KEYS {
            self.kept.push((hash, key.into()));
        } else if self.kept.peek().is_some_and(|(top, _)| hash < *top) {
            self.kept.pop();
            self.kept.push((hash, key.into()));
        }
    }

    /// The record to publish for a version of `rows` keys.
    pub(crate) fn record(&self, rows: u64) -> Record {
        Record {
            manifest_sha256: None,
            rows,
            // Keys are UTF-8: Arrow strings or decimal integers.
            sample: self
                .kept
                .iter()
                .map(|(_, key)| String::from_utf8_lossy(key).into_owned())
                .collect(),
        }
    }
}

/// Refuses version `id` of `job` (keys `keys`, data under `prefix`) when its record
/// is missing although it was published with one, disagrees with its manifest, or
/// names a key that is gone, or its manifest was edited.
pub(super) async fn check(
    store: &RedisStore,
    job: &str,
    id: VersionId,
    keys: &JobKeys,
    stored: Stored<'_>,
) -> Result<(), RedisStoreError> {
    let Stored {
        manifest,
        manifest_sha256,
        prefix,
    } = stored;
    let hash = keys.complete();
    let (since, record): (Option<u64>, Option<Vec<u8>>) = ::redis::cmd("HMGET")
        .arg(&hash)
        .arg("since")
        .arg(id.0)
        .query_async(&mut store.conn())
        .await
        .map_err(store.command_error(job, "reading the completeness record of"))?;
    let incomplete = |message: String| RedisStoreError::Incomplete {
        url: store.url().to_owned(),
        job: job.to_owned(),
        id,
        message,
    };
    let Some(record) = record else {
        return match since {
            Some(since) if id.0 >= since => Err(incomplete(format!(
                "its completeness record (field `{id}` of `{hash}`) is gone"
            ))),
            // Published before records were kept.
            _ => Ok(()),
        };
    };
    let record: Record = serde_json::from_slice(&record).map_err(|e| {
        incomplete(format!(
            "its completeness record (field `{id}` of `{hash}`) cannot be read: {e}"
        ))
    })?;
    if let Some(published) = &record.manifest_sha256
        && *published != manifest_sha256
    {
        return Err(incomplete(format!(
            "its manifest was changed since it was published (sha256 {manifest_sha256}, published as {published})"
        )));
    }
    if record.rows != manifest.rows {
        return Err(incomplete(format!(
            "its manifest says {} keys, its completeness record {}",
            manifest.rows, record.rows
        )));
    }
    if record.sample.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = record
        .sample
        .iter()
        .map(|key| format!("{prefix}{key}"))
        .collect();
    // One command; a cluster client splits it by slot and adds up the counts.
    let present: usize = ::redis::cmd("EXISTS")
        .arg(&names)
        .query_async(&mut store.conn())
        .await
        .map_err(store.command_error(job, "checking the keys of"))?;
    if present < names.len() {
        return Err(incomplete(format!(
            "{} of {} sampled keys under `{prefix}` are gone (evicted or deleted)",
            names.len() - present,
            names.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_keeps_the_smallest_hashes_in_any_order() {
        let hash = |i: u64| twox_hash::XxHash3_64::oneshot(&i.to_le_bytes());
        let sampled = |order: &mut dyn Iterator<Item = u64>| {
            let mut sample = Sample::default();
            for i in order {
                sample.offer(hash(i), i.to_string().as_bytes());
            }
            let mut keys = sample.record(1000).sample;
            keys.sort();
            keys
        };
        let forward = sampled(&mut (0..1000));
        assert_eq!(forward.len(), SAMPLE_KEYS);
        assert_eq!(forward, sampled(&mut (0..1000).rev()));
        let mut smallest: Vec<u64> = (0..1000).collect();
        smallest.sort_by_key(|&i| hash(i));
        let mut expected: Vec<String> =
            smallest[..SAMPLE_KEYS].iter().map(u64::to_string).collect();
        expected.sort();
        assert_eq!(forward, expected);
        // Fewer keys than the sample: all of them.
        assert_eq!(sampled(&mut (0..5)).len(), 5);
    }
}
