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
    /// `rollback --to` the version served now.
    #[error("job `{job}` already serves version {id}")]
    AlreadyCurrent {
        /// The job.
        job: String,
        /// The current version.
        id: VersionId,
    },
    /// `rollback --to` a version an operator rolled away from, without force.
    #[error("job `{job}`: version {id} was rolled back from; pass --force to serve it again")]
    RolledBackVersion {
        /// The job.
        job: String,
        /// The version asked for.
        id: VersionId,
    },
    /// Another run of the job holds its run lock.
    #[error("a run of job `{job}` is in progress ({holder}); wait for it or stop it")]
    RunInProgress {
        /// The job.
        job: String,
        /// Who holds the lock: `pid N since T`.
        holder: String,
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

/// What kind of failure a [`StoreError`] is, whichever backend raised it: what the job
/// runner and the server decide on (an HTTP status, a retry, a message) without
/// naming a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The job, version or an earlier version does not exist.
    NotFound,
    /// The request conflicts with the store's state: nothing to roll back to, another
    /// run holds the job, the staged version was taken over.
    Conflict,
    /// Stored data failed a check: a checksum, a manifest, a pointer, a file format.
    Corrupt,
    /// The store could not be reached or read: I/O, a connection, a server command.
    Unavailable,
    /// What was given to write does not fit: a duplicate or null key, a type the
    /// store cannot hold, a name it refuses.
    Invalid,
}

impl StoreError {
    /// The kind of failure, for decisions that must not depend on the backend.
    pub fn kind(&self) -> StoreErrorKind {
        use crate::redis::RedisStoreError as R;
        use StoreErrorKind::*;
        match self {
            StoreError::Io(_) | StoreError::Parquet { .. } => Unavailable,
            StoreError::Lookup(error) => match error {
                LookupError::Io { .. } => Unavailable,
                LookupError::Corrupt { .. }
                | LookupError::ChecksumMismatch { .. }
                | LookupError::UnsupportedVersion { .. } => Corrupt,
                LookupError::NullKey { .. }
                | LookupError::DuplicateKey { .. }
                | LookupError::KeyOutOfRange { .. }
                | LookupError::FieldType { .. }
                | LookupError::ColumnType { .. }
                | LookupError::KeyType { .. }
                | LookupError::DuplicateField { .. }
                | LookupError::ColumnCount { .. }
                | LookupError::ColumnLength { .. }
                | LookupError::TooLarge { .. } => Invalid,
            },
            StoreError::Redis(error) => match **error {
                R::Connect { .. }
                | R::Topology { .. }
                | R::Command { .. }
                | R::Keys { .. }
                | R::Lookup { .. } => Unavailable,
                R::BadJobName { .. }
                | R::BadNamespace { .. }
                | R::KeyType { .. }
                | R::FieldType { .. }
                | R::Batch { .. }
                | R::NullKey { .. }
                | R::DuplicateKey { .. }
                | R::UnsupportedUrl { .. } => Invalid,
                R::StagingLost { .. } | R::Contended { .. } | R::NothingToRollBackTo { .. } => {
                    Conflict
                }
                R::NoVersion { .. } | R::UnknownVersion { .. } => NotFound,
                R::BadPointer { .. } | R::BadManifest { .. } | R::Incomplete { .. } => Corrupt,
            },
            StoreError::NoVersion { .. } | StoreError::UnknownVersion { .. } => NotFound,
            StoreError::ChecksumMismatch { .. }
            | StoreError::BadManifest { .. }
            | StoreError::BadPointer { .. } => Corrupt,
            StoreError::NothingToRollBackTo { .. }
            | StoreError::RolledBackVersion { .. }
            | StoreError::AlreadyCurrent { .. }
            | StoreError::RunInProgress { .. } => Conflict,
        }
    }

    /// The repeated key, when a version being written was given the same key twice.
    pub fn duplicate_key(&self) -> Option<&str> {
        match self {
            StoreError::Lookup(LookupError::DuplicateKey { key, .. }) => Some(key),
            StoreError::Redis(error) => match &**error {
                crate::redis::RedisStoreError::DuplicateKey { key, .. } => Some(key),
                _ => None,
            },
            _ => None,
        }
    }
}
