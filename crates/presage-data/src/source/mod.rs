//! Sources: the named tables feature SQL reads.
//!
//! A source kind is the unit of extension. Each kind implements [`SourceKind`]: it
//! opens itself for one session, giving DataFusion a [`TableProvider`] and the
//! manifest a [`SourceFingerprint`] of exactly what the table will read. Nothing else
//! in the workspace knows which kind a source is: the config parser builds one, and
//! [`crate::FeatureSession`] opens it only when a query reads it.
//!
//! Kinds: [`FileSource`] (local files), [`ObjectSource`] (object storage) and
//! [`PostgresSource`]; [`PartitionColumn`]s make a folder or prefix one hive-partitioned
//! table.
//!
//! To add a kind: a type implementing [`SourceKind`] in a module beside [`files`],
//! and a branch of the config parser (`crates/presage/src/config.rs`) that builds it.

mod files;
mod objects;
mod postgres;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};

pub use files::{FileSource, SourceFormat};
pub(crate) use objects::RemoteReads;
pub use objects::{
    FetchStats, ObjectSource, PartitionColumn, StorageOptions, is_remote_url, write_files,
};
pub use postgres::{PostgresConnection, PostgresRelation, PostgresSource};

use crate::DataError;

/// Where a source's rows come from.
#[async_trait]
pub trait SourceKind: Send + Sync + fmt::Debug {
    /// Where the rows are, for messages and the manifest: a path, a URL, a table.
    fn location(&self) -> String;

    /// Opens the source `name` for one query session: the table DataFusion reads and
    /// the fingerprint of what it holds now. Errors name the source and the file,
    /// URL or table that failed.
    async fn open(&self, name: &str, session: &dyn Session) -> Result<OpenedSource, DataError>;
}

/// A source opened for one session.
#[derive(Debug)]
pub struct OpenedSource {
    /// The table the feature SQL reads.
    pub table: Arc<dyn TableProvider>,
    /// What the table holds, for the manifest.
    pub fingerprint: SourceFingerprint,
}

/// A named table the feature SQL can read.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The table name in SQL.
    pub name: String,
    /// Where its rows come from.
    pub kind: Arc<dyn SourceKind>,
}

impl SourceSpec {
    /// A source named `name` of any kind.
    pub fn new(name: impl Into<String>, kind: impl SourceKind + 'static) -> SourceSpec {
        SourceSpec {
            name: name.into(),
            kind: Arc::new(kind),
        }
    }

    /// Where its rows are (a path, a URL, a table), for messages.
    pub fn location(&self) -> String {
        self.kind.location()
    }
}

impl PartialEq for SourceSpec {
    /// Two sources are the same when they have the same name and location.
    fn eq(&self, other: &SourceSpec) -> bool {
        self.name == other.name && self.location() == other.location()
    }
}

/// What a source held when a version was computed, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFingerprint {
    /// The source's name.
    pub name: String,
    /// Where it is: its configured path, URL or table.
    pub path: String,
    /// Number of files (or objects) read; 0 for a database table.
    pub files: usize,
    /// Total bytes of those files.
    pub bytes: u64,
    /// A hash of what was read without reading it (for files: every file's path,
    /// size and modification time), as `sha256:<hex>`: equal fingerprints mean, barring
    /// in-place rewrites within the clock's resolution, the same data.
    pub fingerprint: String,
}
