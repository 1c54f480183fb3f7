use crate::VersionId;

/// Why the Redis store could not connect, write, publish, read or roll back.
///
/// Every variant names where: the server (`url`, with any password hidden), the job,
/// and the key or key prefix involved.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// The URL could not be parsed or no connection could be made.
    #[error("connecting to redis at `{url}`: {error}")]
    Connect {
        /// The server or cluster nodes.
        url: String,
        /// The client's error.
        error: Box<::redis::RedisError>,
    },
    /// The URL is not one the store connects with: only `redis://` is; `rediss://`
    /// (TLS) is not supported yet.
    #[error("`{url}` {reason}")]
    UnsupportedUrl {
        /// The URL (password hidden).
        url: String,
        /// Why, and what to use instead.
        reason: &'static str,
    },
    /// `CLUSTER SLOTS` gave an answer that is not a slot map.
    #[error("reading the slot map of the redis cluster at `{url}`: {message}")]
    Topology {
        /// The cluster nodes.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A command about a job's versions failed.
    #[error("{action} job `{job}` in redis at `{url}`: {error}")]
    Command {
        /// The server or cluster nodes.
        url: String,
        /// The job.
        job: String,
        /// What was being done (`publishing`, `rolling back`, ...).
        action: &'static str,
        /// The client's error.
        error: Box<::redis::RedisError>,
    },
    /// Writing or deleting the keys of a version failed.
    #[error("{action} keys `{prefix}*` of job `{job}` in redis at `{url}`: {error}")]
    Keys {
        /// The server or cluster nodes.
        url: String,
        /// The job.
        job: String,
        /// The version's key prefix.
        prefix: String,
        /// `writing` or `deleting`.
        action: &'static str,
        /// The client's error.
        error: Box<::redis::RedisError>,
    },
    /// A lookup failed.
    #[error("looking up `{key}` in redis at `{url}`: {error}")]
    Lookup {
        /// The server or cluster nodes.
        url: String,
        /// The Redis key (or the first of several).
        key: String,
        /// The client's error.
        error: Box<::redis::RedisError>,
    },
    /// The job name cannot be part of a Redis key layout.
    #[error(
        "job name `{job}` cannot be used in redis keys: it must be non-empty, at most 128 bytes, not start with `.`, and hold no `:`, `/`, `\\`, `{{`, `}}`, whitespace or control character"
    )]
    BadJobName {
        /// The job.
        job: String,
    },
    /// The key namespace cannot be used.
    #[error(
        "redis key namespace `{namespace}` must be non-empty, without `{{`, `}}` or whitespace"
    )]
    BadNamespace {
        /// The namespace.
        namespace: String,
    },
    /// The key column's type cannot be a key.
    #[error(
        "key column `{column}` of job `{job}` has type `{data_type}`; a key must be a string or an integer"
    )]
    KeyType {
        /// The job.
        job: String,
        /// The key column.
        column: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// A prediction field's type has no JSON encoding here.
    #[error(
        "prediction field `{field}` of job `{job}` has type `{data_type}`, which cannot be stored"
    )]
    FieldType {
        /// The job.
        job: String,
        /// The field.
        field: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// A batch does not match the fields given to `begin`.
    #[error("a batch for job `{job}` does not match its schema: {message}")]
    Batch {
        /// The job.
        job: String,
        /// What differs.
        message: String,
    },
    /// A key is null.
    #[error("key of row `{row}` of job `{job}` is null")]
    NullKey {
        /// The job.
        job: String,
        /// The row, counted from the start of the run.
        row: u64,
    },
    /// The same key appeared twice in one version.
    #[error("key `{key}` appears more than once in the version of job `{job}` being written")]
    DuplicateKey {
        /// The job.
        job: String,
        /// The key, as text.
        key: String,
    },
    /// The version being written was given up: its lease expired (the writer stalled
    /// longer than the lease) and another run claimed its keys for deletion.
    #[error(
        "version `{id}` of job `{job}` was abandoned while being written (its lease in `{staging}` expired); nothing was published"
    )]
    StagingLost {
        /// The job.
        job: String,
        /// The version being written.
        id: VersionId,
        /// The staging hash.
        staging: String,
    },
    /// Publishing kept losing the race against other publishers of the same job.
    #[error(
        "job `{job}`: the current version kept changing while publishing version `{id}`; nothing was published"
    )]
    Contended {
        /// The job.
        job: String,
        /// The version being published.
        id: VersionId,
    },
    /// A published version lost keys since it was published (evicted under
    /// `maxmemory`, deleted by hand, a node's data lost): answering from it would turn
    /// its predictions into misses, so it is refused.
    #[error(
        "version `{id}` of job `{job}` in redis at `{url}` is incomplete: {message}; roll back to an earlier version or publish a new one"
    )]
    Incomplete {
        /// The server or cluster nodes.
        url: String,
        /// The job.
        job: String,
        /// The version.
        id: VersionId,
        /// What is missing.
        message: String,
    },
    /// The job has no published version.
    #[error("job `{job}` has no published version")]
    NoVersion {
        /// The job.
        job: String,
    },
    /// The version does not exist (never published, or deleted by retention).
    #[error("job `{job}` has no version `{id}`; see `presage versions {job}`")]
    UnknownVersion {
        /// The job.
        job: String,
        /// The requested version.
        id: VersionId,
    },
    /// There is no earlier version to roll back to.
    #[error("job `{job}` has no version before `{current}` to roll back to")]
    NothingToRollBackTo {
        /// The job.
        job: String,
        /// Its current version.
        current: VersionId,
    },
    /// The pointer key holds something that is not a version id.
    #[error("redis key `{key}` does not hold a version id: `{content}`")]
    BadPointer {
        /// The pointer key.
        key: String,
        /// What it holds.
        content: String,
    },
    /// A manifest or run record in Redis could not be parsed.
    #[error("reading `{key}` from redis: {message}")]
    BadManifest {
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
}
