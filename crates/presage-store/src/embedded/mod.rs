//! The embedded store: versions as folders on local disk.
//!
//! ```text
//! data_dir/<job>/CURRENT                 the published version id; replaced by atomic rename
//! data_dir/<job>/versions/<id>/          manifest.json, predictions.lookup, predictions.parquet
//! data_dir/<job>/history.jsonl           every publish, backfill and rollback, appended
//! data_dir/<job>/staging/                runs in progress; never served
//! data_dir/<job>/.lock                   held while publishing or rolling back
//! data_dir/<job>/run.lock                held by the one run of the job in progress
//! ```
//!
//! A version's `manifest.sha256` holds the sha256 of its `manifest.json`, so an
//! edited manifest is refused like an edited lookup file.

mod backend;
mod reader;
mod writer;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use reader::LoadedVersion;
pub use writer::{StagedVersion, VersionWriter};

use crate::durable::write_atomic;
use crate::history::{History, HistoryEntry, HistoryEvent};
use crate::{Manifest, StoreError, VersionId};

pub(crate) const CURRENT: &str = "CURRENT";
pub(crate) const VERSIONS: &str = "versions";
pub(crate) const STAGING: &str = "staging";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const MANIFEST_SHA256: &str = "manifest.sha256";
pub(crate) const HISTORY: &str = "history.jsonl";
pub(crate) const RUN_LOCK: &str = "run.lock";
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
        // Versions published before manifests were checksummed have no sidecar.
        let sidecar = path.with_file_name(MANIFEST_SHA256);
        match fs_err::read_to_string(&sidecar) {
            Ok(expected) => check_sha256(job, id, &path, expected.trim(), sha256_bytes(&bytes))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadManifest {
            path,
            message: e.to_string(),
        })
    }

    /// Every published version's manifest, newest first. A version moved into place
    /// but never published (a crash before the pointer swap) is not listed.
    pub fn versions(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        let mut ids = self.published_ids(job)?;
        ids.reverse();
        ids.into_iter().map(|id| self.manifest(job, id)).collect()
    }

    /// Ids of the job's published versions on disk, oldest first: those the history
    /// knows, and the current one (its history entry is written after the swap).
    pub(crate) fn published_ids(&self, job: &str) -> Result<Vec<VersionId>, StoreError> {
        let history = self.history(job)?;
        let current = self.current(job).ok().flatten();
        let mut ids = self.version_ids(job)?;
        if !history.is_empty() {
            ids.retain(|&id| Some(id) == current || history.knows(id));
        } else if !self.current_path(job).exists() {
            // Nothing was ever published: a version on disk is a first run killed
            // before its swap.
            ids.clear();
        }
        // Else a store from before histories were kept: everything was published.
        Ok(ids)
    }

    /// Size, modification time and inode of `CURRENT` and of the version's files,
    /// hashed: they change when any of them is rewritten or restored.
    pub fn fingerprint(&self, job: &str, id: VersionId) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let dir = self.version_dir(job, id);
        let mut paths = vec![self.current_path(job), dir.clone()];
        if let Ok(entries) = std::fs::read_dir(&dir) {
            paths.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
        paths.sort();
        for path in paths {
            path.hash(&mut hasher);
            if let Ok(meta) = std::fs::metadata(&path) {
                (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut hasher);
            }
        }
        Some(hasher.finish())
    }

    /// The job's history of publishes, backfills and rollbacks. A line that does not
    /// parse (torn by a crash while appending) is skipped.
    pub fn history(&self, job: &str) -> Result<History, StoreError> {
        let path = self.job_dir(job).join(HISTORY);
        let text = match fs_err::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(e.into()),
        };
        Ok(History::new(
            text.lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect(),
        ))
    }

    /// Appends `event` for `version` to the history; the caller holds the job lock.
    ///
    /// The first append into a store written before histories were kept records every
    /// version on disk as published, so rollback keeps its old targets; an append that
    /// finds the current version missing (a crash after a swap) records it first.
    fn append_history(
        &self,
        job: &str,
        version: VersionId,
        event: HistoryEvent,
    ) -> Result<(), StoreError> {
        use std::io::Write;
        let history = self.history(job)?;
        let current_before = match event {
            HistoryEvent::RolledBack { from } => Some(from),
            HistoryEvent::Published => self.manifest(job, version)?.parent,
            HistoryEvent::Backfilled => self.current(job).ok().flatten(),
        };
        let mut lines = Vec::new();
        let mut record = |version: VersionId, at, event| {
            let entry = HistoryEntry { version, at, event };
            lines.extend(serde_json::to_vec(&entry).expect("history entry serialises"));
            lines.push(b'\n');
        };
        if history.is_empty() && self.current_path(job).exists() {
            for id in self.version_ids(job)? {
                if id != version && Some(id) != current_before {
                    let at = self.manifest(job, id)?.created_at;
                    record(id, at, HistoryEvent::Published);
                }
            }
        }
        if let Some(before) = current_before
            && history.last_served() != Some(before)
            && self.version_dir(job, before).is_dir()
        {
            let at = self.manifest(job, before)?.created_at;
            record(before, at, HistoryEvent::Published);
        }
        record(version, chrono::Utc::now(), event);
        let path = self.job_dir(job).join(HISTORY);
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&lines)?;
        file.sync_all()?;
        Ok(())
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

    /// Points `CURRENT` back at `to`, or at the version served before the current
    /// one (skipping versions rolled away from). The target's files are verified
    /// first; on any error nothing changes. A version rolled away from before needs
    /// `force`. Returns `(previous, new)` current ids.
    pub fn rollback(
        &self,
        job: &str,
        to: Option<VersionId>,
        force: bool,
    ) -> Result<(VersionId, VersionId), StoreError> {
        let _lock = JobLock::acquire(&self.job_dir(job))?;
        let current = self.current(job)?.ok_or_else(|| StoreError::NoVersion {
            job: job.to_owned(),
        })?;
        let history = self.history(job)?;
        let kept = self.published_ids(job)?;
        let target = history
            .resolve_rollback(current, to, force, &kept)
            .map_err(|refusal| refusal.into_error(job, current))?;
        self.verify(job, target)?;
        write_atomic(&self.current_path(job), format!("{target}\n").as_bytes())?;
        if let Err(e) = self.append_history(job, target, HistoryEvent::RolledBack { from: current })
        {
            // The pointer moved: the rollback happened, whatever the history says.
            eprintln!(
                "warning: job `{job}`: rolled back to {target}, but recording it in the history failed: {e}"
            );
        }
        Ok((current, target))
    }
}

impl EmbeddedStore {
    /// Takes `run.lock` in the job's folder without waiting; the file says who holds
    /// it, for the error another run gets. The kernel drops the lock when the process
    /// dies, so a killed run never leaves the job locked.
    pub fn lock_run(&self, job: &str) -> Result<crate::RunLock, StoreError> {
        use std::io::{Read, Seek, Write};
        let job_dir = self.job_dir(job);
        fs_err::create_dir_all(&job_dir)?;
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(job_dir.join(RUN_LOCK))?
            .into_parts()
            .0;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::RunInProgress {
                    job: job.to_owned(),
                    holder: if holder.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(
            file,
            "pid {} since {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )?;
        Ok(crate::RunLock::new(FileRunLock(file)))
    }
}

/// The open `run.lock`: the kernel holds the lock until the file is closed.
struct FileRunLock(std::fs::File);

#[async_trait::async_trait]
impl crate::HeldRunLock for FileRunLock {
    async fn release(self: Box<Self>) {
        drop(self.0);
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
