//! Point lookups in a published version.

use super::complete;
use super::encode::normalise_key;
use super::{RedisStore, RedisStoreError};
use crate::lookup::KeyType;
use crate::{Manifest, VersionId};

/// A published version opened for lookups: its manifest, key prefix and key type.
///
/// Opening reads the manifest once and checks that a sample of the version's keys is
/// still there; each lookup is then one `GET` (or one `MGET`).
/// A server holds the `RedisVersion` of each job's current version and swaps it when
/// the pointer changes.
#[derive(Debug, Clone)]
pub struct RedisVersion {
    store: RedisStore,
    manifest: Manifest,
    prefix: String,
    key_type: KeyType,
}

impl RedisStore {
    /// Opens a published version for lookups. A version that lost keys since it was
    /// published (evicted, deleted) is refused with [`RedisStoreError::Incomplete`];
    /// the check reads one hash field and sends one `EXISTS` of a sample of its keys,
    /// so it is cheap enough for every swap.
    pub async fn open(&self, job: &str, id: VersionId) -> Result<RedisVersion, RedisStoreError> {
        let (manifest_key, json) = self.manifest_json(job, id).await?;
        let manifest = super::parse_json(&manifest_key, &json)?;
        let keys = self.keys(job)?;
        let prefix = keys.data_prefix(id);
        let stored = complete::Stored {
            manifest: &manifest,
            manifest_sha256: crate::embedded::sha256_bytes(&json),
            prefix: &prefix,
        };
        complete::check(self, job, id, &keys, stored).await?;
        let key_type = if manifest.key.key_type == "int" {
            KeyType::Int
        } else {
            KeyType::Str
        };
        Ok(RedisVersion {
            prefix,
            store: self.clone(),
            manifest,
            key_type,
        })
    }

    /// The prediction JSON for `key` in version `id` of `job`, `None` if absent.
    ///
    /// This opens the version first (its manifest, for the key type, and the
    /// completeness check); to look up many keys, open it once with [`RedisStore::open`].
    pub async fn get_json(
        &self,
        job: &str,
        id: VersionId,
        key: &str,
    ) -> Result<Option<Vec<u8>>, RedisStoreError> {
        self.open(job, id).await?.get_json(key).await
    }

    /// The prediction JSON for each of `keys` in version `id` of `job`, in order.
    pub async fn mget_json<K: AsRef<str>>(
        &self,
        job: &str,
        id: VersionId,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, RedisStoreError> {
        self.open(job, id).await?.mget_json(keys).await
    }
}

impl RedisVersion {
    /// The version's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The version id.
    pub fn id(&self) -> VersionId {
        self.manifest.id
    }

    /// The prefix of its data keys (`presage:churn:v3:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prediction JSON object for a key given as text, `None` if absent.
    pub async fn get_json(&self, key: &str) -> Result<Option<Vec<u8>>, RedisStoreError> {
        get_json(&self.store, &self.prefix, self.key_type, key).await
    }

    /// The prediction JSON objects for several keys (one `MGET`; a cluster client
    /// splits it by slot), in the order of `keys`.
    pub async fn mget_json<K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, RedisStoreError> {
        mget_json(&self.store, &self.prefix, self.key_type, keys).await
    }
}

pub(super) async fn get_json(
    store: &RedisStore,
    prefix: &str,
    key_type: KeyType,
    key: &str,
) -> Result<Option<Vec<u8>>, RedisStoreError> {
    let mut full = Vec::with_capacity(prefix.len() + key.len());
    full.extend_from_slice(prefix.as_bytes());
    if !normalise_key(key_type, key, &mut full) {
        return Ok(None);
    }
    ::redis::cmd("GET")
        .arg(&full)
        .query_async(&mut store.conn())
        .await
        .map_err(|error| RedisStoreError::Lookup {
            url: store.url().to_owned(),
            key: String::from_utf8_lossy(&full).into_owned(),
            error: Box::new(error),
        })
}

pub(super) async fn mget_json<K: AsRef<str>>(
    store: &RedisStore,
    prefix: &str,
    key_type: KeyType,
    keys: &[K],
) -> Result<Vec<Option<Vec<u8>>>, RedisStoreError> {
    let mut full: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    // Position of each asked key among the keys sent; None for keys that cannot exist.
    let mut sent = Vec::with_capacity(keys.len());
    for key in keys {
        let mut name = prefix.as_bytes().to_vec();
        if normalise_key(key_type, key.as_ref(), &mut name) {
            sent.push(Some(full.len()));
            full.push(name);
        } else {
            sent.push(None);
        }
    }
    if full.is_empty() {
        return Ok(vec![None; keys.len()]);
    }
    let mut values: Vec<Option<Vec<u8>>> = ::redis::cmd("MGET")
        .arg(&full)
        .query_async(&mut store.conn())
        .await
        .map_err(|error| RedisStoreError::Lookup {
            url: store.url().to_owned(),
            key: String::from_utf8_lossy(&full[0]).into_owned(),
            error: Box::new(error),
        })?;
    Ok(sent
        .into_iter()
        .map(|i| i.and_then(|i| values.get_mut(i).and_then(Option::take)))
        .collect())
}
