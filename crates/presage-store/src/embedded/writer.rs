use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::Utc;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{
    EmbeddedStore, JobLock, LOOKUP_FILE, MANIFEST, MANIFEST_SHA256, PARQUET_FILE, STAGING,
    VERSIONS, sha256_bytes, sha256_file,
};
use crate::durable::{sync_dir, sync_file, write_atomic};
use crate::history::HistoryEvent;
use crate::lookup::{FieldType, KeyType, LookupWriter, ValueField};
use crate::{FileEntry, Manifest, StoreError, VersionId};

/// Writes one run's predictions into a staging folder. Nothing is visible to readers
/// until [`StagedVersion::publish`]; dropping the writer removes the folder.
pub struct VersionWriter {
    store: EmbeddedStore,
    job: String,
    dir: PathBuf,
    schema: SchemaRef,
    lookup: Option<LookupWriter>,
    parquet: Option<ArrowWriter<std::fs::File>>,
    rows: u64,
}

impl EmbeddedStore {
    /// Starts writing a new version of `job` with a key column and prediction fields.
    ///
    /// Leftover staging folders of runs whose process is gone are removed first.
    pub fn begin(
        &self,
        job: &str,
        key: Field,
        outputs: &[Field],
    ) -> Result<VersionWriter, StoreError> {
        let staging = self.job_dir(job).join(STAGING);
        fs_err::create_dir_all(&staging)?;
        remove_dead_runs(&staging)?;
        self.remove_leftovers(job)?;
        let dir = staging.join(format!(
            "run-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        fs_err::create_dir(&dir)?;

        let key_type = match key.data_type() {
            DataType::Int64 => KeyType::Int,
            _ => KeyType::Str,
        };
        let fields = outputs
            .iter()
            .map(|f| {
                let field_type = FieldType::from_arrow(f.data_type()).ok_or_else(|| {
                    crate::lookup::LookupError::FieldType {
                        field: f.name().clone(),
                        data_type: f.data_type().to_string(),
                    }
                })?;
                Ok(ValueField {
                    name: f.name().clone(),
                    field_type,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let lookup = LookupWriter::create(&dir.join(LOOKUP_FILE), key_type, fields)?;

        let mut all = vec![key];
        all.extend(outputs.iter().cloned());
        let schema = Arc::new(Schema::new(all));
        let parquet_path = dir.join(PARQUET_FILE);
        let file = fs_err::File::create(&parquet_path)?.into_parts().0;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let parquet = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| {
            StoreError::Parquet {
                path: parquet_path,
                message: e.to_string(),
            }
        })?;
        Ok(VersionWriter {
            store: self.clone(),
            job: job.to_owned(),
            dir,
            schema,
            lookup: Some(lookup),
            parquet: Some(parquet),
            rows: 0,
        })
    }
}

impl VersionWriter {
    /// The staging folder being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends scored rows: the key column and one array per prediction field, in the
    /// order given to [`EmbeddedStore::begin`].
    pub fn write(&mut self, keys: &ArrayRef, outputs: &[ArrayRef]) -> Result<(), StoreError> {
        let lookup = self.lookup.as_mut().expect("writer is open");
        lookup.append_batch(keys.as_ref(), outputs)?;
        let mut columns = vec![keys.clone()];
        columns.extend(outputs.iter().cloned());
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            StoreError::Parquet {
                path: self.dir.join(PARQUET_FILE),
                message: e.to_string(),
            }
        })?;
        let parquet = self.parquet.as_mut().expect("writer is open");
        parquet.write(&batch).map_err(|e| StoreError::Parquet {
            path: self.dir.join(PARQUET_FILE),
            message: e.to_string(),
        })?;
        self.rows += keys.len() as u64;
        Ok(())
    }

    /// Closes and fsyncs every file and computes its checksum. Duplicate keys are
    /// found here.
    pub fn finish(mut self) -> Result<StagedVersion, StoreError> {
        let parquet_path = self.dir.join(PARQUET_FILE);
        self.lookup.take().expect("writer is open").finish()?;
        let file = self
            .parquet
            .take()
            .expect("writer is open")
            .into_inner()
            .map_err(|e| StoreError::Parquet {
                path: parquet_path.clone(),
                message: e.to_string(),
            })?;
        file.sync_all()?;
        drop(file);
        sync_file(&self.dir.join(LOOKUP_FILE))?;
        let mut files = Vec::new();
        for name in [LOOKUP_FILE, PARQUET_FILE] {
            let path = self.dir.join(name);
            // The lookup file is hashed through its mapping: that pages it in as
            // servers will read it (2 MiB pages, see `LookupFile::scan`).
            let sha256 = if name == LOOKUP_FILE {
                crate::lookup::LookupFile::open(&path)?.scan(sha256_bytes)
            } else {
                sha256_file(&path)?
            };
            files.push(FileEntry {
                name: name.to_owned(),
                bytes: fs_err::metadata(&path)?.len(),
                sha256,
            });
        }
        Ok(StagedVersion {
            store: self.store.clone(),
            job: std::mem::take(&mut self.job),
            dir: std::mem::take(&mut self.dir),
            rows: self.rows,
            files,
        })
    }
}

impl Drop for VersionWriter {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }
}

/// A complete version in staging: checksummed, not yet visible.
pub struct StagedVersion {
    store: EmbeddedStore,
    job: String,
    dir: PathBuf,
    rows: u64,
    files: Vec<FileEntry>,
}

impl StagedVersion {
    /// Number of predictions.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The staging folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version's `predictions.parquet`, for checks that read the rows back.
    pub fn parquet_path(&self) -> PathBuf {
        self.dir.join(PARQUET_FILE)
    }

    /// Opens the staged lookup file (for checks that look keys up).
    pub fn open_lookup(&self) -> Result<crate::lookup::LookupFile, StoreError> {
        Ok(crate::lookup::LookupFile::open(
            &self.dir.join(LOOKUP_FILE),
        )?)
    }

    /// Publishes: takes the next id, writes the manifest and its checksum, moves the
    /// folder into `versions/`, swaps `CURRENT` (unless `promote` is false: a
    /// backfill is kept beside the current version), records the change in the
    /// history, and drops versions beyond `keep_versions`.
    ///
    /// `manifest`'s `id`, `parent`, `rows` and `files` are filled in here. A crash
    /// before the `CURRENT` swap leaves the previous version current, and the next
    /// run removes the version that was moved but never published. Once `CURRENT` is
    /// swapped the version is published: a failure to delete old versions is a
    /// warning on stderr, not an error.
    pub fn publish(
        mut self,
        mut manifest: Manifest,
        keep_versions: usize,
        promote: bool,
    ) -> Result<Manifest, StoreError> {
        let job_dir = self.store.job_dir(&self.job);
        let _lock = JobLock::acquire(&job_dir)?;
        let ids = self.store.version_ids(&self.job)?;
        // An unreadable pointer does not stop a run: the new version replaces it.
        let parent = self.store.current(&self.job).ok().flatten();
        let next = ids
            .last()
            .copied()
            .max(parent)
            .map_or(1, |VersionId(id)| id + 1);
        manifest.id = VersionId(next);
        manifest.job = self.job.clone();
        manifest.parent = parent;
        manifest.rows = self.rows;
        manifest.files = std::mem::take(&mut self.files);
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        write_atomic(&self.dir.join(MANIFEST), &json)?;
        write_atomic(
            &self.dir.join(MANIFEST_SHA256),
            format!("{}\n", sha256_bytes(&json)).as_bytes(),
        )?;

        let versions = job_dir.join(VERSIONS);
        fs_err::create_dir_all(&versions)?;
        let target = versions.join(next.to_string());
        fs_err::rename(&self.dir, &target)?;
        self.dir = PathBuf::new();
        sync_dir(&versions)?;
        sync_dir(&job_dir.join(STAGING))?;
        crate::failpoint::pause("publish");
        let event = if promote {
            write_atomic(
                &self.store.current_path(&self.job),
                format!("{next}\n").as_bytes(),
            )?;
            HistoryEvent::Published
        } else {
            HistoryEvent::Backfilled
        };
        crate::failpoint::pause("history");
        if let Err(e) = self.store.append_history(&self.job, manifest.id, event) {
            if !promote {
                // Without a history entry a backfill would be taken for a leftover.
                let _ = fs_err::remove_dir_all(&target);
                return Err(e);
            }
            eprintln!(
                "warning: job `{}`: version {next} is published, but recording it in the history failed: {e}",
                self.job
            );
        }
        // Known without reading `CURRENT` again: this version, or the one a backfill
        // left current.
        let current = if promote { Some(manifest.id) } else { parent };
        if let Err(e) = self.store.retain(&self.job, current, keep_versions) {
            eprintln!(
                "warning: job `{}`: version {next} is published, but deleting old versions failed: {e}",
                self.job
            );
        }
        Ok(manifest)
    }

    /// Keeps the staged files for inspection (a blocked publish) and returns where.
    ///
    /// Only the newest `keep_blocked` blocked runs stay (at least this one), so a
    /// check failing at every scheduled refresh does not fill the disk.
    pub fn keep(mut self, keep_blocked: usize) -> Result<PathBuf, StoreError> {
        let kept = self.dir.with_file_name(format!(
            "blocked-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        fs_err::rename(&self.dir, &kept)?;
        self.dir = PathBuf::new();
        let staging = kept.parent().expect("staging folder");
        let mut blocked: Vec<PathBuf> = fs_err::read_dir(staging)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("blocked-"))
            .map(|e| e.path())
            .collect();
        // The names hold the time, so they sort oldest first.
        blocked.sort();
        let excess = blocked.len().saturating_sub(keep_blocked.max(1));
        for old in blocked.into_iter().take(excess) {
            fs_err::remove_dir_all(old)?;
        }
        Ok(kept)
    }
}

impl Drop for StagedVersion {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }
}

impl EmbeddedStore {
    /// Deletes the oldest versions so at most `keep` remain; never the current one.
    fn retain(&self, job: &str, current: Option<VersionId>, keep: usize) -> Result<(), StoreError> {
        crate::failpoint::fail("retention")?;
        let ids = self.version_ids(job)?;
        let excess = ids.len().saturating_sub(keep.max(1));
        for id in ids
            .into_iter()
            .filter(|&id| Some(id) != current)
            .take(excess)
        {
            // Readers that still map a deleted version's files keep them alive until
            // they swap; the folder is only unlinked.
            fs_err::remove_dir_all(self.version_dir(job, id))?;
        }
        Ok(())
    }
}

impl EmbeddedStore {
    /// Removes what crashed runs left behind: versions moved into `versions/` but
    /// never published (killed between the move and the pointer swap), and temporary
    /// files of atomic writes whose process is gone.
    fn remove_leftovers(&self, job: &str) -> Result<(), StoreError> {
        let job_dir = self.job_dir(job);
        let _lock = JobLock::acquire(&job_dir)?;
        let history = self.history(job)?;
        if !history.is_empty() {
            let current = self.current(job).ok().flatten();
            for id in self.version_ids(job)? {
                if Some(id) != current && !history.knows(id) {
                    eprintln!(
                        "job `{job}`: removing version {id}, moved into place by a run that never published it"
                    );
                    fs_err::remove_dir_all(self.version_dir(job, id))?;
                }
            }
        }
        for entry in fs_err::read_dir(&job_dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix('.')
                .and_then(|rest| rest.rsplit_once(".tmp-"))
                .and_then(|(_, pid)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !process_runs(pid) {
                fs_err::remove_file(job_dir.join(&name))?;
            }
        }
        Ok(())
    }
}

/// True when a process with `pid` runs (always true where `/proc` is missing, so
/// nothing of a live run is removed).
fn process_runs(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes `run-<pid>-*` staging folders whose process no longer runs (killed runs).
fn remove_dead_runs(staging: &Path) -> Result<(), StoreError> {
    for entry in fs_err::read_dir(staging)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_runs(pid) {
            fs_err::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
