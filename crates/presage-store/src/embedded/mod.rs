//! The embedded store: versions as folders on local disk.
//!
//! ```text
//! data_dir/<job>/CURRENT                 the published version id; replaced by atomic rename
//! data_dir/<job>/versions/<id>/          manifest.json, predictions.lookup, predictions.parquet
//! data_dir/<job>/staging/                runs in progress; never served
//! data_dir/<job>/.lock                   held while publishing or rolling back
//! ```

mod backend;
mod reader;
mod writer;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use reader::LoadedVersion;
pub use writer::{StagedVersion, VersionWriter};

use crate::durable::write_atomic;
use crate::{Manifest, StoreError, VersionId};

pub(crate) const CURRENT: &str = "CURRENT";
pub(crate) const VERSIONS: &str = "versions";
pub(crate) const STAGING: &str = "staging";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const LOOKUP_FILE: &str = "predictions.lookup";
pub(crate) const PARQUET_FILE: &str = "predictions.parquet";

/// Versions of every job under one data folder.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    root: PathBuf,
}

impl EmbeddedStore {
    /// A store rooted at `data_dir` (created on first write).
    pub fn new(data_dir: impl Into<PathBuf>) -> EmbeddedStore {
        EmbeddedStore {
            root: data_dir.into(),
        }
    }

    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn job_dir(&self, job: &str) -> PathBuf {
        self.root.join(job)
    }

    /// The file holding a job's current version id (servers watch it).
    pub fn current_path(&self, job: &str) -> PathBuf {
        self.job_dir(job).join(CURRENT)
    }

    /// The folder of a published version.
    pub fn version_dir(&self, job: &str, id: VersionId) -> PathBuf {
        self.job_dir(job).join(VERSIONS).join(id.to_string())
    }

    /// The job's current version, `None` before its first publish.
    pub fn current(&self, job: &str) -> Result<Option<VersionId>, StoreError> {
        let path = self.current_path(job);
        let content = match fs_err::read_to_string(&path) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        content
            .parse()
            .map(Some)
            .map_err(|_| StoreError::BadPointer {
                path,
                content: content.trim().to_owned(),
            })
    }

    /// Ids of the job's versions on disk, oldest first.
    pub fn version_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError> {
        let dir = self.job_dir(job).join(VERSIONS);
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                && entry.path().join(MANIFEST).is_file()
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// A version's manifest.
    pub fn manifest(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        let path = self.version_dir(job, id).join(MANIFEST);
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::UnknownVersion {
                    job: job.to_owned(),
                    id,
                });
            }
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadManifest {
            path,
            message: e.to_string(),
        })
    }

    /// Every version's manifest, newest first.
    pub fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        let mut ids = self.version_ids(job)?;
        ids.reverse();
        ids.into_iter().map(|id| self.manifest(job, id)).collect()
    }

    /// Names of the jobs that have a published version.
    pub fn jobs(&self) -> Result<Vec<String>, StoreError> {
        let entries = match fs_err::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut jobs = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.path().join(CURRENT).is_file() {
                jobs.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        jobs.sort();
        Ok(jobs)
    }

    /// Checks every file of a version against its manifest's sha256.
    pub fn verify(&self, job: &str, id: VersionId) -> Result<Manifest, StoreError> {
        let manifest = self.manifest(job, id)?;
        let dir = self.version_dir(job, id);
        for file in &manifest.files {
            verify_version_file(job, id, &dir.join(&file.name), &file.sha256)?;
        }
        Ok(manifest)
    }

    /// Opens a version for lookups, after checking its lookup file's checksum.
    pub fn load(&self, job: &str, id: VersionId) -> Result<LoadedVersion, StoreError> {
        LoadedVersion::open(self, job, id)
    }

    /// Points `CURRENT` back at `to`, or at the newest version older than the
    /// current one. The target's files are verified first; on any error nothing
    /// changes. Returns `(previous, new)` current ids.
    pub fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
    ) -> Result<(VersionId, VersionId), StoreError> {
        let _lock = JobLock::acquire(&self.job_dir(job))?;
        let current = self.current(job)?.ok_or_else(|| StoreError::NoVersion {
            job: job.to_owned(),
        })?;
        let target = match to {
            Some(id) => id,
            None => self
                .version_ids(job)?
                .into_iter()
                .filter(|&id| id < current)
                .max()
                .ok_or_else(|| StoreError::NothingToRollBackTo {
                    job: job.to_owned(),
                    current,
                })?,
        };
        self.verify(job, target)?;
        write_atomic(&self.current_path(job), format!("{target}\n").as_bytes())?;
        Ok((current, target))
    }
}

/// An exclusive lock on a job's folder, held while its versions change.
pub(crate) struct JobLock {
    _file: std::fs::File,
}

impl JobLock {
    pub(crate) fn acquire(job_dir: &Path) -> Result<JobLock, StoreError> {
        fs_err::create_dir_all(job_dir)?;
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(job_dir.join(".lock"))?;
        let file = file.into_parts().0;
        file.lock()?;
        Ok(JobLock { _file: file })
    }
}

pub(crate) fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// `sha256:` of `bytes`, as manifests record it.
pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

pub(crate) fn verify_version_file(
    job: &str,
    id: VersionId,
    path: &Path,
    expected: &str,
) -> Result<(), StoreError> {
    let actual = match sha256_file(path) {
        Ok(actual) => actual,
        Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => "missing".to_owned(),
        Err(e) => return Err(e),
    };
    check_sha256(job, id, path, expected, actual)
}

/// Refuses a version file whose checksum is not the manifest's.
pub(crate) fn check_sha256(
    job: &str,
    id: VersionId,
    path: &Path,
    expected: &str,
    actual: String,
) -> Result<(), StoreError> {
    if actual != expected {
        return Err(StoreError::ChecksumMismatch {
            job: job.to_owned(),
            id,
            path: path.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}
