use std::path::PathBuf;

use crate::VersionId;
use crate::lookup::LookupError;

/// Why a version could not be written, published, read or rolled back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed; the path is in the message of `source` (fs_err).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Building or reading a lookup file failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The Redis store failed; the message names the server, job and key. Boxed: it
    /// is much larger than the other variants.
    #[error(transparent)]
    Redis(Box<crate::redis::RedisStoreError>),
    /// Writing `predictions.parquet` failed.
    #[error("writing `{path}`: {message}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The writer's message.
        message: String,
    },
    /// The job has no published version.
    #[error("job `{job}` has no published version")]
    NoVersion {
        /// The job.
        job: String,
    },
    /// The version does not exist.
    #[error("job `{job}` has no version `{id}`; see `presage versions {job}`")]
    UnknownVersion {
        /// The job.
        job: String,
        /// The requested version.
        id: VersionId,
    },
    /// A file of a version does not match the checksum its manifest recorded.
    #[error(
        "version `{id}` of job `{job}` is corrupt: `{path}` has sha256 {actual}, the manifest says {expected}"
    )]
    ChecksumMismatch {
        /// The job.
        job: String,
        /// The version.
        id: VersionId,
        /// The file that failed.
        path: PathBuf,
        /// The checksum in the manifest.
        expected: String,
        /// The checksum of the file now.
        actual: String,
    },
    /// A manifest could not be parsed.
    #[error("reading manifest `{path}`: {message}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// `CURRENT` holds something that is not a version id.
    #[error("`{path}` does not hold a version id: `{content}`")]
    BadPointer {
        /// The pointer file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// There is no earlier version to roll back to.
    #[error("job `{job}` has no version before `{current}` to roll back to")]
    NothingToRollBackTo {
        /// The job.
        job: String,
        /// Its current version.
        current: VersionId,
    },
}

impl From<crate::redis::RedisStoreError> for StoreError {
    fn from(error: crate::redis::RedisStoreError) -> StoreError {
        StoreError::Redis(Box::new(error))
    }
}
