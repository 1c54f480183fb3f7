//! The embedded store behind the [`Backend`] seam.
//!
//! Calls that read or verify whole files (opening a version, rolling back, listing
//! manifests, reading a Parquet column) run on Tokio's blocking pool so they never
//! stall a server's workers; small reads (`CURRENT`, one manifest) run in place.

use std::path::Path;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use async_trait::async_trait;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{EmbeddedStore, LoadedVersion, PARQUET_FILE, StagedVersion, VersionWriter};
use crate::backend::{Backend, BackendStaged, BackendVersion, BackendWriter, RunLock};
use crate::lookup::Key;
use crate::{History, LastRun, Manifest, StoreError, VersionId};

/// Runs blocking work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
}

#[async_trait]
impl Backend for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store `{}`", self.root().display())
    }

    async fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError> {
        EmbeddedStore::current(self, job)
    }

    async fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        EmbeddedStore::manifest(self, job, id)
    }

    async fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        let (store, job) = (self.clone(), job.to_owned());
        blocking(move || store.versions(&job)).await
    }

    async fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError> {
        let (store, job) = (self.clone(), job.to_owned());
        blocking(move || store.rollback(&job, to, force)).await
    }

    async fn history(&self, job: &str) -> Result<History, StoreError> {
        EmbeddedStore::history(self, job)
    }

    async fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError> {
        EmbeddedStore::published_ids(self, job)
    }

    async fn fingerprint(&self, job: &str, id: VersionId) -> Option<u64> {
        EmbeddedStore::fingerprint(self, job, id)
    }

    async fn lock_run(&self, job: &str) -> Result<RunLock, StoreError> {
        EmbeddedStore::lock_run(self, job)
    }

    async fn record_run(&self, job: &str, run: &LastRun) -> Result<(), StoreError> {
        EmbeddedStore::record_run(self, job, run)
    }

    async fn last_run(&self, job: &str) -> Result<Option<LastRun>, StoreError> {
        EmbeddedStore::last_run(self, job)
    }

    async fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<Box<dyn BackendWriter>, StoreError> {
        Ok(Box::new(EmbeddedStore::begin(self, job, key, outputs)?))
    }

    async fn open(&self, job: &str, id: VersionId) -> Result<Box<dyn BackendVersion>, StoreError> {
        let (store, job) = (self.clone(), job.to_owned());
        let version = blocking(move || store.load(&job, id)).await?;
        Ok(Box::new(version))
    }

    async fn prediction_column(
        &self,
        job: &str,
        id: VersionId,
        field: &str,
    ) -> Result<Option<Vec<ArrayRef>>, StoreError> {
        let path = self.version_dir(job, id).join(PARQUET_FILE);
        let field = field.to_owned();
        blocking(move || read_parquet_column(&path, &field)).await
    }
}

/// Reads one top-level column of a Parquet file (all its leaves, so a list or struct
/// column comes back whole); `None` when the file has no such column.
fn read_parquet_column(path: &Path, column: &str) -> Result<Option<Vec<ArrayRef>>, StoreError> {
    let parquet_error = |e: parquet::errors::ParquetError| StoreError::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let file = fs_err::File::open(path)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0).map_err(parquet_error)?;
    if !builder.schema().fields().iter().any(|f| f.name() == column) {
        return Ok(None);
    }
    let leaves: Vec<usize> = builder
        .parquet_schema()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path().parts().first().map(String::as_str) == Some(column))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error)?;
    let mut arrays = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| StoreError::Parquet {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        arrays.push(batch.column(0).clone());
    }
    Ok(Some(arrays))
}

#[async_trait]
impl BackendWriter for VersionWriter {
    fn rows(&self) -> u64 {
        VersionWriter::rows(self)
    }

    async fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError> {
        VersionWriter::write(self, keys, outputs)
    }

    async fn finish(self: Box<Self>) -> Result<Box<dyn BackendStaged>, StoreError> {
        Ok(Box::new(VersionWriter::finish(*self)?))
    }
}

#[async_trait]
impl BackendStaged for StagedVersion {
    fn rows(&self) -> u64 {
        StagedVersion::rows(self)
    }

    async fn contains(&self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let lookup = self.open_lookup()?;
        Ok(keys
            .iter()
            .map(|key| Key::parse(lookup.key_type(), key).is_some_and(|k| lookup.get(k).is_some()))
            .collect())
    }

    async fn publish(
        self: Box<Self>,
        manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, StoreError> {
        blocking(move || StagedVersion::publish(*self, manifest, keep_versions, promote)).await
    }

    async fn block(self: Box<Self>, keep_blocked: usize) -> Result<String, StoreError> {
        let kept = self.keep(keep_blocked)?;
        Ok(format!("staged files kept in `{}`", kept.display()))
    }
}

#[async_trait]
impl BackendVersion for LoadedVersion {
    fn manifest(&self) -> &Manifest {
        LoadedVersion::manifest(self)
    }

    async fn predictions(
        &self,
        keys: &[&str],
        each: &mut (dyn for<'v> FnMut(usize, Option<&'v [u8]>) + Send),
    ) -> Result<(), StoreError> {
        if let [key] = keys {
            let mut json = Vec::with_capacity(128);
            let found = self.write_prediction_json(key, &mut json);
            each(0, found.then_some(json.as_slice()));
        } else {
            self.write_predictions_json(keys, each);
        }
        Ok(())
    }
}
