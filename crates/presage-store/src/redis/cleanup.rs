//! Deleting the keys of versions that are no longer wanted.
//!
//! A version's keys share a prefix but nothing lists them, and they are spread over
//! every node of a cluster, so deletion walks each node with `SCAN MATCH` over the
//! job's data keys and `UNLINK`s those of the doomed versions in batches (`UNLINK`
//! frees the memory in a background thread of the server). The staging entry of a
//! version is only removed once its keys are gone, so a deletion cut short is taken
//! up again by the next one.

use super::{RedisStore, RedisStoreError, scripts};
use crate::VersionId;

/// Keys deleted per `UNLINK` (or per pipeline, in a cluster).
const UNLINK_BATCH: usize = 1000;

/// What a cleanup deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// The versions whose keys were deleted: dropped by retention, or abandoned by
    /// a writer that crashed or gave up.
    pub versions: Vec<VersionId>,
    /// Number of data keys deleted.
    pub keys: u64,
}

pub(super) async fn clean(store: &RedisStore, job: &str) -> Result<CleanupReport, RedisStoreError> {
    let keys = store.keys(job)?;
    let mut conn = store.conn();
    let ids: Vec<u64> = scripts::REAP
        .key(keys.staging())
        .invoke_async(&mut conn)
        .await
        .map_err(store.command_error(job, "claiming abandoned versions of"))?;
    if ids.is_empty() {
        return Ok(CleanupReport::default());
    }
    let pattern = keys.data_pattern();
    let fail = |error| RedisStoreError::Keys {
        url: store.url().to_owned(),
        job: job.to_owned(),
        prefix: pattern.trim_end_matches('*').to_owned(),
        action: "deleting",
        error: Box::new(error),
    };
    let count = store.options().scan_count.max(10);
    let mut deleted = 0u64;
    for route in conn.scan_routes() {
        let mut cursor = 0;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        loop {
            let (next, found) = conn
                .scan(route, cursor, &pattern, count)
                .await
                .map_err(fail)?;
            doomed.extend(
                found
                    .into_iter()
                    .filter(|key| keys.data_key_id(key).is_some_and(|id| ids.contains(&id))),
            );
            // Deleting while scanning is safe: SCAN returns every key present for the
            // whole iteration, and deletions only remove keys from it.
            while doomed.len() >= UNLINK_BATCH {
                let batch: Vec<Vec<u8>> = doomed.drain(..UNLINK_BATCH).collect();
                conn.unlink(route, &batch).await.map_err(fail)?;
                deleted += batch.len() as u64;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        conn.unlink(route, &doomed).await.map_err(fail)?;
        deleted += doomed.len() as u64;
    }
    let _: u64 = scripts::FORGET
        .key(keys.staging())
        .arg(&ids)
        .invoke_async(&mut conn)
        .await
        .map_err(store.command_error(job, "forgetting deleted versions of"))?;
    let mut versions: Vec<VersionId> = ids.into_iter().map(VersionId).collect();
    versions.sort();
    Ok(CleanupReport {
        versions,
        keys: deleted,
    })
}
