//! The Redis store behind the [`Backend`] seam.

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use async_trait::async_trait;

use super::{RedisStagedVersion, RedisStore, RedisVersion, RedisVersionWriter};
use crate::backend::{Backend, BackendStaged, BackendVersion, BackendWriter, RunLock};
use crate::{History, LastRun, Manifest, StoreError, VersionId};

#[async_trait]
impl Backend for RedisStore {
    fn describe(&self) -> String {
        format!("redis `{}`", self.url())
    }

    async fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError> {
        Ok(RedisStore::current(self, job).await?)
    }

    async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        Ok(RedisStore::manifest(self, job, id).await?)
    }

    async fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        Ok(RedisStore::versions(self, job).await?)
    }

    async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError> {
        RedisStore::rollback(self, job, to, force).await
    }

    async fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError> {
        Ok(RedisStore::version_ids(self, job).await?)
    }

    async fn history(&self, job: &str) -> Result<History, StoreError> {
        Ok(RedisStore::history(self, job).await?)
    }

    async fn lock_run(&self, job: &str) -> Result<RunLock, StoreError> {
        RedisStore::lock_run(self, job).await
    }

    async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError> {
        Ok(RedisStore::record_run(self, job, run).await?)
    }

    async fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError> {
        Ok(RedisStore::last_run(self, job).await?)
    }

    async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<Box<dyn BackendWriter>, StoreError> {
        Ok(Box::new(RedisStore::begin(self, job, key, outputs).await?))
    }

    async fn open(&self, job: &str, id: VersionId) -> Result<Box<dyn BackendVersion>, StoreError> {
        Ok(Box::new(RedisStore::open(self, job, id).await?))
    }

    /// Redis keeps each key's JSON only, no columnar copy.
    async fn prediction_column(
        &self,
        _job: &str,
        _id: VersionId,
        _field: &str,
    ) -> Result<Option<Vec<ArrayRef>>, StoreError> {
        Ok(None)
    }
}

#[async_trait]
impl BackendWriter for RedisVersionWriter {
    fn rows(&self) -> u64 {
        RedisVersionWriter::rows(self)
    }

    async fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError> {
        Ok(RedisVersionWriter::write(self, keys, outputs).await?)
    }

    async fn finish(self: Box<Self>) -> Result<Box<dyn BackendStaged>, StoreError> {
        Ok(Box::new(RedisVersionWriter::finish(*self).await?))
    }
}

#[async_trait]
impl BackendStaged for RedisStagedVersion {
    fn rows(&self) -> u64 {
        RedisStagedVersion::rows(self)
    }

    async fn contains(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        Ok(self
            .mget_json(keys)
            .await?
            .into_iter()
            .map(|value| value.is_some())
            .collect())
    }

    async fn publish(
        self: Box<Self>,
        manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, StoreError> {
        Ok(RedisStagedVersion::publish(*self, manifest, keep_versions, promote).await?)
    }

    // Redis keeps no blocked runs: their keys are deleted at once.
    async fn block(self: Box<Self>, _keep_blocked: usize) -> Result<String, StoreError> {
        let prefix = self.prefix().to_owned();
        self.discard().await?;
        Ok(format!("staged keys `{prefix}*` deleted"))
    }
}

#[async_trait]
impl BackendVersion for RedisVersion {
    fn manifest(&self) -> &Manifest {
        RedisVersion::manifest(self)
    }

    async fn predictions(
        &self,
        keys: &[&str],
        each: &mut (dyn for<'v> FnMut(usize, Option<&'v [u8]>) + Send),
    ) -> Result<(), StoreError> {
        if let [key] = keys {
            let value = self.get_json(key).await?;
            each(0, value.as_deref());
        } else if !keys.is_empty() {
            for (i, value) in self.mget_json(keys).await?.into_iter().enumerate() {
                each(i, value.as_deref());
            }
        }
        Ok(())
    }
}
